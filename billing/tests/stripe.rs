//! Stripe's side of billing against a real database on both backends, without
//! Stripe: webhook events applied once and in order, report windows planned
//! once, pending reports taken by one sender. (`server/tests/stripe.rs` runs
//! the whole flow against a Stripe-compatible server.)

use chrono::{DateTime, TimeDelta, Utc};
use stripe_webhook::Webhook;
use switchboard_billing::stripe::webhook::{self, Refusal, StripeEvent};
use switchboard_store::stripe::{NewReport, ReportKind, ReportStatus};
use switchboard_store::testing::TestDb;
use switchboard_store::{on_both_backends, Backend};

const SECRET: &str = "whsec_test_secret";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(id: &str, kind: &str, customer: &str, created: i64) -> (StripeEvent, String) {
    let payload = serde_json::json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer}},
    })
    .to_string();
    (
        StripeEvent {
            id: id.into(),
            kind: kind.into(),
            created,
            customer: Some(customer.into()),
            object_id: Some("in_1".into()),
        },
        payload,
    )
}

async fn events_suspend_and_resume_once_and_in_order(backend: Backend) {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let now = t("2026-11-23T12:00:00Z");
    let project = store.projects().create("billed", now).await.unwrap().id;
    store
        .stripe()
        .link(project, "cus_A", Some("sub_A"), now)
        .await
        .unwrap();
    let apply = |id: &str, kind: &str, created: i64| {
        let (e, payload) = event(id, kind, "cus_A", created);
        let store = store.clone();
        async move {
            webhook::apply(&store, &e, &payload, now)
                .await
                .unwrap()
                .as_str()
        }
    };
    let suspended = || async {
        store
            .projects()
            .suspension(project)
            .await
            .unwrap()
            .map(|s| s.reason)
    };

    assert_eq!(
        apply("evt_1", "invoice.payment_failed", 100).await,
        "suspended"
    );
    assert_eq!(suspended().await.as_deref(), Some("payment_failed"));
    // Stripe delivers at least once: the same event does nothing twice.
    assert_eq!(
        apply("evt_1", "invoice.payment_failed", 100).await,
        "duplicate"
    );
    // An older event arriving late does not undo a newer one.
    assert_eq!(apply("evt_0", "invoice.paid", 90).await, "stale");
    assert_eq!(suspended().await.as_deref(), Some("payment_failed"));
    assert_eq!(apply("evt_2", "invoice.paid", 110).await, "resumed");
    assert_eq!(suspended().await, None);
    assert_eq!(apply("evt_3", "invoice.paid", 120).await, "ignored");
    assert_eq!(apply("evt_4", "customer.created", 130).await, "ignored");
    // Someone else's customer.
    let (e, payload) = event("evt_5", "invoice.payment_failed", "cus_other", 140);
    assert_eq!(
        webhook::apply(&store, &e, &payload, now)
            .await
            .unwrap()
            .as_str(),
        "unknown_customer"
    );

    // Another subscription of the customer ending is not ours ending.
    let (mut e, payload) = event("evt_6", "customer.subscription.deleted", "cus_A", 150);
    e.object_id = Some("sub_other".into());
    assert_eq!(
        webhook::apply(&store, &e, &payload, now)
            .await
            .unwrap()
            .as_str(),
        "ignored"
    );
    e.id = "evt_7".into();
    e.object_id = Some("sub_A".into());
    assert_eq!(
        webhook::apply(&store, &e, &payload, now)
            .await
            .unwrap()
            .as_str(),
        "suspended"
    );
    // Paying an invoice does not lift a cancellation.
    assert_eq!(apply("evt_8", "invoice.paid", 160).await, "ignored");
    assert_eq!(suspended().await.as_deref(), Some("subscription_canceled"));
}

async fn a_window_is_planned_once_and_a_report_sent_by_one_sender(backend: Backend) {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let now = t("2026-12-01T00:05:00Z");
    let project = store.projects().create("billed", now).await.unwrap().id;
    let window = t("2026-12-01T00:00:00Z");
    let rows = [
        NewReport {
            meter: "participant_minutes_video".into(),
            kind: ReportKind::InvoiceItem,
            quantity: 31,
            amount_cents: 12,
        },
        NewReport {
            meter: "participant_minutes_audio".into(),
            kind: ReportKind::InvoiceItem,
            quantity: 0,
            amount_cents: 0,
        },
    ];
    assert!(store
        .stripe()
        .plan_window(project, "2026-11", window, &rows, now)
        .await
        .unwrap());
    // A second planner (another node, a restart) finds it planned.
    let mut more = rows.clone();
    more[0].quantity = 99;
    assert!(!store
        .stripe()
        .plan_window(project, "2026-11", window, &more, now)
        .await
        .unwrap());
    assert!(store
        .stripe()
        .has_window(project, "2026-11", window)
        .await
        .unwrap());

    let stored = store
        .stripe()
        .reports_of_period(project, "2026-11")
        .await
        .unwrap();
    let video = stored
        .iter()
        .find(|r| r.meter == "participant_minutes_video")
        .unwrap();
    assert_eq!((video.quantity, video.status), (31, ReportStatus::Pending));
    let audio = stored
        .iter()
        .find(|r| r.meter == "participant_minutes_audio")
        .unwrap();
    assert_eq!(audio.status, ReportStatus::Empty);
    assert_eq!(
        video.idempotency_key(),
        format!(
            "switchboard:{project}:participant_minutes_video:2026-11:{}",
            window.timestamp()
        )
    );

    let due = store.stripe().due(now, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "only the report with something to add is sent"
    );
    let hold = now + TimeDelta::minutes(5);
    assert!(store.stripe().claim(&due[0], now, hold).await.unwrap());
    assert!(
        !store.stripe().claim(&due[0], now, hold).await.unwrap(),
        "a second sender must not take it"
    );
    assert!(store.stripe().due(now, 10).await.unwrap().is_empty());

    store
        .stripe()
        .mark_failed(
            &due[0],
            "Stripe answered 500: boom",
            now + TimeDelta::seconds(30),
        )
        .await
        .unwrap();
    let retry = store
        .stripe()
        .due(now + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(
        (retry[0].attempts, retry[0].last_error.as_deref()),
        (1, Some("Stripe answered 500: boom"))
    );
    store
        .stripe()
        .mark_sent(&retry[0], "ii_1", now)
        .await
        .unwrap();
    assert!(store
        .stripe()
        .due(now + TimeDelta::days(1), 10)
        .await
        .unwrap()
        .is_empty());
    let sent = store.stripe().reports(project, 10).await.unwrap();
    let video = sent
        .iter()
        .find(|r| r.meter == "participant_minutes_video")
        .unwrap();
    assert_eq!(
        (video.status, video.attempts, video.stripe_id.as_deref()),
        (ReportStatus::Sent, 2, Some("ii_1"))
    );
}

async fn a_customer_is_linked_to_one_project(backend: Backend) {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let now = t("2026-11-23T12:00:00Z");
    let a = store.projects().create("a", now).await.unwrap().id;
    let b = store.projects().create("b", now).await.unwrap().id;
    assert_eq!(store.stripe().unlinked().await.unwrap().len(), 2);
    assert!(store.stripe().link(a, "cus_A", None, now).await.unwrap());
    let err = store
        .stripe()
        .link(b, "cus_A", None, now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already linked"), "{err}");
    assert!(!store
        .stripe()
        .link(switchboard_core::ProjectId::new(), "cus_B", None, now)
        .await
        .unwrap());
    assert_eq!(
        store.stripe().unlinked().await.unwrap(),
        vec![(b, "b".to_string())]
    );
}

/// The server creates a customer and a subscription for a project while an
/// operator may link the project to another customer: the operator's link
/// stands, and a subscription made for the old link is not recorded under
/// the new one (a CI run once deleted that subscription in Stripe and saw
/// its cancellation land on no project).
async fn the_servers_link_never_replaces_an_operators(backend: Backend) {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let now = t("2026-11-23T12:00:00Z");
    let a = store.projects().create("a", now).await.unwrap().id;
    assert!(store
        .stripe()
        .link(a, "cus_given", None, now)
        .await
        .unwrap());
    assert!(!store
        .stripe()
        .link_created(a, "cus_auto", now)
        .await
        .unwrap());
    let link = store.stripe().link_of(a).await.unwrap().unwrap();
    assert_eq!(link.customer_id, "cus_given");

    // The subscription is made for `link`; the operator relinks meanwhile.
    assert!(store
        .stripe()
        .link(a, "cus_other", None, now)
        .await
        .unwrap());
    assert!(!store
        .stripe()
        .set_subscription(&link, "sub_stale")
        .await
        .unwrap());
    let relinked = store.stripe().link_of(a).await.unwrap().unwrap();
    assert_eq!(
        (
            relinked.customer_id.as_str(),
            relinked.subscription_id.as_deref()
        ),
        ("cus_other", None)
    );
    assert!(store
        .stripe()
        .set_subscription(&relinked, "sub_1")
        .await
        .unwrap());
    assert!(
        !store
            .stripe()
            .set_subscription(&relinked, "sub_2")
            .await
            .unwrap(),
        "a project has one subscription"
    );
    let b = store.projects().create("b", now).await.unwrap().id;
    assert!(store
        .stripe()
        .link_created(b, "cus_auto", now)
        .await
        .unwrap());
}

on_both_backends!(
    events_suspend_and_resume_once_and_in_order,
    a_window_is_planned_once_and_a_report_sent_by_one_sender,
    a_customer_is_linked_to_one_project,
    the_servers_link_never_replaces_an_operators,
);

#[test]
fn webhooks_are_verified_before_they_are_read() {
    let now = 1_795_000_000;
    let (_, payload) = event("evt_1", "invoice.payment_failed", "cus_A", now);
    let good = Webhook::generate_test_header(&payload, SECRET, Some(now));
    let e = webhook::verify(&payload, &good, SECRET, now).unwrap();
    assert_eq!(
        (e.id.as_str(), e.kind.as_str(), e.customer.as_deref()),
        ("evt_1", "invoice.payment_failed", Some("cus_A"))
    );

    let refused =
        |payload: &str, sig: &str, at: i64| webhook::verify(payload, sig, SECRET, at).unwrap_err();
    assert!(matches!(
        refused(
            &payload,
            &Webhook::generate_test_header(&payload, "whsec_other", Some(now)),
            now
        ),
        Refusal::BadSignature
    ));
    // The body changed after signing.
    let tampered = payload.replace("cus_A", "cus_B");
    assert!(matches!(
        refused(&tampered, &good, now),
        Refusal::BadSignature
    ));
    // A replay ten minutes later.
    assert!(matches!(
        refused(&payload, &good, now + 600),
        Refusal::Stale
    ));
    for garbage in ["", "t=", "v1=abc", "t=abc,v1=00", "t=1,v1=zz", "\u{0}\u{1}"] {
        assert!(
            matches!(refused(&payload, garbage, now), Refusal::BadSignature),
            "{garbage:?}"
        );
    }
    // Signed, but not an event.
    for body in [
        "not json",
        "{}",
        r#"{"id":"evt_1"}"#,
        r#"{"id":"evt_1","type":"x"}"#,
        "[]",
    ] {
        let sig = Webhook::generate_test_header(body, SECRET, Some(now));
        assert!(
            matches!(refused(body, &sig, now), Refusal::NotAnEvent(_)),
            "{body:?}"
        );
    }
}
