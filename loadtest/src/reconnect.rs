//! Subscribers that join again when their node is lost, as the SDK does: a
//! new token (which names a live node) and a new session, counting into the
//! same statistics, so the outage shows as loss.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::client::{Received, SimParticipant};
use crate::LoadtestError;

/// How often a subscriber's socket is checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long a lost subscriber keeps trying to join again.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// How long a subscriber that joined again may wait for its first packet.
const FIRST_PACKET_WAIT: Duration = Duration::from_secs(10);

/// One subscriber that lost its node and joined again.
#[derive(Debug, Clone, Serialize)]
pub struct Reconnect {
    /// Who it is.
    pub identity: String,
    /// The node it was on (its signaling URL).
    pub from: String,
    /// The node it joined again.
    pub to: String,
    /// From noticing the loss to the first packet received again; none if
    /// nothing came within 10 s of joining again.
    pub receiving_again_ms: Option<f64>,
}

/// Packets received so far, every stream together.
fn packets(received: &Received) -> u64 {
    let streams = received.lock().unwrap_or_else(|p| p.into_inner());
    streams
        .values()
        .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).packets())
        .sum()
}

/// Keeps `participant` (joined at `url`) in the room until `stop` turns
/// true: whenever its socket closes, `rejoin` joins it again (given its
/// statistics; returning the participant and its node's URL), and the move
/// goes into `moves`. Returns the participant to leave with, if it is in.
pub(crate) async fn supervise<F, Fut>(
    mut participant: SimParticipant,
    mut url: String,
    rejoin: F,
    stop: watch::Receiver<bool>,
    moves: &Mutex<Vec<Reconnect>>,
) -> Option<SimParticipant>
where
    F: Fn(String, Received) -> Fut,
    Fut: std::future::Future<Output = Result<(SimParticipant, String), LoadtestError>>,
{
    loop {
        if *stop.borrow() {
            return Some(participant);
        }
        tokio::time::sleep(CHECK_EVERY).await;
        if participant.is_connected() {
            continue;
        }
        let lost = Instant::now();
        let identity = participant.identity.clone();
        let received = participant.received.clone();
        let before = packets(&received);
        participant.leave().await;
        tracing::info!(%identity, node = %url, "lost the node: joining again");
        let (again, to) = loop {
            if *stop.borrow() {
                return None;
            }
            match rejoin(identity.clone(), received.clone()).await {
                Ok(joined) => break joined,
                Err(e) if lost.elapsed() < GIVE_UP_AFTER => {
                    tracing::debug!(%identity, error = %e, "cannot join again yet");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    tracing::warn!(%identity, error = %e, "gave up joining again");
                    return None;
                }
            }
        };
        let waiting = Instant::now();
        while packets(&received) <= before && waiting.elapsed() < FIRST_PACKET_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let receiving_again_ms =
            (packets(&received) > before).then(|| lost.elapsed().as_secs_f64() * 1000.0);
        moves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reconnect {
                identity,
                from: std::mem::replace(&mut url, to.clone()),
                to,
                receiving_again_ms,
            });
        participant = again;
    }
}
