//! The bytes of an ICE-TCP stream, split into reads of any sizes: the same
//! datagrams come out as from reading it whole, and no more than one frame
//! and one read are ever held.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::transport::framing::{Deframer, MAX_FRAME};

/// Every whole frame of `stream`, and the bytes after the last one.
fn whole(stream: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut frames = Vec::new();
    let mut rest = stream;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            break;
        }
        frames.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    (frames, rest)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read sizes; the rest is the stream.
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let (expected, expected_rest) = whole(stream);
    let mut deframer = Deframer::default();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    let mut read = 0usize;
    while at < stream.len() {
        read += 1;
        let size = 1 + (usize::from(seed) * read) % 4099;
        let chunk = &stream[at..(at + size).min(stream.len())];
        at += chunk.len();
        deframer.extend(chunk);
        assert!(deframer.held() <= MAX_FRAME + chunk.len());
        while let Some(datagram) = deframer.peek() {
            got.push(datagram.to_vec());
            deframer.pop();
        }
    }
    assert_eq!(got, expected);
    assert_eq!(deframer.into_rest(), expected_rest);
});
