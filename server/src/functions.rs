//! `switchboard functions ...`: deploy and manage functions through the REST API.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::remote::client::{segment, ApiFlags};

/// Arguments of `switchboard functions deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The function's name (a-z, 0-9, `-`, `_`).
    pub name: String,
    /// The WebAssembly component to upload.
    pub file: PathBuf,
    /// Events that run it: `participant.joining` (the join hook) and/or catalogue types such as `room.*`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub events: Vec<String>,
    /// Upload without making it the active version.
    #[arg(long)]
    pub inactive: bool,
    #[command(flatten)]
    pub api: ApiFlags,
}

/// Uploads a component as a new version and prints the deployment.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let path = format!("/v1/functions/{}/versions", segment(&args.name));
    let query = [
        ("events", args.events.join(",")),
        ("activate", (!args.inactive).to_string()),
    ];
    let body = args
        .api
        .connect()?
        .upload(&path, &query, "application/wasm", bytes)
        .await
        .context("deployment refused")?;
    println!(
        "deployed {} version {} (sha256 {}), events {}; active version {}",
        body["function"]["name"].as_str().unwrap_or_default(),
        body["version"]["version"],
        body["version"]["digest"].as_str().unwrap_or_default(),
        body["version"]["events"],
        body["function"]["active_version"],
    );
    Ok(())
}
