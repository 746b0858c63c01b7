//! A client's SDP applied to a peer connection, and the answer made to it.
//!
//! The client is told what was wrong with its description in words of its
//! own input; the WebRTC stack's text goes to the log, never to the client.
//! Candidates at addresses the node must not check are dropped first
//! ([`candidate::address_allowed`](super::candidate::address_allowed)).

use std::net::IpAddr;
use std::sync::Arc;

use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::candidate::{advertise, strip_forbidden_candidates};

/// Which description the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An offer: the client starts a negotiation.
    Offer,
    /// An answer to the server's offer.
    Answer,
}

/// Sets the client's `sdp` as `pc`'s remote description.
pub(crate) async fn apply_remote(
    pc: &Arc<dyn PeerConnection>,
    sdp: &str,
    kind: Kind,
    loopback_ok: bool,
) -> Result<(), String> {
    let sdp = strip_forbidden_candidates(sdp, loopback_ok).into_owned();
    let (description, what) = match kind {
        Kind::Offer => (RTCSessionDescription::offer(sdp), "offer"),
        Kind::Answer => (RTCSessionDescription::answer(sdp), "answer"),
    };
    let description = description.map_err(|e| {
        tracing::debug!(error = %e, "unparsable {what}");
        format!("the {what} is not valid SDP")
    })?;
    pc.set_remote_description(description).await.map_err(|e| {
        tracing::debug!(error = %e, "{what} refused");
        format!("the {what} was refused: its media sections, codecs or ICE and DTLS attributes do not fit this connection")
    })
}

/// Creates and sets `pc`'s answer to the offer just applied; its SDP as the
/// client gets it (host candidates at `node_ip`, see [`advertise`]).
pub(crate) async fn answer(
    pc: &Arc<dyn PeerConnection>,
    node_ip: Option<IpAddr>,
) -> Result<String, String> {
    let refused = |e: webrtc::error::Error| {
        tracing::warn!(error = %e, "could not answer an offer");
        "cannot answer this offer".to_owned()
    };
    let answer = pc.create_answer(None).await.map_err(refused)?;
    pc.set_local_description(answer).await.map_err(refused)?;
    local(pc, node_ip)
        .await
        .ok_or_else(|| "cannot answer this offer".to_owned())
}

/// `pc`'s local description as the client gets it: host candidates at
/// `node_ip` (see [`advertise`]). Every description sent to a client comes
/// through here.
pub(crate) async fn local(pc: &Arc<dyn PeerConnection>, node_ip: Option<IpAddr>) -> Option<String> {
    let d = pc.local_description().await?;
    Some(advertise(&d.sdp, node_ip).into_owned())
}
