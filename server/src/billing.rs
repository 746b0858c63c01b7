//! `switchboard billing settle`.

use anyhow::Context;
use clap::Args;
use switchboard_billing::stripe::{report, Api};
use switchboard_core::usage::Period;
use switchboard_core::ProjectId;

use crate::cli::StorageFlags;
use crate::config::{FileConfig, Storage};

/// Arguments of `switchboard billing settle`.
#[derive(Debug, Args)]
pub struct SettleArgs {
    /// The billing period, `YYYY-MM` (UTC month).
    #[arg(long, value_parser = parse_period)]
    period: Period,
    /// Only this project (every project linked to Stripe if left out).
    #[arg(long)]
    project: Option<ProjectId>,
    #[command(flatten)]
    storage: StorageFlags,
}

fn parse_period(s: &str) -> Result<Period, String> {
    s.parse()
}

/// Reports `period`'s usage so far to Stripe, with the plan's minimum, and
/// sends every pending report. Usage after this is reported when the period
/// closes; nothing is reported twice.
pub async fn settle(args: SettleArgs) -> anyhow::Result<()> {
    crate::config::init_logging(None);
    let file = FileConfig::load(args.storage.config.as_deref())?;
    let plans = file.billing.clone().unwrap_or_default();
    plans
        .validate()
        .context("the [billing] section of the config file")?;
    let stripe = file.stripe.clone().context(
        "the config file has no [stripe] section: give --config with the server's configuration",
    )?;
    stripe.validate(&plans)?;
    let store = Storage::resolve(&args.storage)?.open().await?;
    store.migrate().await?;
    let now = chrono::Utc::now();
    let api = Api::new(&stripe)?;
    // A project must have its customer before anything can be billed to it;
    // if Stripe is down, the reports are still planned, to be retried.
    if let Err(e) =
        switchboard_billing::stripe::link::link_projects(&api, &store, &stripe, now).await
    {
        eprintln!("warning: cannot link projects to Stripe customers: {e}");
    }
    let projects: Vec<ProjectId> = match args.project {
        Some(p) => vec![p],
        None => store
            .stripe()
            .links()
            .await?
            .iter()
            .map(|l| l.project)
            .collect(),
    };
    let planned = report::settle(&store, &plans, &stripe, &projects, args.period, now).await?;
    let sent = report::send_due(&api, &store, &stripe, now).await?;
    println!(
        "{planned} project(s) had usage to report for {}; {} report(s) sent, {} failed (retried by the server)",
        args.period, sent.sent, sent.failed
    );
    if sent.failed > 0 {
        anyhow::bail!(
            "{} report(s) to Stripe failed; see GET /v1/billing/stripe for why",
            sent.failed
        );
    }
    Ok(())
}
