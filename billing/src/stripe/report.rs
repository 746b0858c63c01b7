//! Usage reports to Stripe.
//!
//! A report covers one meter of one project from the start of a billing
//! period to the end of a window. What it carries is the period's invoice up
//! to that window (rounded once, allowance applied, as
//! `GET /v1/billing/preview` shows it) less what earlier reports of the
//! period already carried, so the reports of a period always add up to its
//! invoice, however late usage arrives. Rows are stored before any call
//! ([`switchboard_store::stripe::Stripe::plan_window`]); [`send_due`] sends
//! them with an idempotency key derived from (project, meter, period,
//! window) and retries failures with backoff.
//!
//! - Invoice items: one window when a period closes (after every session
//!   begun in it has ended), plus the plan's minimum top-up.
//! - Meter events: one window an hour while the period runs, and the closing
//!   one; the minimum top-up still goes as an invoice item.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_billing::invoice_item::{CreateInvoiceItem, ListInvoiceItem};
use switchboard_core::billing::{invoice, Invoice, PlanBook};
use switchboard_core::usage::Period;
use switchboard_core::ProjectId;
use switchboard_store::stripe::{NewReport, Report, ReportKind};
use switchboard_store::Store;

use super::link::PROJECT_KEY;
use super::{id_of, Api, Config, Reporting, StripeError};

/// The report row of a plan's minimum top-up.
pub const MINIMUM: &str = "minimum";

/// The metadata key holding a report's idempotency key on its invoice item.
pub const REPORT_KEY: &str = "switchboard_report";

/// Reports sent per pass.
const BATCH: u32 = 100;

/// What one window adds to what `reported` already carries, for the
/// period's invoice so far. `closing` adds the minimum top-up.
pub fn window_reports(
    invoice: &Invoice,
    reported: &[Report],
    config: &Config,
    closing: bool,
) -> Vec<NewReport> {
    let sum = |meter: &str| -> (i64, i64) {
        reported
            .iter()
            .filter(|r| r.meter == meter)
            .fold((0, 0), |(q, a), r| (q + r.quantity, a + r.amount_cents))
    };
    let mut out = Vec::new();
    for line in &invoice.lines {
        let kind = match config.report {
            Reporting::InvoiceItems => ReportKind::InvoiceItem,
            Reporting::MeterEvents if config.meter_events.contains_key(&line.meter) => {
                ReportKind::MeterEvent
            }
            // An unpriced meter with no event name: nothing to bill.
            Reporting::MeterEvents => continue,
        };
        let (q, a) = sum(line.meter.as_str());
        out.push(NewReport {
            meter: line.meter.as_str().to_owned(),
            kind,
            // Usage only grows, so these are never negative unless the
            // plan was edited mid-period; Stripe cannot take a negative
            // meter event, and a credit is a decision for a person.
            quantity: (line.overage - q).max(0),
            amount_cents: (line.charge_cents - a).max(0),
        });
    }
    if closing {
        let (_, a) = sum(MINIMUM);
        let top_up = (invoice.minimum_top_up_cents - a).max(0);
        out.push(NewReport {
            meter: MINIMUM.to_owned(),
            kind: ReportKind::InvoiceItem,
            quantity: i64::from(top_up > 0),
            amount_cents: top_up,
        });
    }
    out
}

/// The period before `p`.
pub fn previous(p: Period) -> Period {
    Period::containing(p.start() - TimeDelta::microseconds(1))
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The invoice of `project` for `period`, from the ledger up to `until`.
async fn invoice_until(
    store: &Store,
    plans: &PlanBook,
    project: ProjectId,
    period: Period,
    until: DateTime<Utc>,
) -> Result<Option<Invoice>, StripeError> {
    let plan = store.usage().plan(project).await?;
    let Some(list) = plans.price_list(plan.as_deref(), period) else {
        return Ok(None);
    };
    let totals = store
        .usage()
        .totals(project, period.start(), until.min(period.end()))
        .await?;
    Ok(Some(invoice(list, &totals)))
}

/// A stretch of a period whose usage one set of reports carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The project.
    pub project: ProjectId,
    /// The billing period.
    pub period: Period,
    /// Usage up to here (from the period's start, less earlier windows).
    pub end: DateTime<Utc>,
    /// Whether it closes the period (and so carries the minimum top-up).
    pub closing: bool,
}

/// Plans `window`: the period's invoice up to its end less what was
/// reported. Plans nothing when that adds nothing. Returns whether it
/// planned the window.
pub async fn plan_window(
    store: &Store,
    plans: &PlanBook,
    config: &Config,
    window: Window,
    now: DateTime<Utc>,
) -> Result<bool, StripeError> {
    let Window {
        project,
        period,
        end: window_end,
        closing,
    } = window;
    let key = period.to_string();
    if store.stripe().has_window(project, &key, window_end).await? {
        return Ok(false);
    }
    let Some(invoice) = invoice_until(store, plans, project, period, window_end).await? else {
        return Ok(false);
    };
    let reported = store.stripe().reports_of_period(project, &key).await?;
    let reports = window_reports(&invoice, &reported, config, closing);
    if reports
        .iter()
        .all(|r| r.quantity == 0 && r.amount_cents == 0)
    {
        return Ok(false);
    }
    Ok(store
        .stripe()
        .plan_window(project, &key, window_end, &reports, now)
        .await?)
}

/// Plans every window due at `now` for every linked project: the close of
/// the previous period once every session begun in it has ended, and (for
/// meter events) the last full hour of the current one. Returns how many
/// windows were planned.
pub async fn plan_due(
    store: &Store,
    plans: &PlanBook,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<usize, StripeError> {
    let delay = TimeDelta::seconds(i64::try_from(config.close_delay_seconds).unwrap_or(i64::MAX));
    let current = Period::containing(now);
    let last = previous(current);
    let mut planned = 0;
    for link in store.stripe().links().await? {
        let project = link.project;
        // A project created this period has nothing (not even a minimum) to
        // pay for the last one.
        let existed = store
            .projects()
            .get(project)
            .await?
            .is_some_and(|p| p.created_at < last.end());
        if existed
            && now >= last.end() + delay
            && !store.usage().open_before(project, last.end()).await?
        {
            let window = Window {
                project,
                period: last,
                end: floor_hour(now),
                closing: true,
            };
            planned += usize::from(plan_window(store, plans, config, window, now).await?);
        }
        if config.report == Reporting::MeterEvents {
            let hour = floor_hour(now - delay);
            if hour > current.start() {
                let window = Window {
                    project,
                    period: current,
                    end: hour,
                    closing: false,
                };
                planned += usize::from(plan_window(store, plans, config, window, now).await?);
            }
        }
    }
    Ok(planned)
}

/// Plans a closing window of `period` ending `now` for `projects`: what an
/// operator runs to bill a period early (a customer leaving, a test). Later
/// windows of the period carry only what comes after it.
pub async fn settle(
    store: &Store,
    plans: &PlanBook,
    config: &Config,
    projects: &[ProjectId],
    period: Period,
    now: DateTime<Utc>,
) -> Result<usize, StripeError> {
    let window_end = now
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or(now)
        .min(period.end());
    let mut planned = 0;
    for &project in projects {
        let window = Window {
            project,
            period,
            end: window_end,
            closing: true,
        };
        planned += usize::from(plan_window(store, plans, config, window, now).await?);
    }
    Ok(planned)
}

/// What a pass of [`send_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Reports Stripe acknowledged.
    pub sent: usize,
    /// Reports whose call failed (they are retried later).
    pub failed: usize,
}

/// When a report that failed `attempts` times before is tried again:
/// `first` seconds, doubling, at most an hour.
pub fn retry_at(now: DateTime<Utc>, attempts: i64, first: u64) -> DateTime<Utc> {
    let secs = i64::try_from(first)
        .unwrap_or(3600)
        .saturating_mul(1i64 << attempts.clamp(0, 12))
        .min(3600);
    now + TimeDelta::seconds(secs)
}

/// Sends every pending report due at `now`.
pub async fn send_due(
    api: &Api,
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Sent, StripeError> {
    let mut out = Sent::default();
    for report in store.stripe().due(now, BATCH).await? {
        // Held for a while so another sender leaves it alone; a crash here
        // means a retry after the hold, under the same key.
        if !store
            .stripe()
            .claim(&report, now, now + TimeDelta::minutes(5))
            .await?
        {
            continue;
        }
        let span = tracing::info_span!("stripe_report", project_id = %report.project,
            meter = %report.meter, period = %report.period, window_end = %report.window_end);
        let _guard = span.enter();
        match send(api, store, config, &report, now).await {
            Ok(id) => {
                store.stripe().mark_sent(&report, &id, now).await?;
                out.sent += 1;
            }
            Err(StripeError::Store(e)) => return Err(e.into()),
            Err(e) => {
                let next = retry_at(now, report.attempts, config.retry_seconds);
                tracing::warn!(error = %e, attempts = report.attempts + 1, retry_at = %next,
                    "usage report to Stripe failed; it will be retried");
                store
                    .stripe()
                    .mark_failed(&report, &e.to_string(), next)
                    .await?;
                out.failed += 1;
            }
        }
    }
    Ok(out)
}

async fn send(
    api: &Api,
    store: &Store,
    config: &Config,
    report: &Report,
    now: DateTime<Utc>,
) -> Result<String, StripeError> {
    let customer = store
        .stripe()
        .link_of(report.project)
        .await?
        .ok_or(StripeError::Missing("customer of the project"))?
        .customer_id;
    match report.kind {
        ReportKind::InvoiceItem => send_invoice_item(api, config, report, &customer).await,
        ReportKind::MeterEvent => send_meter_event(api, config, report, &customer, now).await,
    }
}

/// Creates the report's invoice item, unless one carrying its key already
/// exists: an earlier try may have reached Stripe before its answer was
/// lost, and Stripe keeps idempotency keys for only a day.
async fn send_invoice_item(
    api: &Api,
    config: &Config,
    report: &Report,
    customer: &str,
) -> Result<String, StripeError> {
    let key = report.idempotency_key();
    let listed = api
        .get(&ListInvoiceItem::new().customer(customer).limit(100))
        .await?;
    let existing = listed
        .get("data")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .find(|item| {
            item.pointer(&format!("/metadata/{REPORT_KEY}"))
                .and_then(|v| v.as_str())
                == Some(key.as_str())
        });
    if let Some(item) = existing {
        return id_of(item);
    }
    let description = if report.meter == MINIMUM {
        format!("Switchboard plan minimum, {}", report.period)
    } else {
        format!(
            "Switchboard {} beyond the allowance, {}: {}",
            report.meter, report.period, report.quantity
        )
    };
    let metadata = HashMap::from([
        (REPORT_KEY.to_owned(), key.clone()),
        (PROJECT_KEY.to_owned(), report.project.to_string()),
        ("meter".to_owned(), report.meter.clone()),
        ("period".to_owned(), report.period.clone()),
        ("quantity".to_owned(), report.quantity.to_string()),
    ]);
    let Ok(currency) = config.currency.parse::<stripe_types::Currency>();
    let req = CreateInvoiceItem::new()
        .customer(customer)
        .amount(report.amount_cents)
        .currency(currency)
        .description(description)
        .metadata(metadata);
    id_of(&api.call(&req, &key).await?)
}

/// Sends the report's Billing Meter event; Stripe deduplicates it by its
/// identifier, the report's key.
async fn send_meter_event(
    api: &Api,
    config: &Config,
    report: &Report,
    customer: &str,
    now: DateTime<Utc>,
) -> Result<String, StripeError> {
    let meter = report
        .meter
        .parse()
        .map_err(|_| StripeError::Missing("meter"))?;
    let event_name = config.meter_events.get(&meter).ok_or(StripeError::Missing(
        "event name of the meter in [stripe.meter_events]",
    ))?;
    let key = report.idempotency_key();
    let req = CreateBillingMeterEvent::new(
        event_name.clone(),
        HashMap::from([
            ("stripe_customer_id".to_owned(), customer.to_owned()),
            ("value".to_owned(), report.quantity.to_string()),
        ]),
    )
    .identifier(key.clone())
    .timestamp(meter_event_time(report, now));
    let answer = api.call(&req, &key).await?;
    Ok(answer
        .get("identifier")
        .and_then(|v| v.as_str())
        .unwrap_or(&key)
        .to_owned())
}

/// When a meter event says its usage happened: the last second of its
/// window inside its period, but no earlier than Stripe accepts (35 days).
pub fn meter_event_time(report: &Report, now: DateTime<Utc>) -> i64 {
    let period_end = report
        .period
        .parse::<Period>()
        .map(Period::end)
        .unwrap_or(report.window_end);
    let at = report.window_end.min(period_end) - TimeDelta::seconds(1);
    at.max(now - TimeDelta::days(34)).timestamp()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchboard_core::usage::Meter;
    use switchboard_store::stripe::ReportStatus;

    use super::*;

    const PLANS: &str = r#"
        [[plans]]
        name = "default"
        from = "2026-01"
        minimum_cents = "2500"
        prices.participant_minutes_video = { allowance = 100, unit_price_cents = "0.4" }
        prices.participant_minutes_audio = { allowance = 50, unit_price_cents = "0.1234" }
        prices.function_invocations = { unit_price_cents = "0.0001" }
    "#;

    fn plans() -> PlanBook {
        let b: PlanBook = toml::from_str(PLANS).unwrap();
        b.validate().unwrap();
        b
    }

    fn config(extra: &str) -> Config {
        toml::from_str(&format!("secret_key = \"sk_test_x\"\n{extra}")).unwrap()
    }

    /// The rows a planned window becomes once stored.
    fn stored(new: &[NewReport], window: i64) -> Vec<Report> {
        new.iter()
            .map(|n| Report {
                project: ProjectId::new(),
                meter: n.meter.clone(),
                period: "2026-11".into(),
                window_end: chrono::DateTime::from_timestamp(window, 0).unwrap(),
                quantity: n.quantity,
                amount_cents: n.amount_cents,
                kind: n.kind,
                status: ReportStatus::Pending,
                attempts: 0,
                last_error: None,
                next_attempt_at: chrono::DateTime::from_timestamp(window, 0).unwrap(),
                stripe_id: None,
                created_at: chrono::DateTime::from_timestamp(window, 0).unwrap(),
                sent_at: None,
            })
            .collect()
    }

    const MIN: i64 = 60_000_000;

    /// However usage grows between windows, the windows of a period add up
    /// to its invoice: overage per meter, charges, and the minimum top-up.
    #[test]
    fn windows_add_up_to_the_invoice() {
        let book = plans();
        let list = book.price_list(None, "2026-11".parse().unwrap()).unwrap();
        for reporting in ["invoice_items", "meter_events"] {
            let config = config(&format!(
                "report = \"{reporting}\"\n[meter_events]\nparticipant_minutes_video = \"video\"\n\
                 participant_minutes_audio = \"audio\"\nfunction_invocations = \"calls\"\n"
            ));
            let mut seed: u64 = 7;
            let mut next = |n: i64| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 33) as i64) % n
            };
            for case in 0..500 {
                let mut usage: BTreeMap<Meter, i64> = BTreeMap::new();
                let mut reported: Vec<Report> = Vec::new();
                let windows = 1 + next(6);
                for w in 0..windows {
                    // Some windows see no new usage at all.
                    if next(3) > 0 {
                        *usage.entry(Meter::ParticipantMinutesVideo).or_default() += next(80 * MIN);
                        *usage.entry(Meter::ParticipantMinutesAudio).or_default() += next(40 * MIN);
                        *usage.entry(Meter::FunctionInvocations).or_default() += next(30_000);
                    }
                    let closing = w == windows - 1;
                    let new = window_reports(&invoice(list, &usage), &reported, &config, closing);
                    assert!(
                        new.iter().all(|r| r.quantity >= 0 && r.amount_cents >= 0),
                        "case {case}"
                    );
                    reported.extend(stored(&new, w));
                }
                let inv = invoice(list, &usage);
                for line in &inv.lines {
                    let rows = reported.iter().filter(|r| r.meter == line.meter.as_str());
                    let (q, a) =
                        rows.fold((0, 0), |(q, a), r| (q + r.quantity, a + r.amount_cents));
                    assert_eq!(q, line.overage, "case {case} {reporting} {}", line.meter);
                    assert_eq!(
                        a, line.charge_cents,
                        "case {case} {reporting} {}",
                        line.meter
                    );
                }
                let top_up: i64 = reported
                    .iter()
                    .filter(|r| r.meter == MINIMUM)
                    .map(|r| r.amount_cents)
                    .sum();
                assert_eq!(top_up, inv.minimum_top_up_cents, "case {case}");
                let total: i64 = reported.iter().map(|r| r.amount_cents).sum();
                assert_eq!(total, inv.total_cents, "case {case}");
            }
        }
    }

    #[test]
    fn meter_events_carry_priced_meters_and_the_minimum_goes_as_an_invoice_item() {
        let book = plans();
        let list = book.price_list(None, "2026-11".parse().unwrap()).unwrap();
        let config = config(
            "report = \"meter_events\"\n[meter_events]\nparticipant_minutes_video = \"video\"\n",
        );
        let usage = BTreeMap::from([
            (Meter::ParticipantMinutesVideo, 130 * MIN + 1),
            (Meter::RecordingMinutes, 5 * MIN),
        ]);
        let new = window_reports(&invoice(list, &usage), &[], &config, true);
        let video = new
            .iter()
            .find(|r| r.meter == "participant_minutes_video")
            .unwrap();
        // 130 min + 1 µs rounds up once to 131; 100 are free.
        assert_eq!(
            (video.kind, video.quantity, video.amount_cents),
            (ReportKind::MeterEvent, 31, 12)
        );
        // Recording minutes are not priced and have no event name.
        assert!(new.iter().all(|r| r.meter != "recording_minutes"));
        let minimum = new.iter().find(|r| r.meter == MINIMUM).unwrap();
        assert_eq!(
            (minimum.kind, minimum.amount_cents),
            (ReportKind::InvoiceItem, 2500 - 12)
        );
        // Not closing: no minimum yet.
        let running = window_reports(&invoice(list, &usage), &[], &config, false);
        assert!(running.iter().all(|r| r.meter != MINIMUM));
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let waits: Vec<i64> = (0..10)
            .map(|n| (retry_at(now, n, 30) - now).num_seconds())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn meter_events_are_dated_inside_their_period_and_stripes_window() {
        let mut r = stored(
            &[NewReport {
                meter: "participant_minutes_video".into(),
                kind: ReportKind::MeterEvent,
                quantity: 1,
                amount_cents: 0,
            }],
            0,
        )
        .remove(0);
        let period: Period = "2026-11".parse().unwrap();
        // A closing window after the period ends is dated at its last second.
        r.window_end = period.end() + TimeDelta::hours(3);
        assert_eq!(
            meter_event_time(&r, r.window_end),
            period.end().timestamp() - 1
        );
        // An hourly window inside the period: the second before it ends.
        r.window_end = period.start() + TimeDelta::hours(5);
        assert_eq!(
            meter_event_time(&r, r.window_end),
            r.window_end.timestamp() - 1
        );
        // Stripe refuses events older than 35 days.
        let late = period.end() + TimeDelta::days(60);
        assert_eq!(
            meter_event_time(&r, late),
            (late - TimeDelta::days(34)).timestamp()
        );
    }

    #[test]
    fn config_errors_name_the_fix() {
        let book = plans();
        let err = |extra: &str| config(extra).validate(&book).unwrap_err().to_string();
        assert!(err("report = \"meter_events\"").contains("add `participant_minutes_audio = \""));
        assert!(err("currency = \"USD\"").contains("lower case"));
        assert!(err("api_base = \"not a url\"").contains("not a URL"));
        // An empty signing secret would let anyone sign a webhook that suspends a project.
        assert!(err("webhook_secret = \"\"").contains("webhook_secret"));
        assert!(err("webhook_secret = \"   \"").contains("webhook_secret"));
        assert!(err("[[subscription_items]]\nprice = \"p\"\nplan = \"q\"").contains("exactly one"));
        assert!(
            toml::from_str::<Config>("secret_key = \"k\"\nreport = \"usage_records\"").is_err()
        );
        config(
            "report = \"meter_events\"\n[meter_events]\nparticipant_minutes_video = \"v\"\n\
                participant_minutes_audio = \"a\"\nfunction_invocations = \"f\"",
        )
        .validate(&book)
        .unwrap();
    }
}
