//! Stripe's side of billing: which customer and subscription each project is
//! linked to, the usage reports sent to Stripe, the Stripe events received,
//! and the suspension those events put a project under.
//!
//! A report row is written before its call to Stripe with the quantity it
//! carries, so a retry after a failure or a restart sends the same quantity
//! under the same idempotency key; the next window reports only what the
//! rows do not already hold.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use switchboard_core::ProjectId;

use crate::error::corrupt;
use crate::time::{from_micros, to_micros};
use crate::{Store, StoreError};

/// A project's Stripe customer and subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The project.
    pub project: ProjectId,
    /// The Stripe customer (`cus_...`).
    pub customer_id: String,
    /// The subscription (`sub_...`), once created or given.
    pub subscription_id: Option<String>,
    /// How many subscriptions of the project were forgotten after a cancellation.
    pub generation: i64,
}

/// How a report reaches Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// An invoice item on the customer's next invoice.
    InvoiceItem,
    /// A Billing Meter event.
    MeterEvent,
}

impl ReportKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvoiceItem => "invoice_item",
            Self::MeterEvent => "meter_event",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "invoice_item" => Ok(Self::InvoiceItem),
            "meter_event" => Ok(Self::MeterEvent),
            other => Err(corrupt(format!("unknown Stripe report kind `{other}`"))),
        }
    }
}

/// Where a report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStatus {
    /// Not yet acknowledged by Stripe; retried from `next_attempt_at`.
    Pending,
    /// Stripe acknowledged it.
    Sent,
    /// The window added nothing, so nothing was sent.
    Empty,
}

impl ReportStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Empty => "empty",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "empty" => Ok(Self::Empty),
            other => Err(corrupt(format!("unknown Stripe report status `{other}`"))),
        }
    }
}

/// What one report adds for one meter (or the minimum) in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    /// A meter name, or `minimum`.
    pub meter: String,
    /// How it reaches Stripe.
    pub kind: ReportKind,
    /// Billed units added.
    pub quantity: i64,
    /// Cents added.
    pub amount_cents: i64,
}

/// One usage report to Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The project.
    pub project: ProjectId,
    /// A meter name, or `minimum`.
    pub meter: String,
    /// The billing period, `YYYY-MM`.
    pub period: String,
    /// The end of the window the report covers usage up to.
    pub window_end: DateTime<Utc>,
    /// Billed units added.
    pub quantity: i64,
    /// Cents added.
    pub amount_cents: i64,
    /// How it reaches Stripe.
    pub kind: ReportKind,
    /// Where it stands.
    pub status: ReportStatus,
    /// Calls made so far.
    pub attempts: i64,
    /// Why the last call failed.
    pub last_error: Option<String>,
    /// When it is tried next, while pending.
    pub next_attempt_at: DateTime<Utc>,
    /// The Stripe object it created.
    pub stripe_id: Option<String>,
    /// When it was planned.
    pub created_at: DateTime<Utc>,
    /// When Stripe acknowledged it.
    pub sent_at: Option<DateTime<Utc>>,
}

impl Report {
    /// The idempotency key of the report's call: the same for every retry,
    /// different for every (project, meter, period, window).
    pub fn idempotency_key(&self) -> String {
        format!(
            "switchboard:{}:{}:{}:{}",
            self.project,
            self.meter,
            self.period,
            self.window_end.timestamp()
        )
    }
}

/// What a Stripe event does to its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    /// Suspend with this reason.
    Suspend(String),
    /// Lift a suspension that has this reason (and no other).
    Resume(String),
    /// Record it only.
    Ignore,
}

/// What applying a Stripe event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The project was suspended.
    Suspended,
    /// The project's suspension was lifted.
    Resumed,
    /// Nothing changed (not an event that acts, or nothing to lift).
    Ignored,
    /// The project already saw a newer event; this one changed nothing.
    Stale,
    /// No project is linked to the event's customer.
    UnknownCustomer,
    /// This event id was received before; nothing was done again.
    Duplicate,
}

impl EventOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspended => "suspended",
            Self::Resumed => "resumed",
            Self::Ignored => "ignored",
            Self::Stale => "stale",
            Self::UnknownCustomer => "unknown_customer",
            Self::Duplicate => "duplicate",
        }
    }
}

/// A Stripe event as received.
#[derive(Debug, Clone)]
pub struct ReceivedEvent<'a> {
    /// Stripe's event id (`evt_...`).
    pub id: &'a str,
    /// Its type (`invoice.paid`, ...).
    pub kind: &'a str,
    /// The customer it concerns, if any.
    pub customer: Option<&'a str>,
    /// When Stripe created it (seconds, as Stripe sends it).
    pub created: i64,
    /// The raw body.
    pub payload: &'a str,
}

/// The Stripe tables.
pub struct Stripe<'a>(&'a Store);

impl Store {
    /// The Stripe tables.
    pub fn stripe(&self) -> Stripe<'_> {
        Stripe(self)
    }
}

const REPORT_COLUMNS: &str =
    "project_id, meter, period, window_end, quantity, amount_cents, kind, status, \
     attempts, last_error, next_attempt_at, stripe_id, created_at, sent_at";

fn decode_report(r: &AnyRow) -> Result<Report, StoreError> {
    let project: String = r.try_get("project_id")?;
    Ok(Report {
        project: project.parse().map_err(corrupt)?,
        meter: r.try_get("meter")?,
        period: r.try_get("period")?,
        window_end: from_micros(r.try_get("window_end")?)?,
        quantity: r.try_get("quantity")?,
        amount_cents: r.try_get("amount_cents")?,
        kind: ReportKind::parse(&r.try_get::<String, _>("kind")?)?,
        status: ReportStatus::parse(&r.try_get::<String, _>("status")?)?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_attempt_at: from_micros(r.try_get("next_attempt_at")?)?,
        stripe_id: r.try_get("stripe_id")?,
        created_at: from_micros(r.try_get("created_at")?)?,
        sent_at: r
            .try_get::<Option<i64>, _>("sent_at")?
            .map(from_micros)
            .transpose()?,
    })
}

fn decode_link(r: &AnyRow) -> Result<Link, StoreError> {
    let project: String = r.try_get("project_id")?;
    Ok(Link {
        project: project.parse().map_err(corrupt)?,
        customer_id: r.try_get("customer_id")?,
        subscription_id: r.try_get("subscription_id")?,
        generation: r.try_get("generation")?,
    })
}

impl Stripe<'_> {
    /// Links `project` to `customer_id` (and `subscription_id`, if given),
    /// replacing an earlier link; linking the same customer again keeps its
    /// subscription. False if there is no such project.
    pub async fn link(
        &self,
        project: ProjectId,
        customer_id: &str,
        subscription_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let exists = sqlx::query("SELECT 1 FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(self.0.writer())
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO stripe_customers (project_id, customer_id, subscription_id, linked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (project_id) DO UPDATE \
             SET subscription_id = CASE WHEN stripe_customers.customer_id = excluded.customer_id \
                     THEN COALESCE(excluded.subscription_id, stripe_customers.subscription_id) \
                     ELSE excluded.subscription_id END, \
                 customer_id = excluded.customer_id, linked_at = excluded.linked_at",
        )
        .bind(project.to_string())
        .bind(customer_id)
        .bind(subscription_id)
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::Conflict(format!(
                    "Stripe customer {customer_id} is already linked to another project"
                ))
            } else {
                e.into()
            }
        })?;
        Ok(true)
    }

    /// The link of `project`, if it has one.
    pub async fn link_of(&self, project: ProjectId) -> Result<Option<Link>, StoreError> {
        sqlx::query(
            "SELECT project_id, customer_id, subscription_id, generation FROM stripe_customers WHERE project_id = $1",
        )
        .bind(project.to_string())
        .fetch_optional(self.0.reader())
        .await?
        .as_ref()
        .map(decode_link)
        .transpose()
    }

    /// The link of the project whose customer is `customer_id`, if any.
    pub async fn link_of_customer(&self, customer_id: &str) -> Result<Option<Link>, StoreError> {
        sqlx::query(
            "SELECT project_id, customer_id, subscription_id, generation FROM stripe_customers WHERE customer_id = $1",
        )
        .bind(customer_id)
        .fetch_optional(self.0.reader())
        .await?
        .as_ref()
        .map(decode_link)
        .transpose()
    }

    /// Every link.
    pub async fn links(&self) -> Result<Vec<Link>, StoreError> {
        sqlx::query("SELECT project_id, customer_id, subscription_id, generation FROM stripe_customers ORDER BY project_id")
            .fetch_all(self.0.reader())
            .await?
            .iter()
            .map(decode_link)
            .collect()
    }

    /// Projects with no Stripe customer yet, with their names.
    pub async fn unlinked(&self) -> Result<Vec<(ProjectId, String)>, StoreError> {
        sqlx::query(
            "SELECT p.id, p.name FROM projects p LEFT JOIN stripe_customers s ON s.project_id = p.id \
             WHERE s.project_id IS NULL ORDER BY p.id",
        )
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            Ok((id.parse().map_err(corrupt)?, r.try_get("name")?))
        })
        .collect()
    }

    /// Links `project` to the customer the server just created for it,
    /// unless the project was linked meanwhile (an operator's
    /// `link-stripe`, which must not be undone); false if it was.
    pub async fn link_created(
        &self,
        project: ProjectId,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO stripe_customers (project_id, customer_id, subscription_id, linked_at) \
             VALUES ($1, $2, NULL, $3) ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project.to_string())
        .bind(customer_id)
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the subscription created for `link`, if the project is still
    /// linked as it was (same customer, same generation, no subscription);
    /// false if the link changed while the subscription was being made, so
    /// the subscription belongs to no project's customer.
    pub async fn set_subscription(
        &self,
        link: &Link,
        subscription_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE stripe_customers SET subscription_id = $1 WHERE project_id = $2 \
             AND customer_id = $3 AND generation = $4 AND subscription_id IS NULL",
        )
        .bind(subscription_id)
        .bind(link.project.to_string())
        .bind(&link.customer_id)
        .bind(link.generation)
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets the subscription of `project` (it was cancelled), so a new one is created.
    pub async fn forget_subscription(&self, project: ProjectId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE stripe_customers SET subscription_id = NULL, generation = generation + 1 WHERE project_id = $1",
        )
            .bind(project.to_string())
            .execute(self.0.writer())
            .await?;
        Ok(())
    }

    /// Whether any report of `project` for `period` covers `window_end`.
    pub async fn has_window(
        &self,
        project: ProjectId,
        period: &str,
        window_end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM stripe_reports WHERE project_id = $1 AND period = $2 AND window_end = $3",
        )
        .bind(project.to_string())
        .bind(period)
        .bind(to_micros(window_end))
        .fetch_optional(self.0.reader())
        .await?
        .is_some())
    }

    /// Every report of `project` for `period`, oldest window first.
    pub async fn reports_of_period(
        &self,
        project: ProjectId,
        period: &str,
    ) -> Result<Vec<Report>, StoreError> {
        sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM stripe_reports WHERE project_id = $1 AND period = $2 \
             ORDER BY window_end, meter"
        ))
        .bind(project.to_string())
        .bind(period)
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(decode_report)
        .collect()
    }

    /// Records the reports of one window, before any is sent. Reports with
    /// nothing to add are stored as empty so the window counts as done. A
    /// window planned before (by another node, or before a crash) is kept
    /// as it was. Returns whether this call planned it.
    pub async fn plan_window(
        &self,
        project: ProjectId,
        period: &str,
        window_end: DateTime<Utc>,
        reports: &[NewReport],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let mut planned = false;
        for r in reports {
            let status = if r.quantity == 0 && r.amount_cents == 0 {
                ReportStatus::Empty
            } else {
                ReportStatus::Pending
            };
            let n = sqlx::query(
                "INSERT INTO stripe_reports (project_id, meter, period, window_end, quantity, amount_cents, \
                 kind, status, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (project_id, meter, period, window_end) DO NOTHING",
            )
            .bind(project.to_string())
            .bind(&r.meter)
            .bind(period)
            .bind(to_micros(window_end))
            .bind(r.quantity)
            .bind(r.amount_cents)
            .bind(r.kind.as_str())
            .bind(status.as_str())
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            planned |= n == 1;
        }
        tx.commit().await?;
        Ok(planned)
    }

    /// Pending reports due at `now`, oldest first.
    pub async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Report>, StoreError> {
        sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM stripe_reports WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, window_end LIMIT $2"
        ))
        .bind(to_micros(now))
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(decode_report)
        .collect()
    }

    /// Takes `report` for one sender until `until`: false if another sender
    /// (another node, the CLI) took it first or it is no longer pending.
    pub async fn claim(
        &self,
        report: &Report,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE stripe_reports SET next_attempt_at = $1 WHERE project_id = $2 AND meter = $3 \
             AND period = $4 AND window_end = $5 AND status = 'pending' AND next_attempt_at <= $6",
        )
        .bind(to_micros(until))
        .bind(report.project.to_string())
        .bind(&report.meter)
        .bind(&report.period)
        .bind(to_micros(report.window_end))
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records that Stripe acknowledged `report` with object `stripe_id`.
    pub async fn mark_sent(
        &self,
        report: &Report,
        stripe_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE stripe_reports SET status = 'sent', stripe_id = $1, sent_at = $2, attempts = attempts + 1, \
             last_error = NULL WHERE project_id = $3 AND meter = $4 AND period = $5 AND window_end = $6",
        )
        .bind(stripe_id)
        .bind(to_micros(now))
        .bind(report.project.to_string())
        .bind(&report.meter)
        .bind(&report.period)
        .bind(to_micros(report.window_end))
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Records that a call for `report` failed with `error`; it is retried at `retry_at`.
    pub async fn mark_failed(
        &self,
        report: &Report,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE stripe_reports SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE project_id = $3 AND meter = $4 AND period = $5 AND window_end = $6 AND status = 'pending'",
        )
        .bind(error)
        .bind(to_micros(retry_at))
        .bind(report.project.to_string())
        .bind(&report.meter)
        .bind(&report.period)
        .bind(to_micros(report.window_end))
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Up to `limit` reports of `project`, newest window first.
    pub async fn reports(&self, project: ProjectId, limit: u32) -> Result<Vec<Report>, StoreError> {
        sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM stripe_reports WHERE project_id = $1 \
             ORDER BY window_end DESC, meter LIMIT $2"
        ))
        .bind(project.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(decode_report)
        .collect()
    }

    /// Records a Stripe event and applies `action` to the project linked to
    /// its customer, in one transaction: an event id is acted on once, and an
    /// event older than the newest one applied to the project changes nothing.
    pub async fn apply_event(
        &self,
        event: &ReceivedEvent<'_>,
        action: EventAction,
        now: DateTime<Utc>,
    ) -> Result<EventOutcome, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let seen = sqlx::query("SELECT 1 FROM stripe_events WHERE id = $1")
            .bind(event.id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if seen {
            return Ok(EventOutcome::Duplicate);
        }
        let link = match event.customer {
            Some(customer) => sqlx::query(
                "SELECT project_id, last_event_at FROM stripe_customers WHERE customer_id = $1",
            )
            .bind(customer)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| -> Result<(String, i64), StoreError> {
                Ok((r.try_get("project_id")?, r.try_get("last_event_at")?))
            })
            .transpose()?,
            None => None,
        };
        let outcome = match (&link, action) {
            (None, _) => EventOutcome::UnknownCustomer,
            (Some(_), EventAction::Ignore) => EventOutcome::Ignored,
            (Some((_, last)), _) if event.created < *last => EventOutcome::Stale,
            (Some((project, _)), EventAction::Suspend(reason)) => {
                sqlx::query(
                    "UPDATE projects SET suspended_reason = $1, suspended_at = $2 WHERE id = $3",
                )
                .bind(reason)
                .bind(to_micros(now))
                .bind(project)
                .execute(&mut *tx)
                .await?;
                EventOutcome::Suspended
            }
            (Some((project, _)), EventAction::Resume(reason)) => {
                let n = sqlx::query(
                    "UPDATE projects SET suspended_reason = NULL, suspended_at = NULL \
                     WHERE id = $1 AND suspended_reason = $2",
                )
                .bind(project)
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    EventOutcome::Resumed
                } else {
                    EventOutcome::Ignored
                }
            }
        };
        if let Some((project, _)) = &link {
            if matches!(outcome, EventOutcome::Suspended | EventOutcome::Resumed) {
                sqlx::query("UPDATE stripe_customers SET last_event_at = $1 WHERE project_id = $2")
                    .bind(event.created)
                    .bind(project)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO stripe_events (id, type, project_id, created, received_at, outcome, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(event.id)
        .bind(event.kind)
        .bind(link.as_ref().map(|(p, _)| p.clone()))
        .bind(event.created)
        .bind(to_micros(now))
        .bind(outcome.as_str())
        .bind(event.payload)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }
}
