//! ICE-TCP (RFC 6544, passive): clients whose UDP is blocked connect to the
//! node's media port number over TCP, and each datagram travels with a
//! two-byte length in front of it (RFC 4571 framing).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use super::framing::{Deframer, MAX_FRAME};

/// What one stream may hold unsent before datagrams are dropped: media is
/// loss-tolerant, and a client that does not read must not grow the node.
const MAX_UNSENT: usize = 1 << 20;

/// Listens on `addr` for TCP, shareable by every worker (`SO_REUSEPORT`).
pub fn listen_shared(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// One client's TCP connection to the media port.
pub struct Stream {
    socket: mio::net::TcpStream,
    remote: SocketAddr,
    received: Deframer,
    unsent: Vec<u8>,
}

impl Stream {
    /// Wraps an accepted stream from `remote`, with bytes already read from it.
    pub fn new(socket: mio::net::TcpStream, remote: SocketAddr, read: &[u8]) -> Self {
        Self {
            socket,
            remote,
            received: Deframer::new(read),
            unsent: Vec::new(),
        }
    }

    /// The client's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The socket, to register with the worker's poller.
    pub fn socket_mut(&mut self) -> &mut mio::net::TcpStream {
        &mut self.socket
    }

    /// Gives the stream up, with the bytes it read and has not delivered
    /// (to hand it to another worker, which frames them first).
    pub fn into_parts(self) -> (mio::net::TcpStream, Vec<u8>) {
        (self.socket, self.received.into_rest())
    }

    /// Reads what is waiting and hands each complete datagram to `each`,
    /// which returns `false` to stop (the rest stays for [`Stream::into_parts`]);
    /// `Ok(false)` once the client has closed.
    pub fn read(&mut self, mut each: impl FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // Frame what is held before reading more: the buffer stays small.
            while let Some(datagram) = self.received.peek() {
                if !each(datagram) {
                    return Ok(true);
                }
                self.received.pop();
            }
            match self.socket.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => self.received.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            debug_assert!(self.received.held() <= MAX_FRAME + chunk.len());
        }
    }

    /// Frames and sends one datagram; dropped when too much is unsent.
    pub fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let Ok(len) = u16::try_from(datagram.len()) else {
            return Ok(());
        };
        if self.unsent.len() + datagram.len() + 2 > MAX_UNSENT {
            return Ok(());
        }
        self.unsent.extend_from_slice(&len.to_be_bytes());
        self.unsent.extend_from_slice(datagram);
        self.flush()
    }

    /// Writes what is unsent, as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.unsent.is_empty() {
            match self.socket.write(&self.unsent) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_a_stream_whole_however_tcp_splits_them() {
        let listener = listen_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Another worker's listener binds the same port; dropped again, or the
        // kernel could hand it this test's connection.
        drop(listen_shared(addr).expect("a second listener on the same port"));
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, remote) = loop {
            match listener.accept() {
                Ok(a) => break a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        accepted.set_nonblocking(true).unwrap();
        // The first frame arrives split in two, the second whole.
        client.write_all(&[0, 3, 1]).unwrap();
        let mut stream = Stream::new(mio::net::TcpStream::from_std(accepted), remote, &[]);
        let mut got: Vec<Vec<u8>> = Vec::new();
        stream
            .read(|d| {
                got.push(d.to_vec());
                true
            })
            .unwrap();
        assert!(got.is_empty(), "half a frame is not a datagram");
        client.write_all(&[2, 3, 0, 1, 9]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 2 && std::time::Instant::now() < deadline {
            stream
                .read(|d| {
                    got.push(d.to_vec());
                    true
                })
                .unwrap();
        }
        assert_eq!(got, [vec![1, 2, 3], vec![9]]);

        // A stream handed over keeps the frame its reader stopped at and
        // the partial one behind it.
        client.write_all(&[0, 1, 5, 0, 2, 6]).unwrap();
        let mut seen = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen == 0 && std::time::Instant::now() < deadline {
            stream
                .read(|_| {
                    seen += 1;
                    false
                })
                .unwrap();
        }
        stream.send(&[7, 7]).unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, [0, 2, 7, 7]);
        let (_, rest) = stream.into_parts();
        assert_eq!(rest, [0, 1, 5, 0, 2, 6]);
    }
}
