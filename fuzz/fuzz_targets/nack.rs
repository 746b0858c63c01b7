//! A subscriber's NACKs against what its connection sent: packets written
//! in any order with any gaps and pauses, NACKs naming anything. Only
//! packets sent within the last second come back, each as it was sent, none
//! twice within the resend gap, and no more than the cap is ever held.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc::interceptor::{AttributedPacket, Interceptor, Packet, RTCPFeedback, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use switchboard_media::peer::nack::{Retransmitter, KEEP, MAX_PACKETS, RESEND_GAP};

const SSRC: u32 = 7;

fn tagged(now: Instant, packet: Packet) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(packet),
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut r = Retransmitter::default();
    r.bind_local_stream(&StreamInfo {
        ssrc: SSRC,
        payload_type: 96,
        rtcp_feedback: vec![RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        }],
        ..Default::default()
    });
    // When each sequence number was last sent, and last resent.
    let mut sent_at: HashMap<u16, Instant> = HashMap::new();
    let mut resent_at: HashMap<u16, Instant> = HashMap::new();
    let mut seq: u16 = 0;
    let mut ops = data.chunks_exact(4);
    for op in &mut ops {
        let arg = u16::from_be_bytes([op[2], op[3]]);
        now += Duration::from_millis(u64::from(op[1]) * 4);
        match op[0] % 3 {
            // Send a packet `arg` after the last, counting around the wrap.
            0 | 1 => {
                seq = seq.wrapping_add(arg);
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        ssrc: SSRC,
                        payload_type: 96,
                        sequence_number: seq,
                        ..Default::default()
                    },
                    payload: seq.to_be_bytes().to_vec().into(),
                };
                r.handle_write(tagged(now, Packet::Rtp(packet))).unwrap();
                while r.poll_write().is_some() {}
                sent_at.insert(seq, now);
                resent_at.remove(&seq);
            }
            // NACK `arg` and the packets its bitmap names.
            _ => {
                let nack = TransportLayerNack {
                    sender_ssrc: 1,
                    media_ssrc: SSRC,
                    nacks: vec![NackPair {
                        packet_id: arg,
                        lost_packets: u16::from(op[1]) << 8 | u16::from(op[0]),
                    }],
                };
                r.handle_read(tagged(now, Packet::Rtcp(vec![Box::new(nack)])))
                    .unwrap();
                while r.poll_read().is_some() {}
                while let Some(out) = r.poll_write() {
                    let Packet::Rtp(p) = out.message.packet else {
                        panic!("a retransmission that is not RTP");
                    };
                    let s = p.header.sequence_number;
                    assert_eq!(&p.payload[..], s.to_be_bytes(), "resent as sent");
                    let at = sent_at.get(&s).expect("resent a packet never sent");
                    assert!(now.duration_since(*at) <= KEEP, "resent after a second");
                    if let Some(last) = resent_at.insert(s, now) {
                        assert!(now.duration_since(last) >= RESEND_GAP, "resent twice");
                    }
                }
            }
        }
        assert!(r.kept() <= MAX_PACKETS);
    }
});
