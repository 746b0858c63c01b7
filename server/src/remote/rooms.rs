//! `switchboard rooms ...`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{segment, ApiFlags};
use super::table::{cell, OutputFlags, Table};

/// `switchboard rooms ...`.
#[derive(Debug, Subcommand)]
pub enum RoomsCommand {
    /// List the project's open rooms.
    List {
        #[command(flatten)]
        api: ApiFlags,
        #[command(flatten)]
        out: OutputFlags,
    },
    /// Create a room (joining with a token creates one too).
    Create(CreateArgs),
    /// Close a room: everyone in it is disconnected.
    Delete {
        /// The room's name.
        name: String,
        #[command(flatten)]
        api: ApiFlags,
    },
}

/// Arguments of `switchboard rooms create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The room's name (a random one when left out).
    pub name: Option<String>,
    /// Most participants at once (0: no limit).
    #[arg(long)]
    pub max_participants: Option<u32>,
    /// Seconds the room stays open after its last participant leaves.
    #[arg(long)]
    pub empty_timeout: Option<u32>,
    /// Where the room should be hosted, such as `eu-west`.
    #[arg(long)]
    pub region: Option<String>,
    /// Free-form data for the app.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Record every track from the first one published.
    #[arg(long)]
    pub record: bool,
    #[command(flatten)]
    pub api: ApiFlags,
    #[command(flatten)]
    pub out: OutputFlags,
}

/// Runs a `rooms` command.
pub async fn run(command: RoomsCommand) -> anyhow::Result<()> {
    match command {
        RoomsCommand::List { api, out } => {
            let rooms = Value::from(api.connect()?.all("/v1/rooms", &[]).await?);
            out.print(&rooms, || {
                Table::of(["NAME", "PARTICIPANTS", "REGION", "CREATED"], &rooms, |r| {
                    [
                        cell(&r["name"]),
                        cell(&r["num_participants"]),
                        cell(&r["region"]),
                        cell(&r["created_at"]),
                    ]
                })
            });
        }
        RoomsCommand::Create(args) => {
            let mut body = json!({ "record": args.record });
            for (field, value) in [
                ("name", args.name.map(Value::from)),
                ("max_participants", args.max_participants.map(Value::from)),
                ("empty_timeout_s", args.empty_timeout.map(Value::from)),
                ("region", args.region.map(Value::from)),
                ("metadata", args.metadata.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body[field] = value;
                }
            }
            let room = args.api.connect()?.post("/v1/rooms", &body).await?;
            args.out.print(&room, || {
                let mut t = Table::new(["CREATED ROOM", "SID"]);
                t.row([cell(&room["name"]), cell(&room["sid"])]);
                t
            });
        }
        RoomsCommand::Delete { name, api } => {
            api.connect()?
                .delete(&format!("/v1/rooms/{}", segment(&name)))
                .await?;
            println!("closed room {name}");
        }
    }
    Ok(())
}
