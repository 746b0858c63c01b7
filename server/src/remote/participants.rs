//! `switchboard participants ...`.

use clap::Subcommand;
use serde_json::json;

use super::client::{segment, ApiFlags};
use super::table::{cell, OutputFlags, Table};

/// `switchboard participants ...`.
#[derive(Debug, Subcommand)]
pub enum ParticipantsCommand {
    /// List who is in a room, with their tracks.
    List {
        /// The room's name.
        room: String,
        #[command(flatten)]
        api: ApiFlags,
        #[command(flatten)]
        out: OutputFlags,
    },
    /// Disconnect a participant from a room.
    Remove {
        /// The room's name.
        room: String,
        /// The participant's identity.
        identity: String,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Mute (or with --unmute, unmute) one of a participant's tracks.
    Mute {
        /// The room's name.
        room: String,
        /// The participant's identity.
        identity: String,
        /// The track's sid, as `participants list` shows it.
        track: String,
        /// Unmute instead.
        #[arg(long)]
        unmute: bool,
        #[command(flatten)]
        api: ApiFlags,
    },
}

/// Runs a `participants` command.
pub async fn run(command: ParticipantsCommand) -> anyhow::Result<()> {
    match command {
        ParticipantsCommand::List { room, api, out } => {
            let path = format!("/v1/rooms/{}/participants", segment(&room));
            let list = api.connect()?.get(&path, &[]).await?;
            let people = list["data"].clone();
            out.print(&people, || {
                Table::of(
                    ["IDENTITY", "SID", "STATE", "JOINED", "TRACKS"],
                    &people,
                    |p| {
                        let tracks: Vec<String> = p["tracks"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|t| {
                                let muted = if t["muted"] == true { " muted" } else { "" };
                                format!("{} {}{muted}", cell(&t["kind"]), cell(&t["sid"]))
                            })
                            .collect();
                        [
                            cell(&p["identity"]),
                            cell(&p["sid"]),
                            cell(&p["state"]),
                            cell(&p["joined_at"]),
                            if tracks.is_empty() {
                                "-".to_owned()
                            } else {
                                tracks.join(", ")
                            },
                        ]
                    },
                )
            });
        }
        ParticipantsCommand::Remove {
            room,
            identity,
            api,
        } => {
            let path = format!(
                "/v1/rooms/{}/participants/{}",
                segment(&room),
                segment(&identity)
            );
            api.connect()?.delete(&path).await?;
            println!("removed {identity} from {room}");
        }
        ParticipantsCommand::Mute {
            room,
            identity,
            track,
            unmute,
            api,
        } => {
            let path = format!(
                "/v1/rooms/{}/participants/{}/mute",
                segment(&room),
                segment(&identity)
            );
            let body = json!({ "track_sid": track, "muted": !unmute });
            api.connect()?.post(&path, &body).await?;
            let done = if unmute { "unmuted" } else { "muted" };
            println!("{done} {identity}'s track {track} in {room}");
        }
    }
    Ok(())
}
