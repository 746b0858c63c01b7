//! What the node reads out of a client's SDP itself: offered payload types
//! and header extension ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::sdp::{extmap_id, offered_payload_type};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    for mime in [
        "audio/opus",
        "video/VP8",
        "video/VP9",
        "video/H264",
        "video/AV1",
    ] {
        let _ = offered_payload_type(sdp, mime);
    }
    let _ = extmap_id(sdp, "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
});
