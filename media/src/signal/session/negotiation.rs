//! The two peer connections' offers and answers: the client offers on its
//! publisher connection, the server on the subscriber connection, and
//! candidates wait until their connection has a remote description.

use super::Session;
use crate::signal::description::{answer, apply_remote, Kind};
use switchboard_core::signal::{ServerMessage, Target};

impl Session {
    pub(super) async fn flush_candidates(&mut self, target: Target) {
        let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.buffered)
            .into_iter()
            .partition(|(t, _)| *t == target);
        self.buffered = keep;
        for (_, init) in ready {
            if let Err(e) = self.pc(target).add_ice_candidate(init).await {
                tracing::debug!(error = %e, "buffered candidate refused");
            }
        }
    }

    pub(super) async fn on_publisher_offer(&mut self, sdp: String) {
        let pc = self.p.publisher.clone();
        let result = match apply_remote(&pc, &sdp, Kind::Offer, self.loopback_candidates).await {
            Ok(()) => answer(&pc, self.node_ip).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(sdp) => {
                self.pub_remote_set = true;
                self.send(&ServerMessage::Answer { sdp }).await;
                self.flush_candidates(Target::Publisher).await;
            }
            Err(e) => self.error("invalid_offer", e).await,
        }
    }

    pub(super) async fn on_subscriber_answer(&mut self, sdp: String) {
        if !self.sub_negotiating {
            self.error(
                "unexpected_answer",
                "no subscriber offer is waiting for an answer",
            )
            .await;
            return;
        }
        let pc = self.p.subscriber.clone();
        let result = apply_remote(&pc, &sdp, Kind::Answer, self.loopback_candidates).await;
        self.sub_negotiating = false;
        match result {
            Ok(()) => {
                self.sub_remote_set = true;
                self.flush_candidates(Target::Subscriber).await;
            }
            Err(e) => self.error("invalid_answer", e).await,
        }
        if std::mem::take(&mut self.sub_pending) {
            self.offer_subscriber().await;
        }
    }

    pub(super) async fn offer_subscriber(&mut self) {
        if self.sub_negotiating {
            self.sub_pending = true;
            return;
        }
        let pc = self.p.subscriber.clone();
        let options = std::mem::take(&mut self.ice_restart_pending)
            .then_some(rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true });
        let result = async {
            let offer = pc.create_offer(options).await?;
            pc.set_local_description(offer).await?;
            Ok::<_, webrtc::error::Error>(
                crate::signal::description::local(&pc, self.node_ip).await,
            )
        }
        .await;
        match result {
            Ok(Some(sdp)) => {
                self.sub_negotiating = true;
                self.send(&ServerMessage::Offer { sdp }).await;
            }
            Ok(None) => tracing::error!("subscriber offer has no local description"),
            Err(e) => tracing::error!(error = %e, "could not create the subscriber offer"),
        }
    }
}
