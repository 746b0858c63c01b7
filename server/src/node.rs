//! `switchboard node list` and `switchboard node drain`: the nodes of a
//! deployment, read from and marked in the shared database.

use anyhow::Context;
use clap::Args;
use switchboard_core::node::{dead_after, NodeInfo};
use switchboard_core::NodeId;

use crate::cli::StorageFlags;
use crate::config::Storage;

/// Arguments of `switchboard node list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print one JSON object per node instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Arguments of `switchboard node drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node (`nd_...`, as `switchboard node list` shows it).
    node: NodeId,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Prints every running node with its state and load.
pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let store = Storage::resolve(&args.storage)?.open().await?;
    let nodes = store.nodes().running().await?;
    let now = chrono::Utc::now();
    if args.json {
        for n in &nodes {
            println!("{}", serde_json::to_string(n)?);
        }
        return Ok(());
    }
    println!(
        "{:<30} {:<6} {:<12} {:<9} {:>5} {:>12} {:>6} {:>10} {:>5}  URL",
        "NODE", "ROLE", "REGION", "STATE", "ROOMS", "PARTICIPANTS", "TRACKS", "KBPS", "CPU"
    );
    for n in &nodes {
        println!(
            "{:<30} {:<6} {:<12} {:<9} {:>5} {:>12} {:>6} {:>10} {:>4.0}%  {}",
            n.id,
            n.role,
            n.region,
            state(n, now),
            n.load.rooms,
            n.load.participants,
            n.load.tracks,
            n.load.forwarded_bps / 1000,
            n.load.cpu * 100.0,
            n.url
        );
    }
    Ok(())
}

fn state(n: &NodeInfo, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    if !n.is_alive(now, dead_after()) {
        "silent"
    } else if n.draining_since.is_some() {
        "draining"
    } else {
        "up"
    }
}

/// Stops new rooms going to a node; its rooms go on until they finish.
pub async fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let store = Storage::resolve(&args.storage)?.open().await?;
    let node = store
        .nodes()
        .drain(args.node, chrono::Utc::now())
        .await?
        .with_context(|| {
            format!(
                "no running node has the id {}; `switchboard node list` shows them",
                args.node
            )
        })?;
    println!(
        "node {} ({}, {}) is draining: it takes no new rooms; its {} room(s) go on until they finish",
        node.id, node.region, node.url, node.load.rooms
    );
    Ok(())
}
