//! A client's ICE candidate (trickled or in an offer): its shape, whether
//! its address may be checked, and offers stripped of forbidden ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::signal::candidate::{
    address_allowed, candidate_is_well_formed, strip_forbidden_candidates,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = candidate_is_well_formed(text);
    let _ = address_allowed(text, false);
    let stripped = strip_forbidden_candidates(text, false);
    // Stripping is idempotent and never adds anything.
    assert!(stripped.len() <= text.len());
    assert_eq!(strip_forbidden_candidates(&stripped, false), stripped);
});
