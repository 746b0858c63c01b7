//! Plans and the invoice arithmetic: allowance, overage, minimum.
//!
//! A [`PlanBook`] holds price lists, each in force for one plan from a
//! billing period on, so prices change at a period boundary and past periods
//! keep the prices they were billed at. Prices are exact decimals of US cents
//! with up to four decimal places; each line's amount is rounded half up to a
//! whole cent (what a Stripe invoice item can carry), and the total is the
//! lines' sum or the plan's minimum, whichever is larger.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::usage::{Meter, Period};

/// Most decimal places a price in cents may have.
pub const PRICE_DECIMALS: u32 = 4;

/// A plan configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A price has more than four decimal places or is negative.
    #[error("plan `{plan}` from {from}: {what} `{value}` must be a non-negative number of cents with at most 4 decimal places")]
    BadAmount {
        /// The plan's name.
        plan: String,
        /// The first period of the price list.
        from: Period,
        /// Which amount.
        what: String,
        /// The amount as given.
        value: String,
    },
    /// Two price lists of one plan start in the same period.
    #[error("plan `{plan}` has two price lists from {from}; give each a different `from`")]
    DuplicateFrom {
        /// The plan's name.
        plan: String,
        /// The shared first period.
        from: Period,
    },
    /// The default plan names no configured plan.
    #[error("the default plan `{0}` is not configured; add a [[billing.plans]] entry named so or change billing.default_plan")]
    UnknownDefault(String),
    /// A plan name is empty or too long.
    #[error("plan names are 1 to 64 letters, digits, `-` or `_`; `{0}` is not")]
    BadName(String),
}

/// The price of one meter in one price list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Billed units free each period (minutes, invocations, seconds).
    #[serde(default)]
    pub allowance: u64,
    /// Cents per billed unit beyond the allowance, up to 4 decimals.
    #[schema(value_type = String, example = "0.4")]
    #[serde(default)]
    pub unit_price_cents: Decimal,
}

/// One price list of a plan, in force from a period until the next list's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    /// The plan this list belongs to.
    pub name: String,
    /// The first period it applies to, `YYYY-MM` (default: all periods).
    #[serde(default = "epoch_period", with = "period_text")]
    pub from: Period,
    /// Least a period costs, in cents, whatever the usage.
    #[serde(default)]
    pub minimum_cents: Decimal,
    /// Prices by meter; a meter not listed is free.
    #[serde(default)]
    pub prices: BTreeMap<Meter, Price>,
}

fn epoch_period() -> Period {
    Period {
        year: 1970,
        month: 1,
    }
}

mod period_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::usage::Period;

    pub fn serialize<S: Serializer>(p: &Period, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(p)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Period, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The `[billing]` configuration: plans and which one projects are on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBook {
    /// The plan of projects that were not given one.
    #[serde(default = "default_plan_name")]
    pub default_plan: String,
    /// Every price list of every plan.
    #[serde(default)]
    pub plans: Vec<PriceList>,
}

fn default_plan_name() -> String {
    "default".into()
}

impl Default for PlanBook {
    /// One free plan named `default`: usage is metered and shown, nothing is charged.
    fn default() -> Self {
        Self {
            default_plan: default_plan_name(),
            plans: vec![PriceList {
                name: default_plan_name(),
                from: epoch_period(),
                minimum_cents: Decimal::ZERO,
                prices: BTreeMap::new(),
            }],
        }
    }
}

fn check_amount(list: &PriceList, what: String, value: Decimal) -> Result<(), PlanError> {
    let value = value.normalize();
    if value.is_sign_negative() || value.scale() > PRICE_DECIMALS {
        return Err(PlanError::BadAmount {
            plan: list.name.clone(),
            from: list.from,
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

impl PlanBook {
    /// Checks every amount, name and date, and that the default plan exists.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut seen = std::collections::BTreeSet::new();
        for list in &self.plans {
            let name_ok = !list.name.is_empty()
                && list.name.len() <= 64
                && list
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok {
                return Err(PlanError::BadName(list.name.chars().take(80).collect()));
            }
            if !seen.insert((list.name.as_str(), list.from)) {
                return Err(PlanError::DuplicateFrom {
                    plan: list.name.clone(),
                    from: list.from,
                });
            }
            check_amount(list, "minimum_cents".into(), list.minimum_cents)?;
            for (meter, price) in &list.prices {
                check_amount(
                    list,
                    format!("{meter}.unit_price_cents"),
                    price.unit_price_cents,
                )?;
            }
        }
        if !self.plans.iter().any(|l| l.name == self.default_plan) {
            return Err(PlanError::UnknownDefault(self.default_plan.clone()));
        }
        Ok(())
    }

    /// Whether a plan of that name is configured.
    pub fn has_plan(&self, name: &str) -> bool {
        self.plans.iter().any(|l| l.name == name)
    }

    /// The price list of plan `name` (or the default plan) in force in `period`.
    pub fn price_list(&self, name: Option<&str>, period: Period) -> Option<&PriceList> {
        let name = name.unwrap_or(&self.default_plan);
        self.plans
            .iter()
            .filter(|l| l.name == name && l.from <= period)
            .max_by_key(|l| l.from)
    }
}

/// One meter's line on an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    /// The meter.
    pub meter: Meter,
    /// Usage in the meter's internal unit (microseconds or a count), summed over the period.
    pub usage: i64,
    /// The billed unit (`minute`, `second`, `invocation`).
    pub unit: String,
    /// `usage` rounded up to whole billed units, once for the whole period.
    pub quantity: i64,
    /// Billed units free this period.
    pub allowance: u64,
    /// Billed units beyond the allowance.
    pub overage: i64,
    /// Cents per billed unit beyond the allowance.
    #[schema(value_type = String)]
    pub unit_price_cents: Decimal,
    /// `overage × unit_price_cents`, exact.
    #[schema(value_type = String)]
    pub amount_cents: Decimal,
    /// `amount_cents` rounded half up to a whole cent: what is charged.
    pub charge_cents: i64,
}

/// What a period costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Invoice {
    /// The plan's name.
    pub plan: String,
    /// One line per meter with usage or a price.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the lines' charges.
    pub subtotal_cents: i64,
    /// The plan's minimum for the period.
    #[schema(value_type = String)]
    pub minimum_cents: Decimal,
    /// What the minimum adds to reach it (0 when the usage is above it).
    pub minimum_top_up_cents: i64,
    /// The larger of subtotal and minimum (rounded half up): what the period costs.
    pub total_cents: i64,
}

/// `amount` rounded half up to a whole cent.
fn cents(amount: Decimal) -> i64 {
    amount
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .try_into()
        .unwrap_or(i64::MAX)
}

/// The invoice of a period's usage (`usage` in internal units by meter) under `list`.
pub fn invoice(list: &PriceList, usage: &BTreeMap<Meter, i64>) -> Invoice {
    let lines: Vec<InvoiceLine> = Meter::ALL
        .into_iter()
        .filter_map(|meter| {
            let used = usage.get(&meter).copied().unwrap_or(0);
            let price = list.prices.get(&meter);
            if used == 0 && price.is_none() {
                return None;
            }
            let price = price.cloned().unwrap_or_default();
            let quantity = meter.billable(used);
            let overage = (quantity - i64::try_from(price.allowance).unwrap_or(i64::MAX)).max(0);
            Some(InvoiceLine {
                meter,
                usage: used,
                unit: meter.billed_unit().into(),
                quantity,
                allowance: price.allowance,
                overage,
                unit_price_cents: price.unit_price_cents,
                amount_cents: price.unit_price_cents * Decimal::from(overage),
                charge_cents: cents(price.unit_price_cents * Decimal::from(overage)),
            })
        })
        .collect();
    let subtotal: i64 = lines.iter().map(|l| l.charge_cents).sum();
    let total = subtotal.max(cents(list.minimum_cents));
    Invoice {
        plan: list.name.clone(),
        lines,
        subtotal_cents: subtotal,
        minimum_cents: list.minimum_cents,
        minimum_top_up_cents: total - subtotal,
        total_cents: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(toml_text: &str) -> PlanBook {
        let book: PlanBook = toml::from_str(toml_text).unwrap();
        book.validate().unwrap();
        book
    }

    const BOOK: &str = r#"
        default_plan = "standard"
        [[plans]]
        name = "standard"
        from = "2026-01"
        minimum_cents = "500"
        prices.participant_minutes_video = { allowance = 10000, unit_price_cents = "0.4" }
        prices.participant_minutes_audio = { allowance = 10000, unit_price_cents = "0.1234" }
        prices.function_invocations = { unit_price_cents = "0.0001" }
        [[plans]]
        name = "standard"
        from = "2027-01"
        prices.participant_minutes_video = { allowance = 5000, unit_price_cents = "0.3" }
    "#;

    fn usage(pairs: &[(Meter, i64)]) -> BTreeMap<Meter, i64> {
        pairs.iter().copied().collect()
    }

    /// A minute in the ledger's unit.
    const MIN: i64 = 60_000_000;

    #[test]
    fn allowance_overage_and_minimum() {
        let b = book(BOOK);
        let list = b.price_list(None, "2026-11".parse().unwrap()).unwrap();
        // (video ms, audio ms, invocations) -> total cents
        let cases = [
            // Nothing used: the minimum.
            ((0, 0, 0), 500),
            // Within the allowance: the minimum.
            ((10_000 * MIN, 0, 0), 500),
            // One microsecond over the allowance is one whole extra minute (0.4 cents).
            ((10_000 * MIN + 1, 0, 0), 500),
            // 20,000 video minutes: 10,000 over at 0.4 = 4000.
            ((20_000 * MIN, 0, 0), 4000),
            // Audio at 0.1234: 12,345 minutes, 2,345 over = 289.373 -> 289; with video 4000.
            ((20_000 * MIN, 12_345 * MIN, 0), 4289),
            // Plus 5,000 invocations at 0.0001 = 0.5 -> 1 (half up).
            ((20_000 * MIN, 12_345 * MIN, 5_000), 4290),
            // 4,000 invocations at 0.0001 = 0.4 -> 0.
            ((20_000 * MIN, 12_345 * MIN, 4_000), 4289),
        ];
        for ((video, audio, calls), total) in cases {
            let inv = invoice(
                list,
                &usage(&[
                    (Meter::ParticipantMinutesVideo, video),
                    (Meter::ParticipantMinutesAudio, audio),
                    (Meter::FunctionInvocations, calls),
                ]),
            );
            assert_eq!(inv.total_cents, total, "{video} {audio} {calls}: {inv:?}");
        }
    }

    #[test]
    fn a_price_change_applies_from_its_period_only() {
        let b = book(BOOK);
        let used = usage(&[(Meter::ParticipantMinutesVideo, 6_000 * MIN)]);
        let dec = invoice(
            b.price_list(None, "2026-12".parse().unwrap()).unwrap(),
            &used,
        );
        let jan = invoice(
            b.price_list(None, "2027-01".parse().unwrap()).unwrap(),
            &used,
        );
        // December: within 10,000 free minutes, the 500 minimum.
        assert_eq!(dec.total_cents, 500);
        // January: 1,000 over 5,000 at 0.3, no minimum any more.
        assert_eq!(jan.total_cents, 300);
        // Before the first list there is no price at all.
        assert!(b.price_list(None, "2025-12".parse().unwrap()).is_none());
    }

    #[test]
    fn the_default_book_meters_without_charging() {
        let b = PlanBook::default();
        b.validate().unwrap();
        let inv = invoice(
            b.price_list(None, "2026-11".parse().unwrap()).unwrap(),
            &usage(&[(Meter::ParticipantMinutesAudio, 90_500_000)]),
        );
        assert_eq!(inv.lines.len(), 1);
        assert_eq!(inv.lines[0].quantity, 2);
        assert_eq!(inv.total_cents, 0);
    }

    #[test]
    fn refuses_bad_plans_with_a_reason() {
        let cases = [
            (
                r#"[[plans]]
                   name = "default"
                   prices.participant_minutes_video = { unit_price_cents = "0.12345" }"#,
                "at most 4 decimal places",
            ),
            (
                r#"[[plans]]
                   name = "default"
                   minimum_cents = "-1""#,
                "non-negative",
            ),
            (
                r#"[[plans]]
                   name = "x""#,
                "default plan `default` is not configured",
            ),
            (
                r#"[[plans]]
                   name = "default"
                   [[plans]]
                   name = "default""#,
                "two price lists",
            ),
            (
                r#"[[plans]]
                   name = "bad name!""#,
                "plan names",
            ),
        ];
        for (text, want) in cases {
            let b: PlanBook = toml::from_str(text).unwrap();
            let err = b.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        for text in [
            "[[plans]]\nname = \"default\"\nprices.minutes = {}",
            "[[plans]]\nname = \"default\"\nfrom = \"2026-13\"",
            "[[plans]]\nname = \"default\"\nprices.recording_minutes = { cents = \"1\" }",
        ] {
            assert!(toml::from_str::<PlanBook>(text).is_err(), "{text}");
        }
    }
}
