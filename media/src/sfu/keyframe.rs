//! Keyframe detection from RTP payloads, per codec.
//!
//! A subscriber can only start decoding, or switch simulcast layers, at a
//! keyframe; the forwarder asks these functions whether a packet starts one.

/// Codecs the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus audio: every packet decodes on its own.
    Opus,
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184).
    H264,
    /// AV1 (AOM RTP spec).
    Av1,
    /// Anything else: forwarded, never switched.
    Other,
}

impl Codec {
    /// The codec a MIME type such as `video/VP8` names (case-insensitive).
    pub fn from_mime(mime: &str) -> Self {
        let sub = mime.rsplit('/').next().unwrap_or("");
        match sub.to_ascii_lowercase().as_str() {
            "opus" => Self::Opus,
            "vp8" => Self::Vp8,
            "vp9" => Self::Vp9,
            "h264" => Self::H264,
            "av1" => Self::Av1,
            _ => Self::Other,
        }
    }

    /// Whether the RTP `payload` starts a keyframe. Audio is always decodable.
    pub fn is_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Self::Opus => true,
            Self::Vp8 => vp8_is_keyframe(payload),
            Self::Vp9 => vp9_is_keyframe(payload),
            Self::H264 => h264_is_keyframe(payload),
            Self::Av1 => av1_is_keyframe(payload),
            Self::Other => false,
        }
    }
}

/// VP8: the payload descriptor, then a frame header whose lowest bit is 0 on keyframes,
/// present only in the first packet of a partition (S bit set, PID 0).
fn vp8_is_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let pid = first & 0x07;
    if !start || pid != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let Some(&pic) = p.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x20 != 0 || x & 0x10 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// VP9: the payload descriptor's P bit is 0 (not inter-predicted) on the first packet (B bit) of a frame.
fn vp9_is_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let inter_predicted = first & 0x40 != 0;
    let begins_frame = first & 0x08 != 0;
    !inter_predicted && begins_frame
}

/// H.264: an IDR slice (type 5) or SPS (7), alone, in a STAP-A, or starting an FU-A.
fn h264_is_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    match first & 0x1f {
        5 | 7 => true,
        24 => {
            // STAP-A: 16-bit sizes followed by NAL units.
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                if let Some(&nal) = p.get(i + 2) {
                    if matches!(nal & 0x1f, 5 | 7) {
                        return true;
                    }
                }
                i += 2 + size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7)),
        _ => false,
    }
}

/// AV1: the aggregation header's N bit marks the first packet of a coded video sequence.
fn av1_is_keyframe(p: &[u8]) -> bool {
    p.first().is_some_and(|h| h & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_and_delta_frames() {
        // No extension, S=1, PID=0, then a frame tag with P=0 (key) or P=1 (delta).
        assert!(Codec::Vp8.is_keyframe(&[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!Codec::Vp8.is_keyframe(&[0x10, 0x01]));
        // Not the start of a partition.
        assert!(!Codec::Vp8.is_keyframe(&[0x00, 0x00]));
        // Extended with a 15-bit picture id, TL0PICIDX and TID.
        assert!(Codec::Vp8.is_keyframe(&[0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0x00]));
        assert!(!Codec::Vp8.is_keyframe(&[0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0x01]));
        // Truncated packets are never keyframes and never panic.
        for n in 0..6 {
            let _ = Codec::Vp8.is_keyframe(&[0x90, 0xe0, 0x80, 0x01, 0x05, 0x20][..n]);
        }
    }

    #[test]
    fn h264_single_stap_and_fragmented() {
        assert!(Codec::H264.is_keyframe(&[0x65, 0x88]));
        assert!(Codec::H264.is_keyframe(&[0x67, 0x42]));
        assert!(!Codec::H264.is_keyframe(&[0x41, 0x9a]));
        // STAP-A holding SPS (size 2) then PPS.
        assert!(Codec::H264.is_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        assert!(!Codec::H264.is_keyframe(&[0x78, 0x00, 0x01, 0x41]));
        // FU-A start of an IDR, and a middle fragment.
        assert!(Codec::H264.is_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!Codec::H264.is_keyframe(&[0x7c, 0x05, 0x00]));
        assert!(!Codec::H264.is_keyframe(&[]));
    }

    #[test]
    fn vp9_av1_opus_and_mime_names() {
        assert!(Codec::Vp9.is_keyframe(&[0x08]));
        assert!(!Codec::Vp9.is_keyframe(&[0x48]));
        assert!(Codec::Av1.is_keyframe(&[0x08]));
        assert!(Codec::Opus.is_keyframe(&[]));
        assert_eq!(Codec::from_mime("video/VP8"), Codec::Vp8);
        assert_eq!(Codec::from_mime("audio/opus"), Codec::Opus);
        assert_eq!(Codec::from_mime("video/h264"), Codec::H264);
        assert_eq!(Codec::from_mime("garbage"), Codec::Other);
    }
}
