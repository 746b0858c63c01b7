//! Request limits per API key and per project, so one runaway backend
//! cannot take the control plane from every other tenant.
//!
//! Each key and each project has a token bucket ([`Rate`]); a request takes
//! a token from both, and one that finds either empty is answered `429` with
//! `Retry-After`. Every answer carries the IETF `RateLimit-Policy` and
//! `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) of the tighter
//! bucket, so a client can slow down before it is refused. The buckets live
//! in each API instance: a fleet of N instances allows up to N times the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchboard_core::rate::TokenBucket;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// How often, and how much at once.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per second, sustained; 0 for no limit.
    pub per_second: f64,
    /// Requests at once after a quiet spell.
    pub burst: f64,
}

/// The limits of `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLimits {
    /// Per API key.
    pub per_key: Rate,
    /// Per project, over all its keys.
    pub per_project: Rate,
}

impl Default for RequestLimits {
    /// 200 requests a second per key (bursts of 400) and 400 per project
    /// (bursts of 800): far above what a backend's own traffic needs, far
    /// below what starves a node's other tenants.
    fn default() -> Self {
        Self {
            per_key: Rate {
                per_second: 200.0,
                burst: 400.0,
            },
            per_project: Rate {
                per_second: 400.0,
                burst: 800.0,
            },
        }
    }
}

/// Most buckets kept per kind; past it, full ones (idle callers) are dropped.
const MAX_BUCKETS: usize = 100_000;

/// The buckets of every key and project seen.
#[derive(Debug)]
pub struct RequestLimiter {
    limits: RequestLimits,
    keys: Mutex<HashMap<String, TokenBucket>>,
    projects: Mutex<HashMap<String, TokenBucket>>,
}

/// What one bucket says of a request.
struct Verdict {
    allowed: bool,
    remaining: f64,
    /// Seconds until a token is there (refused) or the bucket is full (allowed).
    reset_s: f64,
    rate: Rate,
    name: &'static str,
}

fn take(
    map: &Mutex<HashMap<String, TokenBucket>>,
    id: &str,
    rate: Rate,
    name: &'static str,
    now: Instant,
    commit: bool,
) -> Option<Verdict> {
    if rate.per_second <= 0.0 {
        return None;
    }
    // Buckets are plain numbers: a panicked holder leaves nothing half-made.
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_BUCKETS && !map.contains_key(id) {
        map.retain(|_, b| {
            b.refill(now);
            !b.has(rate.burst)
        });
    }
    let bucket = map
        .entry(id.to_owned())
        .or_insert_with(|| TokenBucket::new(rate.per_second, rate.burst));
    bucket.refill(now);
    let allowed = bucket.has(1.0);
    if allowed && commit {
        bucket.take(1.0);
    }
    let remaining = bucket.available();
    let reset_s = if allowed {
        (rate.burst - remaining) / rate.per_second
    } else {
        bucket.wait_for(1.0).as_secs_f64()
    };
    Some(Verdict {
        allowed,
        remaining,
        reset_s,
        rate,
        name,
    })
}

impl RequestLimiter {
    /// Limiter with `limits`.
    pub fn new(limits: RequestLimits) -> Self {
        Self {
            limits,
            keys: Mutex::default(),
            projects: Mutex::default(),
        }
    }

    /// Takes a token from the caller's key and project if both have one;
    /// the verdict of the tighter bucket.
    fn check(&self, caller: &Caller, now: Instant) -> Option<Verdict> {
        let project = caller.project_id.to_string();
        let peek = |commit| {
            let key = take(
                &self.keys,
                &caller.key_id,
                self.limits.per_key,
                "key",
                now,
                commit,
            );
            let project = take(
                &self.projects,
                &project,
                self.limits.per_project,
                "project",
                now,
                commit,
            );
            (key, project)
        };
        // Look first, take only when both allow: a refused request costs nothing.
        let (key, project) = peek(false);
        let both =
            key.as_ref().is_none_or(|v| v.allowed) && project.as_ref().is_none_or(|v| v.allowed);
        let (key, project) = if both { peek(true) } else { (key, project) };
        match (key, project) {
            (Some(k), Some(p)) => {
                Some(if !k.allowed || (p.allowed && k.remaining <= p.remaining) {
                    k
                } else {
                    p
                })
            }
            (k, p) => k.or(p),
        }
    }
}

/// Middleware: refuses a caller over its key's or project's rate, and tells every caller where it stands.
pub async fn limit_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let verdict = req
        .extensions()
        .get::<Caller>()
        .and_then(|caller| state.request_limits.check(caller, Instant::now()));
    let Some(verdict) = verdict else {
        return next.run(req).await;
    };
    let mut response = if verdict.allowed {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this {} may make {} requests a second (bursts of {}); retry after the Retry-After header's seconds",
                verdict.name, verdict.rate.per_second, verdict.rate.burst
            ),
        )
        .into_response()
    };
    let headers = response.headers_mut();
    let window = (verdict.rate.burst / verdict.rate.per_second)
        .ceil()
        .max(1.0);
    let reset = verdict
        .reset_s
        .ceil()
        .max(if verdict.allowed { 0.0 } else { 1.0 });
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(
        "ratelimit-policy",
        format!("\"{}\";q={};w={window}", verdict.name, verdict.rate.burst),
    );
    set(
        "ratelimit",
        format!(
            "\"{}\";r={};t={reset}",
            verdict.name,
            verdict.remaining.floor()
        ),
    );
    if !verdict.allowed {
        set("retry-after", format!("{reset}"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::ProjectId;

    fn caller(key: &str, project: ProjectId) -> Caller {
        Caller {
            key_id: key.into(),
            project_id: project,
        }
    }

    #[test]
    fn a_key_and_its_project_are_both_limited() {
        let l = RequestLimiter::new(RequestLimits {
            per_key: Rate {
                per_second: 1.0,
                burst: 3.0,
            },
            per_project: Rate {
                per_second: 1.0,
                burst: 5.0,
            },
        });
        let (p, other) = (ProjectId::new(), ProjectId::new());
        let t = Instant::now();
        let a = caller("a", p);
        assert!((0..3).all(|_| l.check(&a, t).unwrap().allowed));
        let refused = l.check(&a, t).unwrap();
        assert!(!refused.allowed && refused.name == "key" && refused.reset_s > 0.9);
        // Another key of the project has the project's two tokens left.
        let b = caller("b", p);
        assert!(l.check(&b, t).unwrap().allowed && l.check(&b, t).unwrap().allowed);
        let refused = l.check(&b, t).unwrap();
        assert!(!refused.allowed && refused.name == "project");
        // Another project is untouched.
        assert!(l.check(&caller("c", other), t).unwrap().allowed);
        // A refused request took nothing: b's own bucket still has one token once the project refills.
        let later = t + std::time::Duration::from_secs(1);
        assert!(l.check(&b, later).unwrap().allowed);
    }

    #[test]
    fn a_zero_rate_means_no_limit() {
        let none = Rate {
            per_second: 0.0,
            burst: 0.0,
        };
        let l = RequestLimiter::new(RequestLimits {
            per_key: none,
            per_project: none,
        });
        let a = caller("a", ProjectId::new());
        assert!((0..10_000).all(|_| l.check(&a, Instant::now()).is_none()));
    }
}
