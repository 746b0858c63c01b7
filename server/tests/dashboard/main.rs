//! The dashboard end to end: an owner signs in with headless Chromium,
//! uploads a function, creates an API key, watches a room appear while the
//! load tester runs in it with each participant's connection measured,
//! removes a participant, finds the room in the history once it ends, reads
//! the usage and invoice, and edits a webhook endpoint, with a screenshot of
//! each page under `target/screenshots/` and no console error; and a user of
//! another project tries every dashboard URL and form of the first project
//! and gets nothing.

#[path = "../common/mod.rs"]
mod common;
mod isolation;
mod sign_in;
mod walkthrough;

use std::time::{Duration, Instant};

use common::browser::{isolated, Driver};
use common::dashboard::{no_redirects, Session, DEV_EMAIL, DEV_PASSWORD};
use common::metering::{loadtest, loadtest_command, settled};
use common::{logging_component, send, Server};
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use switchboard_store::Backend;

/// The dev project's id.
async fn dev_project(s: &Server) -> String {
    let (_, p) = send(s.dev(Method::GET, "/v1/project")).await;
    p["id"].as_str().unwrap().to_owned()
}

/// axe-core's source, installed with npm on first use (before the test enters
/// its network namespace, where the registry is out of reach).
fn axe_source() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a11y");
    let file = dir.join("node_modules/axe-core/axe.min.js");
    if !file.exists() {
        let st = std::process::Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm (Node.js) to install axe-core");
        assert!(st.success(), "npm ci failed in {}", dir.display());
    }
    std::fs::read_to_string(&file).expect("axe-core's axe.min.js")
}

/// Checks the page with axe-core against WCAG 2 A and AA (labels, contrast,
/// names, landmarks...) on a phone's screen and on a desktop's, checks that
/// it fits the phone's width (wide tables scroll on their own), and saves its
/// screenshots as `NAME-phone.png` and `NAME.png`.
async fn check_page(b: &common::browser::Browser, axe: &str, name: &str) {
    let script = format!(
        "{axe}\nconst r = await axe.run(document, {{ runOnly: ['wcag2a', 'wcag2aa'] }});\n\
         return r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '));"
    );
    for (screen, width, height) in [("phone", 390, 844), ("desktop", 1280, 900)] {
        b.client.set_window_size(width, height).await.unwrap();
        if screen == "phone" {
            let overflow = b
                .run(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await;
            assert!(
                overflow.as_i64().unwrap_or(1) <= 0,
                "{name} is {overflow} px wider than a phone's screen"
            );
        }
        let violations = b.run(&script, vec![]).await;
        assert_eq!(
            violations.as_array().map(Vec::len),
            Some(0),
            "{name} on a {screen} is not accessible: {violations:#}"
        );
        let file = if screen == "phone" {
            format!("{name}-phone")
        } else {
            name.to_owned()
        };
        b.screenshot(&file).await;
    }
}

/// The element `locator` finds, waiting up to 10 s for it (pages load after clicks).
async fn find(c: &fantoccini::Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("no {locator:?} on the page: {e}"))
}

/// Clicks what `locator` finds, once it is there (found again if a live
/// refresh replaced it in between).
async fn click(c: &fantoccini::Client, locator: Locator<'_>) {
    for _ in 0..4 {
        if find(c, locator).await.click().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    find(c, locator).await.click().await.unwrap();
}

/// Deploys the function `watcher`, which logs each `room.*` event it sees.
async fn deploy_watcher(s: &Server) {
    let (st, body) = send(
        s.dev(Method::POST, "/v1/functions/watcher/versions?events=room.*")
            .header("content-type", "application/wasm")
            .body(logging_component()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// Polls `check` every 200 ms for up to `secs` seconds.
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
