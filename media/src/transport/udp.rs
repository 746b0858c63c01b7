//! The node's one UDP port: a socket per worker bound to the same address
//! (`SO_REUSEPORT`), read in batches (`recvmmsg` through quinn-udp) and
//! written in batches ([`Outbox`]: `sendmmsg`, and a run of datagrams to one
//! client, such as a keyframe's packets, as one segmented send where the
//! kernel offers UDP GSO).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use bytes::BytesMut;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState, BATCH_SIZE};
use socket2::{Domain, Protocol, Socket, Type};

/// The largest datagram the node reads; media packets stay under the path MTU.
pub const MAX_DATAGRAM: usize = 1500;

/// Binds a non-blocking UDP socket at `addr` that other sockets of this
/// process may share (`SO_REUSEPORT`), so every worker reads the same port.
pub fn bind_shared(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Bursts of a keyframe to many subscribers: room for them in the kernel.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Turns UDP generic receive offload back off: quinn-udp enables it, and
/// with it the kernel joins a burst of equal-sized datagrams into one read
/// that a [`MAX_DATAGRAM`] buffer would cut short (loopback never does, real
/// network cards do). Buffers 64 times larger per socket are not worth it
/// for media-sized datagrams.
fn disable_gro(socket: &std::net::UdpSocket) -> io::Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: a valid socket, an int-sized option value that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // Kernels without GRO never enabled it.
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// A socket on the shared port `local` connected to `remote`: the kernel
/// hands it every datagram from `remote`, whichever worker's socket the port's
/// hash would have picked, so a connection's packets reach the worker that
/// owns it.
pub fn connect_shared(local: SocketAddr, remote: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = bind_shared(local)?;
    socket.connect(remote)?;
    Ok(socket)
}

/// One socket on the shared port.
pub struct Port {
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    peer: Option<SocketAddr>,
}

/// What a batch of datagrams is read into: one per worker, shared by all its
/// sockets (they are read one after the other), so a connected socket per
/// client costs no buffers of its own.
pub struct RecvBuffers {
    buffers: Box<[[u8; MAX_DATAGRAM]; BATCH_SIZE]>,
    meta: [RecvMeta; BATCH_SIZE],
}

impl Default for RecvBuffers {
    fn default() -> Self {
        Self {
            buffers: Box::new([[0; MAX_DATAGRAM]; BATCH_SIZE]),
            meta: [RecvMeta::default(); BATCH_SIZE],
        }
    }
}

impl Port {
    /// Wraps a socket from [`bind_shared`].
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let peer = socket.peer_addr().ok();
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        disable_gro(&socket)?;
        Ok(Self {
            socket: mio::net::UdpSocket::from_std(socket),
            state,
            local,
            peer,
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The client a connected socket is connected to.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The socket, to register with the worker's poller.
    pub fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// Reads what is waiting, up to one batch, into `into`, handing each
    /// datagram to `each(from, bytes)`; returns how many messages were read,
    /// `Ok(0)` only when nothing is left (an empty datagram counts as one).
    pub fn recv_batch(
        &mut self,
        into: &mut RecvBuffers,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let count = {
            let mut slices: [IoSliceMut<'_>; BATCH_SIZE] = {
                let mut it = into.buffers.iter_mut();
                std::array::from_fn(|_| match it.next() {
                    Some(b) => IoSliceMut::new(&mut b[..]),
                    None => IoSliceMut::new(&mut []),
                })
            };
            match self
                .state
                .recv(UdpSockRef::from(&self.socket), &mut slices, &mut into.meta)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(e),
            }
        };
        for (meta, buffer) in into.meta[..count].iter().zip(into.buffers.iter()) {
            // GRO is off (`disable_gro`): one buffer holds one datagram.
            each(meta.addr, &buffer[..meta.len.min(MAX_DATAGRAM)]);
        }
        Ok(count)
    }

    /// Sends one datagram to `to`; a full socket buffer drops it (media is
    /// loss-tolerant, and NACK or the next keyframe repairs it).
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: datagram,
            segment_size: None,
            src_ip: None,
        };
        match self
            .state
            .try_send(UdpSockRef::from(&self.socket), &transmit)
        {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }
}

/// How many datagrams one `sendmmsg` carries at most.
const SEND_BATCH: usize = 64;

/// The most bytes one segmented (GSO) send carries: under the 64 KiB of a
/// UDP datagram, headers included.
const MAX_SEGMENTED: usize = 60_000;

/// Datagrams waiting to be sent, with the system calls' headers and the
/// buffer a segmented send joins its run into, reused from batch to batch so
/// that sending allocates nothing.
#[derive(Default)]
pub struct Outbox {
    datagrams: Vec<(socket2::SockAddr, BytesMut)>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    joined: Vec<u8>,
}

/// Datagrams every port of this process handed to the kernel.
static DATAGRAMS_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many datagrams this process's media ports sent so far, all workers
/// together (counted once a send, not once a datagram).
pub fn datagrams_sent() -> u64 {
    DATAGRAMS_SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// What [`Port::send_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub datagrams: usize,
    /// System calls it took them in.
    pub calls: usize,
}

impl std::ops::AddAssign for Sent {
    fn add_assign(&mut self, other: Self) {
        self.datagrams += other.datagrams;
        self.calls += other.calls;
    }
}

/// How many datagrams from the start of `queued` one segmented send can
/// carry: the same destination, the same size but for a shorter last one
/// (how the kernel cuts a GSO send), at most `max` and [`MAX_SEGMENTED`] bytes.
fn run_length(queued: &[(socket2::SockAddr, BytesMut)], max: usize) -> usize {
    let Some((to, first)) = queued.first() else {
        return 0;
    };
    let size = first.len();
    if size == 0 {
        return 1;
    }
    let (mut count, mut total) = (1, size);
    for (next_to, next) in &queued[1..] {
        if count == max || next_to != to || next.len() > size || total + next.len() > MAX_SEGMENTED
        {
            break;
        }
        count += 1;
        total += next.len();
        if next.len() < size {
            break;
        }
    }
    count
}

impl Outbox {
    /// Queues `datagram` for `to`.
    pub fn push(&mut self, to: SocketAddr, datagram: BytesMut) {
        self.datagrams.push((to.into(), datagram));
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
}

impl Port {
    /// Sends everything queued in `outbox` and empties it: runs of datagrams
    /// to one client in one segmented send each where the kernel offers GSO,
    /// the rest up to [`SEND_BATCH`] a `sendmmsg`, each client's datagrams in
    /// the order queued. What a full socket buffer refuses is dropped, as
    /// with [`Port::send`].
    pub fn send_all(&self, outbox: &mut Outbox) -> Sent {
        let mut sent = Sent::default();
        let Outbox {
            datagrams,
            iovecs,
            headers,
            joined,
        } = outbox;
        // quinn-udp finds out whether the kernel and the card segment, and
        // turns it off for good when a send says they do not.
        let max = self.state.max_gso_segments();
        let (mut i, mut singles) = (0, 0);
        while max > 1 && i < datagrams.len() {
            let run = run_length(&datagrams[i..], max);
            if run < 2 {
                i += 1;
                continue;
            }
            sent += self.send_batches(&datagrams[singles..i], iovecs, headers);
            let segmented = self.send_segmented(&datagrams[i..i + run], joined);
            sent += match segmented {
                Some(s) => s,
                // Refused whole (GSO turned out unsupported): one by one.
                None => self.send_batches(&datagrams[i..i + run], iovecs, headers),
            };
            i += run;
            singles = i;
        }
        sent += self.send_batches(&datagrams[singles..], iovecs, headers);
        datagrams.clear();
        DATAGRAMS_SENT.fetch_add(sent.datagrams as u64, std::sync::atomic::Ordering::Relaxed);
        sent
    }

    /// Sends `run` (one destination, sizes as [`run_length`] allows) as one
    /// segmented datagram; `None` when the kernel refused it for a reason
    /// other than a full buffer.
    fn send_segmented(
        &self,
        run: &[(socket2::SockAddr, BytesMut)],
        joined: &mut Vec<u8>,
    ) -> Option<Sent> {
        let (to, first) = run.first()?;
        let destination = to.as_socket()?;
        joined.clear();
        for (_, bytes) in run {
            joined.extend_from_slice(bytes);
        }
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: joined,
            segment_size: Some(first.len()),
            src_ip: None,
        };
        match self
            .state
            .try_send(UdpSockRef::from(&self.socket), &transmit)
        {
            Ok(()) => Some(Sent {
                datagrams: run.len(),
                calls: 1,
            }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Sent {
                datagrams: 0,
                calls: 1,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "segmented send refused");
                None
            }
        }
    }

    /// Sends `datagrams` up to [`SEND_BATCH`] a `sendmmsg`.
    fn send_batches(
        &self,
        datagrams: &[(socket2::SockAddr, BytesMut)],
        iovecs: &mut Vec<libc::iovec>,
        headers: &mut Vec<libc::mmsghdr>,
    ) -> Sent {
        let mut sent = Sent::default();
        let fd = self.socket.as_raw_fd();
        for batch in datagrams.chunks(SEND_BATCH) {
            iovecs.clear();
            headers.clear();
            for (_, bytes) in batch {
                iovecs.push(libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                });
            }
            for (i, (to, _)) in batch.iter().enumerate() {
                // SAFETY: a zeroed msghdr is a valid empty one; every pointer
                // set below points into `batch` or `iovecs`, which outlive the
                // call and are not touched until it returns.
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
                header.msg_hdr.msg_namelen = to.len();
                header.msg_hdr.msg_iov = &mut iovecs[i];
                header.msg_hdr.msg_iovlen = 1;
                headers.push(header);
            }
            let mut offset = 0;
            while offset < headers.len() {
                // SAFETY: `headers[offset..]` are initialised mmsghdrs whose
                // pointers are valid (above); the kernel writes only msg_len.
                let n = unsafe {
                    libc::sendmmsg(
                        fd,
                        headers[offset..].as_mut_ptr(),
                        (headers.len() - offset) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                sent.calls += 1;
                if n > 0 {
                    offset += n as usize;
                    sent.datagrams += n as usize;
                    continue;
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => {}
                    // A full buffer: the rest of the batch is dropped.
                    io::ErrorKind::WouldBlock => break,
                    // One bad destination (unreachable, refused): skip it.
                    _ => {
                        tracing::debug!(error = %e, "datagram not sent");
                        offset += 1;
                    }
                }
            }
        }
        iovecs.clear();
        headers.clear();
        sent
    }
}

// SAFETY: `iovecs` and `headers` hold raw pointers only during `send_all`,
// into data the outbox owns; they are emptied before it returns, so moving
// an `Outbox` to another thread moves no live pointer.
unsafe impl Send for Outbox {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_share_one_port_and_a_batch_reads_every_datagram() {
        let first = bind_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_shared(addr).expect("a second socket on the same port");
        assert_eq!(second.local_addr().unwrap(), addr);
        drop(second);

        let mut port = Port::new(first).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..40u8 {
            client.send_to(&[0x80, i, 0, 0], addr).unwrap();
        }
        let mut seen = Vec::new();
        let mut buffers = RecvBuffers::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 40 && std::time::Instant::now() < deadline {
            port.recv_batch(&mut buffers, |from, d| {
                assert_eq!(from, client.local_addr().unwrap());
                seen.push(d[1]);
            })
            .unwrap();
        }
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn an_outbox_sends_every_datagram_to_its_own_destination() {
        let port = Port::new(bind_shared("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut outbox = Outbox::default();
        // More than one system call's worth.
        for i in 0..150u8 {
            let to = clients[usize::from(i) % 3].local_addr().unwrap();
            outbox.push(to, BytesMut::from(&[0x80, i][..]));
        }
        assert_eq!(port.send_all(&mut outbox).datagrams, 150);
        assert!(outbox.is_empty());
        let mut buf = [0u8; 8];
        for (c, client) in clients.iter().enumerate() {
            client
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            for k in 0..50 {
                let (n, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!(from, port.local_addr());
                assert_eq!(&buf[..n], &[0x80, (k * 3 + c) as u8]);
            }
        }
    }

    #[test]
    fn a_run_to_one_client_leaves_in_one_call_and_arrives_datagram_by_datagram() {
        let port = Port::new(bind_shared("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap();
        let (keyframe, other) = (
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        let mut outbox = Outbox::default();
        // A keyframe's packets: five full, a shorter last; then a packet for
        // someone else, and the next frame's one packet.
        let sizes = [1200, 1200, 1200, 1200, 1200, 700];
        for (i, size) in sizes.iter().enumerate() {
            let mut d = BytesMut::zeroed(*size);
            d[0] = i as u8;
            outbox.push(keyframe.local_addr().unwrap(), d);
        }
        outbox.push(other.local_addr().unwrap(), BytesMut::from(&[0x80, 9][..]));
        outbox.push(
            keyframe.local_addr().unwrap(),
            BytesMut::from(&[6u8; 300][..]),
        );
        let sent = port.send_all(&mut outbox);
        assert_eq!(sent.datagrams, 8);
        if port.state.max_gso_segments() > 1 {
            // The run in one call, the two others in one `sendmmsg`.
            assert_eq!(sent.calls, 2, "{sent:?}");
        }
        keyframe
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 2000];
        let got: Vec<(usize, u8)> = (0..7)
            .map(|_| {
                let n = keyframe.recv(&mut buf).unwrap();
                (n, buf[0])
            })
            .collect();
        assert_eq!(
            got,
            [
                (1200, 0),
                (1200, 1),
                (1200, 2),
                (1200, 3),
                (1200, 4),
                (700, 5),
                (300, 6)
            ]
        );
    }

    #[test]
    fn runs_are_cut_where_the_kernel_would_cut_them() {
        let a: socket2::SockAddr = "127.0.0.1:1".parse::<SocketAddr>().unwrap().into();
        let b: socket2::SockAddr = "127.0.0.1:2".parse::<SocketAddr>().unwrap().into();
        let queue = |items: &[(&socket2::SockAddr, usize)]| -> Vec<_> {
            items
                .iter()
                .map(|(to, n)| ((*to).clone(), BytesMut::zeroed(*n)))
                .collect()
        };
        // A shorter datagram ends a run; a longer one starts the next.
        assert_eq!(
            run_length(&queue(&[(&a, 10), (&a, 10), (&a, 5), (&a, 5)]), 64),
            3
        );
        assert_eq!(run_length(&queue(&[(&a, 10), (&a, 20)]), 64), 1);
        // Another destination ends it, and so does the segment limit.
        assert_eq!(run_length(&queue(&[(&a, 10), (&b, 10)]), 64), 1);
        assert_eq!(run_length(&queue(&[(&a, 10); 5]), 3), 3);
        // So do 60,000 bytes.
        assert_eq!(run_length(&queue(&[(&a, 1500); 64]), 64), 40);
        assert_eq!(run_length(&queue(&[]), 64), 0);
    }

    #[test]
    fn a_connected_socket_gets_its_peers_datagrams_whatever_the_hash_says() {
        let first = bind_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let others: Vec<_> = (0..3).map(|_| bind_shared(addr).unwrap()).collect();
        let clients: Vec<_> = (0..8)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let connected: Vec<_> = clients
            .iter()
            .map(|c| connect_shared(addr, c.local_addr().unwrap()).unwrap())
            .collect();
        for c in &clients {
            for _ in 0..5 {
                c.send_to(&[0x80, 1], addr).unwrap();
            }
        }
        let mut buf = [0u8; 16];
        for (socket, client) in connected.iter().zip(&clients) {
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            socket.set_nonblocking(false).unwrap();
            for _ in 0..5 {
                let (_, from) = socket.recv_from(&mut buf).expect("its peer's datagram");
                assert_eq!(from, client.local_addr().unwrap());
            }
        }
        for s in std::iter::once(&first).chain(&others) {
            assert!(
                s.recv_from(&mut buf).is_err(),
                "nothing for the unconnected sockets"
            );
        }
    }
}
