//! ICE candidates between their signaling form ([`Candidate`]) and the WebRTC stack's.

use switchboard_core::signal::Candidate;
use webrtc::peer_connection::RTCIceCandidateInit;

/// A trickled candidate as the stack takes it.
pub fn to_stack(c: Candidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}

/// A candidate the stack gathered, as signaling sends it.
pub fn from_stack(init: RTCIceCandidateInit) -> Candidate {
    Candidate {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_m_line_index: init.sdp_mline_index,
        username_fragment: init.username_fragment,
    }
}
