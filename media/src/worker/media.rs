//! What a worker does with what its connections decrypted: tracks opening,
//! RTP routed through the fan-outs into subscribers' connections, keyframe
//! requests and sender reports relayed, data channel messages handed up.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;

use super::commands::RELIABLE;
use super::event_loop::{notify, Entry, EventLoop};
use super::tracks::Sink;
use super::{ConnId, Event, TrackRef};
use crate::peer::connection::Connection;

impl EventLoop {
    /// Drains every touched connection: its events, what it decrypted
    /// (routed into other connections, which are touched in turn), what it
    /// has to send; then re-arms its timer.
    pub(super) fn drain(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.touched.len() {
            let id = self.touched[i];
            i += 1;
            self.drain_one(now, id);
        }
        self.touched.clear();
    }

    fn drain_one(&mut self, now: Instant, id: ConnId) {
        let Self {
            conns,
            tracks,
            reads,
            ..
        } = self;
        let Some(entry) = conns.get_mut(&id) else {
            return;
        };
        entry.touched = false;
        let mut ended = Vec::new();
        let mut reconnected = Vec::new();
        while let Some(event) = entry.conn.poll_event(now) {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    let connected = state == RTCPeerConnectionState::Connected;
                    if connected && !entry.connected {
                        // Back after an ICE restart or a lost path: subscribers
                        // missed packets NACKs cannot bring back, so every
                        // layer it publishes starts again at a keyframe.
                        tracks.keyframe_ssrcs_of(id, &mut reconnected);
                    }
                    entry.connected = connected;
                    notify(&entry.events, Event::State(id, state));
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let Some((kind, mime, clock_rate)) =
                        track_codec(&mut entry.conn, init.receiver_id)
                    else {
                        continue;
                    };
                    let track = TrackRef {
                        conn: id,
                        track: init.track_id,
                    };
                    if tracks.publish(&track, &mime) {
                        notify(
                            &entry.events,
                            Event::Track {
                                track,
                                kind,
                                mime,
                                clock_rate,
                            },
                        );
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) => {
                    tracks.end(id, &track, &mut ended);
                    notify(
                        &entry.events,
                        Event::TrackEnded(TrackRef { conn: id, track }),
                    );
                }
                _ => {}
            }
        }
        reads.clear();
        while let Some(read) = entry.conn.pc.poll_read() {
            reads.push(read);
        }
        // Looked up once per drain, not once per packet.
        let budget = entry.budget.clone();
        let mut reads = std::mem::take(&mut self.reads);
        for read in reads.drain(..) {
            match read.message {
                RTCMessage::RtpPacket(track, packet) => {
                    let allowed = budget
                        .as_ref()
                        .is_none_or(|b| b.allow(now, packet.payload.len()));
                    if allowed {
                        self.forward(now, id, &track, &packet.header, &packet.payload);
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for p in &packets {
                        let any = p.as_any();
                        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                            self.keyframe_requested(id, pli.media_ssrc);
                        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                            for entry in &fir.fir {
                                self.keyframe_requested(id, entry.ssrc);
                            }
                        } else if let Some(report) = any.downcast_ref::<SenderReport>() {
                            self.note_reception(now, id, &report.reports);
                            self.relay_report(now, id, report);
                        } else if let Some(report) = any.downcast_ref::<ReceiverReport>() {
                            self.note_reception(now, id, &report.reports);
                        }
                    }
                }
                RTCMessage::DataChannelMessage(channel, message) => {
                    self.data_received(id, channel, message.data);
                }
                _ => {}
            }
        }
        self.reads = reads;
        for ssrc in reconnected {
            self.request_keyframe(now, id, ssrc);
        }
        for (subscriber, sender) in ended {
            self.remove_sender(subscriber, sender);
        }
        self.flush(now, id);
    }

    /// Routes one packet of `conn`'s `track` to its subscribers.
    fn forward(
        &mut self,
        now: Instant,
        conn: ConnId,
        track: &str,
        header: &Header,
        payload: &Bytes,
    ) {
        let conns = &mut self.conns;
        self.tracks
            .route(now, conn, track, (header, payload), |ssrc| {
                layer_rid(conns.get_mut(&conn)?, ssrc)
            });
        let mut copies = std::mem::take(&mut self.tracks.routed.copies);
        for (sink, header) in copies.drain(..) {
            let packet = Packet {
                header,
                payload: payload.clone(),
            };
            match sink {
                Sink::Peer(to) => {
                    let Some(entry) = self.conns.get_mut(&to) else {
                        continue;
                    };
                    // The stack finds the sender by the packet's SSRC; the track
                    // id is not read, and an empty String allocates nothing.
                    entry.write(now, RTCMessage::RtpPacket(String::new(), packet));
                    entry.mark(to, &mut self.touched);
                }
                Sink::Recorder(n) => {
                    if let Some(writer) = self.tracks.recorder(n) {
                        writer.send(packet);
                    }
                }
            }
        }
        self.tracks.routed.copies = copies;
        let mut keyframe_ssrcs = std::mem::take(&mut self.tracks.routed.keyframe_ssrcs);
        for &media_ssrc in &keyframe_ssrcs {
            self.request_keyframe(now, conn, media_ssrc);
        }
        keyframe_ssrcs.clear();
        self.tracks.routed.keyframe_ssrcs = keyframe_ssrcs;
    }

    /// Keeps what `conn`'s client reports of the streams it receives.
    fn note_reception(&mut self, now: Instant, conn: ConnId, blocks: &[ReceptionReport]) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.reported_loss.note(now, blocks);
        }
    }

    /// Sends each subscriber of the publisher on `conn` its translation of `report`.
    fn relay_report(&mut self, now: Instant, conn: ConnId, report: &SenderReport) {
        if !self.config.relay_sender_reports {
            return;
        }
        self.tracks.route_report(conn, report);
        let mut reports = std::mem::take(&mut self.tracks.routed.reports);
        for (sink, translated) in reports.drain(..) {
            let Sink::Peer(to) = sink else { continue };
            let Some(entry) = self.conns.get_mut(&to) else {
                continue;
            };
            entry.write(
                now,
                RTCMessage::RtcpPacket(String::new(), vec![Box::new(translated)]),
            );
            entry.mark(to, &mut self.touched);
        }
        self.tracks.routed.reports = reports;
    }

    /// A subscriber on `conn` asked for a keyframe of its outgoing `ssrc`.
    fn keyframe_requested(&mut self, conn: ConnId, ssrc: u32) {
        let Some(s) = self.tracks.subscription(conn, ssrc).cloned() else {
            return;
        };
        self.tracks.change_subscription(
            &s.track,
            s.participant,
            super::SubscriptionChange::Keyframe,
        );
    }

    /// Sends the publisher on `conn` a PLI for `media_ssrc`.
    fn request_keyframe(&mut self, now: Instant, conn: ConnId, media_ssrc: u32) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        entry.write(
            now,
            RTCMessage::RtcpPacket(String::new(), vec![Box::new(pli)]),
        );
        entry.mark(conn, &mut self.touched);
    }

    /// A message on one of `conn`'s data channels: handed up, unless it came
    /// on a channel the server opened (those only carry the server's messages).
    fn data_received(&mut self, conn: ConnId, channel: usize, data: BytesMut) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        if entry
            .channels
            .is_some_and(|(reliable, lossy)| channel == reliable || channel == lossy)
        {
            return;
        }
        let reliable = entry
            .conn
            .pc
            .data_channel(channel)
            .is_some_and(|c| c.label() == RELIABLE);
        // Data is dropped long before the channel is full: the events that
        // say what happened to the connection must still fit.
        if entry.events.capacity() > entry.events.max_capacity() / 4 {
            let _ = entry.events.try_send(Event::Data {
                conn,
                reliable,
                data: data.freeze(),
            });
        }
    }
}

/// The kind, codec and clock rate of the track a receiver of `conn` opened.
fn track_codec(
    conn: &mut Connection,
    receiver: RTCRtpReceiverId,
) -> Option<(RtpCodecKind, String, u32)> {
    let mut receiver = conn.pc.rtp_receiver(receiver)?;
    let kind = receiver.track().kind();
    let from_ssrc = receiver
        .track()
        .ssrcs()
        .find_map(|ssrc| receiver.track().codec(ssrc).cloned());
    let codec = match from_ssrc {
        Some(codec) => codec,
        None => receiver
            .get_parameters()
            .rtp_parameters
            .codecs
            .first()?
            .rtp_codec
            .clone(),
    };
    Some((kind, codec.mime_type, codec.clock_rate))
}

/// The RID of the simulcast layer `ssrc` of a connection, if it has one.
fn layer_rid(entry: &mut Entry, ssrc: u32) -> Option<String> {
    let receivers: Vec<_> = entry.conn.pc.get_receivers().collect();
    receivers.into_iter().find_map(|r| {
        let receiver = entry.conn.pc.rtp_receiver(r)?;
        receiver.track().rid(ssrc).map(|rid| rid.to_string())
    })
}
