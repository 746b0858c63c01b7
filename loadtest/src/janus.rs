//! The same simulated participants against a Janus VideoRoom (Janus 1.x,
//! its HTTP transport), so a run against Janus measures exactly what a run
//! against Switchboard does.
//!
//! Every participant has a Janus session of its own, long-polled for its
//! events. A publisher joins the room, publishes an offer of its tracks and
//! is announced once its connection is up (`webrtcup`); a subscriber joins
//! with one stream per publisher feed, answers Janus's offer and starts.
//! Janus rewrites SSRCs per subscriber, so a received track is matched to
//! its publisher's through the `mid`s of Janus's offer and the `attached`
//! event's streams, giving both sides the key `FEED:MID`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::peer::new_peer_connection;
use serde_json::{json, Value};
use switchboard_core::event::TrackKind;
use switchboard_media::peer::config::RtcConfig;
use tokio::sync::{mpsc, oneshot, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::client::{local_tracks, start_senders, Handler, PcEvent, PublishedTrack};
use crate::client::{PublishSpec, Received, TrackNames};
use crate::clock::Epoch;
use crate::subscriber::{Measure, SubscriberPc, Subscribers};
use crate::LoadtestError;
use switchboard_core::signal::Target;

/// How long a request's asynchronous answer, or a connection, may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Janus answers a long poll with a keepalive after 30 s of nothing.
const LONG_POLL: Duration = Duration::from_secs(45);

fn api(what: &str, e: impl std::fmt::Display) -> LoadtestError {
    LoadtestError::Signaling(format!("Janus {what}: {e}"))
}

fn rtc_error(e: impl std::fmt::Display) -> LoadtestError {
    LoadtestError::WebRtc(e.to_string())
}

/// Waiters for a session's asynchronous events.
#[derive(Default)]
struct Waiters {
    /// Plugin events by the transaction of the request they answer.
    transactions: HashMap<String, oneshot::Sender<Value>>,
    /// `webrtcup` by handle.
    up: HashMap<u64, oneshot::Sender<()>>,
}

/// One Janus session and its long-poll loop.
struct Session {
    http: reqwest::Client,
    /// `{base}/{session id}`.
    url: String,
    waiters: Arc<Mutex<Waiters>>,
    poll: tokio::task::JoinHandle<()>,
}

fn transaction() -> String {
    ulid::Ulid::new().to_string()
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value, LoadtestError> {
    let reply: Value = http
        .post(url)
        .timeout(TIMEOUT)
        .json(&body)
        .send()
        .await
        .map_err(|e| api(&format!("cannot reach {url}"), e))?
        .json()
        .await
        .map_err(|e| api("answered something that is not JSON", e))?;
    if reply["janus"] == "error" {
        return Err(api("refused a request", &reply["error"]));
    }
    Ok(reply)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Creates a session at `base` (`http://host:port/janus`) and starts polling it.
    async fn create(http: &reqwest::Client, base: &str) -> Result<Self, LoadtestError> {
        let base = base.trim_end_matches('/');
        let reply = post(
            http,
            base,
            json!({ "janus": "create", "transaction": transaction() }),
        )
        .await?;
        let id = reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| api("gave no session id", &reply))?;
        let url = format!("{base}/{id}");
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let poll = tokio::spawn(poll_events(http.clone(), url.clone(), waiters.clone()));
        Ok(Self {
            http: http.clone(),
            url,
            waiters,
            poll,
        })
    }

    /// Attaches a VideoRoom handle.
    async fn attach(&self) -> Result<u64, LoadtestError> {
        let reply = post(
            &self.http,
            &self.url,
            json!({ "janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": transaction() }),
        )
        .await?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| api("gave no handle id", &reply))
    }

    /// Sends a VideoRoom request; returns its answer (the plugin data, and
    /// the event's JSEP if any), waiting for the event when Janus only acks.
    async fn request(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<(Value, Option<Value>), LoadtestError> {
        let tx = transaction();
        let (event_tx, event_rx) = oneshot::channel();
        lock(&self.waiters)
            .transactions
            .insert(tx.clone(), event_tx);
        let mut message = json!({ "janus": "message", "transaction": tx, "body": body });
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let reply = post(&self.http, &format!("{}/{handle}", self.url), message).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                lock(&self.waiters).transactions.remove(&tx);
                return Err(e);
            }
        };
        let event = if reply["janus"] == "ack" {
            tokio::time::timeout(TIMEOUT, event_rx)
                .await
                .map_err(|_| api("did not answer within 30 s", &body["request"]))?
                .map_err(|_| api("session ended before answering", &body["request"]))?
        } else {
            lock(&self.waiters).transactions.remove(&tx);
            reply
        };
        let data = event["plugindata"]["data"].clone();
        if let Some(error) = data["error"].as_str() {
            return Err(api(
                &format!("refused {}", body["request"]),
                format!("{error} ({})", data["error_code"]),
            ));
        }
        Ok((data, event.get("jsep").cloned()))
    }

    /// A receiver told when `handle`'s connection is up.
    fn on_webrtcup(&self, handle: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).up.insert(handle, tx);
        rx
    }

    /// Ends the session (its long poll first, so it does not ask for a session gone).
    async fn destroy(self) {
        self.poll.abort();
        let body = json!({ "janus": "destroy", "transaction": transaction() });
        let _ = post(&self.http, &self.url, body).await;
    }
}

/// Long-polls a session, handing each event to whoever waits for it.
async fn poll_events(http: reqwest::Client, url: String, waiters: Arc<Mutex<Waiters>>) {
    loop {
        let reply = http
            .get(format!("{url}?maxev=10"))
            .timeout(LONG_POLL)
            .send()
            .await;
        let events: Value = match reply {
            Ok(r) => match r.json().await {
                Ok(v) => v,
                Err(_) => return,
            },
            Err(e) if e.is_timeout() => continue,
            Err(_) => return,
        };
        let events = match events {
            Value::Array(list) => list,
            one => vec![one],
        };
        for event in events {
            match event["janus"].as_str() {
                Some("event") => {
                    if let Some(tx) = event["transaction"].as_str() {
                        if let Some(waiter) = lock(&waiters).transactions.remove(tx) {
                            let _ = waiter.send(event);
                        }
                    }
                }
                Some("webrtcup") => {
                    if let Some(handle) = event["sender"].as_u64() {
                        if let Some(waiter) = lock(&waiters).up.remove(&handle) {
                            let _ = waiter.send(());
                        }
                    }
                }
                // The session is gone: nothing more will come.
                Some("error") | Some("timeout") => return,
                _ => {}
            }
        }
    }
}

/// A VideoRoom made for one run, destroyed after it.
pub struct JanusRoom {
    session: Session,
    handle: u64,
    /// Its number.
    pub id: u64,
    http: reqwest::Client,
    base: String,
}

impl JanusRoom {
    /// Creates a room for `publishers` at `base` (`http://host:port/janus`).
    pub async fn create(base: &str, publishers: usize) -> Result<Self, LoadtestError> {
        let http = reqwest::Client::new();
        let session = Session::create(&http, base).await?;
        let handle = session.attach().await?;
        // Janus room numbers travel as JSON numbers: keep them below 2^53.
        let id = rand::random::<u64>() >> 12;
        session
            .request(
                handle,
                json!({
                    "request": "create",
                    "room": id,
                    "publishers": publishers,
                    "audiocodec": "opus",
                    "videocodec": "vp8",
                    "permanent": false,
                    "is_private": true,
                }),
                None,
            )
            .await?;
        Ok(Self {
            session,
            handle,
            id,
            http,
            base: base.to_owned(),
        })
    }

    /// Destroys the room.
    pub async fn destroy(self) {
        let body = json!({ "request": "destroy", "room": self.id });
        if let Err(e) = self.session.request(self.handle, body, None).await {
            tracing::warn!(error = %e, "Janus room not destroyed");
        }
        self.session.destroy().await;
    }
}

/// A Janus participant's one connection: a publisher's on the async driver,
/// a subscriber's on the load tester's subscriber loops.
enum JanusPc {
    Publisher(Arc<dyn PeerConnection>),
    Subscriber(SubscriberPc),
}

/// A simulated participant in a Janus VideoRoom.
pub struct JanusParticipant {
    /// Its display name.
    pub identity: String,
    /// Its publisher feed id, when it publishes.
    pub feed: Option<u64>,
    session: Session,
    pc: JanusPc,
    /// What it receives, by `FEED:MID`.
    pub received: Received,
    sources: Vec<(String, TrackKind, Arc<TrackLocalStaticRTP>)>,
    senders: Vec<tokio::task::JoinHandle<u32>>,
    stop: watch::Sender<bool>,
}

/// Forwards a connection's candidates to `handle` and reports when it is connected.
fn signal_loop(
    session: &Session,
    handle: u64,
    mut events: mpsc::UnboundedReceiver<PcEvent>,
) -> oneshot::Receiver<()> {
    let (connected_tx, connected_rx) = oneshot::channel();
    let (http, url) = (session.http.clone(), format!("{}/{handle}", session.url));
    tokio::spawn(async move {
        let mut connected = Some(connected_tx);
        while let Some(event) = events.recv().await {
            match event {
                PcEvent::Candidate(_, c) => {
                    let candidate = json!({
                        "candidate": c.candidate,
                        "sdpMid": c.sdp_mid,
                        "sdpMLineIndex": c.sdp_mline_index,
                    });
                    let body = json!({ "janus": "trickle", "transaction": transaction(), "candidate": candidate });
                    if let Err(e) = post(&http, &url, body).await {
                        tracing::debug!(error = %e, "trickle refused");
                    }
                }
                PcEvent::State(_, RTCPeerConnectionState::Connected) => {
                    if let Some(tx) = connected.take() {
                        let _ = tx.send(());
                    }
                }
                PcEvent::State(..) => {}
            }
        }
    });
    connected_rx
}

async fn connected(
    identity: &str,
    connected: oneshot::Receiver<()>,
    up: oneshot::Receiver<()>,
) -> Result<(), LoadtestError> {
    let both = async {
        connected.await.ok();
        up.await.ok();
    };
    tokio::time::timeout(TIMEOUT, both).await.map_err(|_| {
        LoadtestError::Signaling(format!(
            "{identity}: media with Janus did not connect within {TIMEOUT:?}"
        ))
    })
}

/// The `mid`, SSRCs and msid track id of each media section of `sdp`.
fn media_sections(sdp: &str) -> Vec<(String, Vec<u32>, Option<String>)> {
    let mut out: Vec<(String, Vec<u32>, Option<String>)> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            out.push((String::new(), Vec::new(), None));
        } else if let Some(section) = out.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                section.0 = mid.to_owned();
            } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
                if let Some(ssrc) = rest.split(' ').next().and_then(|s| s.parse().ok()) {
                    if !section.1.contains(&ssrc) {
                        section.1.push(ssrc);
                    }
                }
            } else if let Some(rest) = line.strip_prefix("a=msid:") {
                section.2 = rest.split(' ').nth(1).map(str::to_owned);
            }
        }
    }
    out
}

impl JanusParticipant {
    /// Joins `room` as a publisher of `spec`'s tracks; returns once Janus has its media connection.
    pub async fn publish(
        room: &JanusRoom,
        identity: String,
        rtc: &RtcConfig,
        spec: PublishSpec,
    ) -> Result<(Self, Vec<(String, TrackKind)>), LoadtestError> {
        let session = Session::create(&room.http, &room.base).await?;
        let handle = session.attach().await?;
        let (joined, _) = session
            .request(
                handle,
                json!({ "request": "join", "ptype": "publisher", "room": room.id, "display": identity }),
                None,
            )
            .await?;
        let feed = joined["id"]
            .as_u64()
            .ok_or_else(|| api("gave the publisher no id", &joined))?;

        let (pc_tx, pc_rx) = mpsc::unbounded_channel();
        let pc = new_peer_connection(rtc, Arc::new(Handler::new(Target::Publisher, pc_tx)))
            .await
            .map_err(rtc_error)?;
        let mut sources = Vec::new();
        for (kind, track) in local_tracks(&identity, spec)? {
            pc.add_track(track.clone()).await.map_err(rtc_error)?;
            sources.push((String::new(), kind, track));
        }
        let offer = pc.create_offer(None).await.map_err(rtc_error)?;
        pc.set_local_description(offer).await.map_err(rtc_error)?;
        let sdp = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| LoadtestError::WebRtc("no local offer".into()))?;
        let connected_rx = signal_loop(&session, handle, pc_rx);
        let up = session.on_webrtcup(handle);
        let (configured, jsep) = session
            .request(
                handle,
                json!({ "request": "publish", "display": identity }),
                Some(json!({ "type": "offer", "sdp": sdp })),
            )
            .await?;
        let answer = jsep
            .and_then(|j| j["sdp"].as_str().map(str::to_owned))
            .ok_or_else(|| api("answered the publish without SDP", &configured))?;
        pc.set_remote_description(RTCSessionDescription::answer(answer).map_err(rtc_error)?)
            .await
            .map_err(rtc_error)?;
        // The tracks as Janus knows them: `FEED:MID`, in the order of our offer.
        let mut tracks = Vec::new();
        for stream in configured["streams"].as_array().into_iter().flatten() {
            let kind = match stream["type"].as_str() {
                Some("audio") => TrackKind::Audio,
                Some("video") => TrackKind::Video,
                _ => continue,
            };
            let mid = stream["mid"].as_str().unwrap_or_default();
            tracks.push((format!("{feed}:{mid}"), kind));
        }
        for (key, kind) in &tracks {
            if let Some(source) = sources.iter_mut().find(|s| s.1 == *kind && s.0.is_empty()) {
                source.0 = key.clone();
            }
        }
        connected(&identity, connected_rx, up).await?;
        let (stop, _) = watch::channel(false);
        Ok((
            Self {
                identity,
                feed: Some(feed),
                session,
                pc: JanusPc::Publisher(pc),
                received: Arc::default(),
                sources,
                senders: Vec::new(),
                stop,
            },
            tracks,
        ))
    }

    /// Joins `room` as a subscriber of every feed in `feeds`; returns once its media is connected.
    pub async fn subscribe(
        room: &JanusRoom,
        identity: String,
        receivers: &Subscribers,
        feeds: &[u64],
        epoch: Epoch,
    ) -> Result<Self, LoadtestError> {
        let session = Session::create(&room.http, &room.base).await?;
        let handle = session.attach().await?;
        let streams: Vec<Value> = feeds.iter().map(|f| json!({ "feed": f })).collect();
        let (attached, jsep) = session
            .request(
                handle,
                json!({ "request": "join", "ptype": "subscriber", "room": room.id, "streams": streams }),
                None,
            )
            .await?;
        let offer = jsep
            .and_then(|j| j["sdp"].as_str().map(str::to_owned))
            .ok_or_else(|| api("offered the subscriber no SDP", &attached))?;
        // Which feed's stream each of our media sections carries.
        let mut by_mid: HashMap<String, String> = HashMap::new();
        for s in attached["streams"].as_array().into_iter().flatten() {
            if let (Some(mid), Some(feed), Some(feed_mid)) = (
                s["mid"].as_str(),
                s["feed_id"].as_u64(),
                s["feed_mid"].as_str(),
            ) {
                by_mid.insert(mid.to_owned(), format!("{feed}:{feed_mid}"));
            }
        }
        let names = TrackNames::default();
        {
            let mut names = lock(&names);
            for (mid, ssrcs, track_id) in media_sections(&offer) {
                let Some(key) = by_mid.get(&mid) else {
                    continue;
                };
                for ssrc in ssrcs {
                    names.by_ssrc.insert(ssrc, key.clone());
                }
                if let Some(id) = track_id {
                    names.by_track.insert(id, key.clone());
                }
            }
        }
        let received: Received = Arc::default();
        let (pc_tx, pc_rx) = mpsc::unbounded_channel();
        let measure = Measure {
            received: received.clone(),
            epoch,
            names: Some(names),
        };
        let pc = receivers.open(measure, pc_tx)?;
        let sdp = pc.answer(offer).await?;
        let connected_rx = signal_loop(&session, handle, pc_rx);
        let up = session.on_webrtcup(handle);
        session
            .request(
                handle,
                json!({ "request": "start" }),
                Some(json!({ "type": "answer", "sdp": sdp })),
            )
            .await?;
        connected(&identity, connected_rx, up).await?;
        let (stop, _) = watch::channel(false);
        Ok(Self {
            identity,
            feed: None,
            session,
            pc: JanusPc::Subscriber(pc),
            received,
            sources: Vec::new(),
            senders: Vec::new(),
            stop,
        })
    }

    /// Starts sending synthetic media on every published track.
    pub fn start_media(&mut self, spec: PublishSpec, epoch: Epoch) {
        self.senders = start_senders(&self.sources, spec, epoch, &self.stop);
    }

    /// Stops sending and returns what each track sent.
    pub async fn stop_media(&mut self) -> Vec<PublishedTrack> {
        let _ = self.stop.send(true);
        let mut out = Vec::new();
        for ((key, kind, _), handle) in self.sources.iter().zip(self.senders.drain(..)) {
            let sent = handle.await.unwrap_or(0);
            if !key.is_empty() {
                out.push(PublishedTrack {
                    sid: key.clone(),
                    kind: *kind,
                    sent,
                });
            }
        }
        out
    }

    /// Leaves: closes the connection and destroys the session.
    pub async fn leave(self) {
        match &self.pc {
            JanusPc::Publisher(pc) => {
                let _ = pc.close().await;
            }
            JanusPc::Subscriber(pc) => pc.close(),
        }
        self.session.destroy().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_sections_give_each_mid_its_ssrcs_and_track() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:janus janus0\r\n\
                   a=ssrc:11 cname:janus\r\na=ssrc:11 msid:janus janus0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\n\
                   a=ssrc-group:FID 22 23\r\na=ssrc:22 cname:janus\r\na=ssrc:23 cname:janus\r\n";
        assert_eq!(
            media_sections(sdp),
            vec![
                ("0".into(), vec![11], Some("janus0".into())),
                ("1".into(), vec![22, 23], None),
            ]
        );
        assert!(media_sections("garbage\nm=\na=ssrc:x").len() == 1);
    }
}
