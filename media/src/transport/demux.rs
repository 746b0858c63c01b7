//! Which peer connection a datagram on the node's one UDP port is for.
//!
//! Every connection shares the port, so each datagram is sorted by its first
//! byte (RFC 7983: STUN, DTLS, SRTP/SRTCP), STUN binding requests by the
//! local ICE username fragment in their USERNAME attribute, and everything
//! else by the remote address the connection's ICE agent accepted. Nothing
//! here allocates per datagram.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

/// What a datagram is, by its first byte (RFC 7983 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// STUN (0 to 3): ICE checks and consent.
    Stun,
    /// DTLS (20 to 63): the handshake and alerts.
    Dtls,
    /// SRTP or SRTCP (128 to 191): media and its feedback.
    Media,
    /// Anything else (ZRTP, TURN channels, garbage): dropped.
    Other,
}

/// Sorts a datagram by its first byte.
pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Media,
        _ => Kind::Other,
    }
}

/// STUN's magic cookie (RFC 5389).
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The USERNAME attribute.
const USERNAME: u16 = 0x0006;
/// The Binding method.
const BINDING: u16 = 0x0001;

/// A STUN message's class (RFC 5389 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunClass {
    /// A request, such as an ICE connectivity check.
    Request,
    /// An indication, such as a keep-alive.
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

/// What the demultiplexer reads of a STUN message; the ICE agent checks the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stun<'a> {
    /// Request, indication or response.
    pub class: StunClass,
    /// The method (1 is Binding).
    pub method: u16,
    /// The transaction id.
    pub transaction_id: &'a TransactionId,
    /// The USERNAME attribute's value, if present.
    pub username: Option<&'a [u8]>,
}

impl<'a> Stun<'a> {
    /// Reads a STUN message's header and walks its attributes for USERNAME;
    /// `None` if it is not well-formed STUN.
    pub fn parse(datagram: &'a [u8]) -> Option<Self> {
        if datagram.len() < 20 || datagram[0] & 0xC0 != 0 {
            return None;
        }
        let message_type = u16::from_be_bytes([datagram[0], datagram[1]]);
        let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        let cookie = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
        if cookie != MAGIC_COOKIE || length % 4 != 0 || datagram.len() != 20 + length {
            return None;
        }
        let class = match ((message_type >> 7) & 0b10) | ((message_type >> 4) & 0b01) {
            0b00 => StunClass::Request,
            0b01 => StunClass::Indication,
            0b10 => StunClass::Success,
            _ => StunClass::Error,
        };
        let method = (message_type & 0x000F)
            | ((message_type >> 1) & 0x0070)
            | ((message_type >> 2) & 0x0F80);
        let mut username = None;
        let mut rest = &datagram[20..];
        while rest.len() >= 4 {
            let kind = u16::from_be_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            let padded = len.checked_add(3)? & !3;
            let value = rest.get(4..4 + len)?;
            if kind == USERNAME && username.is_none() {
                username = Some(value);
            }
            rest = rest.get(4 + padded..)?;
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            class,
            method,
            transaction_id: datagram[8..20].try_into().ok()?,
            username,
        })
    }

    /// The ufrag of the side that received a binding request: USERNAME is
    /// `receiver:sender` (RFC 8445 section 7.2.2).
    pub fn local_ufrag(&self) -> Option<&'a str> {
        let username = std::str::from_utf8(self.username?).ok()?;
        let (local, _) = username.split_once(':')?;
        (!local.is_empty()).then_some(local)
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<C> {
    /// To this connection, from an address it already uses.
    Known(C),
    /// A binding request for this connection from an address it does not use
    /// (yet): the first check of a pair, or a client whose network changed.
    /// Feed it to the connection; call [`Router::learn`] once it accepts it.
    Check(C),
    /// The answer to a check this connection sent (by its transaction id),
    /// from an address it may not use yet: the client's reply to a check the
    /// connection started. Feed it; it teaches no address.
    Response(C),
    /// For nobody: dropped.
    Unknown,
}

/// How many checks a worker has sent and may still hear answered: ICE
/// answers in well under a second, and at 20 checks a second per pair this
/// covers hundreds of connections checking at once.
pub const OUTSTANDING_CHECKS: usize = 8192;

/// A STUN transaction id.
pub type TransactionId = [u8; 12];

/// Checks sent and not yet answered, by transaction id, with what their
/// answers are for: at most [`OUTSTANDING_CHECKS`], the oldest forgotten first.
#[derive(Debug)]
pub struct Outstanding<V> {
    by_id: HashMap<TransactionId, V>,
    /// The ids in `by_id`, oldest first.
    order: std::collections::VecDeque<TransactionId>,
}

impl<V> Default for Outstanding<V> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }
}

impl<V: Copy> Outstanding<V> {
    /// Remembers check `id`, forgetting the oldest past the limit.
    pub fn insert(&mut self, id: TransactionId, value: V) {
        if self.by_id.insert(id, value).is_none() {
            self.order.push_back(id);
            if self.order.len() > OUTSTANDING_CHECKS {
                if let Some(oldest) = self.order.pop_front() {
                    self.by_id.remove(&oldest);
                }
            }
        }
    }

    /// What check `id` was for, if it is remembered.
    pub fn get(&self, id: &TransactionId) -> Option<V> {
        self.by_id.get(id).copied()
    }

    /// Forgets the checks whose value `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.by_id.retain(|_, v| keep(v));
        let by_id = &self.by_id;
        self.order.retain(|id| by_id.contains_key(id));
    }

    /// Whether no check is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.order.is_empty()
    }
}

/// The demultiplexer's tables: connections by local ufrag and by remote address.
#[derive(Debug)]
pub struct Router<C> {
    by_ufrag: HashMap<String, C>,
    by_addr: HashMap<SocketAddr, C>,
    /// The checks each connection sent, for their answers.
    checks: Outstanding<C>,
}

impl<C> Default for Router<C> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            checks: Outstanding::default(),
        }
    }
}

impl<C: Copy + Eq + Hash> Router<C> {
    /// Routes binding requests for `ufrag` to `conn` (a new connection, or
    /// its new credentials after an ICE restart; the old stay until removed).
    pub fn add_ufrag(&mut self, ufrag: &str, conn: C) {
        self.by_ufrag.insert(ufrag.to_owned(), conn);
    }

    /// Stops routing binding requests for `ufrag`.
    pub fn remove_ufrag(&mut self, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
    }

    /// Routes everything from `remote` to `conn`: its ICE agent accepted a
    /// check from there. An address belongs to one connection at a time.
    pub fn learn(&mut self, remote: SocketAddr, conn: C) {
        self.by_addr.insert(remote, conn);
    }

    /// Routes the answer to the check `conn` sent as `transaction`, whatever
    /// address it comes from. The oldest of [`OUTSTANDING_CHECKS`] are forgotten.
    pub fn expect_response(&mut self, transaction: TransactionId, conn: C) {
        self.checks.insert(transaction, conn);
    }

    /// The connection datagrams from `remote` go to, if any.
    pub fn owner(&self, remote: SocketAddr) -> Option<C> {
        self.by_addr.get(&remote).copied()
    }

    /// Stops routing datagrams from `remote` to `conn` (it moved on).
    pub fn unlearn(&mut self, remote: SocketAddr, conn: C) {
        if self.by_addr.get(&remote) == Some(&conn) {
            self.by_addr.remove(&remote);
        }
    }

    /// Forgets `conn` entirely (it closed).
    pub fn remove(&mut self, conn: C) {
        self.by_ufrag.retain(|_, c| *c != conn);
        self.by_addr.retain(|_, c| *c != conn);
        self.checks.retain(|c| *c != conn);
    }

    /// Where a datagram from `remote` goes.
    pub fn route(&self, remote: SocketAddr, datagram: &[u8]) -> Route<C> {
        let known = self.by_addr.get(&remote).copied();
        if classify(datagram) == Kind::Stun {
            if let Some(stun) = Stun::parse(datagram) {
                if stun.class == StunClass::Request && stun.method == BINDING {
                    let Some(conn) = stun.local_ufrag().and_then(|u| self.by_ufrag.get(u)) else {
                        return Route::Unknown;
                    };
                    return match known {
                        Some(c) if c == *conn => Route::Known(c),
                        _ => Route::Check(*conn),
                    };
                }
                if matches!(stun.class, StunClass::Success | StunClass::Error) && known.is_none() {
                    let checked = self.checks.get(stun.transaction_id);
                    return checked.map_or(Route::Unknown, Route::Response);
                }
            }
        } else if classify(datagram) == Kind::Other {
            return Route::Unknown;
        }
        known.map_or(Route::Unknown, Route::Known)
    }

    /// Connections known by ufrag and by address (for metrics and tests).
    pub fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }

    /// Whether no connection is known.
    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty() && self.by_addr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request with USERNAME `username`, as a browser's check.
    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        // PRIORITY, which the demultiplexer skips.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A binding success response to transaction `id`.
    fn binding_success(id: [u8; 12]) -> Vec<u8> {
        let mut m = vec![0x01, 0x01, 0x00, 0x00];
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&id);
        m
    }

    #[test]
    fn the_answer_to_a_check_reaches_the_connection_that_sent_it() {
        let mut router = Router::default();
        let client = addr("198.51.100.7:50000");
        router.expect_response([1; 12], 5u32);
        // A client that nominates with every check (aiortc) gets no answer to
        // its own until the connection's check is answered: the answer must
        // get through before the address is learned.
        assert_eq!(
            router.route(client, &binding_success([1; 12])),
            Route::Response(5)
        );
        assert_eq!(
            router.route(client, &binding_success([2; 12])),
            Route::Unknown
        );
        // Only so many checks are remembered, the oldest forgotten first.
        for i in 0..OUTSTANDING_CHECKS as u32 {
            let mut id = [9; 12];
            id[..4].copy_from_slice(&i.to_be_bytes());
            router.expect_response(id, 6);
        }
        assert_eq!(
            router.route(client, &binding_success([1; 12])),
            Route::Unknown
        );
        router.remove(6);
        assert!(router.checks.is_empty());
    }

    #[test]
    fn the_first_byte_says_what_a_datagram_is() {
        assert_eq!(classify(&[0x00, 0x01]), Kind::Stun);
        assert_eq!(classify(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 96]), Kind::Media);
        assert_eq!(classify(&[0xBF]), Kind::Media);
        for other in [&[][..], &[4], &[64], &[127], &[192], &[255]] {
            assert_eq!(classify(other), Kind::Other, "{other:?}");
        }
    }

    #[test]
    fn a_binding_request_names_the_connection_it_is_for() {
        let m = binding_request("srv1:cli9");
        let stun = Stun::parse(&m).unwrap();
        assert_eq!((stun.class, stun.method), (StunClass::Request, BINDING));
        assert_eq!(stun.local_ufrag(), Some("srv1"));
        assert_eq!(stun.transaction_id, &[7; 12]);
        let mut response = m.clone();
        response[0] = 0x01;
        assert_eq!(Stun::parse(&response).unwrap().class, StunClass::Success);
    }

    #[test]
    fn malformed_stun_is_refused() {
        let good = binding_request("srv1:cli9");
        let mut bad_cookie = good.clone();
        bad_cookie[4] ^= 1;
        let mut bad_length = good.clone();
        bad_length[3] += 4;
        let mut overrun = good.clone();
        overrun[23] = 0xFF; // USERNAME's length past the end
        for m in [&bad_cookie, &bad_length, &overrun, &good[..19].to_vec()] {
            assert_eq!(Stun::parse(m), None);
        }
        assert_eq!(
            Stun::parse(&binding_request(":cli9"))
                .unwrap()
                .local_ufrag(),
            None
        );
        assert_eq!(
            Stun::parse(&binding_request("nocolon"))
                .unwrap()
                .local_ufrag(),
            None
        );
    }

    #[test]
    fn checks_route_by_ufrag_and_the_rest_by_the_address_learned() {
        let mut router = Router::default();
        router.add_ufrag("srv1", 1u32);
        router.add_ufrag("srv2", 2u32);
        let (a, b) = (addr("192.0.2.1:5000"), addr("198.51.100.7:6000"));
        let srtp = [0x80, 96, 0, 1];
        assert_eq!(router.route(a, &srtp), Route::Unknown, "no check yet");
        assert_eq!(router.route(a, &binding_request("srv1:x")), Route::Check(1));
        router.learn(a, 1);
        assert_eq!(router.route(a, &binding_request("srv1:x")), Route::Known(1));
        assert_eq!(router.route(a, &srtp), Route::Known(1));
        assert_eq!(router.route(a, &[22, 254, 253]), Route::Known(1));
        assert_eq!(router.route(a, &[0x50]), Route::Unknown, "not RFC 7983");
        assert_eq!(router.route(b, &binding_request("srv3:x")), Route::Unknown);
        // Connection 1's client moved: its check from the new address is for 1.
        assert_eq!(router.route(b, &binding_request("srv1:x")), Route::Check(1));
        router.learn(b, 1);
        assert_eq!(router.route(b, &srtp), Route::Known(1));
        router.remove(1);
        assert_eq!(router.route(a, &srtp), Route::Unknown);
        assert_eq!(router.len(), (1, 0));
    }
}
