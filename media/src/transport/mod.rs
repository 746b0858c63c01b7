//! The network edge of the media node: what arrives on the node's one UDP
//! port ([`udp`]) and which peer connection it is for ([`demux`]).
pub mod demux;
pub mod udp;
