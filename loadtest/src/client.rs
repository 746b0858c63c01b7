//! One simulated participant: a signaling WebSocket speaking
//! `docs/signaling.md`, a subscriber peer connection that measures every
//! track it receives, and, for publishers, a publisher peer connection that
//! sends synthetic media.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::peer::new_peer_connection;
use futures::{SinkExt, StreamExt};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use switchboard_core::event::{TrackKind, TrackSource};
use switchboard_core::signal::{ClientMessage, ServerMessage, Target};
use switchboard_media::peer::config::{codec_for, RtcConfig};
use switchboard_media::signal::candidate;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use crate::clock::Epoch;
use crate::stats::StreamStats;
use crate::subscriber::{Measure, SubscriberPc, Subscribers};
use crate::synth::{AudioSource, StreamFormat, VideoSource, AUDIO_PACKET_MS, VIDEO_FPS};
use crate::LoadtestError;

/// How long a participant may take from socket to connected media.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a leaving participant waits for the server to close its session.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Keyframe every two seconds unless one is asked for sooner.
const KEYFRAME_INTERVAL_FRAMES: u32 = 2 * VIDEO_FPS;

/// What a publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct PublishSpec {
    /// VP8 bitrate, or 0 for no video.
    pub video_bps: u32,
    /// Opus bitrate, or 0 for no audio.
    pub audio_bps: u32,
}

/// A track this participant publishes, once the server confirmed it.
#[derive(Debug, Clone)]
pub struct PublishedTrack {
    /// The server's id for it.
    pub sid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Packets sent so far (final once media stopped).
    pub sent: u32,
}

/// Receive statistics per track sid, filled by the subscriber connection.
pub type Received = Arc<Mutex<HashMap<String, Arc<Mutex<StreamStats>>>>>;

/// Names received tracks by their SSRC or track id, for servers whose own
/// ids (rewritten per subscriber) are not the publisher's.
#[derive(Debug, Default)]
pub struct TrackNameMap {
    /// Name by the SSRC a track arrives with.
    pub by_ssrc: HashMap<u32, String>,
    /// Name by the track id of its `a=msid` line.
    pub by_track: HashMap<String, String>,
}

/// A [`TrackNameMap`] shared with the connection's handler.
pub type TrackNames = Arc<Mutex<TrackNameMap>>;

/// A joined participant.
pub struct SimParticipant {
    /// Its identity.
    pub identity: String,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    /// The signaling loop, which ends when the server closes the socket.
    signaling: tokio::task::JoinHandle<()>,
    publisher: Option<Arc<dyn PeerConnection>>,
    subscriber: SubscriberPc,
    /// What it receives.
    pub received: Received,
    sources: Vec<(String, TrackKind, Arc<TrackLocalStaticRTP>)>,
    published: Arc<Mutex<HashMap<String, String>>>,
    senders: Vec<tokio::task::JoinHandle<u32>>,
    stop: watch::Sender<bool>,
}

/// What a peer connection tells its participant's signaling.
pub enum PcEvent {
    /// A local candidate to trickle to the server.
    Candidate(Target, RTCIceCandidateInit),
    /// The connection's state changed.
    State(Target, RTCPeerConnectionState),
}

/// A publisher connection's event handler: candidates and states to the signaling.
pub(crate) struct Handler {
    target: Target,
    events: mpsc::UnboundedSender<PcEvent>,
}

impl Handler {
    /// A handler of `target`'s connection.
    pub(crate) fn new(target: Target, events: mpsc::UnboundedSender<PcEvent>) -> Self {
        Self { target, events }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.send(PcEvent::Candidate(self.target, init));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::State(self.target, state));
    }
}

impl SimParticipant {
    /// Opens the socket with `token` at `ws_url`, sets up connections and, with `publish`,
    /// announces and offers its tracks; returns once its media is connected.
    pub async fn join(
        identity: String,
        ws_url: &str,
        token: &str,
        rtc: &RtcConfig,
        receivers: &Subscribers,
        publish: Option<PublishSpec>,
        epoch: Epoch,
    ) -> Result<Self, LoadtestError> {
        let received = Received::default();
        Self::join_into(
            identity, ws_url, token, rtc, receivers, publish, epoch, received,
        )
        .await
    }

    /// [`SimParticipant::join`], counting what it receives into `received`
    /// (a participant that lost its node and joined again keeps its
    /// statistics, so the outage counts as loss).
    #[allow(clippy::too_many_arguments)]
    pub async fn join_into(
        identity: String,
        ws_url: &str,
        token: &str,
        rtc: &RtcConfig,
        receivers: &Subscribers,
        publish: Option<PublishSpec>,
        epoch: Epoch,
        received: Received,
    ) -> Result<Self, LoadtestError> {
        let url = format!("{ws_url}?access_token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| LoadtestError::Signaling(format!("{identity}: cannot connect: {e}")))?;
        let (mut ws_tx, mut ws_rx) = socket.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ClientMessage>();
        tokio::spawn(async move {
            let mut ping = tokio::time::interval(Duration::from_secs(10));
            loop {
                let msg = tokio::select! {
                    m = out_rx.recv() => match m { Some(m) => m, None => break },
                    _ = ping.tick() => ClientMessage::Ping,
                };
                let Ok(text) = serde_json::to_string(&msg) else {
                    continue;
                };
                if ws_tx.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = ws_tx.close().await;
        });

        let (pc_tx, pc_rx) = mpsc::unbounded_channel();
        let measure = Measure {
            received: received.clone(),
            epoch,
            names: None,
        };
        let subscriber = receivers.open(measure, pc_tx.clone())?;
        let publisher = match publish {
            Some(_) => Some(
                new_peer_connection(
                    rtc,
                    Arc::new(Handler::new(Target::Publisher, pc_tx.clone())),
                )
                .await
                .map_err(|e| LoadtestError::WebRtc(e.to_string()))?,
            ),
            None => None,
        };

        // The first frame must be `join`.
        match next_message(&mut ws_rx).await {
            Some(ServerMessage::Join { .. }) => {}
            Some(other) => {
                return Err(LoadtestError::Signaling(format!(
                    "{identity}: expected join, got {other:?}"
                )))
            }
            None => {
                return Err(LoadtestError::Signaling(format!(
                    "{identity}: the server closed the socket before join"
                )))
            }
        }

        let mut sources = Vec::new();
        if let (Some(pc), Some(spec)) = (&publisher, publish) {
            for (kind, track) in local_tracks(&identity, spec)? {
                let cid = track.track_id().await.to_string();
                let _ = out_tx.send(ClientMessage::AddTrack {
                    cid: cid.clone(),
                    kind,
                    source: match kind {
                        TrackKind::Audio => TrackSource::Microphone,
                        TrackKind::Video => TrackSource::Camera,
                    },
                    name: None,
                    simulcast: false,
                });
                pc.add_track(track.clone())
                    .await
                    .map_err(|e| LoadtestError::WebRtc(e.to_string()))?;
                sources.push((cid, kind, track));
            }
            let offer = pc
                .create_offer(None)
                .await
                .map_err(|e| LoadtestError::WebRtc(e.to_string()))?;
            pc.set_local_description(offer)
                .await
                .map_err(|e| LoadtestError::WebRtc(e.to_string()))?;
            let sdp = pc
                .local_description()
                .await
                .map(|d| d.sdp)
                .ok_or_else(|| LoadtestError::WebRtc("no local offer".into()))?;
            let _ = out_tx.send(ClientMessage::Offer { sdp });
        }

        let published = Arc::new(Mutex::new(HashMap::new()));
        let (connected_tx, connected_rx) = oneshot::channel();
        let signaling = tokio::spawn(
            Signaling {
                identity: identity.clone(),
                outgoing: out_tx.clone(),
                publisher: publisher.clone(),
                subscriber: subscriber.clone(),
                buffered: Vec::new(),
                pub_remote_set: false,
                sub_remote_set: false,
                published: published.clone(),
                needs_publisher: publisher.is_some(),
                connected: Some(connected_tx),
                pub_connected: false,
                sub_connected: false,
            }
            .run(ws_rx, pc_rx),
        );
        match tokio::time::timeout(CONNECT_TIMEOUT, connected_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(LoadtestError::Signaling(format!(
                    "{identity}: the session ended before media connected"
                )))
            }
            Err(_) => {
                return Err(LoadtestError::Signaling(format!(
                    "{identity}: media did not connect within {CONNECT_TIMEOUT:?}"
                )))
            }
        }
        let (stop, _) = watch::channel(false);
        Ok(Self {
            identity,
            outgoing: out_tx,
            signaling,
            publisher,
            subscriber,
            received,
            sources,
            published,
            senders: Vec::new(),
            stop,
        })
    }

    /// Whether its signaling socket is still open (it closes when the node is lost).
    pub fn is_connected(&self) -> bool {
        !self.signaling.is_finished()
    }

    /// Starts sending synthetic media on every published track.
    pub fn start_media(&mut self, spec: PublishSpec, epoch: Epoch) {
        self.senders = start_senders(&self.sources, spec, epoch, &self.stop);
    }

    /// Waits until the server announced every track this participant sends
    /// (it does so once media arrives, so call it after [`Self::start_media`]).
    pub async fn wait_published(&self) -> Result<(), LoadtestError> {
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            let published = self.published.lock().map(|p| p.len()).unwrap_or(0);
            if published >= self.sources.len() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LoadtestError::Signaling(format!(
                    "{}: the server announced {published} of {} tracks within {CONNECT_TIMEOUT:?}",
                    self.identity,
                    self.sources.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops sending and returns what each track sent.
    pub async fn stop_media(&mut self) -> Vec<PublishedTrack> {
        let _ = self.stop.send(true);
        let published = self
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = Vec::new();
        for ((cid, kind, _), handle) in self.sources.iter().zip(self.senders.drain(..)) {
            let sent = handle.await.unwrap_or(0);
            if let Some(sid) = published.get(cid) {
                out.push(PublishedTrack {
                    sid: sid.clone(),
                    kind: *kind,
                    sent,
                });
            }
        }
        out
    }

    /// Leaves the room and closes the connections.
    pub async fn leave(self) {
        let _ = self.outgoing.send(ClientMessage::Leave);
        // The server ends the session on `leave` and closes the socket. Closing
        // the connections (or exiting) before it has read `leave` would end the
        // session as a lost connection instead, and bill it as one.
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, self.signaling).await;
        if let Some(pc) = &self.publisher {
            let _ = pc.close().await;
        }
        self.subscriber.close();
    }
}

/// Starts a sender of synthetic media on each of `sources` (until `stop`);
/// each returns the packets it sent.
pub(crate) fn start_senders(
    sources: &[(String, TrackKind, Arc<TrackLocalStaticRTP>)],
    spec: PublishSpec,
    epoch: Epoch,
    stop: &watch::Sender<bool>,
) -> Vec<tokio::task::JoinHandle<u32>> {
    sources
        .iter()
        .map(|(_, kind, track)| {
            let (stop, track) = (stop.subscribe(), track.clone());
            match kind {
                TrackKind::Audio => tokio::spawn(send_audio(track, spec.audio_bps, epoch, stop)),
                TrackKind::Video => tokio::spawn(send_video(track, spec.video_bps, epoch, stop)),
            }
        })
        .collect()
}

/// The tracks `spec` publishes: Opus and VP8, each unless its bitrate is 0.
pub(crate) fn local_tracks(
    identity: &str,
    spec: PublishSpec,
) -> Result<Vec<(TrackKind, Arc<TrackLocalStaticRTP>)>, LoadtestError> {
    [
        (TrackKind::Audio, spec.audio_bps, "audio/opus"),
        (TrackKind::Video, spec.video_bps, "video/VP8"),
    ]
    .into_iter()
    .filter(|(_, bps, _)| *bps > 0)
    .map(|(kind, _, mime)| Ok((kind, local_track(identity, kind, mime)?)))
    .collect()
}

/// A local RTP track for `kind`, with a fresh SSRC, carrying the SFU's codec.
fn local_track(
    identity: &str,
    kind: TrackKind,
    mime: &str,
) -> Result<Arc<TrackLocalStaticRTP>, LoadtestError> {
    let codec = codec_for(mime)
        .ok_or_else(|| LoadtestError::WebRtc(format!("codec {mime} is not registered")))?;
    let cid = format!(
        "{identity}-{}",
        if kind == TrackKind::Audio {
            "mic"
        } else {
            "cam"
        }
    );
    Ok(Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        identity.to_owned(),
        cid.clone(),
        cid,
        match kind {
            TrackKind::Audio => RtpCodecKind::Audio,
            TrackKind::Video => RtpCodecKind::Video,
        },
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand::random()),
                ..Default::default()
            },
            codec: codec.rtp_codec,
            ..Default::default()
        }],
    ))))
}

async fn format_of(track: &TrackLocalStaticRTP, mime: &str) -> StreamFormat {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
    let payload_type = codec_for(mime).map_or(0, |c| c.payload_type);
    StreamFormat { payload_type, ssrc }
}

/// Sends `bps` of synthetic Opus on `track` until `stop`; returns the packets sent.
async fn send_audio(
    track: Arc<TrackLocalStaticRTP>,
    bps: u32,
    epoch: Epoch,
    mut stop: watch::Receiver<bool>,
) -> u32 {
    let mut source = AudioSource::new(format_of(&track, "audio/opus").await, bps);
    let mut tick = tokio::time::interval(Duration::from_millis(u64::from(AUDIO_PACKET_MS)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let packet = source.next_packet(epoch.now_us());
                if track.write_rtp(packet).await.is_err() {
                    break;
                }
            }
            _ = stop.changed() => break,
        }
    }
    source.sent()
}

/// Sends `bps` of synthetic VP8 on `track` until `stop`, with a keyframe
/// whenever one is asked for; returns the packets sent.
async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    bps: u32,
    epoch: Epoch,
    mut stop: watch::Receiver<bool>,
) -> u32 {
    let mut source = VideoSource::new(
        format_of(&track, "video/VP8").await,
        bps,
        KEYFRAME_INTERVAL_FRAMES,
    );
    let keyframe_asked = Arc::new(AtomicBool::new(false));
    let feedback = tokio::spawn({
        let track = track.clone();
        let asked = keyframe_asked.clone();
        async move {
            while let Some(event) = track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                    if packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    }) {
                        asked.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(VIDEO_FPS)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut frame = Vec::new();
    'send: loop {
        tokio::select! {
            _ = tick.tick() => {
                if keyframe_asked.swap(false, Ordering::Relaxed) {
                    source.request_keyframe();
                }
                source.next_frame(epoch.now_us(), &mut frame);
                for packet in frame.drain(..) {
                    if track.write_rtp(packet).await.is_err() {
                        break 'send;
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    feedback.abort();
    source.sent()
}

async fn next_message<S>(rx: &mut S) -> Option<ServerMessage>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(frame) = rx.next().await {
        match frame {
            Ok(Message::Text(text)) => match serde_json::from_str(text.as_str()) {
                Ok(m) => return Some(m),
                Err(e) => tracing::warn!(error = %e, "unreadable server message"),
            },
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

/// The participant's signaling loop after `join`.
struct Signaling {
    identity: String,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    publisher: Option<Arc<dyn PeerConnection>>,
    subscriber: SubscriberPc,
    buffered: Vec<(Target, RTCIceCandidateInit)>,
    pub_remote_set: bool,
    sub_remote_set: bool,
    published: Arc<Mutex<HashMap<String, String>>>,
    needs_publisher: bool,
    connected: Option<oneshot::Sender<()>>,
    pub_connected: bool,
    sub_connected: bool,
}

impl Signaling {
    async fn run<S>(mut self, mut ws_rx: S, mut pc_events: mpsc::UnboundedReceiver<PcEvent>)
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        loop {
            tokio::select! {
                msg = next_message(&mut ws_rx) => match msg {
                    Some(m) => self.on_message(m).await,
                    None => break,
                },
                Some(event) = pc_events.recv() => match event {
                    PcEvent::Candidate(target, init) => {
                        let _ = self.outgoing.send(ClientMessage::Candidate {
                            target,
                            candidate: candidate::from_stack(init),
                        });
                    }
                    PcEvent::State(target, state) => {
                        if state == RTCPeerConnectionState::Connected {
                            match target {
                                Target::Publisher => self.pub_connected = true,
                                Target::Subscriber => self.sub_connected = true,
                            }
                        }
                        self.check_ready();
                    }
                },
            }
        }
        tracing::debug!(identity = %self.identity, "signaling ended");
    }

    /// Reports the join complete once the connections it needs are up and its tracks published.
    fn check_ready(&mut self) {
        let ready = if self.needs_publisher {
            self.pub_connected
        } else {
            self.sub_connected
        };
        if ready {
            if let Some(tx) = self.connected.take() {
                let _ = tx.send(());
            }
        }
    }

    async fn on_message(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Offer { sdp } => match self.subscriber.answer(sdp).await {
                Ok(sdp) => {
                    let _ = self.outgoing.send(ClientMessage::Answer { sdp });
                    self.sub_remote_set = true;
                    self.flush(Target::Subscriber).await;
                }
                Err(e) => {
                    tracing::debug!(identity = %self.identity, error = %e, "cannot answer")
                }
            },
            ServerMessage::Answer { sdp } => {
                if let Some(pc) = &self.publisher {
                    let result = async {
                        pc.set_remote_description(RTCSessionDescription::answer(sdp)?)
                            .await
                    }
                    .await;
                    match result {
                        Ok(()) => {
                            self.pub_remote_set = true;
                            self.flush(Target::Publisher).await;
                        }
                        Err(e) => {
                            tracing::warn!(identity = %self.identity, error = %e, "answer refused")
                        }
                    }
                }
            }
            ServerMessage::Candidate { target, candidate } => {
                let init = candidate::to_stack(candidate);
                let ready = match target {
                    Target::Publisher => self.pub_remote_set,
                    Target::Subscriber => self.sub_remote_set,
                };
                if ready {
                    self.add_candidate(target, init).await;
                } else {
                    self.buffered.push((target, init));
                }
            }
            ServerMessage::TrackPublished {
                cid: Some(cid),
                track,
                ..
            } => {
                self.published
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(cid, track.sid.to_string());
            }
            ServerMessage::Error { code, message } => {
                tracing::warn!(identity = %self.identity, code, message, "server refused a message")
            }
            ServerMessage::Leave { reason } => {
                tracing::info!(identity = %self.identity, reason, "removed by the server")
            }
            _ => {}
        }
    }

    async fn add_candidate(&self, target: Target, init: RTCIceCandidateInit) {
        match target {
            Target::Publisher => {
                if let Some(pc) = &self.publisher {
                    if let Err(e) = pc.add_ice_candidate(init).await {
                        tracing::debug!(identity = %self.identity, error = %e, "candidate refused");
                    }
                }
            }
            Target::Subscriber => self.subscriber.add_candidate(init),
        }
    }

    async fn flush(&mut self, target: Target) {
        let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.buffered)
            .into_iter()
            .partition(|(t, _)| *t == target);
        self.buffered = keep;
        for (t, init) in ready {
            self.add_candidate(t, init).await;
        }
    }
}
