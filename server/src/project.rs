//! `switchboard project create | set-plan | link-stripe | suspend | resume`.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use switchboard_store::api_keys::{generate_key_id, generate_secret, MIN_SECRET_LEN};

use switchboard_core::ProjectId;
use switchboard_store::Store;

use crate::cli::StorageFlags;
use crate::config::{FileConfig, Storage};

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

/// Opens and migrates the database of `storage`.
async fn open(storage: &StorageFlags) -> anyhow::Result<Store> {
    let store = Storage::resolve(storage)?.open().await?;
    store.migrate().await?;
    Ok(store)
}

/// Arguments of `switchboard project set-plan`.
#[derive(Debug, Args)]
pub struct SetPlanArgs {
    /// The project's id (`prj_...`).
    project: ProjectId,
    /// A plan of the [billing] configuration; leave out for the default plan.
    plan: Option<String>,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Puts a project on a plan.
pub async fn set_plan(args: SetPlanArgs) -> anyhow::Result<()> {
    let plans = FileConfig::load(args.storage.config.as_deref())?
        .billing
        .unwrap_or_default();
    if let Some(plan) = &args.plan {
        if !plans.has_plan(plan) {
            let mut names: Vec<&str> = plans.plans.iter().map(|p| p.name.as_str()).collect();
            names.dedup();
            if names.is_empty() {
                bail!("there is no plan {plan:?}: no [billing] plans are configured (give the server's --config)");
            }
            bail!(
                "there is no plan {plan:?} in the [billing] configuration; its plans are: {}",
                names.join(", ")
            );
        }
    }
    let store = open(&args.storage).await?;
    if !store
        .usage()
        .set_plan(args.project, args.plan.as_deref())
        .await?
    {
        bail!("there is no project {}", args.project);
    }
    println!(
        "project {} is on plan {}",
        args.project,
        args.plan.as_deref().unwrap_or(&plans.default_plan)
    );
    Ok(())
}

/// Arguments of `switchboard project link-stripe`.
#[derive(Debug, Args)]
pub struct LinkStripeArgs {
    /// The project's id (`prj_...`).
    project: ProjectId,
    /// The Stripe customer to bill (`cus_...`).
    #[arg(long)]
    customer: String,
    /// Its subscription, if it already has one (`sub_...`); otherwise the server creates one.
    #[arg(long)]
    subscription: Option<String>,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Links a project to a customer someone created in Stripe.
pub async fn link_stripe(args: LinkStripeArgs) -> anyhow::Result<()> {
    if !args.customer.starts_with("cus_") {
        bail!(
            "{:?} is not a Stripe customer id (they start with cus_)",
            args.customer
        );
    }
    if let Some(sub) = &args.subscription {
        if !sub.starts_with("sub_") {
            bail!("{sub:?} is not a Stripe subscription id (they start with sub_)");
        }
    }
    let store = open(&args.storage).await?;
    let linked = store
        .stripe()
        .link(
            args.project,
            &args.customer,
            args.subscription.as_deref(),
            chrono::Utc::now(),
        )
        .await?;
    if !linked {
        bail!("there is no project {}", args.project);
    }
    println!(
        "project {} is billed to Stripe customer {}",
        args.project, args.customer
    );
    Ok(())
}

/// Arguments of `switchboard project suspend`.
#[derive(Debug, Args)]
pub struct SuspendArgs {
    /// The project's id (`prj_...`).
    project: ProjectId,
    /// Why, as a short code that joining clients see.
    #[arg(long, default_value = "operator")]
    reason: String,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Suspends a project.
pub async fn suspend(args: SuspendArgs) -> anyhow::Result<()> {
    let reason = args.reason.trim();
    if reason.is_empty()
        || reason.len() > 40
        || !reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        bail!("a reason is 1 to 40 characters of A-Z, a-z, 0-9 and `_` (like payment_failed)");
    }
    let store = open(&args.storage).await?;
    if !store
        .projects()
        .set_suspension(args.project, Some(reason), chrono::Utc::now())
        .await?
    {
        bail!("there is no project {}", args.project);
    }
    println!(
        "project {} is suspended ({reason}): new joins are refused",
        args.project
    );
    Ok(())
}

/// Arguments of `switchboard project resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The project's id (`prj_...`).
    project: ProjectId,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Lifts a project's suspension; a cancelled Stripe subscription is
/// forgotten so the server subscribes the customer again.
pub async fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let store = open(&args.storage).await?;
    let was = store.projects().suspension(args.project).await?;
    if !store
        .projects()
        .set_suspension(args.project, None, chrono::Utc::now())
        .await?
    {
        bail!("there is no project {}", args.project);
    }
    if was
        .as_ref()
        .is_some_and(|s| s.reason == "subscription_canceled")
    {
        store.stripe().forget_subscription(args.project).await?;
    }
    println!("project {} is active", args.project);
    Ok(())
}
