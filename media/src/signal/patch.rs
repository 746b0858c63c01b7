//! `PATCH` on a WHIP or WHEP session (RFC 9725 section 4.4): trickled
//! candidates, and ICE restarts, for clients whose network changed.
//!
//! The session's entity tag is its current local ICE username fragment, so
//! it changes exactly when an ICE restart gives the session new credentials.

use rtc::peer_connection::transport::RTCIceCandidateInit;

use super::candidate::address_allowed;
use super::description::answer;
use super::sdpfrag::{answer_fragment, restarted_offer, ufrag_of, SdpFrag};
use crate::worker::Peer;

/// What a `PATCH` did.
#[derive(Debug)]
pub(crate) enum Patched {
    /// Candidates were added to the current ICE session (204).
    Trickled,
    /// The ICE session restarted (200): the server's new credentials and
    /// candidates, and the session's new entity tag.
    Restarted {
        /// The answer fragment.
        fragment: String,
        /// The new entity tag.
        etag: String,
    },
}

/// The entity tag of a session whose local description is `local_sdp`.
pub(crate) fn etag(local_sdp: &str) -> Option<String> {
    ufrag_of(local_sdp).map(|u| format!("\"{u}\""))
}

/// The session's current entity tag.
pub(crate) fn current_etag(pc: &Peer) -> Option<String> {
    etag(&pc.local_description()?)
}

/// Why a fragment was not applied.
#[derive(Debug)]
pub(crate) enum Refused {
    /// New ICE credentials under a specific `If-Match`: candidates for an ICE
    /// session the client has not restarted with `If-Match: *` (422).
    NotARestart,
    /// The fragment does not fit the session (400); the message says why.
    Invalid(String),
}

/// Applies a client's fragment to `pc`: a restart when it carries ICE
/// credentials other than the session's, candidates otherwise. A restart
/// needs `may_restart` (RFC 9725 section 4.4.2: `If-Match: *`), so candidates
/// a client trickles for its next ICE session before it asks for the restart
/// cannot start one in its place. Candidates at addresses the node must not
/// check are dropped, as in offers.
pub(crate) async fn apply(
    pc: &Peer,
    frag: SdpFrag,
    may_restart: bool,
    loopback_ok: bool,
) -> Result<Patched, Refused> {
    let remote = pc
        .remote_description()
        .ok_or_else(|| Refused::Invalid("the session has no offer yet".to_owned()))?;
    let candidates: Vec<(Option<String>, String)> = frag
        .candidates
        .into_iter()
        .filter(|(_, c)| address_allowed(c, loopback_ok))
        .collect();
    let restart = match (&frag.ufrag, &frag.pwd) {
        (Some(u), Some(p)) if Some(u.as_str()) != ufrag_of(&remote) => Some((u, p)),
        _ => None,
    };
    let Some((ufrag, pwd)) = restart else {
        // The worker logs a candidate its ICE agent refuses.
        for (mid, candidate) in candidates {
            pc.add_candidate(RTCIceCandidateInit {
                candidate,
                sdp_mid: mid,
                ..Default::default()
            });
        }
        return Ok(Patched::Trickled);
    };
    if !may_restart {
        return Err(Refused::NotARestart);
    }
    let offer = restarted_offer(&remote, ufrag, pwd, &candidates);
    // The node's candidate (its shared port) stays across the restart and is
    // in the answer at once.
    let local = answer(pc, &offer, loopback_ok)
        .await
        .map_err(Refused::Invalid)?;
    let etag = etag(&local).ok_or_else(|| {
        Refused::Invalid("the restarted session has no ICE credentials".to_owned())
    })?;
    tracing::info!("ICE restarted");
    Ok(Patched::Restarted {
        fragment: answer_fragment(&local),
        etag,
    })
}
