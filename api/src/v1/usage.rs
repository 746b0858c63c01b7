//! `/v1/usage` and `/v1/billing/preview`: what the project used, how each
//! number came about, and what the running period will cost.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::billing::{invoice, Invoice};
use switchboard_core::usage::{micros, Granularity, Meter, Period, Span, HOUR_US};
use switchboard_core::{NodeId, ParticipantSid};
use switchboard_store::usage::{Report, SessionFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page_size;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::AppState;

/// Rooms listed per meter in a usage report.
pub const ROOMS_PER_METER: u32 = 100;
/// Most buckets one usage report may hold.
pub const MAX_BUCKETS: i64 = 10_000;

/// The usage and billing routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_usage))
        .routes(routes!(list_sessions))
        .routes(routes!(billing_preview))
}

/// Query of `GET /v1/usage`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start, on the hour: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`). Default: the current period's start.
    pub from: Option<String>,
    /// End (exclusive), on the hour, as `from`. Default: the end of the current hour.
    pub to: Option<String>,
    /// `hour`, `day` (default) or `month`.
    pub granularity: Option<Granularity>,
    /// Only this meter.
    pub meter: Option<String>,
}

/// Usage of one meter in one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// The bucket's first instant.
    pub start: DateTime<Utc>,
    /// Usage in the meter's unit.
    pub quantity: i64,
}

/// Usage of one meter in one room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomQuantity {
    /// The room's name; null for usage tied to no room (function runs).
    pub room: Option<String>,
    /// Usage in the meter's unit.
    pub quantity: i64,
}

/// One meter over the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeterUsage {
    /// The meter.
    pub meter: Meter,
    /// The unit of `total` and every quantity: `us` (microseconds) or `count`.
    pub unit: String,
    /// Usage summed over the window, exact.
    pub total: i64,
    /// For time meters, `total` in seconds.
    pub seconds: Option<f64>,
    /// The unit an invoice rounds `total` up to, once per period.
    pub billed_unit: String,
    /// Usage by bucket, oldest first; empty buckets are left out.
    pub buckets: Vec<Bucket>,
    /// Usage by room, largest first, at most 100 rooms.
    pub rooms: Vec<RoomQuantity>,
}

/// A usage report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// Start of the window.
    pub from: DateTime<Utc>,
    /// End of the window (exclusive).
    pub to: DateTime<Utc>,
    /// The bucket size.
    pub granularity: Granularity,
    /// One entry per meter.
    pub meters: Vec<MeterUsage>,
    /// Sessions still open, counted up to now.
    pub open_sessions: usize,
}

fn bad_time(field: &str, value: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_time",
        format!(
            "{field} `{}` is not a time on the hour; usage is kept per UTC hour, so write e.g. 2026-11-01 or 2026-11-01T13:00:00Z",
            value.chars().take(64).collect::<String>()
        ),
    )
}

/// Parses a report bound: a date or an RFC 3339 time on the hour.
fn parse_bound(field: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| bad_time(field, value))?
    } else {
        DateTime::parse_from_rfc3339(value)
            .map_err(|_| bad_time(field, value))?
            .with_timezone(&Utc)
    };
    if micros(t).rem_euclid(HOUR_US) != 0 {
        return Err(bad_time(field, value));
    }
    Ok(t)
}

fn parse_meter(meter: Option<&str>) -> Result<Option<Meter>, ApiError> {
    meter
        .map(|m| {
            m.parse()
                .map_err(|e: switchboard_core::usage::UnknownMeter| {
                    ApiError::bad_request("invalid_meter", e.to_string())
                })
        })
        .transpose()
}

fn end_of_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    Granularity::Hour.bucket(now) + Duration::hours(1)
}

/// Usage by meter, bucket and room.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let now = state.clock.now();
    let from = match q.from.as_deref() {
        Some(v) => parse_bound("from", v)?,
        None => Period::containing(now).start(),
    };
    let to = match q.to.as_deref() {
        Some(v) => parse_bound("to", v)?,
        None => end_of_hour(now),
    };
    if to <= from {
        return Err(ApiError::invalid("to must be after from"));
    }
    let granularity = q.granularity.unwrap_or(Granularity::Day);
    let hours = (to - from).num_hours();
    let buckets = match granularity {
        Granularity::Hour => hours,
        Granularity::Day => hours / 24 + 1,
        Granularity::Month => hours / (24 * 28) + 1,
    };
    if buckets > MAX_BUCKETS {
        return Err(ApiError::invalid(format!(
            "that window holds {buckets} {granularity:?} buckets; the most is {MAX_BUCKETS}: narrow it or use a coarser granularity"
        ).to_lowercase()));
    }
    let only = parse_meter(q.meter.as_deref())?;
    let report = state
        .store
        .usage()
        .report(caller.project_id, from, to, only, ROOMS_PER_METER)
        .await?;
    let live = report.open_usage(from, to, now);
    let Report {
        hourly,
        rooms,
        open,
    } = report;

    let meters: Vec<Meter> = only.map_or_else(|| Meter::ALL.to_vec(), |m| vec![m]);
    let report = meters
        .into_iter()
        .map(|meter| {
            let mut by_bucket: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
            for h in hourly.iter().filter(|h| h.meter == meter) {
                *by_bucket.entry(granularity.bucket(h.hour)).or_default() += h.quantity;
            }
            let mut by_room: BTreeMap<String, i64> = rooms
                .iter()
                .filter(|r| r.meter == meter)
                .map(|r| (r.room_name.clone(), r.quantity))
                .collect();
            for l in live.iter().filter(|l| l.meter == meter) {
                *by_bucket.entry(granularity.bucket(l.hour)).or_default() += l.quantity;
                *by_room.entry(l.room_name.clone()).or_default() += l.quantity;
            }
            let total: i64 = by_bucket.values().sum();
            let mut rooms: Vec<RoomQuantity> = by_room
                .into_iter()
                .map(|(room, quantity)| RoomQuantity {
                    room: (!room.is_empty()).then_some(room),
                    quantity,
                })
                .collect();
            rooms.sort_by(|a, b| b.quantity.cmp(&a.quantity).then(a.room.cmp(&b.room)));
            rooms.truncate(ROOMS_PER_METER as usize);
            MeterUsage {
                meter,
                unit: meter.internal_unit().into(),
                total,
                seconds: meter.is_time().then(|| total as f64 / 1e6),
                billed_unit: meter.billed_unit().into(),
                buckets: by_bucket
                    .into_iter()
                    .map(|(start, quantity)| Bucket { start, quantity })
                    .collect(),
                rooms,
            }
        })
        .collect();
    Ok(Json(UsageReport {
        from,
        to,
        granularity,
        meters: report,
        open_sessions: open.len(),
    }))
}

/// Query of `GET /v1/usage/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SessionsQuery {
    /// Only sessions in the room of this name.
    pub room: Option<String>,
    /// Only sessions still open at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only sessions that joined before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One participant session and what it was billed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The participant session sid.
    pub id: ParticipantSid,
    /// The room's name.
    pub room: String,
    /// The room incarnation.
    pub room_sid: String,
    /// The participant's identity.
    pub identity: String,
    /// The node that hosted it.
    pub node: Option<NodeId>,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// When it left; null while open.
    pub left_at: Option<DateTime<Utc>>,
    /// Why it left (`node_lost`: its node died and it was closed at the node's last heartbeat).
    pub leave_reason: Option<String>,
    /// The meter it counts on.
    pub meter: Meter,
    /// Microseconds from join to leave (to now while open).
    pub duration_us: i64,
    /// Microseconds billed: the duration less time the same identity was
    /// already billed for in the room (an overlapping reconnect, a second tab). Null while open.
    pub billed_us: Option<i64>,
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Sessions, newest first.
    pub data: Vec<SessionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The participant sessions behind the usage numbers.
#[utoipa::path(get, path = "/v1/usage/sessions", tag = "usage", params(SessionsQuery),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SessionsQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = page_size(q.limit)?;
    let before: Option<ParticipantSid> = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")
            })
        })
        .transpose()?;
    let filter = SessionFilter {
        room: q.room,
        from: q.from,
        to: q.to,
        ..SessionFilter::default()
    };
    let mut sessions = state
        .store
        .usage()
        .sessions(caller.project_id, &filter, before, limit + 1)
        .await?;
    let next_cursor = if sessions.len() > limit as usize {
        sessions.truncate(limit as usize);
        sessions.last().map(|s| s.id.to_string())
    } else {
        None
    };
    let now = state.clock.now();
    let data = sessions
        .into_iter()
        .map(|s| SessionView {
            duration_us: Span::new(micros(s.joined_at), micros(s.left_at.unwrap_or(now))).len(),
            meter: if s.video {
                Meter::ParticipantMinutesVideo
            } else {
                Meter::ParticipantMinutesAudio
            },
            id: s.id,
            room: s.room_name,
            room_sid: s.room_sid,
            identity: s.identity,
            node: s.node_id,
            joined_at: s.joined_at,
            left_at: s.left_at,
            leave_reason: s.leave_reason,
            billed_us: s.billed_us,
        })
        .collect();
    Ok(Json(SessionList { data, next_cursor }))
}

/// Query of `GET /v1/billing/preview`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// The billing period, `YYYY-MM` (default: the current one).
    pub period: Option<String>,
}

/// The invoice of a period as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingPreview {
    /// The period, `YYYY-MM` (a calendar month in UTC).
    pub period: String,
    /// Its first instant.
    pub period_start: DateTime<Utc>,
    /// Its end (exclusive).
    pub period_end: DateTime<Utc>,
    /// Whether the period is still running (open sessions counted up to now).
    pub running: bool,
    /// The invoice: per meter usage, billed quantity, allowance, overage and amount, in US cents.
    pub invoice: Invoice,
}

/// The running invoice of the current (or a past) period.
#[utoipa::path(get, path = "/v1/billing/preview", tag = "usage", params(PreviewQuery),
    responses((status = 200, body = BillingPreview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn billing_preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<BillingPreview>, ApiError> {
    let now = state.clock.now();
    let period = match q.period.as_deref() {
        Some(p) => p
            .parse::<Period>()
            .map_err(|e| ApiError::bad_request("invalid_period", e))?,
        None => Period::containing(now),
    };
    let (start, end) = (period.start(), period.end());
    if start > now {
        return Err(ApiError::bad_request(
            "invalid_period",
            format!("{period} has not started yet"),
        ));
    }
    let usage = state.store.usage();
    let totals = usage
        .report(caller.project_id, start, end, None, 0)
        .await?
        .totals_with_open(start, end, now);
    let running = now < end;
    let plan = usage.plan(caller.project_id).await?;
    let list = state
        .config
        .plans
        .price_list(plan.as_deref(), period)
        .ok_or_else(|| {
            ApiError::bad_request(
                "no_plan",
                format!(
                    "plan `{}` has no prices for {period}",
                    plan.as_deref().unwrap_or(&state.config.plans.default_plan)
                ),
            )
        })?;
    Ok(Json(BillingPreview {
        period: period.to_string(),
        period_start: start,
        period_end: end,
        running,
        invoice: invoice(list, &totals),
    }))
}
