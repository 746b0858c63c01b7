//! H.264 as the recorder needs it: RTP payloads (RFC 6184) unpacked into
//! length-prefixed NAL units (the form MP4 and Matroska store), and the
//! decoder configuration a track file's header carries.
//!
//! The unpacking is written here rather than taken from `rtc`'s
//! depacketizer, which indexes past the end of a truncated STAP-A (a panic a
//! publisher could cause) and keeps an unbounded fragment buffer of its own;
//! here fragments go straight into the frame being assembled.

use std::borrow::Cow;

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};

/// NAL unit types the recorder looks at (H.264, table 7-1).
const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;
/// Packetization types (RFC 6184, table 1).
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// A fragmentation unit being put back together: where its length prefix is.
#[derive(Debug, Default)]
pub struct Unpacker {
    open_fragment: Option<usize>,
}

impl Unpacker {
    /// Appends the NAL units in `payload` to `frame`, each after a 4-byte
    /// big-endian length; `false` if the payload is malformed or a fragmented
    /// NAL unit lost its start or end (the frame cannot be decoded whole).
    pub fn unpack(&mut self, payload: &[u8], frame: &mut Vec<u8>) -> bool {
        let Some(&header) = payload.first() else {
            return false;
        };
        let kind = header & 0x1f;
        if kind != FU_A && self.open_fragment.take().is_some() {
            return false; // The fragmented unit before never ended.
        }
        match kind {
            1..=23 => {
                push_nal(frame, payload);
                true
            }
            STAP_A => {
                let mut rest = &payload[1..];
                if rest.is_empty() {
                    return false;
                }
                while !rest.is_empty() {
                    let Some((size, after)) = rest.split_first_chunk::<2>() else {
                        return false;
                    };
                    let size = usize::from(u16::from_be_bytes(*size));
                    let Some(nal) = after.get(..size).filter(|n| !n.is_empty()) else {
                        return false;
                    };
                    push_nal(frame, nal);
                    rest = &after[size..];
                }
                true
            }
            FU_A => {
                let Some(&fu) = payload.get(1) else {
                    return false;
                };
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start {
                    if self.open_fragment.is_some() {
                        return false;
                    }
                    self.open_fragment = Some(frame.len());
                    frame.extend_from_slice(&[0; 4]);
                    // The unit's own header: F and NRI from the indicator, the type from the FU header.
                    frame.push((header & 0xe0) | (fu & 0x1f));
                } else if self.open_fragment.is_none() {
                    return false; // Its start was lost.
                }
                frame.extend_from_slice(&payload[2..]);
                if end {
                    if let Some(at) = self.open_fragment.take() {
                        let len = (frame.len() - at - 4) as u32;
                        frame[at..at + 4].copy_from_slice(&len.to_be_bytes());
                    }
                }
                true
            }
            // STAP-B, MTAP and FU-B need interleaved mode, which WebRTC does not use.
            _ => false,
        }
    }

    /// Whether a fragmented NAL unit is still waiting for its end.
    pub fn in_fragment(&self) -> bool {
        self.open_fragment.is_some()
    }
}

fn push_nal(frame: &mut Vec<u8>, nal: &[u8]) {
    frame.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    frame.extend_from_slice(nal);
}

/// The NAL units of a frame unpacked by [`Unpacker`].
pub fn nal_units(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        let (len, after) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let nal = after.get(..len)?;
        rest = &after[len..];
        Some(nal)
    })
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1f)
}

/// Whether the frame holds an IDR picture (decodes without earlier frames).
pub fn is_idr(frame: &[u8]) -> bool {
    nal_units(frame).any(|n| nal_type(n) == IDR)
}

/// Whether a file can start with this frame: an IDR picture with the
/// parameter sets a track header is made of.
pub fn starts_stream(frame: &[u8]) -> bool {
    is_idr(frame) && decoder_config(frame).is_some()
}

/// What a track file's header says about an H.264 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15, 5.3.3.1), with
    /// 4-byte NAL unit lengths.
    pub record: Vec<u8>,
    /// Width and height in pixels, from the sequence parameter set.
    pub size: Option<(u32, u32)>,
}

/// The decoder configuration from the first SPS and PPS in `frame`; `None` without both.
pub fn decoder_config(frame: &[u8]) -> Option<DecoderConfig> {
    let sps = nal_units(frame).find(|n| nal_type(n) == SPS && n.len() >= 4)?;
    let pps = nal_units(frame).find(|n| nal_type(n) == PPS)?;
    let sps_len = u16::try_from(sps.len()).ok()?;
    let pps_len = u16::try_from(pps.len()).ok()?;
    let mut record = vec![
        1,      // configurationVersion
        sps[1], // AVCProfileIndication
        sps[2], // profile_compatibility
        sps[3], // AVCLevelIndication
        0xff,   // reserved bits, lengthSizeMinusOne = 3
        0xe1,   // reserved bits, one SPS
    ];
    record.extend_from_slice(&sps_len.to_be_bytes());
    record.extend_from_slice(sps);
    record.push(1); // one PPS
    record.extend_from_slice(&pps_len.to_be_bytes());
    record.extend_from_slice(pps);
    Some(DecoderConfig {
        record,
        size: sps_size(sps),
    })
}

/// Width and height from a sequence parameter set (with its NAL header).
fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    let rbsp: Cow<'_, [u8]> = decode_nal(sps).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    sps.pixel_dimensions().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A baseline 320 x 240 SPS and a PPS, as x264 writes them.
    const SPS_320X240: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x78];
        for n in nals {
            p.extend_from_slice(&(n.len() as u16).to_be_bytes());
            p.extend_from_slice(n);
        }
        p
    }

    #[test]
    fn single_units_aggregates_and_fragments_come_out_length_prefixed() {
        let mut u = Unpacker::default();
        let mut frame = Vec::new();
        assert!(u.unpack(&stap_a(&[SPS_320X240, PPS]), &mut frame));
        // An IDR slice (NRI 3) cut in three fragments.
        assert!(u.unpack(&[0x7c, 0x85, 1, 2], &mut frame));
        assert!(u.in_fragment());
        assert!(u.unpack(&[0x7c, 0x05, 3], &mut frame));
        assert!(u.unpack(&[0x7c, 0x45, 4, 5], &mut frame));
        assert!(!u.in_fragment());
        assert!(u.unpack(&[0x06, 9, 9], &mut frame)); // SEI
        let nals: Vec<&[u8]> = nal_units(&frame).collect();
        assert_eq!(
            nals,
            [
                SPS_320X240,
                PPS,
                &[0x65, 1, 2, 3, 4, 5][..],
                &[0x06, 9, 9][..]
            ]
        );
        assert!(starts_stream(&frame) && is_idr(&frame));

        let config = decoder_config(&frame).unwrap();
        assert_eq!(config.size, Some((320, 240)));
        assert_eq!(&config.record[..6], &[1, 0x42, 0xc0, 0x0d, 0xff, 0xe1]);
        assert_eq!(
            config.record.len(),
            6 + 2 + SPS_320X240.len() + 1 + 2 + PPS.len()
        );
    }

    #[test]
    fn garbage_and_broken_fragments_are_refused_without_panicking() {
        for garbage in [
            &[][..],
            &[0x78],                         // STAP-A with nothing
            &[0x78, 0x00],                   // half a size
            &[0x78, 0x00, 0x05],             // a size past the end
            &[0x78, 0x00, 0x00],             // an empty unit
            &[0x78, 0x00, 0x01, 0x67, 0x00], // a unit, then half a size
            &[0x7c],                         // FU-A without its header
            &[0x7d, 0x85, 1],                // FU-B
            &[0x79, 0, 1, 2],                // STAP-B
        ] {
            let mut frame = Vec::new();
            assert!(
                !Unpacker::default().unpack(garbage, &mut frame),
                "{garbage:?}"
            );
        }
        // A fragment whose start was lost.
        let mut frame = Vec::new();
        assert!(!Unpacker::default().unpack(&[0x7c, 0x05, 1], &mut frame));
        // A fragment whose end was lost, then a new unit.
        let mut u = Unpacker::default();
        assert!(u.unpack(&[0x7c, 0x85, 1], &mut frame));
        assert!(!u.unpack(&[0x06, 1, 2], &mut frame));
        // Two starts in a row.
        let mut u = Unpacker::default();
        assert!(u.unpack(&[0x7c, 0x85, 1], &mut frame));
        assert!(!u.unpack(&[0x7c, 0x85, 1], &mut frame));
    }

    #[test]
    fn a_file_starts_only_at_an_idr_with_its_parameter_sets() {
        let mut frame = Vec::new();
        push_nal(&mut frame, &[0x65, 1]);
        assert!(is_idr(&frame) && !starts_stream(&frame));
        assert_eq!(decoder_config(&frame), None);
        let mut frame = Vec::new();
        push_nal(&mut frame, SPS_320X240);
        push_nal(&mut frame, PPS);
        push_nal(&mut frame, &[0x41, 1]); // a P slice
        assert!(!is_idr(&frame) && !starts_stream(&frame));
        // An SPS too short to name a profile cannot start a file.
        let mut frame = Vec::new();
        push_nal(&mut frame, &[0x67]);
        push_nal(&mut frame, PPS);
        push_nal(&mut frame, &[0x65, 1]);
        assert!(is_idr(&frame) && !starts_stream(&frame));
        // A broken SPS still gives a configuration, without a size.
        let mut frame = Vec::new();
        push_nal(&mut frame, &[0x67, 0x42, 0xc0, 0x0d, 0xff]);
        push_nal(&mut frame, PPS);
        assert_eq!(decoder_config(&frame).unwrap().size, None);
        // Truncated length prefixes end the list.
        assert_eq!(nal_units(&[0, 0, 0, 9, 1]).count(), 0);
    }
}
