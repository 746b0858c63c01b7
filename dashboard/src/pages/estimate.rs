//! The cost estimator: a month of calls described in a few numbers, priced
//! on the project's plan with the invoice arithmetic, and the same month
//! counted in the units other platforms bill by (participant-minutes,
//! subscribed track-minutes, gigabytes delivered), so that the step from
//! `n` people to `n(n-1)` subscriptions shows.

use axum::extract::{Path, Query, State};
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;
use switchboard_core::estimate::{Estimate, OtherPrices, Pattern};
use switchboard_core::usage::Period;

use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::pages::usage::{invoice_table, money};
use crate::session::SignedIn;
use crate::Dashboard;

/// The form's fields, as typed; any may be missing or wrong.
#[derive(Debug, Default, Deserialize)]
pub struct EstimateQuery {
    calls_per_day: Option<String>,
    days: Option<String>,
    participants: Option<String>,
    minutes: Option<String>,
    video_percent: Option<String>,
    recorded_percent: Option<String>,
    function_runs_per_call: Option<String>,
    function_ms_per_run: Option<String>,
    audio_kbps: Option<String>,
    video_kbps: Option<String>,
    participant_minute_cents: Option<String>,
    track_minute_cents: Option<String>,
    gigabyte_cents: Option<String>,
}

/// Example prices in the other units, for a first comparison; owners put
/// in the ones they are weighing.
const EXAMPLE_PRICES: [(&str, &str); 3] = [
    ("participant_minute_cents", "0.4"),
    ("track_minute_cents", "0.1"),
    ("gigabyte_cents", "12"),
];

/// One number field of the form: its name, label, and the pattern's value.
struct Field {
    name: &'static str,
    label: &'static str,
    value: String,
}

/// `value` as a whole number for `label`, or the pattern's default.
fn whole(value: Option<&str>, label: &str, default: u32) -> Result<u32, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            format!(
                "{label}: write a whole number such as {default}, not “{}”.",
                clip(v)
            )
        }),
    }
}

/// `value` as a price in cents for `label`, or `default`.
fn cents(value: Option<&str>, label: &str, default: &str) -> Result<Decimal, String> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default);
    match v.parse::<Decimal>() {
        Ok(d) if !d.is_sign_negative() && d.scale() <= 4 => Ok(d),
        _ => Err(format!(
            "{label}: write cents as a number with at most 4 decimals, such as {default}, not “{}”.",
            clip(v)
        )),
    }
}

/// At most 40 characters of what a user typed, to quote it back.
fn clip(v: &str) -> String {
    v.chars().take(40).collect()
}

impl EstimateQuery {
    /// The pattern and the other prices the form describes, or what is wrong with it.
    fn read(&self) -> Result<(Pattern, OtherPrices), Vec<String>> {
        let d = Pattern::default();
        let mut errors = Vec::new();
        let mut num = |v: &Option<String>, label, default| {
            whole(v.as_deref(), label, default).unwrap_or_else(|e| {
                errors.push(e);
                default
            })
        };
        let pattern = Pattern {
            calls_per_day: num(&self.calls_per_day, "Calls a day", d.calls_per_day),
            days: num(&self.days, "Days in the month", d.days),
            participants: num(&self.participants, "People in a call", d.participants),
            minutes: num(&self.minutes, "Minutes a call", d.minutes),
            video_percent: num(&self.video_percent, "Calls with video", d.video_percent),
            recorded_percent: num(&self.recorded_percent, "Calls recorded", d.recorded_percent),
            function_runs_per_call: num(
                &self.function_runs_per_call,
                "Function runs a call",
                d.function_runs_per_call,
            ),
            function_ms_per_run: num(
                &self.function_ms_per_run,
                "Milliseconds a run",
                d.function_ms_per_run,
            ),
            audio_kbps: num(&self.audio_kbps, "Audio bitrate", d.audio_kbps),
            video_kbps: num(&self.video_kbps, "Video bitrate", d.video_kbps),
        };
        let mut price = |v: &Option<String>, label, i: usize| {
            cents(v.as_deref(), label, EXAMPLE_PRICES[i].1).unwrap_or_else(|e| {
                errors.push(e);
                Decimal::ZERO
            })
        };
        let other = OtherPrices {
            participant_minute_cents: price(
                &self.participant_minute_cents,
                "Per participant-minute",
                0,
            ),
            track_minute_cents: price(&self.track_minute_cents, "Per track-minute", 1),
            gigabyte_cents: price(&self.gigabyte_cents, "Per gigabyte", 2),
        };
        if let Err(e) = pattern.validate() {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            Ok((pattern, other))
        } else {
            Err(errors)
        }
    }
}

/// `GET /dashboard/projects/{project}/usage/estimate[?calls_per_day=..&..]`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    Query(q): Query<EstimateQuery>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let period = Period::containing(d.clock.now());
    let plan = d.store.usage().plan(project.id).await?;
    let plan_name = plan.as_deref().unwrap_or(&d.plans.default_plan).to_owned();
    let list = d.plans.price_list(plan.as_deref(), period).ok_or_else(|| {
        PageError::Refused(format!("Plan {plan_name} has no prices for {period}."))
    })?;
    let currency = d.stripe_currency.as_deref().unwrap_or("usd").to_uppercase();
    let read = q.read();
    let estimate: Result<Estimate, Vec<String>> = read
        .clone()
        .and_then(|(p, o)| p.estimate(list, &o).map_err(|e| vec![e.to_string()]));
    let shown = read.map(|(p, _)| p).unwrap_or_default();
    let fields = [
        (
            "calls_per_day",
            "Calls a day",
            &q.calls_per_day,
            shown.calls_per_day,
        ),
        ("days", "Days in the month", &q.days, shown.days),
        (
            "participants",
            "People in a call",
            &q.participants,
            shown.participants,
        ),
        ("minutes", "Minutes a call", &q.minutes, shown.minutes),
        (
            "video_percent",
            "Calls with video (%)",
            &q.video_percent,
            shown.video_percent,
        ),
        (
            "recorded_percent",
            "Calls recorded (%)",
            &q.recorded_percent,
            shown.recorded_percent,
        ),
        (
            "function_runs_per_call",
            "Function runs a call",
            &q.function_runs_per_call,
            shown.function_runs_per_call,
        ),
        (
            "function_ms_per_run",
            "Milliseconds a run",
            &q.function_ms_per_run,
            shown.function_ms_per_run,
        ),
        (
            "audio_kbps",
            "Audio bitrate (kbit/s)",
            &q.audio_kbps,
            shown.audio_kbps,
        ),
        (
            "video_kbps",
            "Video bitrate (kbit/s)",
            &q.video_kbps,
            shown.video_kbps,
        ),
    ]
    .map(|(name, label, typed, value)| Field {
        name,
        label,
        // What the owner typed stays in the form, right or wrong.
        value: typed.clone().unwrap_or_else(|| value.to_string()),
    });
    let typed_prices = [
        &q.participant_minute_cents,
        &q.track_minute_cents,
        &q.gigabyte_cents,
    ];
    let price_labels = [
        "¢ per participant-minute",
        "¢ per subscribed track-minute",
        "¢ per gigabyte delivered",
    ];

    let nav = Nav::new(&who, &project, Section::Usage);
    let body = html! {
        p { "Describe a month of calls. It is priced on plan " strong { (plan_name) } " as "
            (period) "'s invoice would price it, and counted in the units other platforms bill by." }
        @match &estimate {
            Err(errors) => {
                div.error role="alert" #estimate-errors {
                    p { "The estimate needs these fixed:" }
                    ul { @for e in errors { li { (e) } } }
                }
            }
            Ok(e) => {
                h2 { "On your plan: " span #estimate-total { (money(e.invoice.total_cents, &currency)) } " a month" }
                (invoice_table(&e.invoice, &currency))
                h2 { "The same month in other units" }
                p.muted { "Participant-minutes grow with the people in a call; each person receives every other one's "
                    "tracks, so subscriptions and bytes grow with the pairs of them: " (shown.participants) " people make "
                    (u64::from(shown.participants) * u64::from(shown.participants.saturating_sub(1))) " subscriptions." }
                div.table-wrap tabindex="0" {
                    table #other-units {
                        thead { tr {
                            th scope="col" { "Unit" } th scope="col" { "Quantity" }
                            th scope="col" { "Price" } th scope="col" { "Cost" }
                        } }
                        tbody {
                            @for (unit, other) in [
                                ("Participant-minutes", &e.participant_minutes),
                                ("Subscribed track-minutes", &e.track_minutes),
                                ("Gigabytes delivered", &e.gigabytes),
                            ] {
                                tr {
                                    th scope="row" { (unit) }
                                    td { (other.quantity) }
                                    td { (other.price_cents) " ¢" }
                                    td { (money(other.cost_cents, &currency)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Change the month" }
        form #estimate method="get" {
            fieldset {
                legend { "Calls" }
                div.fields {
                @for f in &fields {
                    p {
                        label for=(f.name) { (f.label) }
                        input id=(f.name) type="text" inputmode="numeric" name=(f.name) value=(f.value) size="10";
                    }
                }
                }
            }
            fieldset {
                legend { "Prices to compare with (example rates; enter the ones you are weighing)" }
                div.fields {
                @for (i, (name, example)) in EXAMPLE_PRICES.iter().enumerate() {
                    p {
                        label for=(name) { (price_labels[i]) }
                        input id=(name) type="text" inputmode="decimal" name=(name)
                            value=(typed_prices[i].clone().unwrap_or_else(|| (*example).to_owned())) size="10";
                    }
                }
                }
            }
            button type="submit" { "Estimate" }
        }
    };
    Ok(layout::page("Cost estimate", &nav, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_in_the_form_is_named_and_quoted_back() {
        let q = EstimateQuery {
            participants: Some("many".into()),
            days: Some("45".into()),
            gigabyte_cents: Some("-3".into()),
            ..EstimateQuery::default()
        };
        let errors = q.read().unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("People in a call") && errors[0].contains("“many”"));
        assert!(errors[1].contains("Per gigabyte"));
        assert!(errors[2].contains("days must be from 1 to 31"));
    }

    #[test]
    fn an_empty_form_is_the_default_pattern() {
        let (pattern, other) = EstimateQuery::default().read().unwrap();
        assert_eq!(pattern, Pattern::default());
        assert_eq!(other.gigabyte_cents, Decimal::from(12));
    }
}
