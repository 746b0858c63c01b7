//! Reading the little the SFU needs from SDP text.

/// The payload type the SDP gives the codec `mime` (such as `audio/opus`), first match
/// in a media section of that kind.
pub fn offered_payload_type(sdp: &str, mime: &str) -> Option<u8> {
    let (kind, name) = mime.split_once('/')?;
    let mut section = "";
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            section = m.split(' ').next().unwrap_or("");
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            if !section.eq_ignore_ascii_case(kind) {
                continue;
            }
            let (pt, encoding) = map.split_once(' ')?;
            let codec = encoding.split('/').next().unwrap_or("");
            if codec.eq_ignore_ascii_case(name) {
                return pt.parse().ok();
            }
        }
    }
    None
}

/// The id an `a=extmap` line gives the header extension `uri` (1 to 255), if any.
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let map = line.trim_end().strip_prefix("a=extmap:")?;
        let (id, rest) = map.split_once(' ')?;
        // The id may carry a direction: `a=extmap:1/sendonly URI`.
        let id: u8 = id.split('/').next()?.parse().ok()?;
        (id != 0 && rest.split(' ').next() == Some(uri)).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::{extmap_id, offered_payload_type};

    const OFFER: &str = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:98 rtx/90000\r\n\
                         m=audio 9 UDP/TLS/RTP/SAVPF 96 0\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn finds_the_offered_numbers_per_kind() {
        assert_eq!(offered_payload_type(OFFER, "video/VP8"), Some(97));
        assert_eq!(offered_payload_type(OFFER, "audio/opus"), Some(96));
        assert_eq!(offered_payload_type(OFFER, "video/H264"), None);
        // A codec name under the wrong kind does not count.
        assert_eq!(
            offered_payload_type(
                "m=video 9 RTP 96\r\na=rtpmap:96 opus/48000/2\r\n",
                "audio/opus"
            ),
            None
        );
    }

    #[test]
    fn finds_header_extension_ids() {
        let sdp = "m=audio 9 RTP 111\r\na=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n\
                   a=extmap:1/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\r\n";
        assert_eq!(
            extmap_id(sdp, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            Some(1)
        );
        assert_eq!(
            extmap_id(sdp, "urn:ietf:params:rtp-hdrext:toffset"),
            Some(14)
        );
        for bad in [
            "",
            "a=extmap:",
            "a=extmap:x urn:a",
            "a=extmap:0 urn:a",
            "a=extmap:999 urn:a",
        ] {
            assert_eq!(extmap_id(bad, "urn:a"), None, "{bad:?}");
        }
    }

    #[test]
    fn garbage_is_harmless() {
        for sdp in [
            "",
            "a=rtpmap:",
            "m=audio\na=rtpmap:x opus/1",
            "m=audio\na=rtpmap:999 opus/1",
        ] {
            assert_eq!(offered_payload_type(sdp, "audio/opus"), None, "{sdp:?}");
        }
        assert_eq!(offered_payload_type(OFFER, "garbage"), None);
    }
}
