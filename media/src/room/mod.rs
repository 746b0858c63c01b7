//! Room logic: who is in which room, what they publish and who receives it
//! ([`live::Room`], one room live on this node).
//! It drives the packet path in [`crate::sfu`]; the packet path knows nothing of rooms.
pub mod data;
pub mod live;
pub mod mailbox;
pub mod manager;
pub mod observer;
pub mod participant;
pub mod quality;
pub mod remote;
pub mod session_quality;
pub mod speakers;
