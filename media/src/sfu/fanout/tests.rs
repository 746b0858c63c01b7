//! The fan-out on a made-up clock: loss, reordering, a simulcast layer
//! switch, a stalled subscriber, mute and sender reports. No sockets, no
//! WebRTC stack; every instant is `t0` plus a chosen offset.

use super::*;
use crate::sfu::forwarder::KEYFRAME_REQUEST_INTERVAL;

const OPUS_PT: u8 = 111;
const VP8_PT: u8 = 96;

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

fn rtp(ssrc: u32, seq: u16, ts: u32) -> Header {
    Header {
        version: 2,
        payload_type: VP8_PT,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
        ..Default::default()
    }
}

/// A VP8 payload descriptor (S=1, PID=0) followed by a frame header byte
/// whose low bit says inter (1) or key (0) frame.
fn vp8(keyframe: bool) -> [u8; 4] {
    [0x10, if keyframe { 0x00 } else { 0x01 }, 0, 0]
}

/// Routes one packet and returns what came out, by slot.
fn route<S>(
    f: &mut Fanout<S>,
    now: Instant,
    h: &Header,
    payload: &[u8],
) -> (Vec<Rewrite>, Vec<u8>) {
    let (mut out, mut keyframes) = (Vec::new(), Vec::new());
    f.on_rtp(now, h, payload, &mut out, &mut keyframes);
    (out, keyframes)
}

fn seqs_for(out: &[Rewrite], slot: usize) -> Vec<u16> {
    out.iter()
        .filter(|r| r.slot == slot)
        .map(|r| r.sequence_number)
        .collect()
}

#[test]
fn each_subscriber_gets_the_packet_under_its_own_ssrc_and_payload_type() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Opus);
    f.add_layer(1000, None);
    let (a, b) = (ParticipantSid::new(), ParticipantSid::new());
    f.attach(t0, Subscriber::new(a, "a", 7, OPUS_PT, 48_000));
    f.attach(t0, Subscriber::new(b, "b", 9, 109, 48_000));
    let (out, _) = route(&mut f, t0, &rtp(1000, 500, 96_000), b"opus");
    assert_eq!(out.len(), 2, "every audio packet can start the stream");
    let by = |sink: &str| {
        out.iter()
            .find(|r| *f.sink(r.slot) == sink)
            .copied()
            .unwrap()
    };
    assert_eq!((by("a").ssrc, by("a").payload_type), (7, OPUS_PT));
    assert_eq!((by("b").ssrc, by("b").payload_type), (9, 109));
    assert_eq!(by("a").sequence_number, 500);
    assert_eq!(by("a").timestamp, 96_000);
    let h = by("b").header();
    assert_eq!((h.ssrc, h.payload_type, h.sequence_number), (9, 109, 500));
    assert!(
        h.extensions.is_empty(),
        "the publisher's extension ids are not passed on"
    );
    assert_eq!(f.subscriber_mut(a).unwrap().counts().octets, 4);
}

#[test]
fn a_lost_packet_leaves_a_gap_the_subscriber_can_nack() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Opus);
    let s = ParticipantSid::new();
    f.attach(t0, Subscriber::new(s, (), 1, OPUS_PT, 48_000));
    let mut seen = Vec::new();
    for (i, seq) in [10u16, 11, 13, 14].into_iter().enumerate() {
        let (out, _) = route(
            &mut f,
            at(t0, 20 * i as u64),
            &rtp(5, seq, 960 * u32::from(seq)),
            b"x",
        );
        seen.extend(seqs_for(&out, 0));
    }
    assert_eq!(seen, [10, 11, 13, 14]);
    assert_eq!(f.subscriber_mut(s).unwrap().counts().forwarded, 4);
}

#[test]
fn a_reordered_packet_keeps_its_place_after_a_layer_switch() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Vp8);
    f.add_layer(100, Some("q"));
    f.add_layer(300, Some("f"));
    let s = ParticipantSid::new();
    // Both layers arrive before the subscriber joins, so it starts on the top one.
    route(&mut f, t0, &rtp(100, 1, 0), &vp8(false));
    route(&mut f, t0, &rtp(300, 1, 0), &vp8(false));
    f.attach(t0, Subscriber::new(s, (), 42, VP8_PT, 90_000));
    // Layer choices and keyframe requests happen at most every 250 ms.
    let (out, keyframes) = route(&mut f, at(t0, 300), &rtp(300, 2, 0), &vp8(false));
    assert!(out.is_empty(), "no keyframe yet");
    assert_eq!(keyframes, [2], "the top layer is asked for one");
    let (out, _) = route(&mut f, at(t0, 320), &rtp(300, 50, 9000), &vp8(true));
    let first = out[0].sequence_number;
    // 52 arrives before 51.
    let (out52, _) = route(&mut f, at(t0, 330), &rtp(300, 52, 9000), &vp8(false));
    let (out51, _) = route(&mut f, at(t0, 331), &rtp(300, 51, 9000), &vp8(false));
    assert_eq!(out52[0].sequence_number, first.wrapping_add(2));
    assert_eq!(out51[0].sequence_number, first.wrapping_add(1));
}

#[test]
fn a_layer_switch_waits_for_a_keyframe_and_keeps_one_stream() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Vp8);
    f.add_layer(100, Some("q"));
    f.add_layer(300, Some("f"));
    let s = ParticipantSid::new();
    let mut sub = Subscriber::new(s, (), 42, VP8_PT, 90_000);
    // 100 kbit/s share: only the low layer fits once rates are measured.
    sub.set_bandwidth_share(100_000);
    f.attach(t0, sub);
    let mut t = 0u64;
    let mut seq = [0u16; 2];
    let mut out_seqs = Vec::new();
    let mut asked = Vec::new();
    let send = |f: &mut Fanout<()>, t: u64, layer: usize, key: bool, seq: &mut [u16; 2]| {
        seq[layer] = seq[layer].wrapping_add(1);
        let ssrc = [100, 300][layer];
        // Low layer: 50 packets/s of 100 bytes (40 kbit/s); top: 50 of 1000 (400 kbit/s).
        let mut payload = vec![0u8; [100, 1000][layer]];
        payload[..4].copy_from_slice(&vp8(key));
        route(
            f,
            at(t0, t),
            &rtp(ssrc, seq[layer], 90 * t as u32),
            &payload,
        )
    };
    // Two seconds of both layers, keyframes on each at the start.
    while t < 2000 {
        for layer in 0..2 {
            let (out, keyframes) = send(&mut f, t, layer, t == 0, &mut seq);
            out_seqs.extend(out.iter().map(|r| (layer, r.sequence_number)));
            asked.extend(keyframes);
        }
        t += 20;
    }
    assert_eq!(
        f.subscriber_mut(s).unwrap().current_layer(),
        Some(0),
        "400 kbit/s does not fit 100"
    );
    assert!(out_seqs.iter().all(|(layer, _)| *layer == 0));
    // The share grows: the next recheck targets the top layer, which needs a keyframe.
    f.subscriber_mut(s).unwrap().set_bandwidth_share(2_000_000);
    asked.clear();
    let mut switched_at = None;
    while t < 3000 {
        for layer in 0..2 {
            let key = layer == 1 && t == 2500;
            let (out, keyframes) = send(&mut f, t, layer, key, &mut seq);
            for r in &out {
                if layer == 1 && switched_at.is_none() {
                    switched_at = Some(t);
                }
                out_seqs.push((layer, r.sequence_number));
            }
            asked.extend(keyframes);
        }
        t += 20;
    }
    assert_eq!(
        switched_at,
        Some(2500),
        "switched at the top layer's keyframe, not before"
    );
    assert!(
        asked.contains(&2),
        "a keyframe of the top layer (`f`, 2) was asked for: {asked:?}"
    );
    let spaced: Vec<u16> = out_seqs
        .windows(2)
        .map(|w| w[1].1.wrapping_sub(w[0].1))
        .collect();
    assert!(
        spaced.iter().all(|d| *d == 1),
        "one stream without gaps or repeats across the switch"
    );
    let after = out_seqs.iter().skip_while(|(l, _)| *l == 0).count();
    assert!(after > 20 && out_seqs.iter().rev().take(after).all(|(l, _)| *l == 1));
}

#[test]
fn a_stalled_subscriber_costs_the_others_nothing() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Vp8);
    f.add_layer(100, None);
    let (stalled, healthy) = (ParticipantSid::new(), ParticipantSid::new());
    f.attach(t0, Subscriber::new(stalled, "stalled", 1, VP8_PT, 90_000));
    f.attach(t0, Subscriber::new(healthy, "healthy", 2, VP8_PT, 90_000));
    let mut delivered: std::collections::HashMap<&str, Vec<u16>> = Default::default();
    for i in 0..300u16 {
        let now = at(t0, 10 * u64::from(i));
        let (out, _) = route(&mut f, now, &rtp(100, i, 900 * u32::from(i)), &vp8(i == 0));
        for r in out {
            let sink = *f.sink(r.slot);
            // The stalled subscriber's connection takes nothing between packets 100 and 200:
            // the caller drops what it cannot send and moves on to the next subscriber.
            if sink == "stalled" && (100..200).contains(&i) {
                continue;
            }
            delivered.entry(sink).or_default().push(r.sequence_number);
        }
    }
    assert_eq!(delivered["healthy"], (0..300).collect::<Vec<u16>>());
    let s = &delivered["stalled"];
    assert_eq!(s.len(), 200);
    assert_eq!(
        (s[99], s[100]),
        (99, 200),
        "it resumes where the stream is, with a gap to NACK"
    );
    // It asks for a keyframe when it recovers; the request reaches the publisher once.
    f.subscriber_mut(stalled).unwrap().request_keyframe();
    let (_, keyframes) = route(&mut f, at(t0, 3500), &rtp(100, 300, 0), &vp8(false));
    assert_eq!(keyframes, [0]);
}

#[test]
fn a_paused_subscriber_resumes_at_a_keyframe_and_asks_for_one() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Vp8);
    f.add_layer(100, None);
    let s = ParticipantSid::new();
    f.attach(t0, Subscriber::new(s, (), 1, VP8_PT, 90_000));
    assert_eq!(route(&mut f, t0, &rtp(100, 1, 0), &vp8(true)).0.len(), 1);
    f.subscriber_mut(s).unwrap().set_paused(true);
    assert!(route(&mut f, at(t0, 300), &rtp(100, 2, 0), &vp8(true))
        .0
        .is_empty());
    f.subscriber_mut(s).unwrap().set_paused(false);
    let (out, keyframes) = route(&mut f, at(t0, 600), &rtp(100, 3, 0), &vp8(false));
    assert!(
        out.is_empty(),
        "a delta frame cannot start the picture again"
    );
    assert_eq!(keyframes, [0]);
    let (out, keyframes) = route(&mut f, at(t0, 700), &rtp(100, 4, 0), &vp8(false));
    assert!(
        out.is_empty() && keyframes.is_empty(),
        "asked at most every {KEYFRAME_REQUEST_INTERVAL:?}"
    );
    assert_eq!(
        route(&mut f, at(t0, 900), &rtp(100, 5, 0), &vp8(true))
            .0
            .len(),
        1
    );
}

#[test]
fn a_muted_track_forwards_nothing_and_reads_silent() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Opus);
    f.set_audio_level_extension(1);
    let s = ParticipantSid::new();
    f.attach(t0, Subscriber::new(s, (), 1, OPUS_PT, 48_000));
    let mut loud = rtp(7, 1, 0);
    loud.set_extension(1, bytes::Bytes::from_static(&[6]))
        .unwrap();
    for i in 0..20 {
        route(&mut f, at(t0, 20 * i), &loud, b"x");
    }
    assert!(f.audio_level(at(t0, 400)) > 0.3);
    f.set_muted(true);
    assert!(route(&mut f, at(t0, 420), &loud, b"x").0.is_empty());
    assert_eq!(f.audio_level(at(t0, 420)), 0.0);
}

#[test]
fn sender_reports_follow_the_subscribers_numbering_and_counts() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Vp8);
    f.add_layer(100, Some("q"));
    f.add_layer(300, Some("f"));
    route(&mut f, t0, &rtp(300, 1, 0), &vp8(false));
    let (top, capped) = (ParticipantSid::new(), ParticipantSid::new());
    f.attach(t0, Subscriber::new(top, "top", 1, VP8_PT, 90_000));
    let mut low = Subscriber::new(capped, "low", 2, VP8_PT, 90_000);
    low.set_max_layer(0);
    f.attach(t0, low);
    route(&mut f, at(t0, 10), &rtp(100, 7, 5000), &vp8(true));
    route(&mut f, at(t0, 10), &rtp(300, 9, 7000), &vp8(true));
    let mut out = Vec::new();
    let report = SenderReport {
        ssrc: 300,
        ntp_time: 1 << 40,
        rtp_time: 7000,
        ..Default::default()
    };
    f.on_sender_report(&report, &mut out);
    assert_eq!(out.len(), 1, "only the subscriber on that layer");
    let (slot, sr) = &out[0];
    assert_eq!(*f.sink(*slot), "top");
    assert_eq!(
        (sr.ssrc, sr.ntp_time, sr.packet_count, sr.octet_count),
        (1, 1 << 40, 1, 4)
    );
    out.clear();
    f.on_sender_report(
        &SenderReport {
            ssrc: 999,
            ..report
        },
        &mut out,
    );
    assert!(out.is_empty(), "a report of an unknown stream is ignored");
}

#[test]
fn detaching_stops_forwarding_and_returns_the_counts() {
    let t0 = Instant::now();
    let mut f = Fanout::new(Codec::Opus);
    let (a, b) = (ParticipantSid::new(), ParticipantSid::new());
    f.attach(t0, Subscriber::new(a, 'a', 1, OPUS_PT, 48_000));
    f.attach(t0, Subscriber::new(b, 'b', 2, OPUS_PT, 48_000));
    route(&mut f, t0, &rtp(1, 1, 0), b"x");
    let gone = f.detach(a).unwrap();
    assert_eq!(gone.counts().forwarded, 1);
    let (out, _) = route(&mut f, t0, &rtp(1, 2, 0), b"x");
    assert_eq!(out.len(), 1);
    assert_eq!(*f.sink(out[0].slot), 'b');
    assert!(f.detach(a).is_none());
    assert_eq!(f.detach_all().len(), 1);
    assert!(f.is_empty());
}
