//! Keyframe detection on a publisher's RTP payload, for each codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::sfu::keyframe::Codec;

fuzz_target!(|data: &[u8]| {
    for codec in [
        Codec::Opus,
        Codec::Vp8,
        Codec::Vp9,
        Codec::H264,
        Codec::Av1,
        Codec::Other,
    ] {
        let _ = codec.is_keyframe(data);
    }
});
