//! The two peer connections' offers and answers: the client offers on its
//! publisher connection, the server on the subscriber connection, and
//! candidates wait until their connection has a remote description.
//!
//! Where each connection stands is a [`Negotiation`], a plain state machine
//! the session feeds what happened and asks what to do; the session does the
//! I/O.

use super::Session;
use crate::signal::description::{accept, answer};
use switchboard_core::signal::{ServerMessage, Target};

/// Where the negotiation of a session's two connections stands.
#[derive(Debug, Default)]
pub(super) struct Negotiation {
    publisher: Publisher,
    subscriber: Subscriber,
}

/// The publisher connection, which the client offers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    /// No offer of the client's has been answered yet.
    #[default]
    AwaitingOffer,
    /// An offer was answered: the connection has a remote description.
    Answered,
}

/// The subscriber connection, which the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscriber {
    /// No offer is out. `described`: an answer was accepted once, so the
    /// connection has a remote description.
    Stable { described: bool },
    /// An offer is out, waiting for its answer; `then` is what is due after.
    Offered { described: bool, then: Next },
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber::Stable { described: false }
    }
}

/// What is due once the subscriber offer that is out is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Nothing,
    /// Another offer: the tracks changed while one was out.
    Offer,
    /// Another offer, with new ICE credentials.
    RestartIce,
}

/// What the session is to do about the subscriber connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offer {
    /// Send an offer now; `ice_restart` asks for new ICE credentials.
    Now { ice_restart: bool },
    /// Nothing now: an offer is out, and another follows its answer.
    Later,
}

/// The client answered when no subscriber offer was out.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UnexpectedAnswer;

impl Negotiation {
    /// Whether `target` has a remote description, so its candidates can be added.
    pub(super) fn described(&self, target: Target) -> bool {
        match target {
            Target::Publisher => self.publisher == Publisher::Answered,
            Target::Subscriber => matches!(
                self.subscriber,
                Subscriber::Stable { described: true }
                    | Subscriber::Offered {
                        described: true,
                        ..
                    }
            ),
        }
    }

    /// The client's publisher offer was answered.
    pub(super) fn publisher_answered(&mut self) {
        self.publisher = Publisher::Answered;
    }

    /// The subscriber connection needs an offer (tracks changed, or the
    /// client asked for an ICE restart).
    pub(super) fn want_offer(&mut self, ice_restart: bool) -> Offer {
        let wanted = if ice_restart {
            Next::RestartIce
        } else {
            Next::Offer
        };
        match &mut self.subscriber {
            Subscriber::Stable { .. } => Offer::Now { ice_restart },
            Subscriber::Offered { then, .. } => {
                *then = (*then).max(wanted);
                Offer::Later
            }
        }
    }

    /// Whether a subscriber offer is out, waiting for the client's answer.
    pub(super) fn awaiting_answer(&self) -> bool {
        matches!(self.subscriber, Subscriber::Offered { .. })
    }

    /// An offer went out to the client.
    pub(super) fn offered(&mut self) {
        if let Subscriber::Stable { described } = self.subscriber {
            self.subscriber = Subscriber::Offered {
                described,
                then: Next::Nothing,
            };
        }
    }

    /// The client answered the offer that was out (`accepted`: the answer was
    /// applied). Returns the offer due next, if any.
    pub(super) fn answered(&mut self, accepted: bool) -> Result<Option<Offer>, UnexpectedAnswer> {
        let Subscriber::Offered { described, then } = self.subscriber else {
            return Err(UnexpectedAnswer);
        };
        self.subscriber = Subscriber::Stable {
            described: described || accepted,
        };
        Ok(match then {
            Next::Nothing => None,
            Next::Offer => Some(Offer::Now { ice_restart: false }),
            Next::RestartIce => Some(Offer::Now { ice_restart: true }),
        })
    }
}

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
                self.negotiation.publisher_answered();
                self.send(&ServerMessage::Answer { sdp }).await;
                self.flush_candidates(Target::Publisher);
            }
            Err(e) => self.error("invalid_offer", e).await,
        }
    }

    pub(super) async fn on_subscriber_answer(&mut self, sdp: String) {
        if !self.negotiation.awaiting_answer() {
            self.error(
                "unexpected_answer",
                "no subscriber offer is waiting for an answer",
            )
            .await;
            return;
        }
        let result = accept(&self.p.subscriber, &sdp, self.loopback_candidates).await;
        // Nothing else touches the negotiation while the answer is applied.
        let next = self.negotiation.answered(result.is_ok()).unwrap_or(None);
        match result {
            Ok(()) => self.flush_candidates(Target::Subscriber),
            Err(e) => self.error("invalid_answer", e).await,
        }
        if let Some(Offer::Now { ice_restart }) = next {
            self.send_offer(ice_restart).await;
        }
    }

    /// Offers the subscriber connection now, or once the offer out is answered.
    pub(super) async fn offer_subscriber(&mut self, ice_restart: bool) {
        if let Offer::Now { ice_restart } = self.negotiation.want_offer(ice_restart) {
            self.send_offer(ice_restart).await;
        }
    }

    async fn send_offer(&mut self, ice_restart: bool) {
        match self.p.subscriber.offer(ice_restart).await {
            Ok(sdp) => {
                self.negotiation.offered();
                self.send(&ServerMessage::Offer { sdp }).await;
            }
            Err(e) => tracing::error!(error = %e, "could not create the subscriber offer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_wait_for_each_connections_remote_description() {
        let mut n = Negotiation::default();
        assert!(!n.described(Target::Publisher));
        assert!(!n.described(Target::Subscriber));
        n.publisher_answered();
        assert!(n.described(Target::Publisher));
        assert_eq!(n.want_offer(false), Offer::Now { ice_restart: false });
        n.offered();
        assert!(
            !n.described(Target::Subscriber),
            "offered, not yet answered"
        );
        assert_eq!(n.answered(true), Ok(None));
        assert!(n.described(Target::Subscriber));
    }

    #[test]
    fn an_answer_nobody_asked_for_is_refused() {
        let mut n = Negotiation::default();
        assert_eq!(n.answered(true), Err(UnexpectedAnswer));
        assert!(!n.awaiting_answer());
        n.want_offer(false);
        n.offered();
        assert!(n.awaiting_answer());
        assert_eq!(n.answered(true), Ok(None));
        assert_eq!(n.answered(true), Err(UnexpectedAnswer), "answered twice");
    }

    #[test]
    fn changes_while_an_offer_is_out_make_one_more_offer() {
        let mut n = Negotiation::default();
        n.want_offer(false);
        n.offered();
        assert_eq!(n.want_offer(false), Offer::Later);
        assert_eq!(n.want_offer(false), Offer::Later);
        assert_eq!(
            n.answered(true),
            Ok(Some(Offer::Now { ice_restart: false }))
        );
        n.offered();
        assert_eq!(n.answered(true), Ok(None), "one offer for both changes");
    }

    #[test]
    fn a_restart_asked_for_while_an_offer_is_out_is_kept() {
        let mut n = Negotiation::default();
        n.want_offer(false);
        n.offered();
        assert_eq!(n.want_offer(true), Offer::Later);
        assert_eq!(
            n.want_offer(false),
            Offer::Later,
            "a plain offer does not drop it"
        );
        assert_eq!(n.answered(true), Ok(Some(Offer::Now { ice_restart: true })));
    }

    #[test]
    fn a_refused_answer_keeps_the_description_that_was_there() {
        let mut n = Negotiation::default();
        n.want_offer(false);
        n.offered();
        assert_eq!(n.answered(false), Ok(None));
        assert!(!n.described(Target::Subscriber));
        n.want_offer(false);
        n.offered();
        n.answered(true).unwrap();
        n.want_offer(false);
        n.offered();
        assert_eq!(n.answered(false), Ok(None));
        assert!(
            n.described(Target::Subscriber),
            "the earlier answer still holds"
        );
    }
}
