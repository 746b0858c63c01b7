//! The REST CLI: commands that manage a running server through its `/v1`
//! API, as an app's backend would (`switchboard rooms list`, `events tail`,
//! ...), with `--json` for scripts and tables for people.

pub mod client;
pub mod events;
pub mod participants;
pub mod profile;
pub mod recordings;
pub mod rooms;
pub mod table;
pub mod usage;
pub mod webhooks;
