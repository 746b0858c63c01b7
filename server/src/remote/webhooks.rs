//! `switchboard webhooks ...`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{segment, ApiFlags};
use super::table::{cell, OutputFlags, Table};

/// `switchboard webhooks ...`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List the project's webhook endpoints.
    List {
        #[command(flatten)]
        api: ApiFlags,
        #[command(flatten)]
        out: OutputFlags,
    },
    /// Add an endpoint; prints its signing secret, shown this once.
    Create(CreateArgs),
    /// Send an endpoint a `webhook.test` event now.
    Test {
        /// The endpoint's id.
        id: String,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// What was sent to an endpoint, newest first, with each attempt's answer.
    Deliveries {
        /// The endpoint's id.
        id: String,
        #[command(flatten)]
        api: ApiFlags,
        #[command(flatten)]
        out: OutputFlags,
    },
}

/// Arguments of `switchboard webhooks create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The endpoint's URL.
    #[arg(value_name = "URL")]
    pub endpoint: String,
    /// Event types it receives, such as `participant.joined` or `room.*` [default: all].
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// A note for people.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub api: ApiFlags,
    #[command(flatten)]
    pub out: OutputFlags,
}

/// Runs a `webhooks` command.
pub async fn run(command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::List { api, out } => {
            let hooks = Value::from(api.connect()?.all("/v1/webhooks", &[]).await?);
            out.print(&hooks, || {
                Table::of(
                    ["ID", "URL", "EVENTS", "ENABLED", "FAILING SINCE"],
                    &hooks,
                    |h| {
                        [
                            cell(&h["id"]),
                            cell(&h["url"]),
                            events(&h["events"]),
                            cell(&h["enabled"]),
                            cell(&h["failing_since"]),
                        ]
                    },
                )
            });
        }
        WebhooksCommand::Create(args) => {
            let mut body = json!({ "url": args.endpoint });
            if !args.events.is_empty() {
                body["events"] = json!(args.events);
            }
            if let Some(description) = args.description {
                body["description"] = json!(description);
            }
            let created = args.api.connect()?.post("/v1/webhooks", &body).await?;
            args.out.print(&created, || {
                let mut t = Table::new(["ID", "URL", "EVENTS", "SECRET (shown once)"]);
                t.row([
                    cell(&created["id"]),
                    cell(&created["url"]),
                    events(&created["events"]),
                    cell(&created["secret"]),
                ]);
                t
            });
        }
        WebhooksCommand::Test { id, api } => {
            let path = format!("/v1/webhooks/{}/test", segment(&id));
            let sent = api.connect()?.post(&path, &json!({})).await?;
            println!(
                "queued test event {} for {id}; `switchboard webhooks deliveries {id}` shows its delivery",
                cell(&sent["event_id"])
            );
        }
        WebhooksCommand::Deliveries { id, api, out } => {
            let path = format!("/v1/webhooks/{}/deliveries", segment(&id));
            let page = api.connect()?.get(&path, &[]).await?;
            let deliveries = page["data"].clone();
            out.print(&deliveries, || {
                Table::of(
                    ["ID", "EVENT", "STATUS", "ATTEMPTS", "LAST ANSWER"],
                    &deliveries,
                    |d| {
                        let attempts = d["attempts"].as_array().map_or(0, Vec::len);
                        let last = d["attempts"].as_array().and_then(|a| a.last());
                        let answer =
                            last.map_or("-".to_owned(), |a| match a["status_code"].as_u64() {
                                Some(code) => format!("{code} in {} ms", cell(&a["latency_ms"])),
                                None => cell(&a["error"]),
                            });
                        [
                            cell(&d["id"]),
                            cell(&d["event_type"]),
                            cell(&d["status"]),
                            attempts.to_string(),
                            answer,
                        ]
                    },
                )
            });
        }
    }
    Ok(())
}

/// An endpoint's event filter as a cell: its types joined, or `all`.
fn events(value: &Value) -> String {
    match value.as_array() {
        Some(list) if !list.is_empty() => list.iter().map(cell).collect::<Vec<_>>().join(","),
        _ => "all".to_owned(),
    }
}
