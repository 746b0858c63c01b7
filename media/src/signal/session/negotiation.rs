//! The two peer connections' offers and answers: the client offers on its
//! publisher connection, the server on the subscriber connection, and
//! candidates wait until their connection has a remote description.

use super::Session;
use crate::signal::description::{accept, answer};
use switchboard_core::signal::{ServerMessage, Target};

impl Session {
    pub(super) fn flush_candidates(&mut self, target: Target) {
        let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.buffered)
            .into_iter()
            .partition(|(t, _)| *t == target);
        self.buffered = keep;
        for (_, init) in ready {
            self.pc(target).add_candidate(init);
        }
    }

    pub(super) async fn on_publisher_offer(&mut self, sdp: String) {
        let result = answer(&self.p.publisher, &sdp, self.loopback_candidates).await;
        match result {
            Ok(sdp) => {
                self.pub_remote_set = true;
                self.send(&ServerMessage::Answer { sdp }).await;
                self.flush_candidates(Target::Publisher);
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
        let result = accept(&self.p.subscriber, &sdp, self.loopback_candidates).await;
        self.sub_negotiating = false;
        match result {
            Ok(()) => {
                self.sub_remote_set = true;
                self.flush_candidates(Target::Subscriber);
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
        let ice_restart = std::mem::take(&mut self.ice_restart_pending);
        match self.p.subscriber.offer(ice_restart).await {
            Ok(sdp) => {
                self.sub_negotiating = true;
                self.send(&ServerMessage::Offer { sdp }).await;
            }
            Err(e) => tracing::error!(error = %e, "could not create the subscriber offer"),
        }
    }
}
