//! Links every project to a Stripe customer and a subscription: creates the
//! customer of a project that was not given one, then the subscription of a
//! linked project that has none.

use std::collections::HashMap;

use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems,
};
use stripe_core::customer::CreateCustomer;
use switchboard_core::ProjectId;
use switchboard_store::stripe::Link;
use switchboard_store::Store;

use super::{id_of, Api, Config, StripeError};

/// The metadata key naming the project on Stripe objects.
pub const PROJECT_KEY: &str = "switchboard_project";

/// Creates what is missing; returns how many customers and subscriptions it created.
pub async fn link_projects(
    api: &Api,
    store: &Store,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StripeError> {
    let mut created = 0;
    for (project, name) in store.stripe().unlinked().await? {
        let customer = create_customer(api, project, &name).await?;
        if !store.stripe().link_created(project, &customer, now).await? {
            // The customer costs nothing without a subscription; the
            // operator's link stands.
            tracing::warn!(project_id = %project, customer_id = %customer, "the project was linked to a customer while one was created for it; the created one is left unused");
            continue;
        }
        tracing::info!(project_id = %project, customer_id = %customer, "Stripe customer created");
        created += 1;
    }
    if config.subscription_items.is_empty() {
        return Ok(created);
    }
    for link in store.stripe().links().await? {
        if link.subscription_id.is_some() {
            continue;
        }
        if store.projects().suspension(link.project).await?.is_some() {
            // A suspended project (say, its subscription was cancelled) gets
            // no new subscription until an operator resumes it.
            continue;
        }
        let sub = create_subscription(api, config, &link).await?;
        if !store.stripe().set_subscription(&link, &sub).await? {
            // Relinked while the subscription was made: it would bill a
            // customer no project is linked to, and its cancellation would
            // never reach the project it was meant for.
            cancel_subscription(api, &sub).await?;
            tracing::warn!(project_id = %link.project, subscription_id = %sub, "the project was relinked while its subscription was created; that subscription is cancelled");
            continue;
        }
        tracing::info!(project_id = %link.project, subscription_id = %sub, "Stripe subscription created");
        created += 1;
    }
    Ok(created)
}

fn project_metadata(project: ProjectId) -> HashMap<String, String> {
    HashMap::from([(PROJECT_KEY.to_owned(), project.to_string())])
}

async fn create_customer(api: &Api, project: ProjectId, name: &str) -> Result<String, StripeError> {
    let req = CreateCustomer::new()
        .name(name)
        .description(format!("Switchboard project {project}"))
        .metadata(project_metadata(project));
    id_of(
        &api.call(&req, &format!("switchboard:customer:{project}"))
            .await?,
    )
}

async fn create_subscription(
    api: &Api,
    config: &Config,
    link: &Link,
) -> Result<String, StripeError> {
    let (project, customer) = (link.project, link.customer_id.as_str());
    let items: Vec<CreateSubscriptionItems> = config
        .subscription_items
        .iter()
        .map(|item| {
            let mut it = CreateSubscriptionItems::new();
            it.price = item.price.clone();
            it.plan = item.plan.clone();
            it
        })
        .collect();
    let req = CreateSubscription::new()
        .customer(customer)
        .items(items)
        .metadata(project_metadata(project));
    id_of(
        &api.call(
            &req,
            &format!(
                "switchboard:subscription:{project}:{customer}:{}",
                link.generation
            ),
        )
        .await?,
    )
}

async fn cancel_subscription(api: &Api, subscription: &str) -> Result<(), StripeError> {
    let req = CancelSubscription::new(subscription);
    api.call(&req, &format!("switchboard:cancel:{subscription}"))
        .await
        .map(drop)
}
