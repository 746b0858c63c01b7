//! A publisher's RTP packets (any order, loss, garbage payloads) put back
//! into frames by the recorder, for each codec it records.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_media::recording::assembler::{Assembler, RtpIn};
use switchboard_media::sfu::keyframe::Codec;

fuzz_target!(|data: &[u8]| {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let codecs = [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1];
    let codec = codecs[usize::from(which) % codecs.len()];
    let clock = if codec == Codec::Opus { 48_000 } else { 90_000 };
    let Some(mut assembler) = Assembler::new(codec, clock) else {
        return;
    };
    let start = Instant::now();
    let mut now = start;
    // Each packet: seq (2), timestamp (4), flags (1), length (1), payload.
    while rest.len() >= 8 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let timestamp = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let flags = rest[6];
        let len = usize::from(rest[7]).min(rest.len() - 8);
        let payload = Bytes::copy_from_slice(&rest[8..8 + len]);
        rest = &rest[8 + len..];
        now += Duration::from_millis(u64::from(flags >> 1));
        assembler.push(
            now,
            RtpIn {
                seq,
                timestamp,
                marker: flags & 1 == 1,
                payload,
            },
        );
        assembler.poll(now);
        while assembler.pop().is_some() {}
        let _ = assembler.wants_keyframe();
    }
    assembler.finish();
    while assembler.pop().is_some() {}
    let _ = (assembler.counts(), assembler.duration_ns());
});
