//! Many nodes behind one control plane.
//!
//! Every `switchboard serve` process is a node registered in the shared
//! database. This crate:
//!
//! - keeps a node registered and alive, reporting the load its media tier
//!   carries ([`heartbeat`]);
//! - decides which media node hosts each room ([`router`]) from that
//!   registry, with the rule in [`switchboard_core::node::choose`];
//! - carries REST calls on a room to the node hosting it, over NATS
//!   request/reply ([`rpc`]);
//! - carries committed events to every node, over JetStream ([`bus`]).

pub mod bus;
pub mod heartbeat;
pub mod router;
pub mod rpc;

pub use bus::JetStreamBus;
pub use router::Router;
pub use rpc::ClusterDirectory;

/// A NATS client, as [`connect`] returns it.
pub use async_nats::Client as NatsClient;

/// Why the NATS server could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {reason}; is nats-server running there (with -js for JetStream)?")]
pub struct ConnectError {
    url: String,
    reason: String,
}

/// Connects to the NATS server at `url` (`nats://host:4222`).
pub async fn connect(url: &str) -> Result<NatsClient, ConnectError> {
    async_nats::connect(url).await.map_err(|e| ConnectError {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}
