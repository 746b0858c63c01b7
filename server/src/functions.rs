//! `switchboard functions ...`: deploy and manage functions through the REST API.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Where the API is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct ApiFlags {
    /// The server's base URL.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:7880")]
    pub url: String,
    /// API key id.
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    pub api_key: String,
    /// API key secret.
    #[arg(long, env = "SWITCHBOARD_API_SECRET", hide_env_values = true)]
    pub api_secret: String,
}

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
    let url = format!(
        "{}/v1/functions/{}/versions",
        args.api.url.trim_end_matches('/'),
        args.name
    );
    let response = reqwest::Client::new()
        .post(&url)
        .basic_auth(&args.api.api_key, Some(&args.api.api_secret))
        .query(&[
            ("events", args.events.join(",")),
            ("activate", (!args.inactive).to_string()),
        ])
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{url} answered {status} with a body that is not JSON"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        anyhow::bail!("deployment refused ({status}): {message}");
    }
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
