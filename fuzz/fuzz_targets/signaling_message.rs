//! A signaling WebSocket frame from a client, parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = std::str::from_utf8(data) {
        let _ = switchboard_core::signal::parse_client_message(frame);
    }
});
