//! Makes one delivery attempt: signs the event, POSTs it, reads a little of
//! the answer.
//!
//! Outside development mode every address a host name resolves to is checked
//! against the [`AddressPolicy`] when the connection is made (after DNS, so a
//! name that points at 127.0.0.1 or the metadata service is refused, however
//! it looked when the endpoint was saved), and redirects are never followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use switchboard_core::webhook::AddressPolicy;
use switchboard_core::AttemptId;
use switchboard_store::deliveries::{Attempt, Due};

use crate::signature;

/// Largest request body ever sent.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How much of a response body is kept in the attempt log.
pub const KEPT_RESPONSE_BYTES: usize = 2048;

/// Resolves host names and drops addresses the policy forbids; a name left
/// with none fails the connection with the reason.
struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_ip(&host, a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusal
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| format!("`{host}` did not resolve to any address"));
                return Err(why.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends delivery attempts over HTTP.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl Sender {
    /// A sender that gives each attempt `timeout` and keeps to `policy`.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would make the connection for us and bypass the address check.
            .no_proxy()
            .user_agent(concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !policy.allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver { policy }));
        }
        Ok(Self {
            client: builder.build()?,
            policy,
        })
    }

    /// One attempt of `due`, signed with `secrets`, started at `now`.
    pub async fn attempt(&self, due: &Due, secrets: &[String], now: DateTime<Utc>) -> Attempt {
        let started = Instant::now();
        let mut attempt = Attempt {
            id: AttemptId::new(),
            delivery_id: due.delivery.id,
            attempted_at: now,
            status_code: None,
            latency_ms: 0,
            response_body: String::new(),
            error: None,
            succeeded: false,
        };
        if let Err(why) = self.exchange(due, secrets, now, &mut attempt).await {
            attempt.error = Some(why);
        }
        attempt.latency_ms = started.elapsed().as_millis() as u64;
        attempt
    }

    async fn exchange(
        &self,
        due: &Due,
        secrets: &[String],
        now: DateTime<Utc>,
        attempt: &mut Attempt,
    ) -> Result<(), String> {
        // The URL is checked again: the policy may be stricter than when it was saved.
        let url = self.policy.check_url(&due.url).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&due.event).map_err(|e| e.to_string())?;
        if body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the event is {} bytes; deliveries over {} KiB are never sent",
                body.len(),
                MAX_BODY_BYTES / 1024
            ));
        }
        let msg_id = due.event.id.to_string();
        let timestamp = now.timestamp();
        let signature = signature::header(secrets, &msg_id, timestamp, &body)
            .map_err(|e| format!("cannot sign: {e}"))?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        attempt.status_code = Some(status.as_u16());
        let mut response = response;
        let mut kept = Vec::new();
        while kept.len() < KEPT_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status already came; a body cut short does not change the outcome.
                Err(_) => break,
            }
        }
        kept.truncate(KEPT_RESPONSE_BYTES);
        attempt.response_body = String::from_utf8_lossy(&kept).into_owned();
        if status.is_success() {
            attempt.succeeded = true;
            Ok(())
        } else if status.is_redirection() {
            Err(format!(
                "the endpoint answered {status}; redirects are not followed, point the webhook at the final URL"
            ))
        } else {
            Err(format!("the endpoint answered {status}"))
        }
    }
}

/// A transport error with its causes, which say what actually went wrong.
fn describe(e: reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "no answer within the time limit".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
