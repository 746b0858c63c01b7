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

#[cfg(test)]
mod tests {
    use super::offered_payload_type;

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
