//! `switchboard recordings ...`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::client::{segment, ApiFlags};
use super::table::{cell, OutputFlags, Table};

/// `switchboard recordings ...`.
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// List recordings, newest first.
    List {
        /// Only this room's.
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        api: ApiFlags,
        #[command(flatten)]
        out: OutputFlags,
    },
    /// Start recording a room.
    Start {
        /// The room's name.
        room: String,
        /// `tracks` (each track to its own file) or `composite` (one MP4 of the room).
        #[arg(long, default_value = "tracks")]
        mode: String,
        /// Audio only.
        #[arg(long)]
        audio_only: bool,
        #[command(flatten)]
        api: ApiFlags,
        #[command(flatten)]
        out: OutputFlags,
    },
    /// Stop a recording; its files are finished shortly after.
    Stop {
        /// The recording's id.
        id: String,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Download a finished recording's files into a directory.
    Download {
        /// The recording's id.
        id: String,
        /// Where to put the files.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[command(flatten)]
        api: ApiFlags,
    },
}

/// Runs a `recordings` command.
pub async fn run(command: RecordingsCommand) -> anyhow::Result<()> {
    match command {
        RecordingsCommand::List { room, api, out } => {
            let query: Vec<(&str, String)> = room.map(|r| ("room", r)).into_iter().collect();
            let list = Value::from(api.connect()?.all("/v1/recordings", &query).await?);
            out.print(&list, || {
                Table::of(
                    ["ID", "ROOM", "MODE", "STATUS", "FILES", "CREATED"],
                    &list,
                    |r| {
                        [
                            cell(&r["id"]),
                            cell(&r["room"]["name"]),
                            cell(&r["spec"]["mode"]),
                            cell(&r["status"]),
                            r["files"].as_array().map_or(0, Vec::len).to_string(),
                            cell(&r["created_at"]),
                        ]
                    },
                )
            });
        }
        RecordingsCommand::Start {
            room,
            mode,
            audio_only,
            api,
            out,
        } => {
            let path = format!("/v1/rooms/{}/recordings", segment(&room));
            let body = json!({ "mode": mode, "audio_only": audio_only });
            let rec = api.connect()?.post(&path, &body).await?;
            out.print(&rec, || {
                let mut t = Table::new(["RECORDING", "ROOM", "STATUS"]);
                t.row([
                    cell(&rec["id"]),
                    cell(&rec["room"]["name"]),
                    cell(&rec["status"]),
                ]);
                t
            });
        }
        RecordingsCommand::Stop { id, api } => {
            let path = format!("/v1/recordings/{}/stop", segment(&id));
            let rec = api.connect()?.post(&path, &json!({})).await?;
            println!("stopping {id}: {}", cell(&rec["status"]));
        }
        RecordingsCommand::Download { id, out, api } => {
            let remote = api.connect()?;
            let rec = remote
                .get(&format!("/v1/recordings/{}", segment(&id)), &[])
                .await?;
            let files = rec["files"].as_array().cloned().unwrap_or_default();
            if files.is_empty() {
                bail!(
                    "recording {id} has no files yet (status {}); stop it and wait until it is finished",
                    cell(&rec["status"])
                );
            }
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            for file in &files {
                let name = file["name"].as_str().unwrap_or_default();
                let target = local_path(&out, name)?;
                let path = format!("/v1/recordings/{}/files/{}", segment(&id), segment(name));
                let mut response = remote.download(&path).await?;
                let mut written = tokio::fs::File::create(&target)
                    .await
                    .with_context(|| format!("cannot write {}", target.display()))?;
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .with_context(|| format!("the download of {name} broke off"))?
                {
                    written.write_all(&chunk).await?;
                }
                written.flush().await?;
                println!("{}", target.display());
            }
        }
    }
    Ok(())
}

/// Where a file the server named `name` goes in `dir`: refused unless the
/// name is a plain file name, so no answer can write outside `dir`.
fn local_path(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if !plain {
        bail!("the server named a file {name:?}, which is not a plain file name; nothing written");
    }
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_from_the_server_stays_in_the_directory() {
        let dir = Path::new("/tmp/out");
        assert_eq!(local_path(dir, "a.mkv").unwrap(), dir.join("a.mkv"));
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a\\b", "a\0b"] {
            assert!(local_path(dir, bad).is_err(), "{bad:?}");
        }
    }
}
