//! The retransmitter on a fake clock: packets written, NACKs read, what
//! comes back out.

use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, RTCPFeedback, StreamInfo, TaggedPacket,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;

use super::{
    Retransmitter, KEEP, MAX_PACKETS, MAX_RESENDS, RESEND_BURST, RESEND_GAP, RESEND_SHARE,
};

const SSRC: u32 = 1111;
const RTX_SSRC: u32 = 2222;
const RTX_PT: u8 = 97;

fn stream(rtx: bool, nack: bool) -> StreamInfo {
    StreamInfo {
        ssrc: SSRC,
        ssrc_rtx: rtx.then_some(RTX_SSRC),
        payload_type: 96,
        payload_type_rtx: rtx.then_some(RTX_PT),
        rtcp_feedback: if nack {
            vec![RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

fn responder(rtx: bool) -> Retransmitter {
    let mut r = Retransmitter::default();
    r.bind_local_stream(&stream(rtx, true));
    r
}

fn tagged(now: Instant, packet: Packet) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(packet),
    }
}

/// Writes packet `seq` (payload: its number) and takes it back out.
fn send(r: &mut Retransmitter, now: Instant, seq: u16) {
    let packet = rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            ssrc: SSRC,
            payload_type: 96,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            ..Default::default()
        },
        payload: seq.to_be_bytes().repeat(100).into(),
    };
    r.handle_write(tagged(now, Packet::Rtp(packet))).unwrap();
    let out = r.poll_write().expect("the packet goes on");
    assert!(matches!(out.message.packet, Packet::Rtp(ref p) if p.header.sequence_number == seq));
    assert!(r.poll_write().is_none());
}

/// Reads a NACK of `ssrc` for `pairs` and returns what it made the retransmitter send.
fn nack(r: &mut Retransmitter, now: Instant, ssrc: u32, pairs: &[(u16, u16)]) -> Vec<rtp::Packet> {
    let nack = TransportLayerNack {
        sender_ssrc: 5,
        media_ssrc: ssrc,
        nacks: pairs
            .iter()
            .map(|&(packet_id, lost_packets)| NackPair {
                packet_id,
                lost_packets,
            })
            .collect(),
    };
    r.handle_read(tagged(now, Packet::Rtcp(vec![Box::new(nack)])))
        .unwrap();
    assert!(r.poll_read().is_some(), "the NACK goes on up the chain");
    std::iter::from_fn(|| r.poll_write())
        .map(|out| {
            assert!(out
                .message
                .attributes
                .iter()
                .any(|a| matches!(a, Attribute::Retransmission)));
            match out.message.packet {
                Packet::Rtp(p) => p,
                other => panic!("not RTP: {other:?}"),
            }
        })
        .collect()
}

/// The sequence number an RTX packet carries first, and the original payload after it.
fn unwrap_rtx(p: &rtp::Packet) -> (u16, &[u8]) {
    assert_eq!(
        (p.header.ssrc, p.header.payload_type, p.header.version),
        (RTX_SSRC, RTX_PT, 2)
    );
    (
        u16::from_be_bytes([p.payload[0], p.payload[1]]),
        &p.payload[2..],
    )
}

#[test]
fn lost_packets_come_back_on_the_rtx_stream_with_their_sequence_number_first() {
    let t0 = Instant::now();
    let mut r = responder(true);
    for seq in 100..110 {
        send(
            &mut r,
            t0 + Duration::from_millis(u64::from(seq - 100) * 20),
            seq,
        );
    }
    let now = t0 + Duration::from_millis(250);
    // 103, and the bitmap's second bit: 105.
    let resent = nack(&mut r, now, SSRC, &[(103, 0b10)]);
    assert_eq!(resent.len(), 2);
    for (p, want) in resent.iter().zip([103u16, 105]) {
        let (seq, payload) = unwrap_rtx(p);
        assert_eq!(seq, want);
        assert_eq!(payload, want.to_be_bytes().repeat(100));
        assert_eq!(p.header.timestamp, u32::from(want) * 3000);
    }
    assert_eq!(
        resent[1].header.sequence_number,
        resent[0].header.sequence_number.wrapping_add(1),
        "the RTX stream numbers its own packets"
    );
}

#[test]
fn without_rtx_the_original_packet_is_sent_again() {
    let t0 = Instant::now();
    let mut r = responder(false);
    for seq in 0..5 {
        send(&mut r, t0, seq);
    }
    let resent = nack(&mut r, t0, SSRC, &[(2, 0)]);
    assert_eq!(resent.len(), 1);
    assert_eq!(
        (resent[0].header.ssrc, resent[0].header.sequence_number),
        (SSRC, 2)
    );
    assert_eq!(&resent[0].payload[..], 2u16.to_be_bytes().repeat(100));
}

#[test]
fn packets_are_kept_a_second_and_no_longer() {
    let t0 = Instant::now();
    let mut r = responder(true);
    // Five seconds of a 50 packet/s stream.
    for seq in 0..250u16 {
        send(&mut r, t0 + Duration::from_millis(u64::from(seq) * 20), seq);
    }
    let kept = r.streams[&SSRC].sent.len();
    assert!((50..=52).contains(&kept), "{kept} packets kept");
    let now = t0 + Duration::from_millis(249 * 20);
    assert!(nack(&mut r, now, SSRC, &[(190, 0)]).is_empty(), "1.2 s old");
    assert_eq!(nack(&mut r, now, SSRC, &[(220, 0)]).len(), 1);
    // Kept packets age out even when nothing new is sent.
    assert!(nack(&mut r, now + KEEP, SSRC, &[(240, 0)]).is_empty());
}

#[test]
fn a_fast_stream_keeps_at_most_its_cap() {
    let t0 = Instant::now();
    let mut r = responder(false);
    for seq in 0..2000u16 {
        send(&mut r, t0, seq);
    }
    assert_eq!(r.streams[&SSRC].sent.len(), MAX_PACKETS);
    let oldest = 2000 - MAX_PACKETS as u16;
    assert!(nack(&mut r, t0, SSRC, &[(oldest - 1, 0)]).is_empty());
    assert_eq!(nack(&mut r, t0, SSRC, &[(oldest, 0)]).len(), 1);
}

#[test]
fn a_receiver_asking_in_a_loop_gets_each_packet_once_per_gap() {
    let t0 = Instant::now();
    let mut r = responder(true);
    for seq in 0..40 {
        send(&mut r, t0, seq);
    }
    // Every packet, in one NACK: the packet id and all sixteen bits, twice over.
    let all = [(0, 0xffff), (17, 0xffff), (0, 0xffff)];
    assert_eq!(nack(&mut r, t0, SSRC, &all).len(), 34);
    assert!(nack(&mut r, t0 + RESEND_GAP / 2, SSRC, &all).is_empty());
    assert_eq!(nack(&mut r, t0 + RESEND_GAP, SSRC, &all).len(), 34);
}

#[test]
fn packets_sent_out_of_order_and_across_the_wrap_are_found() {
    let t0 = Instant::now();
    let mut r = responder(true);
    for seq in [65533u16, 65535, 1, 65534, 0, 3, 2, 2] {
        send(&mut r, t0, seq);
    }
    let kept: Vec<u16> = r.streams[&SSRC].sent.iter().map(|s| s.seq).collect();
    assert_eq!(kept, [65533, 65534, 65535, 0, 1, 2, 3]);
    let resent = nack(&mut r, t0, SSRC, &[(65533, 0b111_1111)]);
    let seqs: Vec<u16> = resent.iter().map(|p| unwrap_rtx(p).0).collect();
    assert_eq!(seqs, [65533, 65534, 65535, 0, 1, 2, 3]);
    // Not sent (4), before the first (65532), and older than all kept: nothing.
    send(&mut r, t0, 10);
    assert!(nack(&mut r, t0 + RESEND_GAP, SSRC, &[(4, 0), (65532, 0)]).is_empty());
    send(&mut r, t0, 60000);
    assert_eq!(
        r.streams[&SSRC].sent.len(),
        8,
        "a packet from far behind is not kept"
    );
}

#[test]
fn nacks_for_streams_that_do_not_take_them_are_passed_on_and_ignored() {
    let t0 = Instant::now();
    let mut r = Retransmitter::default();
    r.bind_local_stream(&stream(true, false));
    send(&mut r, t0, 1);
    assert!(nack(&mut r, t0, SSRC, &[(1, 0)]).is_empty());
    let mut r = responder(true);
    send(&mut r, t0, 1);
    assert!(nack(&mut r, t0, 999, &[(1, 0)]).is_empty());
    r.unbind_local_stream(&stream(true, true));
    assert!(nack(&mut r, t0, SSRC, &[(1, 0)]).is_empty());
}

#[test]
fn a_packet_is_resent_a_few_times_at_most() {
    let mut r = responder(false);
    let t0 = Instant::now();
    send(&mut r, t0, 1);
    let mut resent = 0;
    for i in 1..10 {
        resent += nack(&mut r, t0 + RESEND_GAP * i, SSRC, &[(1, 0)]).len();
    }
    assert_eq!(resent, usize::from(MAX_RESENDS));
}

#[test]
fn a_link_losing_everything_gets_at_most_half_again_in_resends() {
    // Each packet is 200 bytes: one second of them at 100 packets a second.
    let mut r = responder(true);
    let t0 = Instant::now();
    let mut resent = 0;
    let mut sent = 0;
    for seq in 0..1000u16 {
        let now = t0 + Duration::from_millis(10) * u32::from(seq);
        send(&mut r, now, seq);
        sent += 200;
        // Everything sent so far in the last half second is reported lost, again and again.
        let from = seq.saturating_sub(49);
        let pairs: Vec<(u16, u16)> = (from..=seq).step_by(17).map(|s| (s, 0xffff)).collect();
        resent += nack(&mut r, now, SSRC, &pairs)
            .iter()
            .map(|p| unwrap_rtx(p).1.len())
            .sum::<usize>();
    }
    assert!(
        resent as f64 <= sent as f64 * RESEND_SHARE + RESEND_BURST as f64,
        "resent {resent} bytes for {sent} sent"
    );
    assert!(
        resent as f64 >= sent as f64 * RESEND_SHARE * 0.9,
        "the budget is used: {resent} of {sent}"
    );
}
