//! A room's timeline: one bar per participant session from its join to its
//! leave, on one time axis, so who was there when reads at a glance. (The
//! sessions table under it links each to its call page: links inside an
//! image would not be reachable by keyboard or screen reader.)

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use switchboard_store::usage::Session;

use super::human_duration;

/// Chart width in SVG units; bars start after the names.
const WIDTH: f64 = 720.0;
const NAMES: f64 = 140.0;
const ROW: f64 = 18.0;
const AXIS: f64 = 18.0;
/// Most sessions drawn; the table under it lists them all.
pub const MAX_ROWS: usize = 60;

/// Where one session's bar goes, in SVG units.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bar {
    x: f64,
    width: f64,
}

/// The bars of `sessions` over the span from the first join to the last
/// leave (or `now`, for a session still in), and that span in seconds.
fn bars(sessions: &[&Session], now: DateTime<Utc>) -> (Vec<Bar>, f64) {
    let Some(start) = sessions.iter().map(|s| s.joined_at).min() else {
        return (Vec::new(), 0.0);
    };
    let end = sessions
        .iter()
        .map(|s| s.left_at.unwrap_or(now))
        .max()
        .unwrap_or(now);
    let span = ((end - start).num_milliseconds() as f64 / 1000.0).max(1.0);
    let x = |t: DateTime<Utc>| {
        NAMES + (t - start).num_milliseconds() as f64 / 1000.0 / span * (WIDTH - NAMES)
    };
    let bars = sessions
        .iter()
        .map(|s| {
            let (a, b) = (x(s.joined_at), x(s.left_at.unwrap_or(now)));
            // A session of a moment is still a visible sliver.
            Bar {
                x: a,
                width: (b - a).max(2.0),
            }
        })
        .collect();
    (bars, span)
}

/// The timeline of `sessions` in the order they joined (the first [`MAX_ROWS`]).
pub fn timeline(sessions: &[Session], now: DateTime<Utc>) -> Markup {
    let mut shown: Vec<&Session> = sessions.iter().collect();
    shown.sort_by_key(|s| s.joined_at);
    shown.truncate(MAX_ROWS);
    let (bars, span) = bars(&shown, now);
    let height = shown.len() as f64 * ROW;
    let label = format!(
        "Who was in the room when: {} sessions over {}",
        shown.len(),
        human_duration(span as i64)
    );
    html! {
        svg.chart.timeline #timeline viewBox={ "0 0 " (WIDTH) " " (height + AXIS) } role="img" aria-label=(label) {
            @for (i, (s, bar)) in shown.iter().zip(&bars).enumerate() {
                @let y = i as f64 * ROW;
                text x="0" y=(format!("{:.1}", y + ROW - 5.0)) { (s.identity) }
                rect.bar x=(format!("{:.1}", bar.x)) y=(format!("{:.1}", y + 3.0))
                    width=(format!("{:.1}", bar.width)) height=(ROW - 6.0) {
                    title { (s.identity) ": " (s.joined_at.format("%H:%M:%S")) " to "
                        @match s.left_at { Some(t) => (t.format("%H:%M:%S")), None => "now" } }
                }
            }
            text x=(NAMES) y=(height + 14.0) { "0 s" }
            text x=(WIDTH) y=(height + 14.0) text-anchor="end" { (human_duration(span as i64)) }
        }
        @if sessions.len() > MAX_ROWS { p.muted { "The first " (MAX_ROWS) " sessions are drawn." } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn session(identity: &str, joined: i64, left: Option<i64>) -> Session {
        let at = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        Session {
            id: switchboard_core::ParticipantSid::new(),
            room_name: "r".into(),
            room_sid: "rm".into(),
            identity: identity.into(),
            node_id: None,
            joined_at: at(joined),
            left_at: left.map(at),
            leave_reason: None,
            video: false,
            billed_us: None,
        }
    }

    #[test]
    fn bars_share_one_axis_from_the_first_join_to_the_last_leave() {
        let now = Utc.timestamp_opt(1_800_000_000 + 100, 0).unwrap();
        let sessions = [
            session("a", 0, Some(50)),
            session("b", 50, None),
            session("c", 25, Some(25)),
        ];
        let (bars, span) = bars(&sessions.iter().collect::<Vec<_>>(), now);
        assert_eq!(span, 100.0);
        let width = WIDTH - NAMES;
        assert_eq!(bars[0].x, NAMES);
        assert!((bars[0].width - width / 2.0).abs() < 1e-9);
        // Still in: up to now, the end of the axis.
        assert!((bars[1].x + bars[1].width - WIDTH).abs() < 1e-9);
        // A session of no length is still drawn.
        assert_eq!(bars[2].width, 2.0);
    }

    #[test]
    fn no_sessions_no_bars() {
        assert_eq!(bars(&[], Utc::now()), (Vec::new(), 0.0));
    }
}
