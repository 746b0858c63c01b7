//! `switchboard user create`: a dashboard user, member of one or more projects.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Args;
use switchboard_core::ProjectId;
use switchboard_store::StoreError;

use crate::cli::StorageFlags;
use crate::config::Storage;

/// Arguments of `switchboard user create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The address the user signs in with.
    email: String,
    /// A project the user belongs to (`pr_...`); repeat for several.
    #[arg(long = "project", required = true)]
    projects: Vec<ProjectId>,
    /// Read the password from the first line of standard input instead of
    /// generating one (which is printed once).
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    storage: StorageFlags,
}

/// Checks the shape of an email address: one `@`, something on both sides, no spaces.
pub fn check_email(email: &str) -> anyhow::Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !ok {
        bail!("`{email}` is not an email address");
    }
    Ok(())
}

/// Creates the user (or adds an existing one to the projects) and prints how to sign in.
pub async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let email = args.email.trim().to_lowercase();
    check_email(&email)?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (
            switchboard_store::api_keys::generate_secret()[..20].to_owned(),
            true,
        )
    };
    let hash = switchboard_dashboard::password::hash(&password)?;

    let storage = Storage::resolve(&args.storage)?;
    let store = storage.open().await?;
    store.migrate().await?;
    for p in &args.projects {
        if store.projects().get(*p).await?.is_none() {
            bail!("there is no project {p}; `switchboard project create NAME` makes one");
        }
    }
    let now = chrono::Utc::now();
    let user = match store.users().create(&email, &hash, now).await {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => {
            let (user, _) = store
                .users()
                .by_email(&email)
                .await?
                .context("the user vanished while being created")?;
            store.users().set_password(user.id, &hash).await?;
            println!("{email} exists: its password was replaced and its sessions ended.");
            user
        }
        Err(e) => return Err(e.into()),
    };
    for p in &args.projects {
        store.users().add_to_project(user.id, *p, now).await?;
    }
    println!(
        "User {} ({email}) belongs to {}.",
        user.id,
        args.projects
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if generated {
        println!("Password (shown once): {password}");
    }
    println!("Sign in at /dashboard on the server.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked_for_shape() {
        for good in ["ann@example.com", "a@b"] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        for bad in ["", "ann", "@x", "ann@", "a b@x", "a@b@c", "a\n@x"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
