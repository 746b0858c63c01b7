//! `switchboard events ...`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::ApiFlags;
use super::table::cell;

/// `switchboard events ...`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Follow the project's event log live, a line per event, until interrupted.
    Tail(TailArgs),
}

/// Arguments of `switchboard events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this event type, such as `participant.joined`.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only events about this room.
    #[arg(long)]
    pub room: Option<String>,
    /// Start from this time (RFC 3339) instead of now.
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// How often to ask for new events.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print each event as a line of JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiFlags,
}

/// Runs an `events` command.
pub async fn run(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Tail(args) => tail(args).await,
    }
}

/// Prints events as they are appended to the log: pages from `since`, then
/// asks again every interval after the last event printed (its `seq` is the
/// log's cursor), so no event is printed twice or skipped.
async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let remote = args.api.connect()?;
    let since = args.since.unwrap_or_else(Utc::now);
    let mut query = vec![("since", since.to_rfc3339()), ("limit", "100".to_owned())];
    if let Some(t) = args.event_type {
        query.push(("type", t));
    }
    if let Some(r) = args.room {
        query.push(("room", r));
    }
    let mut after: Option<i64> = None;
    loop {
        let mut q = query.clone();
        if let Some(seq) = after {
            q.push(("cursor", seq.to_string()));
        }
        let page = remote.get("/v1/events", &q).await?;
        let events = page["data"].as_array().cloned().unwrap_or_default();
        for event in &events {
            if args.json {
                println!("{event}");
            } else {
                println!("{}", line(event));
            }
            if let Some(seq) = event["seq"].as_i64() {
                after = Some(seq);
            }
        }
        if page["next_cursor"].is_null() {
            tokio::time::sleep(args.interval).await;
        }
    }
}

/// One event for people: when, what, and who or which room it is about.
fn line(event: &Value) -> String {
    let data = &event["data"];
    let mut about = Vec::new();
    if let Some(room) = data["room"]["name"].as_str() {
        about.push(format!("room={room}"));
    }
    if let Some(who) = data["participant"]["identity"].as_str() {
        about.push(format!("identity={who}"));
    }
    if let Some(track) = data["track"]["sid"].as_str() {
        about.push(format!("track={track}"));
    }
    format!(
        "{}  {}  {}",
        cell(&event["created_at"]),
        cell(&event["type"]),
        about.join(" ")
    )
    .trim_end()
    .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_event_line_names_its_room_and_participant() {
        let e = json!({
            "created_at": "2026-12-08T00:00:00Z",
            "type": "participant.joined",
            "data": { "room": { "name": "demo" }, "participant": { "identity": "alice" } }
        });
        assert_eq!(
            super::line(&e),
            "2026-12-08T00:00:00Z  participant.joined  room=demo identity=alice"
        );
        let bare =
            json!({ "created_at": "2026-12-08T00:00:00Z", "type": "webhook.test", "data": {} });
        assert_eq!(super::line(&bare), "2026-12-08T00:00:00Z  webhook.test");
    }
}
