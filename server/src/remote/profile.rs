//! Saved profiles: a server's URL and an API key under a name, so commands
//! need no credentials on the command line.
//!
//! They live in `$XDG_CONFIG_HOME/switchboard/profiles.toml` (else
//! `~/.config/switchboard/profiles.toml`), readable by their owner only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

/// One saved server and key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The server's base URL.
    pub url: String,
    /// API key id.
    pub api_key: String,
    /// API key secret.
    pub api_secret: String,
}

/// Every saved profile, by name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Profiles {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Where profiles are saved.
    pub fn path() -> PathBuf {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        config.join("switchboard").join("profiles.toml")
    }

    /// The saved profiles; none when nothing was saved yet.
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!(
                    "{} is not a profiles file; fix or delete it",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The profile saved as `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Writes the profiles, readable by their owner only (they hold secrets).
    fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string(self).context("cannot write profiles as TOML")?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// `switchboard profile ...`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Save a server's URL and an API key under a name (`default` is used when no --profile is given).
    Save(SaveArgs),
    /// List the saved profiles (without their secrets).
    List,
}

/// Arguments of `switchboard profile save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The profile's name.
    #[arg(default_value = "default")]
    pub name: String,
    /// The server's base URL.
    #[arg(long)]
    pub url: String,
    /// API key id.
    #[arg(long)]
    pub api_key: String,
    /// API key secret.
    #[arg(long)]
    pub api_secret: String,
}

/// Runs a `profile` command.
pub fn run(command: ProfileCommand) -> anyhow::Result<()> {
    match command {
        ProfileCommand::Save(args) => {
            let mut profiles = Profiles::load()?;
            profiles.profiles.insert(
                args.name.clone(),
                Profile {
                    url: args.url,
                    api_key: args.api_key,
                    api_secret: args.api_secret,
                },
            );
            let path = profiles.save()?;
            println!("saved profile `{}` in {}", args.name, path.display());
        }
        ProfileCommand::List => {
            let mut table = super::table::Table::new(["NAME", "URL", "API KEY"]);
            for (name, p) in &Profiles::load()?.profiles {
                table.row([name.clone(), p.url.clone(), p.api_key.clone()]);
            }
            table.print();
        }
    }
    Ok(())
}
