//! A client's SDP checked and handed to its peer connection, and the
//! server's answer made to it.
//!
//! The client is told what was wrong with its description in words of its
//! own input; the WebRTC stack's text goes to the log, never to the client.
//! Candidates at addresses the node must not check are dropped first
//! ([`candidate::address_allowed`](super::candidate::address_allowed)).

use rtc::peer_connection::sdp::RTCSessionDescription;

use super::candidate::strip_forbidden_candidates;
use crate::worker::Peer;

/// Which description the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An offer: the client starts a negotiation.
    Offer,
    /// An answer to the server's offer.
    Answer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
        }
    }
}

/// The client's `sdp` as the stack takes it, forbidden candidates dropped.
pub(crate) fn parse(
    sdp: &str,
    kind: Kind,
    loopback_ok: bool,
) -> Result<RTCSessionDescription, String> {
    let sdp = strip_forbidden_candidates(sdp, loopback_ok).into_owned();
    let description = match kind {
        Kind::Offer => RTCSessionDescription::offer(sdp),
        Kind::Answer => RTCSessionDescription::answer(sdp),
    };
    description.map_err(|e| {
        tracing::debug!(error = %e, "unparsable {}", kind.name());
        format!("the {} is not valid SDP", kind.name())
    })
}

/// What the client hears when the stack refuses its description.
pub(crate) fn refused(kind: Kind, e: &crate::MediaError) -> String {
    tracing::debug!(error = %e, "{} refused", kind.name());
    format!(
        "the {} was refused: its media sections, codecs or ICE and DTLS attributes do not fit this connection",
        kind.name()
    )
}

/// Answers the client's offer `sdp` on `peer`; the answer's SDP (its
/// candidate is the node's shared port).
pub(crate) async fn answer(peer: &Peer, sdp: &str, loopback_ok: bool) -> Result<String, String> {
    let offer = parse(sdp, Kind::Offer, loopback_ok)?;
    peer.answer(offer)
        .await
        .map_err(|e| refused(Kind::Offer, &e))
}

/// Takes the client's answer `sdp` to the server's offer on `peer`.
pub(crate) async fn accept(peer: &Peer, sdp: &str, loopback_ok: bool) -> Result<(), String> {
    let answer = parse(sdp, Kind::Answer, loopback_ok)?;
    peer.accept(answer)
        .await
        .map_err(|e| refused(Kind::Answer, &e))
}
