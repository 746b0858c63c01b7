//! `switchboard project create`.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use switchboard_store::api_keys::{generate_key_id, generate_secret, MIN_SECRET_LEN};

use crate::cli::StorageFlags;
use crate::config::Storage;

/// Arguments of `switchboard project create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The project's name.
    name: String,
    /// Id of its first API key (generated if absent).
    #[arg(long)]
    key_id: Option<String>,
    /// Secret of its first API key, at least 32 characters (generated if absent).
    #[arg(long, env = "SWITCHBOARD_NEW_KEY_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Checks a key id a person chose.
pub fn check_key_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bail!("a key id must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`");
    }
    Ok(())
}

/// Creates the project and prints its id, key id and secret.
pub async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let name = args.name.trim();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        bail!("a project name must be 1 to 128 bytes without control characters");
    }
    let key_id = args.key_id.unwrap_or_else(generate_key_id);
    check_key_id(&key_id)?;
    let secret = args.secret.unwrap_or_else(generate_secret);
    if secret.len() < MIN_SECRET_LEN {
        bail!(
            "the secret is {} characters; at least {MIN_SECRET_LEN} are required (leave --secret out to generate one)",
            secret.len()
        );
    }

    let storage = Storage::resolve(&args.storage)?;
    let store = storage.open().await?;
    store.migrate().await?;
    let now = chrono::Utc::now();
    let project = store.projects().create(name, now).await?;
    store
        .api_keys()
        .insert(
            project.id,
            &key_id,
            &secret,
            "created with the project",
            now,
        )
        .await
        .context("cannot store the API key")?;

    if args.json {
        println!(
            "{}",
            json!({ "project_id": project.id, "name": project.name, "key_id": key_id, "secret": secret })
        );
    } else {
        println!("project  {}  ({})", project.id, project.name);
        println!("key_id   {key_id}");
        println!("secret   {secret}");
        println!("The secret is shown only now: store it somewhere safe.");
    }
    Ok(())
}
