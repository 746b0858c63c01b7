//! A project's overview: rooms and participants live now, participant-minutes
//! today and this billing period against the plan's allowance, and a chart
//! of participant-minutes per day over the last 30 days (an SVG drawn here).

use axum::extract::{Path, State};
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use switchboard_core::usage::{Meter, Period};

use super::usage::start_of_day;
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Days in the chart.
const DAYS: usize = 30;
/// Microseconds in a minute (participant meters count microseconds).
const MINUTE_US: f64 = 60_000_000.0;

/// Participant usage: closed sessions from the hourly ledger, open ones up to now.
struct Usage {
    today: i64,
    /// This period, per participant meter.
    period: [(Meter, i64); 2],
    /// Per day, oldest first, ending today.
    days: [i64; DAYS],
    first_day: DateTime<Utc>,
}

const METERS: [Meter; 2] = [
    Meter::ParticipantMinutesAudio,
    Meter::ParticipantMinutesVideo,
];

/// `GET /dashboard/projects/{project}`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let now = d.clock.now();
    let rooms = super::rooms::live_rooms(&d, &project).await?;
    let participants: u64 = rooms.iter().map(|r| u64::from(r.num_participants)).sum();

    let today = start_of_day(now);
    let first_day = today - Duration::days(DAYS as i64 - 1);
    let period = Period::containing(now);
    let from = first_day.min(period.start());
    let report = d
        .store
        .usage()
        .report(project.id, from, now, None, 0)
        .await?;
    let mut usage = Usage {
        today: 0,
        period: METERS.map(|m| (m, 0)),
        days: [0; DAYS],
        first_day,
    };
    let hours = report
        .hourly
        .iter()
        .map(|h| (h.meter, h.hour, h.quantity))
        .chain(
            report
                .open_usage(from, now, now)
                .into_iter()
                .map(|o| (o.meter, o.hour, o.quantity)),
        );
    for (meter, hour, quantity) in hours.filter(|(m, _, _)| METERS.contains(m)) {
        // Hours of the period before the chart's first day are not in the chart.
        if hour >= first_day {
            if let Ok(i) = usize::try_from((hour - first_day).num_days()) {
                if let Some(day) = usage.days.get_mut(i) {
                    *day += quantity;
                }
            }
        }
        if hour >= today {
            usage.today += quantity;
        }
        if hour >= period.start() {
            for (m, q) in &mut usage.period {
                if *m == meter {
                    *q += quantity;
                }
            }
        }
    }
    let plan = d.store.usage().plan(project.id).await?;
    let prices = d.plans.price_list(plan.as_deref(), period);
    let plan_name = prices.map_or("none", |p| p.name.as_str());

    let nav = Nav::new(&who, &project, Section::Overview);
    let body = html! {
        div.cards {
            div.card { p.value { (rooms.len()) } p.label { "rooms live now" } }
            div.card { p.value { (participants) } p.label { "participants live now" } }
            div.card { p.value { (minutes(usage.today)) } p.label { "participant-minutes today" } }
        }
        h2 { "This period (" (period) "), plan " (plan_name) }
        div.table-wrap tabindex="0" {
            table {
                thead { tr { th scope="col" { "Meter" } th scope="col" { "Used" } th scope="col" { "Included" } } }
                tbody {
                    @for (meter, used) in usage.period {
                        @let allowance = prices.and_then(|p| p.prices.get(&meter)).map(|p| p.allowance);
                        tr {
                            td { (meter.as_str()) }
                            td { (minutes(used)) " min" }
                            td { @match allowance { Some(a) => { (a) " min" }, None => { "no allowance" } } }
                        }
                    }
                }
            }
        }
        p { a href={ (layout::project_path(&project)) "/usage" } { "Usage per day and the invoice so far" } }
        h2 { "Participant-minutes per day, last " (DAYS) " days" }
        (chart(&usage))
    };
    Ok(layout::page("Overview", &nav, body))
}

fn minutes(us: i64) -> String {
    format!("{:.1}", us as f64 / MINUTE_US)
}

/// Bars of participant-minutes per day, with each day's figure as its tooltip.
fn chart(usage: &Usage) -> Markup {
    const BAR: f64 = 20.0;
    const GAP: f64 = 4.0;
    const HEIGHT: f64 = 160.0;
    const LABELS: f64 = 20.0;
    let max = usage.days.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = DAYS as f64 * (BAR + GAP);
    let total: i64 = usage.days.iter().sum();
    html! {
        svg.chart viewBox={ "0 0 " (width) " " (HEIGHT + LABELS) } role="img"
            aria-label={ "Participant-minutes per day over the last " (DAYS) " days: " (minutes(total)) " in all" } {
            @for (i, q) in usage.days.iter().enumerate() {
                @let day = usage.first_day + Duration::days(i as i64);
                @let h = (*q as f64 / max * HEIGHT).max(if *q > 0 { 1.0 } else { 0.0 });
                @let x = i as f64 * (BAR + GAP);
                rect.bar x=(x) y=(HEIGHT - h) width=(BAR) height=(h) {
                    title { (day.format("%Y-%m-%d")) ": " (minutes(*q)) " min" }
                }
                @if i % 5 == 0 || i == DAYS - 1 {
                    text x=(x) y=(HEIGHT + 14.0) { (day.format("%m-%d")) }
                }
            }
        }
    }
}
