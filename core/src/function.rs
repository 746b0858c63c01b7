//! What functions are deployed with: a name and the events that run them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::id::{FunctionId, InvocationId, ProjectId};
use crate::webhook::{EventTypes, WebhookError};

/// The event of the synchronous hook that decides whether a participant may join.
pub const JOINING: &str = "participant.joining";
/// Longest function name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Largest component accepted, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;

/// Why a function's settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionSettingsError {
    /// The name is empty, too long or has characters outside `[a-z0-9-_]`.
    #[error("function names are 1 to {MAX_NAME_LEN} characters of a-z, 0-9, `-` and `_`, starting with a letter or digit")]
    InvalidName,
    /// No event was named.
    #[error("name at least one event: `participant.joining` (the synchronous join hook) or event types from the catalogue such as `participant.joined` or `room.*`")]
    NoEvents,
    /// An asynchronous event pattern is not in the catalogue.
    #[error(transparent)]
    Events(#[from] WebhookError),
}

/// Checks a function name: `[a-z0-9][a-z0-9_-]*`, at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), FunctionSettingsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(FunctionSettingsError::InvalidName)
    }
}

/// The events that run a function version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggers {
    /// Runs as the synchronous `participant.joining` hook.
    pub joining: bool,
    /// Runs asynchronously on these event types from the log.
    pub events: Option<EventTypes>,
}

impl Triggers {
    /// Parses a list such as `["participant.joining", "room.*"]`.
    pub fn parse(list: Vec<String>) -> Result<Self, FunctionSettingsError> {
        let joining = list.iter().any(|e| e == JOINING);
        let rest: Vec<String> = list.into_iter().filter(|e| e != JOINING).collect();
        let events = if rest.is_empty() {
            None
        } else {
            Some(EventTypes::new(rest)?)
        };
        if !joining && events.is_none() {
            return Err(FunctionSettingsError::NoEvents);
        }
        Ok(Self { joining, events })
    }

    /// The list form, `participant.joining` first.
    pub fn to_list(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.joining {
            out.push(JOINING.to_owned());
        }
        if let Some(e) = &self.events {
            out.extend(e.patterns().iter().cloned());
        }
        out
    }

    /// Whether an event of this type from the log runs the asynchronous handler.
    pub fn runs_on(&self, event_type: &str) -> bool {
        self.events.as_ref().is_some_and(|e| e.matches(event_type))
    }
}

/// What the `participant.joining` hook does when a function fails or misses its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Admit the participant as the token says.
    #[default]
    Open,
    /// Refuse the join.
    Closed,
}

impl FailurePolicy {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// One line a function logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`; `stdout` / `stderr` for console output.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A test run of a function version on a sample event.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// The project.
    pub project: ProjectId,
    /// The function.
    pub function_id: FunctionId,
    /// Its name.
    pub name: String,
    /// The version to run.
    pub version: u32,
    /// SHA-256 of that version's component.
    pub digest: String,
    /// The event type; `participant.joining` runs the join hook.
    pub event_type: String,
    /// The event's `data` (for `participant.joining`: `room`, `identity`, `name`, `metadata`, `permissions`).
    pub data: serde_json::Value,
}

/// What a test run did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvokeReport {
    /// The recorded invocation.
    #[schema(value_type = String)]
    pub invocation_id: InvocationId,
    /// `ok`, `error`, `trap`, `timeout`, `out_of_fuel`, `out_of_memory`, `stack_overflow` or `busy`.
    pub outcome: String,
    /// For `participant.joining`: `{"allow": {}}`, `{"deny": {"reason"}}` or `{"admit": {name, metadata, permissions}}`.
    #[schema(value_type = Object)]
    pub decision: Option<serde_json::Value>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// Wall time, in microseconds.
    pub duration_us: u64,
    /// WebAssembly fuel consumed.
    pub fuel_used: u64,
    /// What it logged.
    pub logs: Vec<LogLine>,
    /// The actions it asked for; a test run does not apply them.
    pub actions: Vec<String>,
}

/// Why a component or a test run was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// The component cannot be deployed; the message names the problem.
    #[error("{0}")]
    Rejected(String),
    /// The sample event does not fit its type.
    #[error("{0}")]
    BadEvent(String),
    /// The host failed (storage, compilation cache).
    #[error("{0}")]
    Internal(String),
    /// The host has no room for this now (every compilation slot is taken); try again shortly.
    #[error("{0}")]
    Busy(String),
}

/// The function host as the REST API sees it.
#[async_trait]
pub trait FunctionRunner: Send + Sync + 'static {
    /// Checks a component against the world and the limits; its SHA-256 (hex) when it may be deployed.
    async fn check(&self, component: &[u8]) -> Result<String, RunnerError>;
    /// Runs a version on a sample event, records the invocation and reports it; actions are not applied.
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeReport, RunnerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("gate").is_ok());
        assert!(check_name("rate-limit_2").is_ok());
        for bad in ["", "-x", "Gate", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn triggers_split_the_hook_from_log_events() {
        let t = Triggers::parse(vec!["participant.joining".into(), "room.*".into()]).unwrap();
        assert!(t.joining);
        assert!(t.runs_on("room.started"));
        assert!(!t.runs_on("participant.joined"));
        let only_hook = Triggers::parse(vec!["participant.joining".into()]).unwrap();
        assert!(!only_hook.runs_on("participant.joining"));
        assert_eq!(
            Triggers::parse(vec![]),
            Err(FunctionSettingsError::NoEvents)
        );
        assert!(matches!(
            Triggers::parse(vec!["room.nope".into()]),
            Err(FunctionSettingsError::Events(_))
        ));
    }
}
