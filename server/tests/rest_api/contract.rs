//! The API's contract: every route in the OpenAPI document and served, the
//! operational endpoints, and what dev mode opens.

use super::*;

switchboard_store::on_both_backends!(
    openapi_describes_every_route,
    operational_endpoints_answer,
    the_dev_secret_works_only_in_dev_mode,
);

/// Every route the API serves, as `METHOD path` in OpenAPI form.
const ROUTES: &[&str] = &[
    "GET /v1/project",
    "PATCH /v1/project",
    "GET /v1/api_keys",
    "POST /v1/api_keys",
    "DELETE /v1/api_keys/{id}",
    "GET /v1/rooms",
    "POST /v1/rooms",
    "GET /v1/rooms/{name}",
    "PATCH /v1/rooms/{name}",
    "DELETE /v1/rooms/{name}",
    "GET /v1/rooms/{name}/participants",
    "GET /v1/rooms/{name}/participants/{identity}",
    "PATCH /v1/rooms/{name}/participants/{identity}",
    "DELETE /v1/rooms/{name}/participants/{identity}",
    "POST /v1/rooms/{name}/participants/{identity}/mute",
    "POST /v1/rooms/{name}/recordings",
    "GET /v1/recordings",
    "GET /v1/recordings/{id}",
    "DELETE /v1/recordings/{id}",
    "POST /v1/recordings/{id}/stop",
    "GET /v1/recordings/{id}/files/{file}",
    "POST /v1/recordings/{id}/files/{file}/url",
    "POST /v1/tokens",
    "GET /v1/rtc/route",
    "POST /v1/whip/rooms/{room}",
    "DELETE /v1/whip/sessions/{sid}",
    "PATCH /v1/whip/sessions/{sid}",
    "POST /v1/whep/rooms/{room}/participants/{identity}",
    "DELETE /v1/whep/sessions/{sid}",
    "PATCH /v1/whep/sessions/{sid}",
    "GET /v1/webhooks",
    "POST /v1/webhooks",
    "GET /v1/webhooks/{id}",
    "PATCH /v1/webhooks/{id}",
    "DELETE /v1/webhooks/{id}",
    "POST /v1/webhooks/{id}/rotate-secret",
    "POST /v1/webhooks/{id}/test",
    "GET /v1/webhooks/{id}/deliveries",
    "POST /v1/webhooks/{id}/replay",
    "POST /v1/webhooks/deliveries/{id}/retry",
    "GET /v1/events",
    "GET /v1/events/{id}",
    "GET /v1/events/{id}/deliveries",
    "GET /v1/functions",
    "GET /v1/functions/{name}",
    "DELETE /v1/functions/{name}",
    "POST /v1/functions/{name}/versions",
    "GET /v1/functions/{name}/versions",
    "POST /v1/functions/{name}/activate",
    "GET /v1/functions/{name}/invocations",
    "GET /v1/functions/{name}/logs",
    "POST /v1/functions/{name}/invoke",
    "GET /v1/kv/{key}",
    "PUT /v1/kv/{key}",
    "DELETE /v1/kv/{key}",
    "GET /v1/usage",
    "GET /v1/usage/sessions",
    "GET /v1/usage/sessions/{sid}/quality",
    "GET /v1/billing/preview",
    "GET /v1/billing/stripe",
];

async fn openapi_describes_every_route(b: Backend) {
    let s = Server::start(b).await;
    let (st, spec) = send(s.request(Method::GET, "/v1/openapi.json")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        documented, expected,
        "the OpenAPI document and the route list differ"
    );
    // Each listed route is really served: it answers with something other than "no such endpoint".
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{name}", "r")
            .replace("{identity}", "i")
            .replace("{id}", "k")
            .replace("{file}", "f")
            .replace("{key}", "k");
        let (st, body) = send(s.dev(method.parse().unwrap(), &path).json(&json!({}))).await;
        assert!(
            !(st == StatusCode::NOT_FOUND && body["error"]["code"] == "not_found")
                && st != StatusCode::METHOD_NOT_ALLOWED,
            "{route} is documented but not served ({st} {body})"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

async fn operational_endpoints_answer(b: Backend) {
    let s = Server::start(b).await;
    let (st, h) = send(s.request(Method::GET, "/healthz")).await;
    assert_eq!((st, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (st, r) = send(s.request(Method::GET, "/readyz")).await;
    assert_eq!((st, r["database"].as_str()), (StatusCode::OK, Some("ok")));
    send(s.dev(Method::GET, "/v1/rooms")).await;
    let metrics = s
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{method=\"GET\",route=\"/v1/rooms\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    // Request ids: generated when absent, kept when given, and on the log lines.
    let res = s.dev(Method::GET, "/v1/rooms").send().await.unwrap();
    assert!(res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let res = s
        .dev(Method::GET, "/v1/rooms/logged")
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "my-trace-42");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        s.log()
            .lines()
            .any(|l| l.contains("my-trace-42") && l.contains("404")),
        "{}",
        s.log()
    );
}

async fn the_dev_secret_works_only_in_dev_mode(b: Backend) {
    let mut s = Server::start(b).await;
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
    let (_, created) = send(s.dev(Method::POST, "/v1/api_keys").json(&json!({}))).await;
    s.restart(&[]);
    assert!(!s.banner.contains("devkey"), "{}", s.banner);
    expect_error(
        s.dev(Method::GET, "/v1/rooms"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        s.bearer("secret", Method::GET, "/v1/rooms"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Real keys keep working across the restart.
    assert_eq!(
        send(s.bearer(
            created["secret"].as_str().unwrap(),
            Method::GET,
            "/v1/rooms"
        ))
        .await
        .0,
        StatusCode::OK
    );
    s.restart(&["--dev"]);
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
}
