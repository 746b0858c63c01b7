//! A project's usage and billing: every meter per day of a billing period,
//! the period's invoice as it stands (open sessions counted up to now), and
//! where the project stands with Stripe: its customer and subscription, a
//! suspension, and the usage reports sent or still being retried.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use switchboard_core::billing::{invoice, Invoice};
use switchboard_core::usage::{Meter, Period};
use switchboard_store::stripe::Report as StripeReport;
use switchboard_store::usage::{NodeShare, Report};

use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Stripe usage reports listed.
const REPORTS: u32 = 20;

/// The page's query.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// The billing period, `YYYY-MM` (default: the current one).
    period: Option<String>,
}

impl UsageQuery {
    /// The period asked for (the current one when none was), if it has started by `now`.
    pub fn period(&self, now: DateTime<Utc>) -> Result<Period, PageError> {
        let current = Period::containing(now);
        let period = match self.period.as_deref().filter(|p| !p.is_empty()) {
            None => current,
            Some(p) => p.parse::<Period>().map_err(|_| {
                PageError::Refused(format!(
                    "That is not a billing period: write it as year and month, such as {current}."
                ))
            })?,
        };
        if period.start() > now {
            return Err(PageError::Refused(format!(
                "{period} has not started yet; the latest period is {current}."
            )));
        }
        Ok(period)
    }
}

/// `report`'s usage in `period` per UTC day and meter, open sessions
/// counted up to `now`.
pub fn per_day(
    report: &Report,
    period: Period,
    now: DateTime<Utc>,
) -> BTreeMap<DateTime<Utc>, BTreeMap<Meter, i64>> {
    let (start, end) = (period.start(), period.end());
    let open = report.open_usage(start, end, now);
    let hours = report
        .hourly
        .iter()
        .map(|h| (h.hour, h.meter, h.quantity))
        .chain(open.iter().map(|o| (o.hour, o.meter, o.quantity)));
    let mut days: BTreeMap<DateTime<Utc>, BTreeMap<Meter, i64>> = BTreeMap::new();
    for (hour, meter, quantity) in hours {
        *days
            .entry(start_of_day(hour))
            .or_default()
            .entry(meter)
            .or_default() += quantity;
    }
    days
}

/// `amount` in a meter's internal unit, in its billed unit: minutes with a
/// decimal for time meters, a plain count otherwise.
pub fn quantity(meter: Meter, amount: i64) -> String {
    if meter.is_time() {
        let per = meter.units_per_billed() as f64;
        format!(
            "{:.1} {}",
            amount as f64 / per,
            unit_plural(meter.billed_unit())
        )
    } else {
        format!("{amount} {}", unit_plural(meter.billed_unit()))
    }
}

/// A meter's name for people, and its short form for column headers.
fn label(meter: Meter) -> (&'static str, &'static str) {
    match meter {
        Meter::ParticipantMinutesAudio => ("Participant-minutes, audio", "Audio"),
        Meter::ParticipantMinutesVideo => ("Participant-minutes, video", "Video"),
        Meter::RecordingMinutes => ("Recording minutes", "Recording"),
        Meter::FunctionInvocations => ("Function invocations", "Invocations"),
        Meter::FunctionCompute => ("Function compute time", "Compute"),
    }
}

/// `n` billed units: `1 minute`, `61 minutes`.
fn billed(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn unit_plural(unit: &str) -> String {
    match unit {
        "minute" => "min".into(),
        "second" => "s".into(),
        other => format!("{other}s"),
    }
}

/// Cents as money: `12.34 USD`.
pub(crate) fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", c / 100, c % 100)
}

/// The first instant of `t`'s UTC day.
pub fn start_of_day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(t, |d| d.and_utc())
}

/// `GET /dashboard/projects/{project}/usage[?period=YYYY-MM]`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let now = d.clock.now();
    let period = q.period(now)?;
    let (start, end) = (period.start(), period.end());
    let report = d
        .store
        .usage()
        .report(project.id, start, end, None, 0)
        .await?;
    let days = per_day(&report, period, now);
    let by_node = d
        .store
        .usage()
        .by_node(project.id, start, end.min(now), None)
        .await?;
    let totals = report.totals_with_open(start, end, now);
    let plan = d.store.usage().plan(project.id).await?;
    let preview = d
        .plans
        .price_list(plan.as_deref(), period)
        .map(|list| invoice(list, &totals));
    let currency = d.stripe_currency.as_deref().unwrap_or("usd").to_uppercase();

    let link = d.store.stripe().link_of(project.id).await?;
    let suspension = d.store.projects().suspension(project.id).await?;
    let reports = d.store.stripe().reports(project.id, REPORTS).await?;

    let last_day = start_of_day(now.min(end - Duration::seconds(1)));
    let mut day = start;
    let mut rows = Vec::new();
    while day <= last_day {
        rows.push(day);
        day += Duration::days(1);
    }
    rows.reverse();

    let nav = Nav::new(&who, &project, Section::Usage);
    let body = html! {
        form.inline method="get" {
            label for="period" { "Billing period" }
            " "
            input #period type="text" name="period" value=(period) pattern="[0-9]{4}-[0-9]{2}" size="8" inputmode="numeric";
            " "
            button type="submit" { "Show" }
        }
        @if let Some(s) = &suspension {
            p.error role="alert" { "New joins are refused since " (s.since.format("%Y-%m-%d %H:%M UTC"))
                ": " (s.reason) ". Settle the account with Stripe to lift it." }
        }
        h2 { "Invoice " (if now < end { "so far" } else { "of the period" }) }
        @match &preview {
            None => p { "Plan " code { (plan.as_deref().unwrap_or(&d.plans.default_plan)) } " has no prices for " (period) "." },
            Some(inv) => (invoice_table(inv, &currency)),
        }
        @if now < end { p.muted { "Open sessions are counted up to now; the invoice closes when the period ends on "
            (end.format("%Y-%m-%d")) "." } }
        @let base = format!("{}/usage", layout::project_path(&project));
        p {
            a href=(format!("{base}/days.csv?period={period}")) { "Usage per day (CSV)" } " · "
            a href=(format!("{base}/sessions.csv?period={period}")) { "Sessions (CSV)" } " · "
            a href=(format!("{base}/estimate")) { "Estimate what a month of calls would cost" }
        }
        h2 { "Where people connected from" }
        (by_node_table(&by_node))
        h2 { "Usage per day" }
        div.table-wrap tabindex="0" {
            table #usage-days {
                thead { tr {
                    th scope="col" { "Day (UTC)" }
                    @for m in Meter::ALL { th scope="col" title=(m.as_str()) { (label(m).1) } }
                } }
                tbody {
                    @for day in &rows {
                        @let used = days.get(day);
                        tr {
                            th scope="row" { (day.format("%Y-%m-%d")) }
                            @for m in Meter::ALL {
                                td { (quantity(m, used.and_then(|u| u.get(&m)).copied().unwrap_or(0))) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Stripe" }
        (stripe(&d, link.as_ref(), &reports, &currency))
    };
    Ok(layout::page("Usage and billing", &nav, body))
}

/// Where sessions were served: per media node and its region, the sessions,
/// the people, those still connected and the time billed.
pub(crate) fn by_node_table(shares: &[NodeShare]) -> Markup {
    html! {
        @if shares.is_empty() {
            p.muted { "No sessions." }
        } @else {
            div.table-wrap tabindex="0" {
                table #by-node {
                    thead { tr {
                        th scope="col" { "Region" } th scope="col" { "Media node" } th scope="col" { "Sessions" }
                        th scope="col" { "People" } th scope="col" { "Connected now" } th scope="col" { "Billed (ended sessions)" }
                    } }
                    tbody {
                        @for n in shares {
                            tr {
                                td { (n.region.as_deref().unwrap_or("unknown")) }
                                td { @match n.node_id { Some(id) => code { (id) }, None => "none recorded" } }
                                td { (n.sessions) }
                                td { (n.identities) }
                                td { (n.open) }
                                td { (quantity(Meter::ParticipantMinutesAudio, n.billed_us)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The lines of `inv`, its minimum and its total.
pub(crate) fn invoice_table(inv: &Invoice, currency: &str) -> Markup {
    html! {
        p { "Plan " strong { (inv.plan) } "." }
        div.table-wrap tabindex="0" {
            table #invoice {
                thead { tr {
                    th scope="col" { "Meter" } th scope="col" { "Used" } th scope="col" { "Billed" }
                    th scope="col" { "Included" } th scope="col" { "Beyond" } th scope="col" { "Unit price" }
                    th scope="col" { "Amount" }
                } }
                tbody {
                    @for l in &inv.lines {
                        tr {
                            th scope="row" { (label(l.meter).0) br; code.muted { (l.meter.as_str()) } }
                            td { (quantity(l.meter, l.usage)) }
                            td { (billed(l.quantity, &l.unit)) }
                            td { (l.allowance) }
                            td { (l.overage) }
                            td { (l.unit_price_cents) " ¢" }
                            td { (money(l.charge_cents, currency)) }
                        }
                    }
                }
                tfoot {
                    @if inv.minimum_top_up_cents > 0 {
                        tr { th scope="row" colspan="6" { "Up to the plan's minimum" } td { (money(inv.minimum_top_up_cents, currency)) } }
                    }
                    tr { th scope="row" colspan="6" { "Total" } td #invoice-total { (money(inv.total_cents, currency)) } }
                }
            }
        }
    }
}

fn stripe(
    d: &Dashboard,
    link: Option<&switchboard_store::stripe::Link>,
    reports: &[StripeReport],
    currency: &str,
) -> Markup {
    html! {
        @if d.stripe_currency.is_none() {
            p #stripe-state { "This server does not bill through Stripe; the invoice above is what usage would cost." }
        } @else {
            @match link {
                None => p #stripe-state { "Not linked to a Stripe customer yet: the project is linked, and its subscription made, when its first usage is reported." },
                Some(l) => p #stripe-state { "Linked to customer " code { (l.customer_id) }
                    @match &l.subscription_id {
                        Some(s) => { ", subscription " code { (s) } "." },
                        None => { ", no subscription yet." },
                    } },
            }
        }
        @if !reports.is_empty() {
            h3 { "Usage reports" }
            div.table-wrap tabindex="0" {
                table {
                    thead { tr {
                        th scope="col" { "Window end" } th scope="col" { "Meter" } th scope="col" { "Quantity" }
                        th scope="col" { "Amount" } th scope="col" { "Status" } th scope="col" { "Stripe object" }
                    } }
                    tbody {
                        @for r in reports {
                            tr.report {
                                td { (r.window_end.format("%Y-%m-%d %H:%M")) }
                                td { (r.meter) }
                                td { (r.quantity) }
                                td { (money(r.amount_cents, currency)) }
                                td {
                                    (r.status.as_str())
                                    @if let Some(e) = &r.last_error {
                                        br; span.error-text { "after " (r.attempts) " tries: " (e) }
                                    }
                                }
                                td { @if let Some(id) = &r.stripe_id { code { (id) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_money_read_in_billed_units() {
        assert_eq!(
            quantity(Meter::ParticipantMinutesVideo, 90_000_000),
            "1.5 min"
        );
        assert_eq!(quantity(Meter::FunctionInvocations, 3), "3 invocations");
        assert_eq!(billed(1, "minute"), "1 minute");
        assert_eq!(billed(2, "invocation"), "2 invocations");
        assert_eq!(money(1234, "USD"), "12.34 USD");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-250, "USD"), "-2.50 USD");
    }
}
