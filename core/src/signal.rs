//! The signaling messages, as documented in `docs/signaling.md`.

use crate::event::{LeaveReason, TrackKind, TrackSource};
use crate::room::{ParticipantInfo, TrackInfo};
use crate::{ParticipantSid, RoomSid, TrackSid};
use serde::{Deserialize, Serialize};

/// Largest signaling frame accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Which of a participant's two peer connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The connection the client offers on and publishes with.
    Publisher,
    /// The connection the server offers on and forwards others' media with.
    Subscriber,
}

/// An ICE candidate as browsers give it (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// The media section id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The media section index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// A simulcast layer a subscriber may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The lowest resolution (`q`).
    Low,
    /// The middle resolution (`h`).
    Medium,
    /// The full resolution (`f`).
    High,
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Publisher connection offer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Subscriber connection answer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// Which connection.
        target: Target,
        /// The candidate.
        candidate: Candidate,
    },
    /// Announces a track before it is offered.
    AddTrack {
        /// The client's id for it: the `MediaStreamTrack.id`.
        cid: String,
        /// Audio or video.
        kind: TrackKind,
        /// Where it comes from.
        #[serde(default = "unknown_source")]
        source: TrackSource,
        /// A label.
        #[serde(default)]
        name: Option<String>,
        /// Sent as simulcast layers.
        #[serde(default)]
        simulcast: bool,
    },
    /// The publisher muted or unmuted its own track.
    Mute {
        /// The track.
        track_sid: TrackSid,
        /// Muted or not.
        muted: bool,
    },
    /// Selective subscription.
    Subscribe {
        /// The tracks.
        track_sids: Vec<TrackSid>,
        /// Subscribe (true) or unsubscribe.
        subscribe: bool,
    },
    /// The highest simulcast layer wanted for a track.
    SetLayer {
        /// The track.
        track_sid: TrackSid,
        /// The layer.
        layer: Layer,
    },
    /// Change one's own metadata or name.
    UpdateMetadata {
        /// New metadata.
        #[serde(default)]
        metadata: Option<String>,
        /// New name.
        #[serde(default)]
        name: Option<String>,
    },
    /// A `room_admin` removes another participant from the room.
    RemoveParticipant {
        /// Whom.
        identity: String,
    },
    /// A `room_admin` mutes or unmutes another participant's track, as the
    /// server does: the publisher cannot lift it.
    MuteParticipant {
        /// Whose.
        identity: String,
        /// The track.
        track_sid: TrackSid,
        /// Muted or not.
        muted: bool,
    },
    /// A `room_admin` changes another participant's name, metadata or permissions.
    UpdateParticipant {
        /// Whom.
        identity: String,
        /// New name.
        #[serde(default)]
        name: Option<String>,
        /// New metadata.
        #[serde(default)]
        metadata: Option<String>,
        /// New permissions, which hold on live media at once.
        #[serde(default)]
        permissions: Option<crate::room::ParticipantPermissions>,
    },
    /// The client's network changed or its subscriber connection failed:
    /// the server offers an ICE restart on the subscriber connection (the
    /// client restarts its publisher connection itself, with a new offer).
    IceRestart,
    /// Leave the room.
    Leave,
    /// Keep-alive.
    Ping,
}

fn unknown_source() -> TrackSource {
    TrackSource::Unknown
}

/// The room as `join` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room incarnation.
    pub sid: RoomSid,
    /// Its name.
    pub name: String,
    /// Its metadata.
    pub metadata: String,
}

/// A STUN or TURN server for the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A speaker's audio level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerLevel {
    /// The participant.
    pub sid: ParticipantSid,
    /// 0.0 (silent) to 1.0 (loudest).
    pub level: f32,
}

/// How well a participant's connection carries media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionQuality {
    /// Under 2% loss and under 300 ms round trip.
    Excellent,
    /// Under 8% loss and under 600 ms round trip.
    Good,
    /// More loss or delay than that.
    Poor,
    /// No media connection.
    Lost,
}

impl ConnectionQuality {
    /// Every quality, best first.
    pub const ALL: [ConnectionQuality; 4] = [Self::Excellent, Self::Good, Self::Poor, Self::Lost];

    /// Its name in messages and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Excellent => "excellent",
            Self::Good => "good",
            Self::Poor => "poor",
            Self::Lost => "lost",
        }
    }

    /// The quality named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }
}

/// One participant's connection quality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityUpdate {
    /// The participant.
    pub sid: ParticipantSid,
    /// Its quality now.
    pub quality: ConnectionQuality,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// You are in.
    Join {
        /// The room.
        room: RoomSummary,
        /// You.
        participant: ParticipantInfo,
        /// Everyone else.
        participants: Vec<ParticipantInfo>,
        /// STUN/TURN servers to use.
        ice_servers: Vec<IceServer>,
        /// Present to resume this session after a dropped socket.
        reconnect_token: String,
    },
    /// Your session survived a dropped socket (`?reconnect=`): the same
    /// participant and peer connections go on.
    Resumed {
        /// You, as you are now.
        participant: ParticipantInfo,
        /// Everyone else, as they are now.
        participants: Vec<ParticipantInfo>,
        /// Present to resume again after the next drop.
        reconnect_token: String,
    },
    /// Subscriber connection offer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Publisher connection answer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// Which connection.
        target: Target,
        /// The candidate.
        candidate: Candidate,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left.
    ParticipantLeft {
        /// Their session.
        sid: ParticipantSid,
        /// Their identity.
        identity: String,
        /// Why.
        reason: LeaveReason,
    },
    /// Metadata, name or permissions changed.
    ParticipantUpdated {
        /// The new state.
        participant: ParticipantInfo,
    },
    /// A track is available.
    TrackPublished {
        /// The publisher.
        participant_sid: ParticipantSid,
        /// The client's id, only on one's own tracks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
        /// The track.
        track: TrackInfo,
    },
    /// A track is gone.
    TrackUnpublished {
        /// The publisher.
        participant_sid: ParticipantSid,
        /// The track.
        track_sid: TrackSid,
    },
    /// Muted or unmuted.
    TrackMuted {
        /// The publisher.
        participant_sid: ParticipantSid,
        /// The track.
        track_sid: TrackSid,
        /// Muted or not.
        muted: bool,
    },
    /// Who is speaking, loudest first.
    ActiveSpeakers {
        /// The speakers.
        speakers: Vec<SpeakerLevel>,
    },
    /// Connection qualities that changed.
    ConnectionQuality {
        /// The participants whose quality changed.
        updates: Vec<QualityUpdate>,
    },
    /// The server ends the session.
    Leave {
        /// Why.
        reason: String,
    },
    /// A message was refused.
    Error {
        /// Stable code.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

/// Parses one client frame, refusing oversized and malformed ones with a message for the client.
pub fn parse_client_message(frame: &str) -> Result<ClientMessage, String> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(format!(
            "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
            frame.len()
        ));
    }
    serde_json::from_str(frame).map_err(|e| format!("not a valid signaling message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_messages() {
        let m = parse_client_message(r#"{"type":"offer","sdp":"v=0"}"#).unwrap();
        assert_eq!(m, ClientMessage::Offer { sdp: "v=0".into() });
        let m = parse_client_message(
            r#"{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMessage::Candidate {
                target: Target::Publisher,
                ..
            }
        ));
        let m = parse_client_message(
            r#"{"type":"add_track","cid":"abc","kind":"video","source":"camera","simulcast":true}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMessage::AddTrack {
                simulcast: true,
                ..
            }
        ));
        assert_eq!(
            parse_client_message(r#"{"type":"leave"}"#).unwrap(),
            ClientMessage::Leave
        );
    }

    #[test]
    fn refuses_garbage() {
        for frame in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"offer"}"#,
            r#"{"type":"offer","sdp":1}"#,
            r#"{"type":"offer","sdp":"x","extra":1}"#,
            r#"{"type":"mute","track_sid":"not-a-sid","muted":true}"#,
            "\u{0}\u{1}\u{2}",
        ] {
            assert!(parse_client_message(frame).is_err(), "{frame:?} accepted");
        }
        let big = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert!(parse_client_message(&big).unwrap_err().contains("limit"));
    }

    #[test]
    fn server_messages_have_snake_case_types() {
        let v = serde_json::to_value(ServerMessage::Pong).unwrap();
        assert_eq!(v["type"], "pong");
        let v = serde_json::to_value(ServerMessage::Leave {
            reason: "removed".into(),
        })
        .unwrap();
        assert_eq!(v["type"], "leave");
    }
}
