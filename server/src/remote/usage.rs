//! `switchboard usage`.

use clap::Args;

use super::client::ApiFlags;
use super::table::{cell, OutputFlags, Table};

/// Arguments of `switchboard usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Start of the period (RFC 3339 or a date) [default: the start of this month].
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period [default: now].
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub api: ApiFlags,
    #[command(flatten)]
    pub out: OutputFlags,
}

/// Runs `switchboard usage`: each meter's total over the period.
pub async fn run(args: UsageArgs) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = [("from", args.from), ("to", args.to)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let report = args.api.connect()?.get("/v1/usage", &query).await?;
    args.out.print(&report, || {
        Table::of(
            ["METER", "TOTAL", "UNIT", "BILLED AS"],
            &report["meters"],
            |m| {
                [
                    cell(&m["meter"]),
                    cell(&m["total"]),
                    cell(&m["unit"]),
                    cell(&m["billed_unit"]),
                ]
            },
        )
    });
    if !args.out.json {
        println!(
            "from {} to {}; sessions open now: {}",
            cell(&report["from"]),
            cell(&report["to"]),
            cell(&report["open_sessions"])
        );
    }
    Ok(())
}
