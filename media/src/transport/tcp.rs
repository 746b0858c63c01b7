//! ICE-TCP (RFC 6544, passive): clients whose UDP is blocked connect to the
//! node's media port number over TCP, and each datagram travels with a
//! two-byte length in front of it (RFC 4571 framing).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use rtc::shared::tcp_framing::TcpFrameDecoder;
use socket2::{Domain, Protocol, Socket, Type};

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
    decoder: TcpFrameDecoder,
    unsent: Vec<u8>,
}

impl Stream {
    /// Wraps an accepted stream from `remote`, with bytes already read from it.
    pub fn new(socket: mio::net::TcpStream, remote: SocketAddr, read: &[u8]) -> Self {
        let mut decoder = TcpFrameDecoder::new();
        decoder.extend_from_slice(read);
        Self {
            socket,
            remote,
            decoder,
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

    /// Gives the stream up, with what it read and has not framed yet (to
    /// hand it to another worker).
    pub fn into_parts(self) -> (mio::net::TcpStream, Vec<u8>) {
        let mut decoder = self.decoder;
        let mut rest = Vec::new();
        // Complete frames were taken already; the rest is one partial frame.
        while let Some(frame) = decoder.next_packet() {
            rest.extend_from_slice(&(frame.len() as u16).to_be_bytes());
            rest.extend_from_slice(&frame);
        }
        (self.socket, rest)
    }

    /// Reads what is waiting and hands each complete datagram to `each`;
    /// `Ok(false)` once the client has closed.
    pub fn read(&mut self, mut each: impl FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        let open = loop {
            match self.socket.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => self.decoder.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        while let Some(datagram) = self.decoder.next_packet() {
            if !each(&datagram) {
                break;
            }
        }
        Ok(open)
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

        stream.send(&[7, 7]).unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, [0, 2, 7, 7]);
    }
}
