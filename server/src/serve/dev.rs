//! Dev mode's well-known project, key and dashboard user, and their
//! retirement when a server starts without `--dev`.

use switchboard_store::Store;

/// Key id of the development project's API key.
pub const DEV_KEY_ID: &str = "devkey";
/// Secret of the development project's API key; accepted only in `--dev`.
pub const DEV_KEY_SECRET: &str = "secret";

/// Makes sure the dev project and its `devkey` / `secret` key exist and work.
pub async fn seed_dev_project(store: &Store) -> anyhow::Result<switchboard_core::ProjectId> {
    // Re-sealing on every start keeps the key usable when the master key changed.
    if store
        .api_keys()
        .reset_secret(DEV_KEY_ID, DEV_KEY_SECRET)
        .await?
    {
        if let Some(auth) = store
            .api_keys()
            .authenticate_pair(DEV_KEY_ID, DEV_KEY_SECRET)
            .await?
        {
            return Ok(auth.project_id);
        }
    }
    let now = chrono::Utc::now();
    let project = store.projects().create("Development", now).await?;
    store
        .api_keys()
        .insert(project.id, DEV_KEY_ID, DEV_KEY_SECRET, "dev mode key", now)
        .await?;
    Ok(project.id)
}

/// The dev user: signs in to the dev project's dashboard in dev mode.
pub const DEV_USER_EMAIL: &str = "dev@switchboard.local";
/// The dev user's password, printed at start.
pub const DEV_USER_PASSWORD: &str = "switchboard-dev";

/// Makes sure the dev user exists, signs in with the dev password and belongs to `project`.
pub async fn seed_dev_user(
    store: &Store,
    project: switchboard_core::ProjectId,
) -> anyhow::Result<()> {
    let hash = switchboard_dashboard::password::hash(DEV_USER_PASSWORD)?;
    let now = chrono::Utc::now();
    let user = match store.users().by_email(DEV_USER_EMAIL).await? {
        Some((user, old)) => {
            if !switchboard_dashboard::password::verify(DEV_USER_PASSWORD, &old) {
                store.users().set_password(user.id, &hash).await?;
            }
            user
        }
        None => store.users().create(DEV_USER_EMAIL, &hash, now).await?,
    };
    store.users().add_to_project(user.id, project, now).await?;
    Ok(())
}

/// Outside dev mode the well-known dev password must not sign anyone in.
pub async fn retire_dev_user(store: &Store) -> anyhow::Result<()> {
    if let Some((user, old)) = store.users().by_email(DEV_USER_EMAIL).await? {
        if switchboard_dashboard::password::verify(DEV_USER_PASSWORD, &old) {
            let random = switchboard_store::api_keys::generate_secret();
            let hash = switchboard_dashboard::password::hash(&random[..32])?;
            store.users().set_password(user.id, &hash).await?;
            tracing::warn!(
                "dev mode is off: the dev dashboard user's password was replaced by a random one"
            );
        }
    }
    Ok(())
}

/// Outside dev mode the well-known dev secret must not open anything.
pub async fn retire_dev_key(store: &Store) -> anyhow::Result<()> {
    if store
        .api_keys()
        .force_revoke(DEV_KEY_ID, chrono::Utc::now())
        .await?
    {
        tracing::warn!(
            "revoked the dev key `{DEV_KEY_ID}`: its well-known secret is accepted only with --dev"
        );
    }
    Ok(())
}
