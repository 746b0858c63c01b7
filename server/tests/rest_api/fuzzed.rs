//! The OpenAPI document against the server, by an independent fuzzer:
//! schemathesis generates requests for every operation from the served
//! document (valid and invalid, then chains of them), and every answer must
//! be one the document lists, with the content type and schema it gives,
//! and never a 5xx.

use std::process::Command;

use base64::Engine;

use super::*;

/// Requests per operation and phase: enough to reach every documented
/// status of this API, few enough for a CI run of about a minute.
const MAX_EXAMPLES: &str = "25";

/// The fuzzer's configuration: every operation with the dev key, but the
/// media routes with an access token, and the two that change the caller's
/// own project and keys with another project's key (the run would lock
/// itself out, or pin the dev project to a region with no node).
fn config(base: &str, dev: &str, scratch: &str, token: &str, webhook: &str) -> String {
    format!(
        r#"base-url = "{base}"
headers = {{ Authorization = "Basic {dev}" }}
# One: hypothesis's strategy descriptions race between threads (a
# "recursion depth mismatch" in the run's errors).
workers = 1
continue-on-failure = true

[checks]
enabled = false
not_a_server_error = {{ enabled = true }}
status_code_conformance = {{ enabled = true }}
content_type_conformance = {{ enabled = true }}
response_schema_conformance = {{ enabled = true }}
response_headers_conformance = {{ enabled = true }}

[[operations]]
include-path-regex = "^/v1/(whip|whep)/|^/v1/rtc/route"
headers = {{ Authorization = "Bearer {token}" }}

[[operations]]
include-path-regex = "^/v1/(project|api_keys)"
headers = {{ Authorization = "Basic {scratch}" }}

# A deployed function to find: no create operation links to one.
[[operations]]
include-path-regex = "^/v1/functions/"
parameters = {{ "path.name" = "contract" }}

[[operations]]
include-path-regex = "^/v1/webhooks/\\{{id\\}}"
parameters = {{ "path.id" = "{webhook}" }}
"#
    )
}

fn basic(key: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
}

#[tokio::test]
async fn the_openapi_document_holds_for_every_answer_a_fuzzer_draws() {
    let s = Server::start(Backend::Postgres).await;
    // Something to find behind the generated ids: a room with a recording,
    // a webhook, a function, events.
    let (st, _) = send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "contract" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, body) = send(
        s.dev(Method::POST, "/v1/rooms/contract/recordings")
            .json(&json!({ "mode": "tracks" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = send(
        s.dev(Method::POST, "/v1/webhooks")
            .json(&json!({ "url": "https://hooks.example.com/switchboard", "events": ["*"] })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let webhook = body["id"].as_str().expect("a webhook id").to_owned();
    let (st, body) = send(
        s.dev(
            Method::POST,
            "/v1/functions/contract/versions?events=room.*",
        )
        .header("content-type", "application/wasm")
        .body(common::logging_component()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = send(s.dev(Method::POST, "/v1/tokens").json(&json!({
        "room": "contract",
        "identity": "fuzzer",
        "grants": { "can_publish": true, "can_subscribe": true }
    })))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("a token").to_owned();
    let (_, key, secret) = s.create_project("scratch");

    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config_file,
        config(
            &s.base,
            &basic("devkey", "secret"),
            &basic(&key, &secret),
            &token,
            &webhook,
        ),
    )
    .unwrap();
    let hooks = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/rest_api/schemathesis_hooks.py"
    );
    let out = Command::new("st")
        .args(["--config-file"])
        .arg(&config_file)
        .args(["run", &format!("{}/v1/openapi.json", s.base)])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "1"])
        .env("SCHEMATHESIS_HOOKS", hooks)
        .current_dir(dir.path())
        .output()
        .expect(
            "schemathesis runs (`pip install -r server/tests/peers/requirements.txt` installs `st`)",
        );
    let report = String::from_utf8_lossy(&out.stdout);
    // Shown with `--nocapture`: what each phase tried.
    println!("{report}");
    assert!(
        out.status.success(),
        "the fuzzer found answers the document does not describe:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A run that tested nothing would pass too.
    assert!(report.contains("Tested: 6"), "{report}");
}
