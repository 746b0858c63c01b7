//! RFC 4571 framing: on a TCP stream each datagram travels behind a two-byte
//! big-endian length. [`Deframer`] turns the bytes a stream delivered, however
//! TCP split them, back into datagrams.

/// The largest frame: a two-byte length and up to 65535 bytes.
pub const MAX_FRAME: usize = 2 + u16::MAX as usize;

/// Bytes read from one stream and not yet handed on as datagrams.
///
/// It holds at most one incomplete frame plus what the last
/// [`Deframer::extend`] added, and compacts on each `extend`, so a stream of
/// tiny frames costs linear time.
#[derive(Debug, Default)]
pub struct Deframer {
    /// Unframed bytes are `held[start..]`.
    held: Vec<u8>,
    start: usize,
}

impl Deframer {
    /// A deframer holding `pending`, bytes read earlier (by another worker).
    pub fn new(pending: &[u8]) -> Self {
        Self {
            held: pending.to_vec(),
            start: 0,
        }
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.held.drain(..self.start);
        self.start = 0;
        self.held.extend_from_slice(bytes);
    }

    /// The next datagram, if all of it has arrived; it stays until
    /// [`Deframer::pop`].
    pub fn peek(&self) -> Option<&[u8]> {
        let held = &self.held[self.start..];
        let len = usize::from(u16::from_be_bytes([*held.first()?, *held.get(1)?]));
        held.get(2..2 + len)
    }

    /// Drops the datagram [`Deframer::peek`] returned.
    pub fn pop(&mut self) {
        if let Some(len) = self.peek().map(<[u8]>::len) {
            self.start += 2 + len;
        }
    }

    /// How many unframed bytes are held.
    pub fn held(&self) -> usize {
        self.held.len() - self.start
    }

    /// The unframed bytes, to hand the stream to another worker.
    pub fn into_rest(mut self) -> Vec<u8> {
        self.held.drain(..self.start);
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(d: &mut Deframer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(datagram) = d.peek() {
            out.push(datagram.to_vec());
            d.pop();
        }
        out
    }

    #[test]
    fn datagrams_come_out_whole_however_the_bytes_were_split() {
        let stream = [0, 3, 1, 2, 3, 0, 0, 0, 1, 9, 0, 2, 7];
        for split in 0..=stream.len() {
            let mut d = Deframer::default();
            d.extend(&stream[..split]);
            let mut got = drain(&mut d);
            d.extend(&stream[split..]);
            got.extend(drain(&mut d));
            assert_eq!(got, [vec![1, 2, 3], vec![], vec![9]], "split at {split}");
            assert_eq!(d.held(), 3, "half of the last frame stays");
            assert_eq!(d.into_rest(), [0, 2, 7]);
        }
    }

    #[test]
    fn a_peeked_datagram_stays_until_popped() {
        let mut d = Deframer::new(&[0, 1, 5, 0, 1, 6]);
        assert_eq!(d.peek(), Some(&[5][..]));
        assert_eq!(d.peek(), Some(&[5][..]));
        d.pop();
        assert_eq!(d.into_rest(), [0, 1, 6]);
    }
}
