//! Recording attempts: a successful one with others in a shared transaction
//! ([`crate::group`]), any other in its own, with what follows from it
//! (retry, failure, the endpoint disabled).

use chrono::{DateTime, Duration, Utc};
use sqlx::{AnyConnection, Row};
use switchboard_core::event::EventPayload;
use switchboard_core::Event;

use crate::time::{from_micros, stored, to_micros};
use crate::{Store, StoreError};

use super::{Attempt, Deliveries, Delivery, DeliveryStatus, Outcome, INSERT_ROWS};

/// When an attempt ended, as stored.
fn finished_at(attempt: &Attempt) -> DateTime<Utc> {
    stored(attempt.attempted_at + Duration::milliseconds(attempt.latency_ms as i64))
}

/// Adds `attempts`, each of its delivery, to the attempt log.
async fn insert_attempts(
    conn: &mut AnyConnection,
    attempts: &[(&Delivery, &Attempt)],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, latency_ms, \
         response_body, error, succeeded) VALUES {}",
        crate::sql::values(attempts.len(), 8)
    );
    let mut query = sqlx::query(&sql);
    for (delivery, attempt) in attempts {
        query = query
            .bind(attempt.id.to_string())
            .bind(delivery.id.to_string())
            .bind(to_micros(attempt.attempted_at))
            .bind(attempt.status_code.map(i64::from))
            .bind(attempt.latency_ms as i64)
            .bind(&attempt.response_body)
            .bind(attempt.error.clone())
            .bind(i64::from(attempt.succeeded));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Successful attempts waiting to be recorded together ([`crate::group`]).
pub(crate) type Completions = crate::group::Queue<(Delivery, Attempt), ()>;

/// Successful attempts recorded per transaction at most.
pub(crate) const COMPLETIONS_PER_ROUND: usize = 256;

/// Records one round of successful attempts in one transaction; if that
/// fails, each on its own.
async fn write_successes(
    store: &Store,
    round: Vec<((Delivery, Attempt), crate::group::Reply<()>)>,
) {
    let (done, replies): (Vec<(Delivery, Attempt)>, Vec<_>) = round.into_iter().unzip();
    let result = async {
        let mut tx = store.writer().begin().await?;
        // A success lost in a crash is sent again once its lease lapses:
        // deliveries are at least once, and receivers deduplicate.
        store.skip_flush_wait(&mut tx).await?;
        for chunk in done.chunks(INSERT_ROWS) {
            let attempts: Vec<(&Delivery, &Attempt)> = chunk.iter().map(|(d, a)| (d, a)).collect();
            insert_attempts(&mut tx, &attempts).await?;
            let sql = format!(
                "UPDATE webhook_deliveries SET status = 'succeeded', attempts = attempts + 1, \
                 next_attempt_at = NULL, locked_until = NULL, updated_at = v.column2 \
                 FROM (VALUES {}) AS v WHERE webhook_deliveries.id = v.column1",
                crate::sql::values(chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (delivery, attempt) in chunk {
                query = query
                    .bind(delivery.id.to_string())
                    .bind(to_micros(finished_at(attempt)));
            }
            query.execute(&mut *tx).await?;
        }
        let mut endpoints: Vec<String> = done.iter().map(|(d, _)| d.webhook_id.to_string()).collect();
        endpoints.sort();
        endpoints.dedup();
        // Conditional, so a healthy endpoint's row is not rewritten (and locked)
        // by every round.
        let sql = format!(
            "UPDATE webhooks SET failing_since = NULL WHERE failing_since IS NOT NULL AND id IN ({})",
            crate::sql::list(1, endpoints.len())
        );
        let mut query = sqlx::query(&sql);
        for id in &endpoints {
            query = query.bind(id);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    }
    .await;
    match result {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) if done.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            let deliveries = store.deliveries();
            for ((delivery, attempt), reply) in done.iter().zip(replies) {
                let outcome = deliveries
                    .complete_alone(delivery, attempt, Outcome::Succeeded, Duration::zero())
                    .await
                    .map(|_| ());
                let _ = reply.send(outcome);
            }
        }
    }
}

impl Deliveries<'_> {
    /// Records an attempt and what follows from it. A failure that leaves the
    /// endpoint failing for longer than `disable_after` disables it and records
    /// `webhook.disabled`, which is returned.
    pub async fn complete(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        outcome: Outcome,
        disable_after: Duration,
    ) -> Result<Option<Event>, StoreError> {
        if attempt.succeeded && outcome == Outcome::Succeeded {
            let store = self.0.clone();
            return self
                .0
                .completions
                .submit((delivery.clone(), attempt.clone()), move |round| {
                    let store = store.clone();
                    async move { write_successes(&store, round).await }
                })
                .await
                .map(|()| None);
        }
        self.complete_alone(delivery, attempt, outcome, disable_after)
            .await
    }

    /// [`Deliveries::complete`] in a transaction of its own.
    async fn complete_alone(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        outcome: Outcome,
        disable_after: Duration,
    ) -> Result<Option<Event>, StoreError> {
        let now = finished_at(attempt);
        let mut tx = self.0.writer().begin().await?;
        insert_attempts(&mut tx, &[(delivery, attempt)]).await?;
        let (status, next) = match outcome {
            Outcome::Succeeded => (DeliveryStatus::Succeeded, None),
            Outcome::RetryAt(at) => (DeliveryStatus::Pending, Some(to_micros(at))),
            Outcome::Failed => (DeliveryStatus::Failed, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
             locked_until = NULL, updated_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(next)
        .bind(to_micros(now))
        .bind(delivery.id.to_string())
        .execute(&mut *tx)
        .await?;
        let mut disabled = None;
        if attempt.succeeded {
            // Conditional, so a healthy endpoint's row is not rewritten (and locked)
            // by every delivery: concurrent completions would queue on that lock.
            sqlx::query(
                "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(delivery.webhook_id.to_string())
            .execute(&mut *tx)
            .await?;
        } else {
            let since: Option<i64> = sqlx::query(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2 \
                 AND enabled = 1 RETURNING failing_since",
            )
            .bind(to_micros(attempt.attempted_at))
            .bind(delivery.webhook_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<i64, _>("failing_since"))
            .transpose()?;
            if let Some(since) = since {
                let since = from_micros(since)?;
                if now - since >= disable_after {
                    let reason = format!(
                        "every delivery attempt failed from {} to {}",
                        since.to_rfc3339(),
                        now.to_rfc3339()
                    );
                    sqlx::query(
                        "UPDATE webhooks SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(reason)
                    .bind(to_micros(now))
                    .bind(delivery.webhook_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                    let event = Event::new(
                        delivery.project_id,
                        now,
                        EventPayload::WebhookDisabled {
                            webhook_id: delivery.webhook_id.to_string(),
                        },
                    );
                    disabled = Some(crate::events::append(&mut tx, event).await?);
                }
            }
        }
        tx.commit().await?;
        if let Some(event) = &disabled {
            self.0.publish_committed(std::slice::from_ref(event)).await;
        }
        Ok(disabled)
    }
}
