//! One server's `/v1` API as the commands call it: credentials resolved
//! once, errors that say what the API said, retries that cannot repeat a create.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::profile::Profiles;

/// The URL used when neither a flag, the environment nor a profile names one.
const DEFAULT_URL: &str = "http://127.0.0.1:7880";

/// Attempts of a request answered 429 or 502-504, or not answered at all.
const ATTEMPTS: u32 = 3;

/// Where the API is and how to authenticate: flags first, then the
/// environment, then a profile saved with `switchboard profile save`.
#[derive(Debug, Clone, Args)]
pub struct ApiFlags {
    /// The server's base URL [default: the profile's, else http://127.0.0.1:7880].
    #[arg(long, env = "SWITCHBOARD_URL")]
    pub url: Option<String>,
    /// API key id.
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    pub api_key: Option<String>,
    /// API key secret.
    #[arg(long, env = "SWITCHBOARD_API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,
    /// The saved profile to use [default: `default`, when saved].
    #[arg(long, env = "SWITCHBOARD_PROFILE")]
    pub profile: Option<String>,
}

impl ApiFlags {
    /// The API these flags point at, with its credentials.
    pub fn connect(&self) -> anyhow::Result<Remote> {
        let profiles = Profiles::load()?;
        let profile = match &self.profile {
            Some(name) => Some(profiles.get(name).with_context(|| {
                format!(
                    "there is no profile `{name}` in {}; save one with `switchboard profile save {name} --url URL --api-key KEY --api-secret SECRET`",
                    Profiles::path().display()
                )
            })?),
            None => profiles.get("default"),
        };
        let url = self
            .url
            .clone()
            .or_else(|| profile.map(|p| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let (Some(key), Some(secret)) = (
            self.api_key
                .clone()
                .or_else(|| profile.map(|p| p.api_key.clone())),
            self.api_secret
                .clone()
                .or_else(|| profile.map(|p| p.api_secret.clone())),
        ) else {
            bail!(
                "no API key: pass --api-key and --api-secret, set SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET, or save a profile with `switchboard profile save`"
            );
        };
        Ok(Remote {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("cannot build the HTTP client")?,
            url: url.trim_end_matches('/').to_owned(),
            key,
            secret,
        })
    }
}

/// A server's API with the credentials to call it.
pub struct Remote {
    http: reqwest::Client,
    url: String,
    key: String,
    secret: String,
}

impl Remote {
    /// `GET path?query`, the answer's JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body, the answer's JSON (`null` when empty).
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, &[], Some(Body::Json(body)))
            .await
    }

    /// `POST path?query` with `bytes` of `content_type` (an upload), the answer's JSON.
    pub async fn upload(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let body = Body::Bytes(content_type, bytes.into());
        self.call(Method::POST, path, query, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, &[], None).await
    }

    /// Every item of a list, following `next_cursor` page after page.
    pub async fn all(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", "100".to_owned()));
            if let Some(c) = cursor.take() {
                q.push(("cursor", c));
            }
            let page = self.get(path, &q).await?;
            if let Some(data) = page["data"].as_array() {
                items.extend(data.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// `GET path`, the answer itself (for bodies that are not JSON, such as a file).
    pub async fn download(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self.send(Method::GET, path, &[], None).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(failure(path, response).await)
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body<'_>>,
    ) -> anyhow::Result<Value> {
        let response = self.send(method, path, query, body).await?;
        if !response.status().is_success() {
            return Err(failure(path, response).await);
        }
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{path} answered {status} but its body did not arrive"))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{path} answered {status} with a body that is not JSON"))
    }

    /// Sends one request, again on 429, 502-504 or no answer: a `POST`
    /// carries one `Idempotency-Key` over its attempts, so a retried create
    /// creates once.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body<'_>>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.url);
        let idempotency_key = (method == Method::POST).then(|| ulid::Ulid::new().to_string());
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.key, Some(&self.secret))
                .query(query);
            if let Some(key) = &idempotency_key {
                request = request.header("idempotency-key", key);
            }
            request = match &body {
                Some(Body::Json(json)) => request.json(json),
                Some(Body::Bytes(content_type, bytes)) => request
                    .header("content-type", *content_type)
                    .body(bytes.clone()),
                None => request,
            };
            let retry_after = match request.send().await {
                Ok(response) if !retryable(response.status()) || attempt == ATTEMPTS => {
                    return Ok(response)
                }
                Ok(response) => response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map_or(Duration::from_millis(500), |s| {
                        Duration::from_secs(s.min(10))
                    }),
                Err(e) if attempt == ATTEMPTS => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot reach {url}: is the server running there? (--url sets where)"
                        )
                    })
                }
                Err(_) => Duration::from_millis(500),
            };
            tokio::time::sleep(retry_after).await;
            attempt += 1;
        }
    }
}

/// What a request carries.
enum Body<'a> {
    Json(&'a Value),
    /// Bytes of a content type; cheap to clone for a retry.
    Bytes(&'static str, bytes::Bytes),
}

/// Whether an answer with `status` is worth asking again for.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::BAD_GATEWAY
        || status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::GATEWAY_TIMEOUT
}

/// The error for a refused request: the API's message and code, and for
/// 401 what to check.
async fn failure(path: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("unknown");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("the server gave no reason");
    let hint = if status == StatusCode::UNAUTHORIZED {
        "; check --api-key and --api-secret (or the profile)"
    } else {
        ""
    };
    anyhow::anyhow!("{path}: {message} ({status}, {code}){hint}")
}

/// What a path segment leaves as it is: letters, digits and RFC 3986's
/// unreserved `-._~`; everything else is percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` as one path segment: percent-encoded where a URL needs it.
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_segment_cannot_leave_its_place_in_the_path() {
        assert_eq!(super::segment("a-room_1"), "a-room_1");
        assert_eq!(super::segment("../x?y#z"), "..%2Fx%3Fy%23z");
    }
}
