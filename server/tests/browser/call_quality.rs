//! A call whose subscriber loses packets for part of it, then its page in
//! the dashboard: the loss chart shows the loss in that part and not before
//! or after.

use chrono::{DateTime, Utc};

use super::*;
use crate::common::dashboard::{DEV_EMAIL, DEV_PASSWORD};
use fantoccini::Locator;

/// The local port of the subscriber connection's selected candidate pair.
const SUBSCRIBER_PORT: &str = r#"
    const stats = await room.subscriber.getStats();
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    if (!pair) return null;
    return stats.get(pair.localCandidateId).port;
"#;

/// Video frames the subscriber decoded so far.
const FRAMES: &str = r#"
    const stats = await room.subscriber.getStats();
    let frames = 0;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
    return frames;
"#;

/// The loss chart's values as the page shows them now, and whether the page
/// is still the one first loaded.
const CHARTED: &str = r#"
    const g = document.querySelector('#loss g.loss');
    return { values: g ? g.dataset.values : null, loadedOnce: window.loadedOnce === true };
"#;

/// Clean stretches must stay under this loss, the shaped one over the other.
const CLEAN_PER_MILLE: u64 = 50;
const SHAPED_PER_MILLE: u64 = 150;
/// How long after the link changes its samples may still show the other
/// state: up to one sampling interval (3 s) plus the receiver report the
/// loss is read from, which covers the interval before it (Chromium reports
/// on audio every 5 s or so, randomized; up to 9 s apart were seen).
const SETTLE: Duration = Duration::from_secs(15);

/// Three in ten datagrams from the node to the subscriber's port are
/// dropped (nftables, in the test's namespace) for 27 s of a call, with
/// 12 s of clean link before and 21 s after. The call's page then charts the
/// subscriber's loss: high within that stretch, low outside it, and the
/// same values the REST API returns for each measure. The page is opened
/// while the call goes on and follows it without a reload.
#[test]
fn a_subscribers_lossy_stretch_shows_on_its_call_page() {
    isolated(
        "call_quality::a_subscribers_lossy_stretch_shows_on_its_call_page",
        || async {
            let (s, driver, alice, bob) = two_browsers("shaped").await;
            alice_publishes_then_bob_joins(&s, &alice, &bob, "shaped").await;
            let sid = bob
                .run("return room.localParticipant.sid;", vec![])
                .await
                .as_str()
                .expect("bob's participant sid")
                .to_owned();
            let mut frames = 0;
            for _ in 0..100 {
                frames = bob.run(FRAMES, vec![]).await.as_i64().unwrap_or(0);
                if frames > 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(frames > 20, "no video reached the subscriber");
            let bob_port = bob.run(SUBSCRIBER_PORT, vec![]).await;
            let bob_port = bob_port
                .as_u64()
                .unwrap_or_else(|| panic!("no selected candidate pair: {bob_port}"))
                .to_string();

            // The call's page, opened by its owner while the call goes on
            // (once the meter has the session): it follows the call without
            // being reloaded.
            let quality_path = format!("/v1/usage/sessions/{sid}/quality");
            for _ in 0..50 {
                let (st, _) = send(s.dev(Method::GET, &quality_path)).await;
                if st == StatusCode::OK {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
            let project = project["id"].as_str().expect("the dev project").to_owned();
            let owner = driver.browser().await;
            let c = &owner.client;
            c.goto(&format!("{}/dashboard/login", s.base))
                .await
                .unwrap();
            for (field, value) in [("#email", DEV_EMAIL), ("#password", DEV_PASSWORD)] {
                let input = c.find(Locator::Css(field)).await.unwrap();
                input.send_keys(value).await.unwrap();
            }
            c.find(Locator::Css("form button[type=submit]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            for _ in 0..50 {
                if c.current_url().await.unwrap().path() != "/dashboard/login" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            c.goto(&format!(
                "{}/dashboard/projects/{project}/sessions/{sid}",
                s.base
            ))
            .await
            .unwrap();
            owner
                .run("window.loadedOnce = true; return null;", vec![])
                .await;
            tokio::time::sleep(Duration::from_secs(12)).await;
            let node_port = s.media_port().to_string();
            netns_run("nft", &["add", "table", "inet", "shaped"]);
            netns_run(
                "nft",
                &[
                    "add",
                    "chain",
                    "inet",
                    "shaped",
                    "output",
                    "{ type filter hook output priority 0; }",
                ],
            );
            netns_run(
                "nft",
                &[
                    "add", "rule", "inet", "shaped", "output", "udp", "sport", &node_port, "udp",
                    "dport", &bob_port, "numgen", "random", "mod", "10", "<", "3", "counter",
                    "drop",
                ],
            );
            let shaped_from = Utc::now();
            tokio::time::sleep(Duration::from_secs(27)).await;
            netns_run("nft", &["delete", "table", "inet", "shaped"]);
            let shaped_to = Utc::now();
            tokio::time::sleep(Duration::from_secs(21)).await;

            // What the server measured, with when.
            let (st, quality) = send(s.dev(Method::GET, &quality_path)).await;
            assert_eq!(st, StatusCode::OK, "{quality}");
            let measured_rtt = quality["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .filter(|x| x["rtt_ms"].is_u64())
                .count();
            let samples: Vec<(DateTime<Utc>, u64)> = quality["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .map(|x| {
                    let at = x["at"].as_str().expect("a time").parse().expect("RFC 3339");
                    (at, x["loss_per_mille"].as_u64().expect("loss"))
                })
                .collect();

            // The page shows every measure the API has, without a reload.
            let mut charted = Value::Null;
            for _ in 0..50 {
                charted = owner.run(CHARTED, vec![]).await;
                if charted["values"]
                    .as_str()
                    .is_some_and(|v| v.split(' ').count() == samples.len())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(
                charted["loadedOnce"], true,
                "the call's page was reloaded: {charted}"
            );
            owner.client.set_window_size(1280, 1400).await.unwrap();
            owner.screenshot("call-page-lossy-link").await;
            let charted: Vec<&str> = charted["values"]
                .as_str()
                .unwrap_or_else(|| panic!("no loss chart on the call's page: {charted}"))
                .split(' ')
                .collect();
            let seen = format!(
                "measures {samples:?}, charted {charted:?}, link shaped from {shaped_from} to {shaped_to}"
            );
            eprintln!("call quality: {seen}");

            // The chart is the measures: one value per measure, in percent.
            assert_eq!(charted.len(), samples.len(), "{seen}");
            for ((_, per_mille), value) in samples.iter().zip(&charted) {
                assert_eq!(*value, format!("{:.1}", *per_mille as f64 / 10.0), "{seen}");
            }
            let settle = chrono::Duration::from_std(SETTLE).unwrap();
            let before: Vec<u64> = samples
                .iter()
                .filter(|(at, _)| *at < shaped_from)
                .map(|(_, l)| *l)
                .collect();
            let during: Vec<u64> = samples
                .iter()
                .filter(|(at, _)| *at >= shaped_from + settle && *at <= shaped_to)
                .map(|(_, l)| *l)
                .collect();
            let after: Vec<u64> = samples
                .iter()
                .filter(|(at, _)| *at >= shaped_to + settle)
                .map(|(_, l)| *l)
                .collect();
            assert!(
                before.len() >= 2 && during.len() >= 2 && after.len() >= 2,
                "too few measures in each stretch: {seen}"
            );
            assert!(
                before.iter().all(|l| *l < CLEAN_PER_MILLE),
                "loss charted before the link was shaped: {seen}"
            );
            assert!(
                during.iter().all(|l| *l >= SHAPED_PER_MILLE),
                "the shaped stretch is not charted as lossy: {seen}"
            );
            assert!(
                after.iter().all(|l| *l < CLEAN_PER_MILLE),
                "loss charted after the link was clean again: {seen}"
            );
            // The round trip is measured too (the node's connectivity checks).
            assert!(
                measured_rtt * 2 >= samples.len(),
                "{measured_rtt} of {} measures have a round trip: {quality}",
                samples.len()
            );
        },
    );
}
