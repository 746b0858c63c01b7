//! What is metered and how raw usage becomes billable quantities.
//!
//! Usage is kept in *internal units* (microseconds for time, as event times
//! are stamped, and a count for invocations) and split into UTC hours, so any hour-aligned window (a day,
//! a billing period) is a plain sum. Rounding to the *billed unit* (a whole
//! minute, a whole second) happens once, on the sum of a period, never per
//! session: [`Meter::billable`].

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Microseconds in an hour, the ledger's bucket size.
pub const HOUR_US: i64 = 3_600_000_000;

/// One metered quantity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Meter {
    /// Time participants spent in rooms without sending or receiving video.
    ParticipantMinutesAudio,
    /// Time participants spent in rooms while video was published to the room.
    ParticipantMinutesVideo,
    /// Length of finished recordings.
    RecordingMinutes,
    /// Runs of customer functions.
    FunctionInvocations,
    /// Wall time customer functions ran.
    FunctionCompute,
}

impl Meter {
    /// Every meter, in display order.
    pub const ALL: [Meter; 5] = [
        Meter::ParticipantMinutesAudio,
        Meter::ParticipantMinutesVideo,
        Meter::RecordingMinutes,
        Meter::FunctionInvocations,
        Meter::FunctionCompute,
    ];

    /// The meter's name in the API and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Meter::ParticipantMinutesAudio => "participant_minutes_audio",
            Meter::ParticipantMinutesVideo => "participant_minutes_video",
            Meter::RecordingMinutes => "recording_minutes",
            Meter::FunctionInvocations => "function_invocations",
            Meter::FunctionCompute => "function_compute",
        }
    }

    /// The unit usage is stored and summed in.
    pub fn internal_unit(self) -> &'static str {
        match self {
            Meter::FunctionInvocations => "count",
            _ => "us",
        }
    }

    /// The unit invoices are written in.
    pub fn billed_unit(self) -> &'static str {
        match self {
            Meter::FunctionInvocations => "invocation",
            Meter::FunctionCompute => "second",
            _ => "minute",
        }
    }

    /// Internal units in one billed unit.
    pub fn units_per_billed(self) -> i64 {
        match self {
            Meter::FunctionInvocations => 1,
            Meter::FunctionCompute => 1_000_000,
            _ => 60_000_000,
        }
    }

    /// Whether the internal unit is microseconds of time.
    pub fn is_time(self) -> bool {
        self.internal_unit() == "us"
    }

    /// The billed quantity of a period's summed usage: rounded up to a whole billed unit.
    pub fn billable(self, internal_total: i64) -> i64 {
        let per = self.units_per_billed();
        if internal_total <= 0 {
            0
        } else {
            (internal_total + per - 1) / per
        }
    }
}

impl std::fmt::Display for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a meter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a meter; meters are participant_minutes_audio, participant_minutes_video, recording_minutes, function_invocations and function_compute")]
pub struct UnknownMeter(pub String);

impl std::str::FromStr for Meter {
    type Err = UnknownMeter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Meter::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMeter(s.chars().take(64).collect()))
    }
}

/// A half-open span of time `[start, end)` in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// First microsecond in the span.
    pub start: i64,
    /// First microsecond after the span.
    pub end: i64,
}

impl Span {
    /// The span from `start` to `end`; empty when `end` is not after `start`
    /// (a leave stamped by a node whose clock runs behind the joining node's).
    pub fn new(start: i64, end: i64) -> Self {
        Self {
            start,
            end: end.max(start),
        }
    }

    /// Its length in microseconds.
    pub fn len(self) -> i64 {
        self.end - self.start
    }

    /// Whether it holds no time.
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// The parts of `self` that none of `covered` overlaps, in order.
    ///
    /// Used so that two sessions of one identity in one room (a reconnect
    /// that overlaps the old connection, two tabs) are billed once for any
    /// instant.
    pub fn minus(self, covered: &[Span]) -> Vec<Span> {
        let mut cuts: Vec<Span> = covered
            .iter()
            .filter(|c| !c.is_empty() && c.start < self.end && c.end > self.start)
            .copied()
            .collect();
        cuts.sort();
        let mut out = Vec::new();
        let mut at = self.start;
        for c in cuts {
            if c.start > at {
                out.push(Span::new(at, c.start.min(self.end)));
            }
            at = at.max(c.end);
            if at >= self.end {
                break;
            }
        }
        if at < self.end {
            out.push(Span::new(at, self.end));
        }
        out.retain(|s| !s.is_empty());
        out
    }

    /// Microseconds of `self` in each UTC hour it touches, as `(hour start, µs)`.
    pub fn by_hour(self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut at = self.start;
        while at < self.end {
            let hour = at.div_euclid(HOUR_US) * HOUR_US;
            let next = (hour + HOUR_US).min(self.end);
            out.push((hour, next - at));
            at = next;
        }
        out
    }
}

/// Microseconds since the Unix epoch of `t`.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time at `us` microseconds since the Unix epoch.
pub fn at_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A billing period: one calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// The year.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u32,
}

impl Period {
    /// The period `t` falls in.
    pub fn containing(t: DateTime<Utc>) -> Self {
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// Its first instant.
    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    /// The period after it.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first instant after it (the next period's start).
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    /// Parses `YYYY-MM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a billing period; write YYYY-MM, e.g. 2026-11");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }
}

/// How usage is bucketed in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One bucket per UTC hour.
    Hour,
    /// One bucket per UTC day.
    Day,
    /// One bucket per calendar month (UTC).
    Month,
}

impl Granularity {
    /// The start of the bucket holding `t`.
    pub fn bucket(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let hour = t
            .with_nanosecond(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_minute(0))
            .unwrap_or(t);
        match self {
            Granularity::Hour => hour,
            Granularity::Day => hour.with_hour(0).unwrap_or(hour),
            Granularity::Month => Period::containing(t).start(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        micros(s.parse::<DateTime<Utc>>().unwrap())
    }

    #[test]
    fn rounds_up_a_periods_sum_once() {
        let m = Meter::ParticipantMinutesVideo;
        // (internal µs, billed minutes)
        for (us, minutes) in [
            (0, 0),
            (-5, 0),
            (1, 1),
            (59_999_999, 1),
            (60_000_000, 1),
            (60_000_001, 2),
            (600_000_000_000, 10_000),
        ] {
            assert_eq!(m.billable(us), minutes, "{us} µs");
        }
        // Ninety sessions of 20 s are 30 minutes, not ninety.
        assert_eq!(m.billable(90 * 20_000_000), 30);
        assert_eq!(Meter::FunctionCompute.billable(1_000_001), 2);
        assert_eq!(Meter::FunctionInvocations.billable(7), 7);
    }

    #[test]
    fn splits_a_span_into_utc_hours() {
        let s = Span::new(t("2026-11-30T23:59:30Z"), t("2026-12-01T01:00:10Z"));
        assert_eq!(
            s.by_hour(),
            vec![
                (t("2026-11-30T23:00:00Z"), 30_000_000),
                (t("2026-12-01T00:00:00Z"), HOUR_US),
                (t("2026-12-01T01:00:00Z"), 10_000_000),
            ]
        );
        assert!(Span::new(5, 5).by_hour().is_empty());
    }

    #[test]
    fn a_leave_stamped_before_the_join_is_empty_not_negative() {
        let s = Span::new(t("2026-11-01T10:00:05Z"), t("2026-11-01T10:00:02Z"));
        assert_eq!(s.len(), 0);
        assert!(s.by_hour().is_empty());
    }

    #[test]
    fn subtracts_time_already_billed_to_the_same_identity() {
        let s = Span::new(100, 200);
        let cases: [(&[Span], Vec<Span>); 6] = [
            (&[], vec![Span::new(100, 200)]),
            (&[Span::new(0, 50)], vec![Span::new(100, 200)]),
            (&[Span::new(90, 120)], vec![Span::new(120, 200)]),
            (
                &[
                    Span::new(150, 160),
                    Span::new(110, 130),
                    Span::new(120, 140),
                ],
                vec![
                    Span::new(100, 110),
                    Span::new(140, 150),
                    Span::new(160, 200),
                ],
            ),
            (&[Span::new(0, 500)], vec![]),
            (&[Span::new(190, 300)], vec![Span::new(100, 190)]),
        ];
        for (covered, want) in cases {
            assert_eq!(s.minus(covered), want, "minus {covered:?}");
        }
    }

    /// A small deterministic generator, so the property runs the same everywhere.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: i64) -> i64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % below as u64) as i64
        }
    }

    /// Closing overlapping sessions one by one, each minus those closed before,
    /// bills exactly the union of their time, whatever the order.
    #[test]
    fn closing_in_any_order_bills_the_union() {
        let mut rng = Lcg(7);
        for _ in 0..2_000 {
            let n = 1 + rng.next(6) as usize;
            let spans: Vec<Span> = (0..n)
                .map(|_| {
                    let a = rng.next(10 * HOUR_US);
                    Span::new(a, a + rng.next(3 * HOUR_US))
                })
                .collect();
            let mut billed = 0;
            let mut closed: Vec<Span> = Vec::new();
            for s in &spans {
                let parts = s.minus(&closed);
                let by_hour: i64 = parts
                    .iter()
                    .flat_map(|p| p.by_hour())
                    .map(|(_, ms)| ms)
                    .sum();
                let total: i64 = parts.iter().map(|p| p.len()).sum();
                assert_eq!(by_hour, total);
                billed += total;
                closed.push(*s);
            }
            // The union, measured independently on a sorted sweep.
            let mut sorted = spans.clone();
            sorted.sort();
            let (mut union, mut reach) = (0, i64::MIN);
            for s in sorted.iter().filter(|s| !s.is_empty()) {
                if s.end > reach {
                    union += s.end - s.start.max(reach);
                    reach = s.end;
                }
            }
            assert_eq!(billed, union, "{spans:?}");
        }
    }

    #[test]
    fn periods_are_utc_months() {
        let p = Period::containing("2026-12-31T23:59:59Z".parse().unwrap());
        assert_eq!(p.to_string(), "2026-12");
        assert_eq!(p.next().to_string(), "2027-01");
        assert_eq!(
            p.end(),
            "2027-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            "2026-02".parse::<Period>(),
            Ok(Period {
                year: 2026,
                month: 2
            })
        );
        for bad in ["2026-13", "26-01", "2026/01", "", "2026-1", "abcd-ef"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn buckets_by_granularity() {
        let at: DateTime<Utc> = "2026-11-23T19:42:17.5Z".parse().unwrap();
        assert_eq!(
            Granularity::Hour.bucket(at).to_rfc3339(),
            "2026-11-23T19:00:00+00:00"
        );
        assert_eq!(
            Granularity::Day.bucket(at).to_rfc3339(),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            Granularity::Month.bucket(at).to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
    }

    #[test]
    fn parses_meter_names_and_refuses_others() {
        for m in Meter::ALL {
            assert_eq!(m.as_str().parse::<Meter>(), Ok(m));
        }
        let err = "minutes".parse::<Meter>().unwrap_err();
        assert!(err.to_string().contains("participant_minutes_audio"));
    }
}
