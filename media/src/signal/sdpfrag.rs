//! Trickle ICE SDP fragments (`application/trickle-ice-sdpfrag`, RFC 8840),
//! the bodies of a WHIP or WHEP `PATCH` (RFC 9725 section 4.4): a client's
//! late candidates, or its new ICE credentials for an ICE restart, and the
//! server's credentials and candidates in the answer to a restart.

use super::candidate::candidate_is_well_formed;

/// Largest fragment accepted, in bytes.
pub const MAX_FRAGMENT_BYTES: usize = 16 * 1024;
/// Most candidates one fragment may carry.
pub const MAX_CANDIDATES: usize = 64;

/// A client's fragment, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpFrag {
    /// `a=ice-ufrag`, if given.
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, if given.
    pub pwd: Option<String>,
    /// `a=candidate:` lines (without the `a=`), with the `a=mid` of their media section.
    pub candidates: Vec<(Option<String>, String)>,
    /// Whether `a=end-of-candidates` was present.
    pub end_of_candidates: bool,
}

/// Why a fragment was refused, in words of the client's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    /// Over [`MAX_FRAGMENT_BYTES`] or [`MAX_CANDIDATES`].
    #[error("the fragment is over {MAX_FRAGMENT_BYTES} bytes or {MAX_CANDIDATES} candidates")]
    TooLarge,
    /// A line that is not SDP (`x=...`).
    #[error("line {0} is not an SDP line (type=value)")]
    NotSdp(usize),
    /// A candidate line of the wrong shape.
    #[error("line {0} is not an RFC 8839 candidate")]
    BadCandidate(usize),
    /// A credential that is empty or not ICE characters.
    #[error("line {0}: ICE credentials are 4 to 256 characters of a-z, A-Z, 0-9, + and /")]
    BadCredential(usize),
    /// Only one of `a=ice-ufrag` and `a=ice-pwd`.
    #[error("an ICE restart needs both a=ice-ufrag and a=ice-pwd")]
    HalfCredentials,
}

impl SdpFrag {
    /// Parses a fragment. Lines other than those it needs (`a=group`,
    /// `m=`, `a=ice-options`) are allowed and skipped, as RFC 8840 has them.
    pub fn parse(text: &str) -> Result<Self, FragError> {
        if text.len() > MAX_FRAGMENT_BYTES {
            return Err(FragError::TooLarge);
        }
        let mut frag = SdpFrag::default();
        let mut mid: Option<String> = None;
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end())) {
            if line.is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(FragError::NotSdp(n));
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                if line.starts_with("m=") {
                    mid = None;
                }
                continue;
            };
            if let Some(v) = attribute.strip_prefix("ice-ufrag:") {
                frag.ufrag = Some(credential(v, n)?);
            } else if let Some(v) = attribute.strip_prefix("ice-pwd:") {
                frag.pwd = Some(credential(v, n)?);
            } else if let Some(v) = attribute.strip_prefix("mid:") {
                mid = Some(v.trim().chars().take(32).collect());
            } else if attribute.starts_with("candidate:") {
                if !candidate_is_well_formed(attribute) {
                    return Err(FragError::BadCandidate(n));
                }
                if frag.candidates.len() >= MAX_CANDIDATES {
                    return Err(FragError::TooLarge);
                }
                frag.candidates.push((mid.clone(), attribute.to_owned()));
            } else if attribute == "end-of-candidates" {
                frag.end_of_candidates = true;
            }
        }
        if frag.ufrag.is_some() != frag.pwd.is_some() {
            return Err(FragError::HalfCredentials);
        }
        Ok(frag)
    }
}

/// An ICE credential: RFC 8839 `ice-char`s, 4 to 256 of them.
fn credential(value: &str, line: usize) -> Result<String, FragError> {
    let value = value.trim();
    let ok = (4..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(FragError::BadCredential(line))
    }
}

/// The fragment answering an ICE restart: the server's new credentials and
/// candidates, taken from its new local description.
pub fn answer_fragment(local_sdp: &str) -> String {
    let lines: Vec<&str> = local_sdp.lines().map(str::trim_end).collect();
    let mut out = String::new();
    let mut push = |line: &str| {
        out.push_str(line);
        out.push_str("\r\n");
    };
    for prefix in ["a=ice-lite", "a=ice-ufrag:", "a=ice-pwd:", "a=group:BUNDLE"] {
        if let Some(line) = lines.iter().find(|l| l.starts_with(prefix)) {
            push(line);
        }
    }
    // Candidates are shared by the bundle: the first media section carries them.
    let first = lines.iter().skip_while(|l| !l.starts_with("m="));
    for (i, line) in first.enumerate() {
        if i > 0 && line.starts_with("m=") {
            break;
        }
        if i == 0
            || line.starts_with("a=mid:")
            || line.starts_with("a=candidate:")
            || *line == "a=end-of-candidates"
        {
            push(line);
        }
    }
    out
}

/// The ICE username fragment of a description (its first `a=ice-ufrag`).
pub fn ufrag_of(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// `offer` with its ICE credentials replaced by `ufrag`/`pwd` and its
/// candidates by `candidates` (in every media section): the offer a client's
/// ICE restart amounts to, to set as the remote description again.
pub fn restarted_offer(
    offer: &str,
    ufrag: &str,
    pwd: &str,
    candidates: &[(Option<String>, String)],
) -> String {
    let mut out = String::with_capacity(offer.len());
    let mut in_media = false;
    let mut mid: Option<String> = None;
    let flush = |out: &mut String, mid: &Option<String>| {
        for (m, c) in candidates {
            if m.is_none() || m == mid {
                out.push_str("a=");
                out.push_str(c);
                out.push_str("\r\n");
            }
        }
    };
    for line in offer.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            if in_media {
                flush(&mut out, &mid);
            }
            in_media = true;
            mid = None;
        }
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        }
        if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    if in_media {
        flush(&mut out, &mid);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANDIDATE: &str = "candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host";

    #[test]
    fn a_trickle_fragment_gives_its_candidates_by_media_section() {
        let text = format!(
            "a=ice-options:trickle\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na={CANDIDATE}\r\na=end-of-candidates\r\n"
        );
        let frag = SdpFrag::parse(&text).unwrap();
        assert_eq!(
            frag.candidates,
            [(Some("0".to_owned()), CANDIDATE.to_owned())]
        );
        assert!(frag.end_of_candidates);
        assert_eq!((frag.ufrag, frag.pwd), (None, None));
    }

    #[test]
    fn garbage_is_refused_with_the_line() {
        assert_eq!(SdpFrag::parse("hello"), Err(FragError::NotSdp(1)));
        assert_eq!(
            SdpFrag::parse("a=ice-ufrag:abcd\na=candidate:x"),
            Err(FragError::BadCandidate(2))
        );
        assert_eq!(
            SdpFrag::parse("a=ice-ufrag:ab\na=ice-pwd:abcdefgh"),
            Err(FragError::BadCredential(1))
        );
        assert_eq!(
            SdpFrag::parse("a=ice-ufrag:abcd"),
            Err(FragError::HalfCredentials)
        );
        assert_eq!(
            SdpFrag::parse(&"a=end-of-candidates\n".repeat(2000)),
            Err(FragError::TooLarge)
        );
        let many = format!("a={CANDIDATE}\n").repeat(MAX_CANDIDATES + 1);
        assert_eq!(SdpFrag::parse(&many), Err(FragError::TooLarge));
    }

    #[test]
    fn a_restart_replaces_credentials_and_candidates() {
        let offer = "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldoldoldoldoldoldoldold\r\na=candidate:9 1 udp 1 198.51.100.1 1 typ host\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=ice-ufrag:old1\r\na=ice-pwd:oldoldoldoldoldoldoldold\r\n";
        let out = restarted_offer(
            offer,
            "new1",
            "newnewnewnewnewnewnewnew",
            &[(Some("0".into()), CANDIDATE.into())],
        );
        assert!(!out.contains("old"), "{out}");
        assert_eq!(out.matches("a=ice-ufrag:new1").count(), 2);
        assert_eq!(out.matches(CANDIDATE).count(), 1);
        assert!(out.find(CANDIDATE) < out.find("m=video"), "{out}");
        assert_eq!(ufrag_of(&out), Some("new1"));
    }

    #[test]
    fn the_answer_fragment_has_credentials_and_the_first_sections_candidates() {
        let local = format!("v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:srv1\r\na=ice-pwd:pwdpwdpwdpwdpwdpwdpwdpwd\r\na={CANDIDATE}\r\na=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na={CANDIDATE}\r\n");
        let frag = answer_fragment(&local);
        assert_eq!(frag.matches("a=candidate").count(), 1, "{frag}");
        let parsed = SdpFrag::parse(&frag).unwrap();
        assert_eq!(parsed.ufrag.as_deref(), Some("srv1"));
        assert!(parsed.end_of_candidates);
        assert!(frag.starts_with("a=ice-ufrag:srv1\r\na=ice-pwd:"), "{frag}");
        assert!(frag.contains("a=group:BUNDLE 0 1\r\nm=audio"), "{frag}");
    }
}
