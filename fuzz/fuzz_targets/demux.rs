//! A datagram on the node's UDP port, from any address: sorted, parsed as
//! STUN where it claims to be, and routed.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use switchboard_media::transport::demux::{classify, Route, Router, Stun};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    if let Some(stun) = Stun::parse(data) {
        let _ = stun.local_ufrag();
        assert_eq!(stun.transaction_id.len(), 12);
    }
    let mut router = Router::default();
    router.add_ufrag("srv1", 1u8);
    // A check the connection sent: only an answer carrying its transaction
    // id, and nothing else, reaches it from an address it has not learned.
    router.expect_response([0x5a; 12], 1u8);
    let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    if let Route::Check(c) = router.route(remote, data) {
        router.learn(remote, c);
        assert_eq!(router.route(remote, data), Route::Known(c));
    } else if let Route::Response(c) = router.route(remote, data) {
        let stun = Stun::parse(data).expect("an answer is STUN");
        assert_eq!((c, stun.transaction_id), (1, &[0x5a; 12]));
    }
});
