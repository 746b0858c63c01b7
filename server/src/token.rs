//! `switchboard token create`: sign an access token without a server.

use anyhow::bail;
use clap::Args;
use switchboard_core::token::{self, Claims, Grants, DEFAULT_TTL_S};
use switchboard_core::{Identity, RoomName};
use switchboard_store::api_keys::MIN_SECRET_LEN;

/// Arguments of `switchboard token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Room the token joins.
    #[arg(long)]
    room: String,
    /// Participant identity.
    #[arg(long)]
    identity: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Lifetime in seconds (1 to 86400).
    #[arg(long, default_value_t = DEFAULT_TTL_S)]
    ttl_s: u64,
    /// API key id (`kid`).
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    api_key: Option<String>,
    /// API key secret.
    #[arg(long, env = "SWITCHBOARD_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// Use the dev key (`devkey` / `secret`) of `serve --dev`.
    #[arg(long)]
    dev: bool,
    /// Deny publishing.
    #[arg(long)]
    no_publish: bool,
    /// Deny subscribing.
    #[arg(long)]
    no_subscribe: bool,
    /// Deny data messages.
    #[arg(long)]
    no_publish_data: bool,
    /// Grant room administration.
    #[arg(long)]
    room_admin: bool,
    /// Allow creating the room by joining it.
    #[arg(long)]
    room_create: bool,
    /// Join as a recorder.
    #[arg(long)]
    recorder: bool,
    /// Allow changing one's own name and metadata.
    #[arg(long)]
    update_metadata: bool,
}

/// Prints a signed token.
pub fn create(args: CreateArgs) -> anyhow::Result<()> {
    let (key, secret) = match (args.api_key, args.api_secret, args.dev) {
        (Some(k), Some(s), _) => (k, s),
        (None, None, true) => (crate::serve::DEV_KEY_ID.to_owned(), crate::serve::DEV_KEY_SECRET.to_owned()),
        _ => bail!("give --api-key and --api-secret (or SWITCHBOARD_API_KEY / SWITCHBOARD_API_SECRET), or --dev for the dev key"),
    };
    if secret.len() < MIN_SECRET_LEN && !args.dev {
        bail!("the API secret is shorter than {MIN_SECRET_LEN} characters; only --dev accepts short secrets");
    }
    let grants = Grants {
        room: Some(RoomName::new(args.room)?),
        can_publish: !args.no_publish,
        can_subscribe: !args.no_subscribe,
        can_publish_data: !args.no_publish_data,
        room_admin: args.room_admin,
        room_create: args.room_create,
        recorder: args.recorder,
        can_update_metadata: args.update_metadata,
    };
    let ttl_s = token::check_ttl(args.ttl_s)?;
    let mut claims = Claims::new(
        &key,
        Identity::new(args.identity)?,
        grants,
        chrono::Utc::now(),
        ttl_s,
    );
    claims.name = args.name;
    println!("{}", token::sign(&claims, &key, &secret)?);
    Ok(())
}
