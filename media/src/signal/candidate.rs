//! ICE candidates: between their signaling form ([`Candidate`]) and the
//! WebRTC stack's, and the checks a client's candidates pass first.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtc::peer_connection::transport::RTCIceCandidateInit;
use switchboard_core::signal::Candidate;

/// A trickled candidate as the stack takes it.
pub fn to_stack(c: Candidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}

/// A candidate the stack gathered, as signaling sends it.
pub fn from_stack(init: RTCIceCandidateInit) -> Candidate {
    Candidate {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_m_line_index: init.sdp_mline_index,
        username_fragment: init.username_fragment,
    }
}

/// Whether a trickled candidate has the shape of an RFC 8839 candidate line
/// (foundation, component, transport, priority, address, port, `typ`, type), or is
/// the empty end-of-candidates marker. Checked before buffering, so garbage is refused at once.
pub fn candidate_is_well_formed(candidate: &str) -> bool {
    if candidate.is_empty() {
        return true;
    }
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    let Some(rest) = body.strip_prefix("candidate:") else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.len() >= 8
        && fields[1].parse::<u16>().is_ok()
        && fields[3].parse::<u32>().is_ok()
        && fields[5].parse::<u16>().is_ok()
        && fields[6] == "typ"
}

/// Whether the node may send connectivity checks to a client candidate's
/// address. A client could otherwise point the node's ICE agent at
/// addresses only the node reaches: the cloud metadata service (link-local
/// 169.254.169.254, `fd00:ec2::254`, Alibaba's 100.100.100.200), link-local
/// neighbours, multicast and broadcast, and (unless the node itself serves
/// on loopback, as in development) its own loopback services. Host names
/// (mDNS `.local` candidates) are resolved by the stack and pass.
pub fn address_allowed(candidate: &str, loopback_ok: bool) -> bool {
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    let Some(address) = body
        .strip_prefix("candidate:")
        .and_then(|rest| rest.split_whitespace().nth(4))
    else {
        return true;
    };
    let Ok(ip) = address.parse::<IpAddr>() else {
        return true;
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
                || (v4.is_loopback() && !loopback_ok))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xffc0 == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254)
                || (v6.is_loopback() && !loopback_ok))
        }
    }
}

/// `sdp` without the candidate lines whose address [`address_allowed`] refuses.
pub fn strip_forbidden_candidates(sdp: &str, loopback_ok: bool) -> Cow<'_, str> {
    let forbidden =
        |line: &str| line.starts_with("a=candidate:") && !address_allowed(line, loopback_ok);
    if !sdp.lines().any(forbidden) {
        return Cow::Borrowed(sdp);
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if !forbidden(line.trim_end()) {
            out.push_str(line);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{address_allowed, candidate_is_well_formed, strip_forbidden_candidates};

    #[test]
    fn candidates_at_addresses_only_the_node_reaches_are_refused() {
        let c = |addr: &str| format!("candidate:1 1 udp 2130706431 {addr} 80 typ host");
        for ok in [
            "203.0.113.7",
            "192.168.1.20",
            "10.1.2.3",
            "2001:db8::1",
            "abc.local",
        ] {
            assert!(address_allowed(&c(ok), false), "{ok}");
        }
        for bad in [
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "224.0.0.251",
            "255.255.255.255",
            "100.100.100.200",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "ff02::1",
            "::",
            "127.0.0.1",
            "::1",
        ] {
            assert!(!address_allowed(&c(bad), false), "{bad}");
        }
        assert!(
            address_allowed(&c("127.0.0.1"), true),
            "a node on loopback talks to loopback"
        );
        assert!(address_allowed("", false) && address_allowed("garbage", false));

        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:1 1 udp 1 169.254.169.254 80 typ host\r\na=candidate:2 1 udp 1 203.0.113.7 5000 typ host\r\na=mid:0\r\n";
        assert_eq!(
            strip_forbidden_candidates(sdp, false),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:2 1 udp 1 203.0.113.7 5000 typ host\r\na=mid:0\r\n"
        );
        let clean = "v=0\r\na=mid:0\r\n";
        assert!(matches!(
            strip_forbidden_candidates(clean, false),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn candidate_lines_are_checked_for_shape() {
        assert!(candidate_is_well_formed(""));
        assert!(candidate_is_well_formed(
            "candidate:842163049 1 udp 1677729535 127.0.0.1 52050 typ srflx raddr 0.0.0.0 rport 0"
        ));
        assert!(candidate_is_well_formed(
            "a=candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host"
        ));
        for bad in [
            "garbage",
            "candidate:",
            "candidate:1 1 udp x 127.0.0.1 9 typ host",
            "candidate:1 1 udp 1 127.0.0.1 99999 typ host",
            "candidate:1 1 udp 1 h 9 type host",
        ] {
            assert!(!candidate_is_well_formed(bad), "{bad}");
        }
    }
}
