//! A billing period's usage and sessions as CSV files, for spreadsheets and
//! for checking an invoice line by line.
//!
//! - `usage/days.csv`: one row per UTC day and meter, in the ledger's unit
//!   and in the billed unit (open sessions counted up to now, as the usage
//!   page counts them).
//! - `usage/sessions.csv`: one row per participant session that was open at
//!   any time in the period, with what it was billed, written a page at a
//!   time as it is read.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use switchboard_core::usage::Meter;
use switchboard_core::ParticipantSid;
use switchboard_store::usage::{Session, SessionFilter};

use crate::error::PageError;
use crate::pages::usage::{per_day, UsageQuery};
use crate::session::SignedIn;
use crate::Dashboard;

/// Sessions read from the store per query while writing the file.
const PAGE: u32 = 1_000;

/// `rows` (the first one the header) as a CSV download named `name`.
fn csv_file(name: &str, rows: Vec<Vec<String>>) -> Result<Response, PageError> {
    let body = encode(&rows).map_err(|e| {
        tracing::error!(error = %e, "cannot write a CSV file");
        PageError::Refused("The file could not be written; try again.".into())
    })?;
    Ok(download(name, axum::body::Body::from(body)))
}

/// `body` as a CSV download named `name`.
fn download(name: &str, body: axum::body::Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A quantity in a meter's internal unit, in its billed unit, exactly.
fn in_billed_unit(meter: Meter, quantity: i64) -> String {
    let per = meter.units_per_billed();
    if per == 1 {
        return quantity.to_string();
    }
    rust_decimal::Decimal::from_i128_with_scale(i128::from(quantity), 0)
        .checked_div(rust_decimal::Decimal::from(per))
        .map_or_else(String::new, |d| d.normalize().to_string())
}

/// `GET /dashboard/projects/{project}/usage/days.csv[?period=YYYY-MM]`.
pub async fn days(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    let now = d.clock.now();
    let period = q.period(now)?;
    let report = d
        .store
        .usage()
        .report(project.id, period.start(), period.end(), None, 0)
        .await?;
    let mut rows = vec![[
        "day",
        "meter",
        "usage",
        "usage_unit",
        "billed_unit_quantity",
        "billed_unit",
    ]
    .map(String::from)
    .to_vec()];
    for (day, meters) in per_day(&report, period, now) {
        for (meter, quantity) in meters {
            rows.push(vec![
                day.format("%Y-%m-%d").to_string(),
                meter.as_str().to_owned(),
                quantity.to_string(),
                meter.internal_unit().to_owned(),
                in_billed_unit(meter, quantity),
                meter.billed_unit().to_owned(),
            ]);
        }
    }
    csv_file(&format!("usage-{}-{period}.csv", project.id), rows)
}

/// `GET /dashboard/projects/{project}/usage/sessions.csv[?period=YYYY-MM]`.
pub async fn sessions(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    let period = q.period(d.clock.now())?;
    let filter = SessionFilter {
        from: Some(period.start()),
        to: Some(period.end()),
        ..SessionFilter::default()
    };
    let header = [
        "participant_sid",
        "room_name",
        "room_sid",
        "identity",
        "node_id",
        "joined_at",
        "left_at",
        "leave_reason",
        "video",
        "billed_us",
    ]
    .map(String::from)
    .to_vec();
    // Written a page of sessions at a time as the client reads, so a busy
    // month is never held in memory whole.
    let first = encode(&[header]).map_err(|e| {
        tracing::error!(error = %e, "cannot write a CSV header");
        PageError::Refused("The file could not be written; try again.".into())
    })?;
    let store = d.store.clone();
    let pages = futures::stream::unfold(
        Some(None),
        move |before: Option<Option<ParticipantSid>>| {
            let (store, filter) = (store.clone(), filter.clone());
            async move {
                let before = before?;
                let page = match store
                    .usage()
                    .sessions(project.id, &filter, before, PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(project_id = %project.id, error = %e, "sessions export cut short");
                        return Some((Err(std::io::Error::other("the database failed")), None));
                    }
                };
                let next = (page.len() == PAGE as usize).then(|| page.last().map(|s| s.id));
                let rows: Vec<Vec<String>> = page.into_iter().map(session_row).collect();
                Some((encode(&rows), next))
            }
        },
    );
    let body = futures::stream::once(async move { Ok(first) }).chain(pages);
    Ok(download(
        &format!("sessions-{}-{period}.csv", project.id),
        axum::body::Body::from_stream(body),
    ))
}

/// `rows` as CSV text.
fn encode(rows: &[Vec<String>]) -> std::io::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    for row in rows {
        out.write_record(row)?;
    }
    out.into_inner().map_err(|e| e.into_error())
}

/// `text` from a user, safe to open in a spreadsheet: one that would be
/// read as a formula (`=`, `+`, `-`, `@`) is written after a `'`, as
/// OWASP's advice on CSV injection has it, so an identity such as
/// `=HYPERLINK(..)` shows as text instead of running.
fn cell(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

fn session_row(s: Session) -> Vec<String> {
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    vec![
        s.id.to_string(),
        cell(s.room_name),
        s.room_sid,
        cell(s.identity),
        s.node_id.map(|n| n.to_string()).unwrap_or_default(),
        time(s.joined_at),
        s.left_at.map(time).unwrap_or_default(),
        s.leave_reason.unwrap_or_default(),
        s.video.to_string(),
        s.billed_us.map(|b| b.to_string()).unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_spreadsheet_would_run_is_written_as_text() {
        assert_eq!(cell("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(A1)".into()), "'@SUM(A1)");
        assert_eq!(cell("alice, \"the\" admin".into()), "alice, \"the\" admin");
    }

    #[test]
    fn quantities_read_exactly_in_billed_units() {
        assert_eq!(
            in_billed_unit(Meter::ParticipantMinutesVideo, 90_000_000),
            "1.5"
        );
        assert_eq!(in_billed_unit(Meter::FunctionCompute, 1_250_000), "1.25");
        assert_eq!(in_billed_unit(Meter::FunctionInvocations, 7), "7");
        assert!(in_billed_unit(Meter::ParticipantMinutesAudio, 1).starts_with("0.0000000166666"));
    }
}
