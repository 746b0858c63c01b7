//! The call page of one participant session: who, when, and charts of its connection
//! every few seconds (bitrate both ways, packet loss, round trip), with the
//! stretches where its quality was poor or lost shaded, for the owner whose
//! customer says "the call was bad yesterday". While the participant is still
//! in the call, the charts follow it (a server-sent event stream).

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use maud::{html, Markup};
use switchboard_core::signal::ConnectionQuality;
use switchboard_core::usage::Meter;
use switchboard_core::ParticipantSid;
use switchboard_store::projects::Project;
use switchboard_store::quality::QualitySample;
use switchboard_store::usage::Session;

use super::human_duration;
use super::live::{updates, Frame};
use super::usage::quantity;
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Chart size in SVG units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 140.0;
const AXIS: f64 = 18.0;
/// How often the media node records a measure, so how often a live page looks.
const MEASURE_EVERY: std::time::Duration = std::time::Duration::from_secs(3);
/// Measures up to which each one is also drawn as a dot.
const DOTS: usize = 120;

/// One line of a chart: its CSS class, legend and values (none where
/// nothing was measured: the line has a gap there).
struct Line<'a> {
    class: &'a str,
    legend: &'a str,
    values: Vec<Option<f64>>,
}

/// Stretches of samples whose quality was poor or lost, as (first, last) indices.
fn drops(samples: &[QualitySample]) -> Vec<(usize, usize)> {
    let bad = |s: &QualitySample| {
        matches!(
            s.stats.quality,
            ConnectionQuality::Poor | ConnectionQuality::Lost
        )
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if !bad(s) {
            continue;
        }
        match out.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => out.push((i, i)),
        }
    }
    out
}

/// A line chart of `lines` over the samples' times, the drops shaded; the
/// time axis runs from the join over the session's `length` in seconds.
/// Each line's values are also in its `data-values`, for tests and scripts.
fn chart(
    id: &str,
    title: &str,
    unit: &str,
    (times, length): (&[f64], f64),
    lines: &[Line<'_>],
    drops: &[(usize, usize)],
) -> Markup {
    let span = times.last().copied().unwrap_or(0.0).max(length).max(1.0);
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten().copied())
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |t: f64| t / span * WIDTH;
    // A little room above the largest value, so its dot is not cut off.
    let y = |v: f64| HEIGHT - v / max * (HEIGHT - 6.0);
    let label = format!(
        "{title}, up to {max:.0} {unit}, over {}",
        human_duration(span as i64)
    );
    html! {
        figure {
            figcaption { (title) " (" (unit) ")" }
            svg.chart.line-chart id=(id) viewBox={ "0 0 " (WIDTH) " " (HEIGHT + AXIS) } role="img" aria-label=(label) {
                @for (first, last) in drops {
                    @let (a, b) = (x(times[*first] - 3.0), x(times[*last]));
                    rect.drop x=(a.max(0.0)) y="0" width=((b - a.max(0.0)).max(2.0)) height=(HEIGHT) {
                        title { "quality poor or lost" }
                    }
                }
                line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
                @for line in lines {
                    g class=(line.class) data-values=(values_attr(&line.values)) {
                        title { (line.legend) }
                        @for run in runs(times, &line.values) {
                            polyline fill="none" points=(points(&run, &x, &y)) {}
                            // Dots too while they are few enough to tell
                            // apart (and a single measure shows at all).
                            @if times.len() <= DOTS {
                                @for (t, v) in &run {
                                    circle cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v))) r="3" {}
                                }
                            }
                        }
                    }
                }
                text x="0" y=(HEIGHT + 14.0) { "0 s" }
                text x=(WIDTH) y=(HEIGHT + 14.0) text-anchor="end" { (human_duration(span as i64)) }
                text x="2" y="12" { (format!("{max:.0}")) }
            }
            p.legend { @for line in lines { span class=(line.class) { "■ " } (line.legend) " " } }
        }
    }
}

/// The values as text, `-` where nothing was measured.
fn values_attr(values: &[Option<f64>]) -> String {
    values
        .iter()
        .map(|v| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The measured stretches of a line: runs of (time, value) with no gap.
fn runs(times: &[f64], values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run = Vec::new();
    for (t, v) in times.iter().zip(values) {
        match v {
            Some(v) => run.push((*t, *v)),
            None if !run.is_empty() => out.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

fn points(run: &[(f64, f64)], x: &impl Fn(f64) -> f64, y: &impl Fn(f64) -> f64) -> String {
    run.iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds from `start` to each sample.
fn seconds_since(start: DateTime<Utc>, samples: &[QualitySample]) -> Vec<f64> {
    samples
        .iter()
        .map(|s| (s.at - start).num_milliseconds() as f64 / 1000.0)
        .collect()
}

/// `GET /dashboard/projects/{project}/sessions/{sid}`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, sid)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let sid: ParticipantSid = sid.parse().map_err(|_| PageError::NotFound)?;
    let (session, samples) = measures(&d, &project, sid).await?;
    let nav = Nav::new(&who, &project, Section::Rooms);
    // While the participant is in the call, the page follows it.
    let live = session
        .left_at
        .is_none()
        .then(|| format!("{}/sessions/{sid}/live", layout::project_path(&project)));
    let body = html! {
        div #call data-live=[live] { (call(&project, &session, &samples, d.clock.now())) }
    };
    Ok(layout::page(
        &format!("Session of {}", session.identity),
        &nav,
        body,
    ))
}

/// `GET .../sessions/{sid}/live`: the session and its charts again whenever
/// they change (a measure is added, a second passes), while the page is open.
pub async fn live(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, sid)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let project = d.member(&who, &project).await?;
    let sid: ParticipantSid = sid.parse().map_err(|_| PageError::NotFound)?;
    // Measures come every 3 s: looking more often would reload them all for nothing.
    Ok(updates(
        d,
        who,
        project,
        MEASURE_EVERY,
        move |d, _, project| async move {
            let (session, samples) = measures(&d, &project, sid).await?;
            let call = call(&project, &session, &samples, d.clock.now()).into_string();
            Ok(Frame::whole(call))
        },
    ))
}

/// The session and its measures, if it is the project's.
async fn measures(
    d: &Dashboard,
    project: &Project,
    sid: ParticipantSid,
) -> Result<(Session, Vec<QualitySample>), PageError> {
    let session = d
        .store
        .usage()
        .session(project.id, sid)
        .await?
        .ok_or(PageError::NotFound)?;
    let samples = d.store.quality().of_session(project.id, sid).await?;
    Ok((session, samples))
}

/// The session as of `now`: who, when, what was billed, and its charts
/// (bitrate, loss, round trip), or why there are none.
fn call(
    project: &Project,
    session: &Session,
    samples: &[QualitySample],
    now: DateTime<Utc>,
) -> Markup {
    let meter = if session.video {
        Meter::ParticipantMinutesVideo
    } else {
        Meter::ParticipantMinutesAudio
    };
    let room_link = format!(
        "{}/finished-rooms/{}",
        layout::project_path(project),
        session.room_sid
    );
    let times = seconds_since(session.joined_at, samples);
    let length =
        (session.left_at.unwrap_or(now) - session.joined_at).num_milliseconds() as f64 / 1000.0;
    let kbps =
        |f: fn(&QualitySample) -> u64| samples.iter().map(|s| Some(f(s) as f64 / 1000.0)).collect();
    let drops = drops(samples);
    html! {
        p { "Session " code { (session.id) } " of " strong { (session.identity) } " in room "
            a href=(room_link) { (session.room_name) } ": joined "
            (session.joined_at.format("%Y-%m-%d %H:%M:%S UTC")) ", "
            @match session.left_at {
                Some(left) => { "left " (left.format("%H:%M:%S")) " (" (session.leave_reason.as_deref().unwrap_or("")) ")" },
                None => "still in",
            }
            ", stayed " (human_duration((session.left_at.unwrap_or(now) - session.joined_at).num_seconds()))
            @if let Some(us) = session.billed_us { ", billed " (quantity(meter, us)) }
            "." }
        @if samples.is_empty() {
            p.muted #no-samples { "No connection measures for this session: it was shorter than two measuring intervals (6 s), or ended before this server recorded them." }
        } @else {
            p { (samples.len()) @if samples.len() == 1 { " measure" } @else { " measures" } ", one every 3 s. "
                @if drops.is_empty() { "Its quality was never poor." }
                @else { "Its quality was poor or lost " (drops.len()) " times (shaded)." } }
            (chart("bitrate", "Bitrate", "kbit/s", (&times, length), &[
                Line { class: "sent", legend: "sent to the server", values: kbps(|s| s.stats.publish_bps) },
                Line { class: "received", legend: "received from the server", values: kbps(|s| s.stats.subscribe_bps) },
            ], &drops))
            (chart("loss", "Packet loss", "%", (&times, length), &[
                Line { class: "loss", legend: "the worse of both directions",
                    values: samples.iter().map(|s| Some(f64::from(s.stats.loss_per_mille) / 10.0)).collect() },
            ], &drops))
            (chart("rtt", "Round trip", "ms", (&times, length), &[
                Line { class: "rtt", legend: "to the participant",
                    values: samples.iter().map(|s| s.stats.rtt_ms.map(f64::from)).collect() },
            ], &drops))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::room::ConnectionStats;

    fn sample(quality: ConnectionQuality) -> QualitySample {
        QualitySample {
            at: DateTime::<Utc>::UNIX_EPOCH,
            stats: ConnectionStats {
                quality,
                publish_bps: 0,
                subscribe_bps: 0,
                loss_per_mille: 0,
                rtt_ms: None,
            },
        }
    }

    #[test]
    fn an_unmeasured_value_breaks_the_line() {
        let times = [0.0, 3.0, 6.0, 9.0, 12.0];
        let values = [Some(1.0), None, Some(2.0), Some(4.0), None];
        assert_eq!(
            runs(&times, &values),
            [vec![(0.0, 1.0)], vec![(6.0, 2.0), (9.0, 4.0)]]
        );
        assert_eq!(values_attr(&values), "1.0 - 2.0 4.0 -");
    }

    #[test]
    fn poor_and_lost_stretches_are_one_drop_each() {
        use ConnectionQuality::*;
        let samples: Vec<_> = [Excellent, Poor, Lost, Good, Poor, Excellent, Poor]
            .into_iter()
            .map(sample)
            .collect();
        assert_eq!(drops(&samples), [(1, 2), (4, 4), (6, 6)]);
    }
}
