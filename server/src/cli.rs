//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeFlags;

/// Switchboard: programmable real-time audio and video rooms.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeFlags>),
    /// Apply database migrations and exit.
    Migrate(StorageFlags),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the nodes of a deployment, or drain one.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Bill usage through Stripe.
    #[cfg(feature = "stripe")]
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Deploy functions through the REST API.
    #[command(subcommand)]
    Functions(FunctionsCommand),
    /// Load a media node with simulated publishers and subscribers and report loss, jitter and latency.
    Loadtest(crate::loadtest::LoadtestArgs),
    /// List, create and close rooms through the REST API.
    #[command(subcommand)]
    Rooms(crate::remote::rooms::RoomsCommand),
    /// List, remove and mute a room's participants through the REST API.
    #[command(subcommand)]
    Participants(crate::remote::participants::ParticipantsCommand),
    /// Manage webhook endpoints and see their deliveries.
    #[command(subcommand)]
    Webhooks(crate::remote::webhooks::WebhooksCommand),
    /// Start, stop, list and download recordings.
    #[command(subcommand)]
    Recordings(crate::remote::recordings::RecordingsCommand),
    /// Read the project's event log.
    #[command(subcommand)]
    Events(crate::remote::events::EventsCommand),
    /// Show the project's metered usage.
    Usage(crate::remote::usage::UsageArgs),
    /// Save the server and API key the REST commands use.
    #[command(subcommand)]
    Profile(crate::remote::profile::ProfileCommand),
}

/// Where the data lives, for commands that open the database.
#[derive(Debug, Clone, Args)]
pub struct StorageFlags {
    /// Directory for the SQLite database and the master key.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL or SQLite URL; defaults to SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project with its first API key; prints the key's secret once.
    Create(crate::project::CreateArgs),
    /// Put a project on a plan of the [billing] configuration.
    SetPlan(crate::project::SetPlanArgs),
    /// Link a project to an existing Stripe customer (and subscription).
    LinkStripe(crate::project::LinkStripeArgs),
    /// Suspend a project: new joins are refused; calls in progress go on.
    Suspend(crate::project::SuspendArgs),
    /// Lift a project's suspension.
    Resume(crate::project::ResumeArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a dashboard user (or reset one's password) in one or more projects.
    Create(crate::user::CreateArgs),
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Show every running node: role, region, state, load and URL.
    List(crate::node::ListArgs),
    /// Send no new rooms to a node; its rooms go on until they finish.
    Drain(crate::node::DrainArgs),
}

#[cfg(feature = "stripe")]
#[derive(Debug, Subcommand)]
enum BillingCommand {
    /// Report a period's usage to Stripe now, before the period closes.
    Settle(crate::billing::SettleArgs),
}

#[derive(Debug, Subcommand)]
enum FunctionsCommand {
    /// Upload a WebAssembly component as a new version of a function.
    Deploy(crate::functions::DeployArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Sign an access token offline from an API key id and secret.
    Create(crate::token::CreateArgs),
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(flags) => crate::serve::run(*flags).await,
        Command::Migrate(storage) => {
            crate::config::init_logging(None);
            let storage = crate::config::Storage::resolve(&storage)?;
            let store = storage.open().await?;
            store.migrate().await?;
            println!("migrations applied to {}", storage.describe());
            Ok(())
        }
        Command::Project(ProjectCommand::Create(args)) => crate::project::create(args).await,
        Command::Project(ProjectCommand::SetPlan(args)) => crate::project::set_plan(args).await,
        Command::Project(ProjectCommand::LinkStripe(args)) => {
            crate::project::link_stripe(args).await
        }
        Command::Project(ProjectCommand::Suspend(args)) => crate::project::suspend(args).await,
        Command::Project(ProjectCommand::Resume(args)) => crate::project::resume(args).await,
        Command::Node(NodeCommand::List(args)) => crate::node::list(args).await,
        Command::Node(NodeCommand::Drain(args)) => crate::node::drain(args).await,
        #[cfg(feature = "stripe")]
        Command::Billing(BillingCommand::Settle(args)) => crate::billing::settle(args).await,
        Command::User(UserCommand::Create(args)) => crate::user::create(args).await,
        Command::Token(TokenCommand::Create(args)) => crate::token::create(args),
        Command::Functions(FunctionsCommand::Deploy(args)) => crate::functions::deploy(args).await,
        Command::Loadtest(args) => crate::loadtest::run(args).await,
        Command::Rooms(command) => crate::remote::rooms::run(command).await,
        Command::Participants(command) => crate::remote::participants::run(command).await,
        Command::Webhooks(command) => crate::remote::webhooks::run(command).await,
        Command::Recordings(command) => crate::remote::recordings::run(command).await,
        Command::Events(command) => crate::remote::events::run(command).await,
        Command::Usage(args) => crate::remote::usage::run(args).await,
        Command::Profile(command) => crate::remote::profile::run(command),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
