//! The network edge of the media node: what arrives on the node's one UDP
//! port ([`udp`]) or, from clients without UDP, over TCP on the same port
//! number ([`tcp`], framed by [`framing`]), and which peer connection it is
//! for ([`demux`]).
pub mod demux;
pub mod framing;
pub mod tcp;
pub mod udp;
