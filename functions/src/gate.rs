//! The synchronous `participant.joining` hook, as the media tier's [`JoinGate`].

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_core::admission::{Admission, JoinGate, JoinRequest};
use switchboard_core::function::FailurePolicy;
use switchboard_core::room::ParticipantPermissions;
use switchboard_core::ProjectId;
use switchboard_store::Store;

use crate::bindings::switchboard::functions::types::{Decision, Joining, Permissions};
use crate::{admit, invocation, FunctionHost, Source};

/// Runs a project's `participant.joining` hooks, in name order, before a
/// participant is admitted. The first to deny wins; changes accumulate.
/// A hook that fails or misses its deadline is handled by the project's
/// failure policy.
pub struct FunctionGate {
    host: Arc<FunctionHost>,
}

impl FunctionGate {
    /// A gate running hooks on `host`.
    pub fn new(host: Arc<FunctionHost>) -> Self {
        Self { host }
    }
}

/// The refusal the project's failure policy calls for, if any. The policy is
/// read only when a hook fails, sparing every healthy join a query.
async fn refused(store: &Store, project: ProjectId, name: &str, why: &str) -> Option<Admission> {
    let policy = store
        .functions()
        .failure_policy(project)
        .await
        .unwrap_or_default();
    match policy {
        FailurePolicy::Open => None,
        FailurePolicy::Closed => Some(Admission::Deny {
            reason: format!("joins are refused while function `{name}` fails ({why})"),
        }),
    }
}

#[async_trait]
impl JoinGate for FunctionGate {
    async fn check(&self, req: JoinRequest) -> Admission {
        let Some(store) = self.host.services().store.clone() else {
            return Admission::unchanged(&req);
        };
        let project = req.project;
        let hooks = match store.functions().joining_hooks(project).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(project_id = %project, error = %e, "cannot read the join hooks");
                return refused(&store, project, "(any)", "its deployment cannot be read")
                    .await
                    .unwrap_or_else(|| Admission::unchanged(&req));
            }
        };
        if hooks.is_empty() {
            return Admission::unchanged(&req);
        }
        let mut joining = Joining {
            room: req.room.to_string(),
            identity: req.identity.to_string(),
            name: req.name.clone(),
            metadata: req.metadata.clone(),
            permissions: Permissions {
                can_publish: req.permissions.can_publish,
                can_subscribe: req.permissions.can_subscribe,
                can_publish_data: req.permissions.can_publish_data,
            },
        };
        for hook in &hooks {
            let run = match self
                .host
                .run_joining(project, hook, joining.clone(), false)
                .await
            {
                Ok(run) => run,
                Err(e) => {
                    tracing::warn!(project_id = %project, function = %hook.name, error = %e, "join hook not run");
                    if let Some(deny) =
                        refused(&store, project, &hook.name, "it cannot be loaded").await
                    {
                        return deny;
                    }
                    continue;
                }
            };
            let inv = invocation(
                project,
                hook,
                Source::Joining,
                &run,
                run.result.as_ref().ok(),
                self.host.services().clock.now(),
            );
            // The join does not wait for its log to be written.
            let log = store.clone();
            tokio::spawn(async move {
                if let Err(e) = log.functions().record_invocation(&inv).await {
                    tracing::warn!(error = %e, "could not record a join hook invocation");
                }
            });
            match run.result {
                Ok(Decision::Allow) => {}
                Ok(Decision::Deny(reason)) => return Admission::Deny { reason },
                Ok(Decision::Admit(a)) => admit(&mut joining, a),
                Err(f) => {
                    tracing::info!(project_id = %project, function = %hook.name, outcome = f.outcome, "join hook failed");
                    if let Some(deny) = refused(&store, project, &hook.name, f.outcome).await {
                        return deny;
                    }
                }
            }
        }
        Admission::Admit {
            name: joining.name,
            metadata: joining.metadata,
            permissions: ParticipantPermissions {
                can_publish: joining.permissions.can_publish,
                can_subscribe: joining.permissions.can_subscribe,
                can_publish_data: joining.permissions.can_publish_data,
            },
        }
    }
}
