//! A WHIP/WHEP `PATCH` body (trickle ICE SDP fragment), parsed, applied to
//! an offer as an ICE restart would, and read back as an answer fragment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::signal::sdpfrag::{answer_fragment, restarted_offer, ufrag_of, SdpFrag};

const OFFER: &str = "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frag) = SdpFrag::parse(text) {
        if let (Some(u), Some(p)) = (&frag.ufrag, &frag.pwd) {
            let offer = restarted_offer(OFFER, u, p, &frag.candidates);
            assert_eq!(ufrag_of(&offer), Some(u.as_str()));
        }
    }
    let answer = answer_fragment(text);
    let _ = SdpFrag::parse(&answer);
});
