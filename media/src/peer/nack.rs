//! Retransmission on request: the packets a connection sent lately, kept
//! for a second, resent when the receiver reports them lost (RFC 4585
//! generic NACK), on the RTX stream where one was negotiated (RFC 4588).
//!
//! It takes the place of the stack's responder, which keeps a fixed ring
//! of packets per outgoing stream whatever its bitrate: 512 slots held ten
//! seconds of a 500 kbps stream, and with them the payloads of every
//! publisher's last ten seconds, once per subscriber. Keeping by age holds
//! what a receiver can still use (libwebrtc's own send history keeps a
//! second) and no more.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;

/// How long a sent packet can still be retransmitted.
pub const KEEP: Duration = Duration::from_secs(1);

/// Packets kept per stream however young they are: a bound on the memory a
/// high-bitrate stream takes (a second of about 5 Mbps).
pub const MAX_PACKETS: usize = 512;

/// How soon one packet may be sent again: a receiver asks again after a
/// round trip, and one that asks in a loop gets no more than this.
pub const RESEND_GAP: Duration = Duration::from_millis(100);

/// Retransmissions may take this share of what a stream sends: on a link
/// that just shrank every packet is lost and asked for again, and resending
/// them all (each up to every [`RESEND_GAP`]) would multiply what it is sent
/// several times over, so that nothing gets through and the bandwidth
/// estimate cannot see what the link carries.
pub const RESEND_SHARE: f64 = 0.5;

/// Bytes of retransmissions a stream may send at once before the share
/// refills it (and its budget when it starts): about 0.3 s of a 1.5 Mbps stream.
pub const RESEND_BURST: usize = 64 * 1024;

/// Times one packet is resent at most.
pub const MAX_RESENDS: u8 = 3;

/// Half the sequence space: a packet this far ahead or more counts as behind.
const HALF: u16 = 1 << 15;

/// One sent packet: its payload (shared with every other subscriber's
/// copy, not copied) and the header fields a retransmission repeats.
/// Header extensions are left out, as RTX leaves them out; keeping them
/// would allocate once per packet and subscriber.
struct Sent {
    at: Instant,
    resent: Option<Instant>,
    resends: u8,
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload_type: u8,
    payload: Bytes,
}

/// One outgoing stream that takes NACKs.
struct Stream {
    ssrc: u32,
    /// In sequence order, oldest first.
    sent: VecDeque<Sent>,
    /// The RTX stream's SSRC and payload type, if one was negotiated.
    rtx: Option<(u32, u8)>,
    rtx_seq: u16,
    /// Bytes it may still resend: [`RESEND_SHARE`] of what it sends, up to [`RESEND_BURST`].
    budget: usize,
}

impl Stream {
    /// How far `seq` is past the oldest packet kept, counting around the wrap.
    fn offset(&self, seq: u16) -> Option<u16> {
        Some(seq.wrapping_sub(self.sent.front()?.seq))
    }

    fn record(&mut self, now: Instant, packet: &rtp::Packet) {
        while self.sent.front().is_some_and(|s| {
            self.sent.len() >= MAX_PACKETS || now.saturating_duration_since(s.at) > KEEP
        }) {
            self.sent.pop_front();
        }
        self.budget =
            (self.budget + (packet.payload.len() as f64 * RESEND_SHARE) as usize).min(RESEND_BURST);
        let header = &packet.header;
        let seq = header.sequence_number;
        let sent = Sent {
            at: now,
            resent: None,
            resends: 0,
            seq,
            timestamp: header.timestamp,
            marker: header.marker,
            payload_type: header.payload_type,
            payload: packet.payload.clone(),
        };
        let (Some(first), Some(last)) = (self.offset(seq), self.offset_of_last()) else {
            self.sent.push_back(sent);
            return;
        };
        if first > last && first < HALF {
            self.sent.push_back(sent);
        } else if first < last {
            // Sent out of order (the publisher's packets arrived so): placed
            // by sequence number, so lookups stay a binary search.
            if let Err(at) = self.position(seq) {
                self.sent.insert(at, sent);
            }
        }
        // Otherwise a repeat of the newest, or older than all kept: nothing
        // to keep. (A jump of half the sequence space ahead looks the same;
        // recording resumes once what is kept has aged out.)
    }

    fn offset_of_last(&self) -> Option<u16> {
        self.offset(self.sent.back()?.seq)
    }

    /// Where `seq` is kept, or where it would go.
    fn position(&self, seq: u16) -> Result<usize, usize> {
        let Some(target) = self.offset(seq) else {
            return Err(0);
        };
        // Packets follow one another most of the time: try the direct slot first.
        let guess = usize::from(target);
        if self.sent.get(guess).is_some_and(|s| s.seq == seq) {
            return Ok(guess);
        }
        let first = self.sent.front().map_or(0, |s| s.seq);
        self.sent
            .binary_search_by_key(&target, |s| s.seq.wrapping_sub(first))
    }

    /// The retransmission of `seq`, unless it is gone, was just resent or
    /// resent enough, or the stream's budget is spent.
    fn resend(&mut self, now: Instant, seq: u16) -> Option<rtp::Packet> {
        let at = self.position(seq).ok()?;
        let sent = self.sent.get_mut(at)?;
        if now.saturating_duration_since(sent.at) > KEEP
            || sent.resends >= MAX_RESENDS
            || sent.payload.len() > self.budget
            || sent
                .resent
                .is_some_and(|r| now.saturating_duration_since(r) < RESEND_GAP)
        {
            return None;
        }
        self.budget -= sent.payload.len();
        sent.resent = Some(now);
        sent.resends += 1;
        let header = |ssrc, payload_type, sequence_number| rtp::header::Header {
            version: 2,
            ssrc,
            payload_type,
            sequence_number,
            timestamp: sent.timestamp,
            marker: sent.marker,
            ..Default::default()
        };
        let Some((ssrc, payload_type)) = self.rtx else {
            return Some(rtp::Packet {
                header: header(self.ssrc, sent.payload_type, seq),
                payload: sent.payload.clone(),
            });
        };
        let mut payload = Vec::with_capacity(2 + sent.payload.len());
        payload.extend_from_slice(&seq.to_be_bytes());
        payload.extend_from_slice(&sent.payload);
        let packet = rtp::Packet {
            header: header(ssrc, payload_type, self.rtx_seq),
            payload: payload.into(),
        };
        self.rtx_seq = self.rtx_seq.wrapping_add(1);
        Some(packet)
    }
}

/// The sequence numbers one NACK entry names: its packet id and each set bit
/// of the bitmap after it.
fn lost(pair: &NackPair) -> impl Iterator<Item = u16> + '_ {
    std::iter::once(pair.packet_id).chain(
        (0..16u16)
            .filter(|i| pair.lost_packets & (1 << i) != 0)
            .map(|i| pair.packet_id.wrapping_add(i + 1)),
    )
}

/// The interceptor: records what is written, answers the NACKs it reads.
#[derive(Default)]
pub struct Retransmitter {
    streams: HashMap<u32, Stream>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Retransmitter {
    /// Packets held for retransmission, over all streams.
    pub fn kept(&self) -> usize {
        self.streams.values().map(|s| s.sent.len()).sum()
    }

    fn answer(&mut self, now: Instant, nack: &TransportLayerNack) {
        let Some(stream) = self.streams.get_mut(&nack.media_ssrc) else {
            return;
        };
        for seq in nack.nacks.iter().flat_map(lost) {
            if let Some(packet) = stream.resend(now, seq) {
                // Tagged so the bandwidth estimate counts it as sent bytes.
                self.write.push_back(TaggedPacket {
                    now,
                    transport: TransportContext::default(),
                    message: AttributedPacket::new(Packet::Rtp(packet))
                        .with(Attribute::Retransmission),
                });
            }
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for Retransmitter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(nack) = p.as_any().downcast_ref::<TransportLayerNack>() {
                    self.answer(msg.now, nack);
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            if let Some(stream) = self.streams.get_mut(&packet.header.ssrc) {
                stream.record(msg.now, packet);
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for Retransmitter {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let takes_nack = info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty());
        if takes_nack {
            self.streams.insert(
                info.ssrc,
                Stream {
                    ssrc: info.ssrc,
                    sent: VecDeque::new(),
                    rtx: info.ssrc_rtx.zip(info.payload_type_rtx),
                    rtx_seq: 0,
                    budget: RESEND_BURST,
                },
            );
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests;
