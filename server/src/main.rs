//! `switchboard`: the server and its admin commands.
//!
//! Run with `cargo run --release -- serve --dev`.

#[cfg(feature = "stripe")]
mod billing;
mod cli;
mod config;
mod functions;
mod janitor;
mod listener;
mod loadtest;
mod node;
mod project;
mod remote;
mod serve;
mod token;
mod user;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // More than one TLS crypto backend is linked in (the Stripe client's and
    // others'); rustls then needs to be told which one to use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
