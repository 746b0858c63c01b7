//! The simulated publishers' peer connections: webrtc-rs's async driver, one
//! UDP port each, built from the same codecs and feedback as the node's
//! connections so both ends negotiate what real clients do. (Subscribers,
//! the many, run on [`crate::subscriber`]'s loops.)

use std::sync::Arc;

use switchboard_media::peer::config::{stack, Direction, RtcConfig, Stack};
use switchboard_media::MediaError;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateType,
};

/// A peer connection whose events go to `handler`, on an ephemeral port of
/// `config.bind_ip`.
pub async fn new_peer_connection(
    config: &RtcConfig,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, MediaError> {
    let Stack {
        media_engine,
        registry,
        settings,
        configuration,
        ..
    } = stack(config, Direction::Both)?;
    let mut settings = settings;
    if let Some(ip) = config.node_ip {
        settings = settings.with_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
    }
    let addr = std::net::SocketAddr::new(config.bind_ip, 0).to_string();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings.build())
        .with_handler(handler)
        .with_udp_addrs(vec![addr])
        .build()
        .await
        .map_err(MediaError::webrtc)?;
    Ok(Arc::new(pc))
}
