//! Billing through Stripe end to end, against localstripe (a stateful
//! Stripe-compatible server from PyPI) started here: customers and
//! subscriptions created or given, usage from real participants (the load
//! tester) reported with the quantities `GET /v1/billing/preview` shows,
//! a report that failed while Stripe was down retried and not duplicated,
//! and Stripe's webhooks suspending projects without cutting live calls.
//!
//! localstripe has no Billing Meter events, so the meter-events test puts a
//! small proxy in front of it that checks those requests against the shape
//! Stripe publishes (docs.stripe.com/api/billing/meter-event/create) and
//! forwards everything else.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use common::dashboard::{Session, DEV_EMAIL, DEV_PASSWORD};
use common::metering::{loadtest, loadtest_command, settled, total};
use common::{send, Server};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stripe_webhook::Webhook;
use switchboard_store::Backend;
use tokio_tungstenite::tungstenite::Message;

/// localstripe keeps its state in /tmp/localstripe.pickle, and load tests
/// share the 2 cores badly: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET_KEY: &str = "sk_test_switchboard";
const WEBHOOK_SECRET: &str = "whsec_switchboard_test";
const BASE_PLAN: &str = "switchboard-base";
const AUDIO_EVENT: &str = "switchboard_audio_minutes";
const MINUTE_US: i64 = 60_000_000;

/// A localstripe process.
struct Localstripe {
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Localstripe {
    /// Starts localstripe on `port` (any free one if `None`), empty when `fresh`,
    /// else with the state it saved when it last ran.
    async fn start(port: Option<u16>, fresh: bool) -> Self {
        let port = port.unwrap_or_else(free_port);
        let mut cmd = Command::new("localstripe");
        cmd.args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if fresh {
            cmd.arg("--from-scratch");
        }
        let child = cmd
            .spawn()
            .expect("run localstripe (pip install -r server/tests/peers/requirements.txt)");
        let this = Self {
            port,
            child: Some(child),
            http: reqwest::Client::new(),
        };
        for _ in 0..150 {
            let up = this
                .http
                .get(format!("{}/v1/customers", this.url()))
                .basic_auth(SECRET_KEY, Some(""))
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return this;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.url()))
            .basic_auth(SECRET_KEY, Some(""))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.call(Method::POST, path, form).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, &[]).await
    }

    /// The invoice items of `customer` that Switchboard created, by meter.
    async fn our_items(&self, customer: &str) -> HashMap<String, Vec<Value>> {
        let items = self
            .get(&format!("/v1/invoiceitems?customer={customer}&limit=100"))
            .await;
        let mut by_meter: HashMap<String, Vec<Value>> = HashMap::new();
        for item in items["data"].as_array().unwrap() {
            if item["metadata"]["switchboard_report"].is_string() {
                let meter = item["metadata"]["meter"].as_str().unwrap().to_owned();
                by_meter.entry(meter).or_default().push(item.clone());
            }
        }
        by_meter
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A base plan of 0 a month: the subscription every project gets.
    async fn with_base_plan(self) -> Self {
        let product = self
            .post(
                "/v1/products",
                &[("name", "Switchboard"), ("type", "service")],
            )
            .await;
        self.post(
            "/v1/plans",
            &[
                ("id", BASE_PLAN),
                ("product", product["id"].as_str().unwrap()),
                ("amount", "0"),
                ("currency", "usd"),
                ("interval", "month"),
            ],
        )
        .await;
        self
    }
}

impl Drop for Localstripe {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server's configuration: 1 free audio minute at 2.5 ¢, a 10 $ minimum, Stripe at `api_base`.
fn config(dir: &Path, api_base: &str, report: &str) -> PathBuf {
    let path = dir.join("switchboard.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[billing]
[[billing.plans]]
name = "default"
from = "2026-01"
minimum_cents = "1000"
prices.participant_minutes_audio = {{ allowance = 1, unit_price_cents = "2.5" }}

[stripe]
secret_key = "{SECRET_KEY}"
api_base = "{api_base}/"
webhook_secret = "{WEBHOOK_SECRET}"
report = "{report}"
interval_seconds = 1
retry_seconds = 1
close_delay_seconds = 0
[[stripe.subscription_items]]
plan = "{BASE_PLAN}"
[stripe.meter_events]
participant_minutes_audio = "{AUDIO_EVENT}"
"#
        ),
    )
    .unwrap();
    path
}

/// `GET /v1/billing/stripe` as `who` (key id, secret).
async fn account(s: &Server, who: (&str, &str)) -> Value {
    let (st, v) = send(
        s.request(Method::GET, "/v1/billing/stripe")
            .basic_auth(who.0, Some(who.1)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

/// Polls `GET /v1/billing/stripe` as `who` until `done` holds.
async fn account_when(
    s: &Server,
    who: (&str, &str),
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..300 {
        let v = account(s, who).await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} did not happen: {}\n{}",
        account(s, who).await,
        s.log()
    );
}

const DEV: (&str, &str) = ("devkey", "secret");

fn report<'a>(account: &'a Value, meter: &str) -> &'a Value {
    account["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["meter"] == meter)
        .unwrap_or_else(|| panic!("no {meter} report in {account}"))
}

fn all_sent(account: &Value) -> bool {
    let reports = account["reports"].as_array().unwrap();
    !reports.is_empty() && reports.iter().all(|r| r["status"] != "pending")
}

/// What the period's audio minutes cost in the test plan: (billed minutes, overage, cents).
fn audio_bill(us: i64) -> (i64, i64, i64) {
    let minutes = (us + MINUTE_US - 1) / MINUTE_US;
    let overage = (minutes - 1).max(0);
    // 2.5 ¢ a minute, rounded half up once.
    (minutes, overage, (overage * 25 + 5) / 10)
}

fn current_period() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

fn settle(s: &Server, config: &Path) -> std::process::Output {
    s.cli(&[
        "billing",
        "settle",
        "--period",
        &current_period(),
        "--config",
        config.to_str().unwrap(),
    ])
}

/// Posts `body` to the server's Stripe webhook, signed with `secret` now.
async fn webhook(s: &Server, body: &Value, secret: &str) -> (StatusCode, Value) {
    let payload = body.to_string();
    let sig = Webhook::generate_test_header(&payload, secret, None);
    send(
        s.request(Method::POST, "/stripe/webhook")
            .header("Stripe-Signature", sig)
            .header("Content-Type", "application/json")
            .body(payload),
    )
    .await
}

fn invoice_event(id: &str, kind: &str, customer: &str) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "data": {"object": {"id": format!("in_{id}"), "object": "invoice", "customer": customer,
                            "status": if kind == "invoice.paid" { "paid" } else { "open" }}},
    })
}

/// Opens a signaling WebSocket to room `room` of the dev project; returns
/// the close code and reason if the server refuses the join, or `None` once it admits it.
async fn try_join(s: &Server, room: &str, identity: &str) -> Option<(u16, String)> {
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": room, "identity": identity })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let url = format!(
        "{}/rtc?access_token={}",
        s.base.replacen("http", "ws", 1),
        t["token"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket upgrade");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "join" {
                    return None;
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                return Some((u16::from(frame.code), frame.reason.to_string()))
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                return Some((0, String::new()))
            }
            Some(Ok(_)) => {}
        }
    }
}

async fn participants(s: &Server, room: &str) -> usize {
    let (_, v) = send(s.dev(Method::GET, &format!("/v1/rooms/{room}/participants"))).await;
    v["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_billed_through_stripe_once_and_webhooks_suspend_projects() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut stripe = Localstripe::start(None, true).await.with_base_plan().await;
    let given = stripe
        .post("/v1/customers", &[("name", "created by the operator")])
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &stripe.url(), "invoice_items");
    let s = Server::start_with(
        Backend::Postgres,
        &["--dev", "--config", cfg.to_str().unwrap()],
    )
    .await;
    let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
    let dev_project = project["id"].as_str().unwrap().to_owned();

    // A second project, billed to a customer the operator made in Stripe.
    let (given_project, key, secret) = s.create_project("given");
    let b = (key.as_str(), secret.as_str());
    let out = s.cli(&[
        "project",
        "link-stripe",
        &given_project,
        "--customer",
        &given,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&[
        "project",
        "link-stripe",
        &given_project,
        "--customer",
        "not-a-customer",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Stripe customer id"));

    // The dev project's customer is created, and both get the base subscription.
    let subscribed = |v: &Value| v["customer_id"].is_string() && v["subscription_id"].is_string();
    let a_account = account_when(&s, DEV, "the dev project's subscription", subscribed).await;
    let a_customer = a_account["customer_id"].as_str().unwrap().to_owned();
    let customer = stripe.get(&format!("/v1/customers/{a_customer}")).await;
    assert_eq!(
        customer["metadata"]["switchboard_project"],
        dev_project.as_str()
    );
    let sub = stripe
        .get(&format!(
            "/v1/subscriptions/{}",
            a_account["subscription_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (sub["customer"].as_str(), sub["plan"]["id"].as_str()),
        (Some(a_customer.as_str()), Some(BASE_PLAN))
    );
    let b_account = account_when(&s, b, "the given project's subscription", |v| {
        v["customer_id"] == given.as_str() && v["subscription_id"].is_string()
    })
    .await;
    let b_subscription = b_account["subscription_id"].as_str().unwrap().to_owned();

    // Real participants: 4 audio publishers for 20 s.
    loadtest(&s, "billed", 4, 0, "0", 20).await;
    let usage = settled(&s, 4).await;
    let us = total(&usage, "participant_minutes_audio");
    let (minutes, overage, cents) = audio_bill(us);
    assert!(overage >= 1, "{us} µs is not beyond the free minute");
    let (_, preview) = send(s.dev(Method::GET, "/v1/billing/preview")).await;
    let line = &preview["invoice"]["lines"][0];
    assert_eq!(
        (
            line["meter"].as_str(),
            line["quantity"].as_i64(),
            line["overage"].as_i64(),
            line["charge_cents"].as_i64()
        ),
        (
            Some("participant_minutes_audio"),
            Some(minutes),
            Some(overage),
            Some(cents)
        ),
        "{preview}"
    );
    let top_up = preview["invoice"]["minimum_top_up_cents"].as_i64().unwrap();
    assert_eq!(top_up, 1000 - cents);

    // Stripe is down: the reports are planned and kept, their failure visible.
    let port = stripe.port;
    stripe.kill();
    let out = settle(&s, &cfg);
    assert!(
        !out.status.success(),
        "settle must fail while Stripe is down"
    );
    let failed = account(&s, DEV).await;
    let audio = report(&failed, "participant_minutes_audio");
    assert_eq!(
        (audio["quantity"].as_i64(), audio["amount_cents"].as_i64()),
        (Some(overage), Some(cents)),
        "{failed}"
    );
    assert!(audio["attempts"].as_i64().unwrap() >= 1, "{failed}");
    assert!(
        audio["last_error"].as_str().unwrap().contains("Stripe"),
        "{failed}"
    );

    // Stripe is back with its state: the server retries on its own.
    let stripe = Localstripe::start(Some(port), false).await;
    let a_sent = account_when(&s, DEV, "the dev project's reports", all_sent).await;
    let b_sent = account_when(&s, b, "the given project's reports", all_sent).await;
    let items = stripe.our_items(&a_customer).await;
    let audio_items = &items["participant_minutes_audio"];
    assert_eq!(audio_items.len(), 1, "{items:?}");
    assert_eq!(audio_items[0]["amount"].as_i64(), Some(cents));
    assert_eq!(
        audio_items[0]["metadata"]["quantity"],
        overage.to_string().as_str()
    );
    assert_eq!(
        audio_items[0]["metadata"]["switchboard_report"],
        report(&a_sent, "participant_minutes_audio")["idempotency_key"]
    );
    assert_eq!(items["minimum"].len(), 1);
    assert_eq!(items["minimum"][0]["amount"].as_i64(), Some(top_up));
    // The dashboard's usage page shows the same link, reports and invoice.
    let mut owner = Session::new(&s);
    assert_eq!(
        owner.sign_in(DEV_EMAIL, DEV_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let (st, page) = owner
        .get(&format!("/dashboard/projects/{dev_project}/usage"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        page.contains(&format!("Linked to customer <code>{a_customer}</code>")),
        "{page}"
    );
    assert!(
        page.contains(a_sent["subscription_id"].as_str().unwrap()),
        "{page}"
    );
    assert!(
        page.contains(audio_items[0]["id"].as_str().unwrap()),
        "{page}"
    );
    let (_, preview) = send(s.dev(Method::GET, "/v1/billing/preview")).await;
    let total = preview["invoice"]["total_cents"].as_i64().unwrap();
    let shown = format!(
        "<td id=\"invoice-total\">{}.{:02} USD</td>",
        total / 100,
        total % 100
    );
    assert!(page.contains(&shown), "{shown} in {page}");
    // The given project used nothing: only its minimum, billed to the given customer.
    let b_items = stripe.our_items(&given).await;
    assert_eq!(b_items.keys().collect::<Vec<_>>(), ["minimum"]);
    assert_eq!(b_items["minimum"][0]["amount"].as_i64(), Some(1000));
    assert_eq!(report(&b_sent, "minimum")["status"], "sent");

    // Stripe made the item but the answer was lost (a crash, a timeout): the
    // server sends the report again, finds the item, and makes no second one.
    let item_id = audio_items[0]["id"].as_str().unwrap().to_owned();
    let db = sqlx::PgPool::connect(&s.db.url).await.unwrap();
    sqlx::query(
        "UPDATE stripe_reports SET status = 'pending', stripe_id = NULL, next_attempt_at = 0 \
         WHERE project_id = $1 AND meter = 'participant_minutes_audio'",
    )
    .bind(&dev_project)
    .execute(&db)
    .await
    .unwrap();
    let resent = account_when(&s, DEV, "the resend", all_sent).await;
    assert_eq!(
        report(&resent, "participant_minutes_audio")["stripe_id"],
        item_id.as_str()
    );
    // Settling again finds nothing new to bill.
    let out = settle(&s, &cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("0 project(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = stripe.our_items(&a_customer).await;
    assert_eq!(
        (
            again["participant_minutes_audio"].len(),
            again["minimum"].len()
        ),
        (1, 1),
        "{again:?}"
    );

    // Webhooks that are not Stripe's are refused and change nothing.
    let failed_payment = invoice_event("evt_failed", "invoice.payment_failed", &a_customer);
    let (st, v) = send(
        s.request(Method::POST, "/stripe/webhook")
            .body(failed_payment.to_string()),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_signature"))
    );
    let (st, v) = webhook(&s, &failed_payment, "whsec_someone_else").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_signature"))
    );
    let (st, v) = send(
        s.request(Method::POST, "/stripe/webhook")
            .header("Stripe-Signature", "t=1,v1=00")
            .body(vec![0xff, 0xfe, 0x00]),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(account(&s, DEV).await["suspension"].is_null());

    // A call in progress goes on through a suspension; new joins are refused with the reason.
    let mut live = loadtest_command(&s, "live", 1, 1, "0", 10);
    live.args(["--json", "-"]);
    let live = tokio::task::spawn_blocking(move || live.output().expect("run loadtest"));
    for _ in 0..100 {
        if participants(&s, "live").await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(participants(&s, "live").await, 2);
    let (st, v) = webhook(&s, &failed_payment, WEBHOOK_SECRET).await;
    assert_eq!(
        (st, v["outcome"].as_str()),
        (StatusCode::OK, Some("suspended")),
        "{v}"
    );
    let (st, v) = webhook(&s, &failed_payment, WEBHOOK_SECRET).await;
    assert_eq!(
        (st, v["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "{v}"
    );
    assert_eq!(
        account(&s, DEV).await["suspension"]["reason"],
        "payment_failed"
    );
    let (_, page) = owner
        .get(&format!("/dashboard/projects/{dev_project}/usage"))
        .await;
    assert!(
        page.contains("New joins are refused since") && page.contains("payment_failed"),
        "{page}"
    );
    let (st, v) = send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({"name": "joins"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (code, reason) = try_join(&s, "joins", "late")
        .await
        .expect("the join is refused");
    assert_eq!(code, 4403);
    assert!(
        reason.contains("project suspended (payment_failed)"),
        "{reason}"
    );
    assert_eq!(
        participants(&s, "live").await,
        2,
        "the live call must not be cut"
    );
    let out = live.await.unwrap();
    assert!(
        out.status.success(),
        "the live call failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Paying lifts it.
    let (st, v) = webhook(
        &s,
        &invoice_event("evt_paid", "invoice.paid", &a_customer),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(
        (st, v["outcome"].as_str()),
        (StatusCode::OK, Some("resumed")),
        "{v}"
    );
    assert_eq!(try_join(&s, "joins", "on-time").await, None);

    // Cancelling the given project's subscription in Stripe suspends it:
    // localstripe signs and sends the webhook itself.
    stripe
        .post(
            "/_config/webhooks/switchboard",
            &[
                ("url", &format!("{}/stripe/webhook", s.base)),
                ("secret", WEBHOOK_SECRET),
            ],
        )
        .await;
    stripe
        .call(
            Method::DELETE,
            &format!("/v1/subscriptions/{b_subscription}"),
            &[],
        )
        .await;
    account_when(&s, b, "suspension after the cancellation", |v| {
        v["suspension"]["reason"] == "subscription_canceled"
    })
    .await;
    assert!(account(&s, DEV).await["suspension"].is_null());
}

/// What the proxy saw of meter events, and how it answered.
#[derive(Default)]
struct Seen {
    meter_events: Vec<(HeaderMap, HashMap<String, String>)>,
}

/// Checks a meter event request against Stripe's published API
/// (POST /v1/billing/meter_events): `event_name` (required, at most 100
/// characters), `payload` (required; `stripe_customer_id` and `value`, an
/// integer), `identifier` (optional, at most 100 characters), `timestamp`
/// (optional, Unix seconds within the past 35 days and at most 5 minutes
/// ahead); nothing else but `expand[]`.
fn check_meter_event(form: &HashMap<String, String>) -> Result<(), String> {
    let allowed = [
        "event_name",
        "payload[stripe_customer_id]",
        "payload[value]",
        "identifier",
        "timestamp",
    ];
    if let Some(k) = form
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && !k.starts_with("expand["))
    {
        return Err(format!("unknown parameter {k}"));
    }
    let name = form.get("event_name").ok_or("event_name is required")?;
    if name.is_empty() || name.len() > 100 {
        return Err("event_name must be 1 to 100 characters".into());
    }
    let customer = form
        .get("payload[stripe_customer_id]")
        .ok_or("payload[stripe_customer_id] is required")?;
    if !customer.starts_with("cus_") {
        return Err("payload[stripe_customer_id] is not a customer".into());
    }
    form.get("payload[value]")
        .ok_or("payload[value] is required")?
        .parse::<i64>()
        .map_err(|_| "payload[value] must be an integer")?;
    if let Some(id) = form.get("identifier") {
        if id.is_empty() || id.len() > 100 {
            return Err("identifier must be 1 to 100 characters".into());
        }
    }
    if let Some(t) = form.get("timestamp") {
        let t: i64 = t.parse().map_err(|_| "timestamp must be Unix seconds")?;
        let now = chrono::Utc::now().timestamp();
        if t < now - 35 * 86_400 || t > now + 300 {
            return Err(
                "timestamp must be within the past 35 days and at most 5 minutes ahead".into(),
            );
        }
    }
    Ok(())
}

/// Serves `/v1/billing/meter_events` (failing the first call with a 500, as
/// Stripe sometimes does) and forwards everything else to `upstream`.
async fn meter_event_proxy(upstream: String, seen: Arc<Mutex<Seen>>) -> String {
    let http = reqwest::Client::new();
    let app = axum::Router::new()
        .route(
            "/v1/billing/meter_events",
            axum::routing::post({
                let seen = seen.clone();
                move |headers: HeaderMap, body: Bytes| async move {
                    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
                    if let Err(e) = check_meter_event(&form) {
                        return (AxumStatus::BAD_REQUEST, axum::Json(json!({"error": {"type": "invalid_request_error", "message": e}}))).into_response();
                    }
                    let first = {
                        let mut seen = seen.lock().unwrap();
                        seen.meter_events.push((headers, form.clone()));
                        seen.meter_events.len() == 1
                    };
                    if first {
                        return (AxumStatus::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"type": "api_error", "message": "try again"}}))).into_response();
                    }
                    axum::Json(json!({
                        "object": "billing.meter_event", "created": chrono::Utc::now().timestamp(),
                        "event_name": form["event_name"], "identifier": form.get("identifier"), "livemode": false,
                        "payload": {"stripe_customer_id": form["payload[stripe_customer_id]"], "value": form["payload[value]"]},
                        "timestamp": form.get("timestamp").and_then(|t| t.parse::<i64>().ok()),
                    }))
                    .into_response()
                }
            }),
        )
        .fallback(move |req: axum::extract::Request| {
            let (http, upstream) = (http.clone(), upstream.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut out = http.request(parts.method.clone(), format!("{upstream}{path}")).body(body);
                for name in ["authorization", "content-type", "idempotency-key", "stripe-version"] {
                    if let Some(v) = parts.headers.get(name) {
                        out = out.header(name, v.as_bytes());
                    }
                }
                let r = out.send().await.unwrap();
                let status = AxumStatus::from_u16(r.status().as_u16()).unwrap();
                (status, [("content-type", "application/json")], r.bytes().await.unwrap()).into_response()
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_events_match_stripes_published_shape_and_retry_under_one_identifier() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stripe = Localstripe::start(None, true).await.with_base_plan().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let proxy = meter_event_proxy(stripe.url(), seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &proxy, "meter_events");
    let s = Server::start_with(
        Backend::Sqlite,
        &["--dev", "--config", cfg.to_str().unwrap()],
    )
    .await;
    let linked = account_when(&s, DEV, "the dev project's subscription", |v| {
        v["subscription_id"].is_string()
    })
    .await;
    let customer = linked["customer_id"].as_str().unwrap().to_owned();

    loadtest(&s, "metered", 3, 0, "0", 25).await;
    let us = total(&settled(&s, 3).await, "participant_minutes_audio");
    let (_, overage, cents) = audio_bill(us);
    assert!(overage >= 1, "{us} µs is not beyond the free minute");

    // The first meter event gets a 500 and is retried under the same
    // identifier. (A test that crosses the hour sees an hourly window too:
    // the events add up to the overage whichever windows carry it.)
    let _ = settle(&s, &cfg);
    let sent = account_when(&s, DEV, "the meter events and their retry", all_sent).await;
    let events: Vec<&Value> = sent["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["meter"] == "participant_minutes_audio" && r["status"] == "sent")
        .collect();
    assert!(
        events
            .iter()
            .all(|r| r["kind"] == "meter_event" && r["stripe_id"] == r["idempotency_key"]),
        "{sent}"
    );
    assert_eq!(
        events
            .iter()
            .map(|r| r["quantity"].as_i64().unwrap())
            .sum::<i64>(),
        overage,
        "{sent}"
    );

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut by_identifier: HashMap<&str, Vec<&HashMap<String, String>>> = HashMap::new();
    for (headers, form) in &seen.meter_events {
        assert_eq!(form["event_name"], AUDIO_EVENT);
        assert_eq!(form["payload[stripe_customer_id]"], customer);
        // Stripe drops a second event with the same identifier.
        assert_eq!(headers["idempotency-key"], form["identifier"].as_str());
        assert_eq!(
            headers["authorization"],
            format!("Bearer {SECRET_KEY}").as_str()
        );
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        by_identifier
            .entry(form["identifier"].as_str())
            .or_default()
            .push(form);
    }
    let first_id = seen.meter_events[0].1["identifier"].as_str();
    assert_eq!(
        by_identifier[first_id].len(),
        2,
        "the failed call and its retry"
    );
    assert!(by_identifier[first_id]
        .iter()
        .all(|f| f["payload[value]"] == by_identifier[first_id][0]["payload[value]"]));
    assert_eq!(
        seen.meter_events.len(),
        by_identifier.len() + 1,
        "only the failed call is sent twice"
    );
    let total_value: i64 = by_identifier
        .values()
        .map(|f| f[0]["payload[value]"].parse::<i64>().unwrap())
        .sum();
    assert_eq!(total_value, overage);
    // The minimum cannot be a meter event: it is an invoice item, in localstripe.
    let items = stripe.our_items(&customer).await;
    assert_eq!(items.keys().collect::<Vec<_>>(), ["minimum"]);
    assert_eq!(items["minimum"][0]["amount"].as_i64(), Some(1000 - cents));
}

#[test]
fn the_proxy_refuses_what_stripe_would() {
    let good: HashMap<String, String> = [
        ("event_name", "x"),
        ("payload[stripe_customer_id]", "cus_1"),
        ("payload[value]", "3"),
        ("identifier", "k"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    check_meter_event(&good).unwrap();
    for (key, value) in [
        ("payload[value]", "1.5"),
        ("event_name", ""),
        ("identifier", &"k".repeat(101)),
        ("timestamp", "1"),
        ("quantity", "3"),
    ] {
        let mut bad = good.clone();
        bad.insert(key.to_owned(), value.to_owned());
        assert!(check_meter_event(&bad).is_err(), "{key}={value}");
    }
}
