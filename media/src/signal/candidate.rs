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

/// Whether a trickled candidate has the shape of an RFC 8839 candidate line
/// (foundation, component, transport, priority, address, port, `typ`, type), or is
/// the empty end-of-candidates marker. Checked before buffering, so garbage is refused at once.
pub(crate) fn candidate_is_well_formed(candidate: &str) -> bool {
    if candidate.is_empty() {
        return true;
    }
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    let Some(rest) = body.strip_prefix("candidate:") else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.len() >= 8
        && fields[1].parse::<u16>().is_ok()
        && fields[3].parse::<u32>().is_ok()
        && fields[5].parse::<u16>().is_ok()
        && fields[6] == "typ"
}

#[cfg(test)]
mod tests {
    use super::candidate_is_well_formed;

    #[test]
    fn candidate_lines_are_checked_for_shape() {
        assert!(candidate_is_well_formed(""));
        assert!(candidate_is_well_formed(
            "candidate:842163049 1 udp 1677729535 127.0.0.1 52050 typ srflx raddr 0.0.0.0 rport 0"
        ));
        assert!(candidate_is_well_formed(
            "a=candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host"
        ));
        for bad in [
            "garbage",
            "candidate:",
            "candidate:1 1 udp x 127.0.0.1 9 typ host",
            "candidate:1 1 udp 1 127.0.0.1 99999 typ host",
            "candidate:1 1 udp 1 h 9 type host",
        ] {
            assert!(!candidate_is_well_formed(bad), "{bad}");
        }
    }
}
