//! The packet path in process, for counting its instructions: one publisher's
//! video to N subscribers on a made-up clock, no sockets.
//!
//! Each received packet is decrypted once (SRTP, as a publisher's connection
//! would), routed by the track's [`Fanout`], and for every subscriber that
//! gets it rewritten, marshalled into a reused buffer and encrypted with that
//! subscriber's own SRTP context. `bench/packet-path.sh` runs this under
//! `valgrind --tool=callgrind`, collecting only inside
//! `packet_path_steady_state`, and divides by the packets delivered.
//!
//!     cargo run --release -p switchboard-media --example packet-path -- 50 1000

use std::hint::black_box;
use std::time::{Duration, Instant};

use rtc::crypto::providers::RingCrypto;
use rtc::rtp::header::Header;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;
use switchboard_core::ParticipantSid;
use switchboard_media::sfu::fanout::{Fanout, Rewrite, Subscriber};
use switchboard_media::sfu::keyframe::Codec;

const PUBLISHER_SSRC: u32 = 0x1234_5678;
const PAYLOAD: usize = 1100;
const WARM_UP: u32 = 200;

fn srtp() -> Context {
    let profile = ProtectionProfile::Aes128CmHmacSha1_80;
    let key = vec![7u8; profile.key_len()];
    let salt = vec![9u8; profile.salt_len()];
    match Context::new(&key, &salt, profile, None, None, &RingCrypto) {
        Ok(c) => c,
        Err(e) => panic!("SRTP context: {e}"),
    }
}

/// Everything one packet touches, reused from packet to packet.
struct Path {
    fanout: Fanout<usize>,
    receive: Context,
    send: Vec<Context>,
    rewrites: Vec<Rewrite>,
    keyframes: Vec<u8>,
    plain: Vec<u8>,
    delivered: u64,
    bytes: u64,
}

impl Path {
    fn new(subscribers: usize, t0: Instant) -> Self {
        let mut fanout = Fanout::new(Codec::Vp8);
        fanout.add_layer(PUBLISHER_SSRC, None);
        for i in 0..subscribers {
            let sub = Subscriber::new(ParticipantSid::new(), i, 1000 + i as u32, 96, 90_000);
            fanout.attach(t0, sub);
        }
        Self {
            fanout,
            receive: srtp(),
            send: (0..subscribers).map(|_| srtp()).collect(),
            rewrites: Vec::with_capacity(subscribers),
            keyframes: Vec::with_capacity(3),
            plain: vec![0; 1500],
            delivered: 0,
            bytes: 0,
        }
    }

    /// Receives one encrypted packet at `now` and sends it on to every subscriber.
    fn forward(&mut self, now: Instant, encrypted: &[u8]) {
        let Ok(packet) = self.receive.decrypt_rtp(encrypted) else {
            return;
        };
        let mut buf = &packet[..];
        let Ok(header) = <Header as rtc::shared::marshal::Unmarshal>::unmarshal(&mut buf) else {
            return;
        };
        let payload = &packet[packet.len() - buf.len()..];
        self.fanout.on_rtp(
            now,
            &header,
            payload,
            &mut self.rewrites,
            &mut self.keyframes,
        );
        self.keyframes.clear();
        for r in self.rewrites.drain(..) {
            let out = r.header();
            let Ok(n) = out.marshal_to(&mut self.plain) else {
                continue;
            };
            self.plain[n..n + payload.len()].copy_from_slice(payload);
            let sink = *self.fanout.sink(r.slot);
            if let Ok(wire) =
                self.send[sink].encrypt_rtp_with_header(&self.plain[..n + payload.len()], &out)
            {
                self.delivered += 1;
                self.bytes += black_box(wire.len()) as u64;
            }
        }
    }
}

/// The publisher's stream, encrypted once up front: a keyframe, then delta frames.
fn publisher_packets(count: u32) -> Vec<Vec<u8>> {
    let mut ctx = srtp();
    (0..count)
        .map(|i| {
            let header = Header {
                version: 2,
                payload_type: 96,
                sequence_number: i as u16,
                timestamp: 3000 * (i / 4),
                ssrc: PUBLISHER_SSRC,
                marker: i % 4 == 3,
                ..Default::default()
            };
            let mut plain = vec![0u8; 12 + PAYLOAD];
            let n = header.marshal_to(&mut plain).unwrap_or(12);
            // VP8 payload descriptor (start of partition), then the frame's first byte.
            plain[n] = 0x10;
            plain[n + 1] = if i == 0 { 0x00 } else { 0x01 };
            match ctx.encrypt_rtp_with_header(&plain, &header) {
                Ok(wire) => wire.to_vec(),
                Err(e) => panic!("encrypting the publisher's packet: {e}"),
            }
        })
        .collect()
}

#[inline(never)]
fn packet_path_steady_state(path: &mut Path, t0: Instant, packets: &[Vec<u8>], first: u32) {
    for (i, p) in packets.iter().enumerate() {
        let now = t0 + Duration::from_millis(10 * u64::from(first + i as u32));
        path.forward(now, p);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let subscribers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let steady: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let t0 = Instant::now();
    let packets = publisher_packets(WARM_UP + steady);
    let mut path = Path::new(subscribers, t0);
    // Warm-up: buffers grow, the forwarders lock on to the keyframe.
    for (i, p) in packets[..WARM_UP as usize].iter().enumerate() {
        path.forward(t0 + Duration::from_millis(10 * i as u64), p);
    }
    let before = path.delivered;
    packet_path_steady_state(&mut path, t0, &packets[WARM_UP as usize..], WARM_UP);
    let delivered = path.delivered - before;
    println!(
        "{{\"subscribers\": {subscribers}, \"received\": {steady}, \"delivered\": {delivered}, \"bytes\": {}}}",
        path.bytes
    );
    if delivered != u64::from(steady) * subscribers as u64 {
        eprintln!("expected every packet delivered to every subscriber");
        std::process::exit(1);
    }
}
