//! What a usage pattern costs in a month: the invoice it would get on a
//! plan, and how much of it there is in the other units platforms bill by.
//!
//! The pattern is turned into the same per-meter totals the meter writes
//! (microseconds of participant time, with or without video, recording
//! time, invocations, compute time), and those go through the invoice
//! arithmetic of [`crate::billing::invoice`], so a pattern that matches a
//! past month's calls costs exactly what that month's invoice says.
//!
//! Participant-minutes grow with the people in a call; subscribed
//! track-minutes and bytes delivered grow with the pairs of them, because
//! each participant receives every other one's tracks: a call of `n` has
//! `n(n-1)` subscriptions. [`Estimate`] gives all three so that difference
//! is plain to see.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::billing::{invoice, Invoice, PriceList};
use crate::usage::Meter;

/// Microseconds in a minute, the ledger's unit for time meters.
const MINUTE_US: i64 = 60_000_000;

/// A month of calls that all look alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Calls a day.
    pub calls_per_day: u32,
    /// Days in the month (1 to 31).
    pub days: u32,
    /// People in each call, all there for the whole call.
    pub participants: u32,
    /// Length of each call in minutes.
    pub minutes: u32,
    /// Share of calls with video, in percent; the others are audio only.
    pub video_percent: u32,
    /// Share of calls recorded from start to end, in percent.
    pub recorded_percent: u32,
    /// Function runs each call triggers.
    pub function_runs_per_call: u32,
    /// Wall time of each function run, in milliseconds.
    pub function_ms_per_run: u32,
    /// Bitrate a subscriber receives for one audio track, in kbit/s.
    pub audio_kbps: u32,
    /// Bitrate a subscriber receives for one video track, in kbit/s.
    pub video_kbps: u32,
}

impl Default for Pattern {
    /// Ten 30-minute video calls of four a day for 30 days, nothing else;
    /// Opus at 40 kbit/s and a 720p layer at 1,200 kbit/s.
    fn default() -> Self {
        Self {
            calls_per_day: 10,
            days: 30,
            participants: 4,
            minutes: 30,
            video_percent: 100,
            recorded_percent: 0,
            function_runs_per_call: 0,
            function_ms_per_run: 0,
            audio_kbps: 40,
            video_kbps: 1_200,
        }
    }
}

/// Prices in the other common units, in cents, to compare with the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherPrices {
    /// Per participant-minute, audio or video alike.
    pub participant_minute_cents: Decimal,
    /// Per subscribed track-minute.
    pub track_minute_cents: Decimal,
    /// Per gigabyte (10^9 bytes) delivered to subscribers.
    pub gigabyte_cents: Decimal,
}

/// A pattern the estimator cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstimateError {
    /// A field is outside the range it may take.
    #[error("{field} must be from {min} to {max}; it is {value}")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The least it may be.
        min: u32,
        /// The most it may be.
        max: u32,
        /// What it was.
        value: u32,
    },
    /// The month's usage is beyond what the ledger's counters hold.
    #[error("that pattern is beyond what one project can use in a month; use fewer calls, people or minutes")]
    TooLarge,
}

/// One quantity in another unit and what it costs there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUnit {
    /// How much of the unit the pattern uses.
    pub quantity: Decimal,
    /// The price it was costed at, in cents a unit.
    pub price_cents: Decimal,
    /// At the given price, rounded half up to a whole cent.
    pub cost_cents: i64,
}

/// What a pattern comes to in a month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// Usage per meter in the ledger's internal units.
    pub usage: BTreeMap<Meter, i64>,
    /// The invoice of that usage on the plan.
    pub invoice: Invoice,
    /// Participant-minutes, audio and video together.
    pub participant_minutes: OtherUnit,
    /// Minutes of each subscriber receiving each other participant's tracks.
    pub track_minutes: OtherUnit,
    /// Gigabytes delivered to subscribers at the pattern's bitrates.
    pub gigabytes: OtherUnit,
}

impl Pattern {
    /// Checks every field is within what the estimator takes.
    pub fn validate(&self) -> Result<(), EstimateError> {
        let fields = [
            ("calls_per_day", self.calls_per_day, 0, 1_000_000),
            ("days", self.days, 1, 31),
            ("participants", self.participants, 1, 1_000_000),
            ("minutes", self.minutes, 0, 1_440),
            ("video_percent", self.video_percent, 0, 100),
            ("recorded_percent", self.recorded_percent, 0, 100),
            (
                "function_runs_per_call",
                self.function_runs_per_call,
                0,
                1_000,
            ),
            ("function_ms_per_run", self.function_ms_per_run, 0, 900_000),
            ("audio_kbps", self.audio_kbps, 0, 10_000),
            ("video_kbps", self.video_kbps, 0, 100_000),
        ];
        for (field, value, min, max) in fields {
            if value < min || value > max {
                return Err(EstimateError::OutOfRange {
                    field,
                    min,
                    max,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Calls in the month, and how many of them have video and are recorded.
    fn calls(&self) -> (i128, i128, i128) {
        let calls = i128::from(self.calls_per_day) * i128::from(self.days);
        (
            calls,
            calls * i128::from(self.video_percent) / 100,
            calls * i128::from(self.recorded_percent) / 100,
        )
    }

    /// The month's usage per meter, as the meter would have written it.
    pub fn usage(&self) -> Result<BTreeMap<Meter, i64>, EstimateError> {
        self.validate()?;
        let (calls, video_calls, recorded) = self.calls();
        let call_us = i128::from(self.minutes) * i128::from(MINUTE_US);
        let people_us = i128::from(self.participants) * call_us;
        let invocations = calls * i128::from(self.function_runs_per_call);
        let usage = [
            (
                Meter::ParticipantMinutesAudio,
                (calls - video_calls) * people_us,
            ),
            (Meter::ParticipantMinutesVideo, video_calls * people_us),
            (Meter::RecordingMinutes, recorded * call_us),
            (Meter::FunctionInvocations, invocations),
            (
                Meter::FunctionCompute,
                invocations * i128::from(self.function_ms_per_run) * 1_000,
            ),
        ];
        // Half the range, so that rounding the total up to a billed unit
        // cannot overflow either.
        let most = i128::from(i64::MAX / 2);
        usage
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(m, v)| match i64::try_from(v) {
                Ok(v) if i128::from(v) <= most => Ok((m, v)),
                _ => Err(EstimateError::TooLarge),
            })
            .collect()
    }

    /// The month on plan `list`, and in the other units at `other` prices.
    pub fn estimate(
        &self,
        list: &PriceList,
        other: &OtherPrices,
    ) -> Result<Estimate, EstimateError> {
        self.validate()?;
        let usage = self.usage()?;
        let (calls, video_calls, _) = self.calls();
        let n = i128::from(self.participants);
        let minutes = i128::from(self.minutes);
        let participant_minutes = calls * n * minutes;
        // Every call carries audio; video calls carry a video track as well.
        let pairs = n * (n - 1) * minutes;
        let audio_track_minutes = calls * pairs;
        let video_track_minutes = video_calls * pairs;
        let kilobits = audio_track_minutes * 60 * i128::from(self.audio_kbps)
            + video_track_minutes * 60 * i128::from(self.video_kbps);
        let decimal = |v: i128, scale| {
            Decimal::try_from_i128_with_scale(v, scale).map_err(|_| EstimateError::TooLarge)
        };
        Ok(Estimate {
            invoice: invoice(list, &usage),
            usage,
            participant_minutes: priced(
                decimal(participant_minutes, 0)?,
                other.participant_minute_cents,
            )?,
            track_minutes: priced(
                decimal(audio_track_minutes + video_track_minutes, 0)?,
                other.track_minute_cents,
            )?,
            // 1 kbit = 125 bytes, 1 GB = 10^9 bytes.
            gigabytes: priced(
                decimal(kilobits * 125, 9)?.normalize(),
                other.gigabyte_cents,
            )?,
        })
    }
}

/// `quantity` at `price` cents a unit, rounded half up to a whole cent.
fn priced(quantity: Decimal, price: Decimal) -> Result<OtherUnit, EstimateError> {
    let cost = quantity
        .checked_mul(price)
        .ok_or(EstimateError::TooLarge)?
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    Ok(OtherUnit {
        quantity,
        price_cents: price,
        cost_cents: i64::try_from(cost).map_err(|_| EstimateError::TooLarge)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::Price;

    fn plan() -> PriceList {
        let price = |allowance, cents: &str| Price {
            allowance,
            unit_price_cents: cents.parse().unwrap(),
        };
        PriceList {
            name: "standard".into(),
            from: "2026-01".parse().unwrap(),
            minimum_cents: Decimal::from(500),
            prices: [
                (Meter::ParticipantMinutesVideo, price(1_000, "0.4")),
                (Meter::ParticipantMinutesAudio, price(1_000, "0.1")),
                (Meter::RecordingMinutes, price(0, "1.5")),
                (Meter::FunctionInvocations, price(0, "0.0001")),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn other() -> OtherPrices {
        OtherPrices {
            participant_minute_cents: "0.4".parse().unwrap(),
            track_minute_cents: "0.1".parse().unwrap(),
            gigabyte_cents: "12".parse().unwrap(),
        }
    }

    #[test]
    fn a_pattern_is_metered_as_its_calls_would_be() {
        let pattern = Pattern {
            calls_per_day: 4,
            days: 30,
            participants: 3,
            minutes: 20,
            video_percent: 25,
            recorded_percent: 50,
            function_runs_per_call: 2,
            function_ms_per_run: 150,
            ..Pattern::default()
        };
        let usage = pattern.usage().unwrap();
        // 120 calls: 30 with video, 90 without, 60 recorded.
        assert_eq!(
            usage[&Meter::ParticipantMinutesVideo],
            30 * 3 * 20 * MINUTE_US
        );
        assert_eq!(
            usage[&Meter::ParticipantMinutesAudio],
            90 * 3 * 20 * MINUTE_US
        );
        assert_eq!(usage[&Meter::RecordingMinutes], 60 * 20 * MINUTE_US);
        assert_eq!(usage[&Meter::FunctionInvocations], 240);
        assert_eq!(usage[&Meter::FunctionCompute], 240 * 150_000);

        let e = pattern.estimate(&plan(), &other()).unwrap();
        // Video 1,800 min, 800 over at 0.4; audio 5,400, 4,400 over at 0.1;
        // recording 1,200 at 1.5; 240 invocations at 0.0001 (0.024, rounds to 0).
        assert_eq!(e.invoice.total_cents, 320 + 440 + 1_800);
        assert_eq!(e.participant_minutes.quantity, Decimal::from(7_200));
        // 3 people make 6 subscriptions of 20 minutes: 120 calls of audio,
        // 30 of them with video as well.
        assert_eq!(e.track_minutes.quantity, Decimal::from(150 * 6 * 20));
        assert_eq!(e.track_minutes.cost_cents, 1_800);
    }

    #[test]
    fn subscriptions_grow_with_pairs_and_participant_minutes_with_people() {
        let of = |participants| {
            let p = Pattern {
                participants,
                ..Pattern::default()
            };
            p.estimate(&plan(), &other()).unwrap()
        };
        let (small, large) = (of(2), of(20));
        assert_eq!(
            large.participant_minutes.quantity / small.participant_minutes.quantity,
            Decimal::from(10)
        );
        assert_eq!(
            large.track_minutes.quantity / small.track_minutes.quantity,
            Decimal::from(190)
        );
        // One person alone receives nothing.
        assert_eq!(of(1).gigabytes.quantity, Decimal::ZERO);
    }

    #[test]
    fn bytes_delivered_follow_the_bitrates() {
        let p = Pattern {
            calls_per_day: 1,
            days: 1,
            participants: 2,
            minutes: 1,
            video_percent: 100,
            audio_kbps: 40,
            video_kbps: 1_000,
            ..Pattern::default()
        };
        // Two subscriptions for 60 s at 1,040 kbit/s: 15,600,000 bytes.
        let e = p.estimate(&plan(), &other()).unwrap();
        assert_eq!(e.gigabytes.quantity, "0.0156".parse::<Decimal>().unwrap());
    }

    #[test]
    fn fields_out_of_range_are_named() {
        let p = Pattern {
            days: 32,
            ..Pattern::default()
        };
        assert_eq!(
            p.estimate(&plan(), &other()).unwrap_err().to_string(),
            "days must be from 1 to 31; it is 32"
        );
        // Every field at its most is refused plainly, not wrapped round.
        let p = Pattern {
            calls_per_day: 1_000_000,
            days: 31,
            participants: 1_000_000,
            minutes: 1_440,
            video_kbps: 100_000,
            ..Pattern::default()
        };
        assert_eq!(p.estimate(&plan(), &other()), Err(EstimateError::TooLarge));
        // A very large event still comes out.
        let p = Pattern {
            calls_per_day: 1,
            participants: 10_000,
            minutes: 120,
            ..Pattern::default()
        };
        assert!(p.estimate(&plan(), &other()).is_ok());
    }
}
