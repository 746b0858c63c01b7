//! The browser SDK as an npm package: `npm pack` of `sdk/js` ships the module
//! with its TypeScript declarations; an app that installs the tarball, imports
//! it by name, type-checks against it and is bundled by esbuild into one file
//! joins a room from a page in Chromium, publishes and receives.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode as HttpStatus, Uri};
use axum::response::IntoResponse;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;

use super::common::browser::{isolated, Driver};
use super::common::{send, Server};

/// The app a developer would write: joins the room named in its page's query
/// (`url`, `token`), attaches what it receives, publishes camera and microphone
/// when asked (`publish=1`); `window.app.ready` settles with the join.
const APP_TS: &str = r#"
import { connect, SwitchboardError } from '@switchboard/client';
import type { ParticipantInfo, Room, TrackSubscription } from '@switchboard/client';

interface Joined { sid: string; others: number; published: (string | null)[] }
interface App { ready: Promise<Joined>; room: Room | null; received: string[]; left: string[] }

const params = new URLSearchParams(location.search);
const app: App = { room: null, received: [], left: [], ready: join() };
(window as unknown as { app: App }).app = app;

async function join(): Promise<Joined> {
  const url = params.get('url'), token = params.get('token');
  if (!url || !token) throw new SwitchboardError('bad_page', 'the page needs url and token');
  const room = await connect(url, token);
  app.room = room;
  room.on('participant_left', (p: ParticipantInfo | { identity: string }) => app.left.push(p.identity));
  room.on('track_subscribed', ({ track }: TrackSubscription) => {
    app.received.push(track.kind);
    const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
    el.autoplay = true;
    el.muted = true;
    el.srcObject = new MediaStream([track]);
    document.body.append(el);
  });
  const published: (string | null)[] = [];
  if (params.get('publish') === '1') {
    const camera = await room.publishCamera();
    const microphone = await room.publishMicrophone();
    published.push(camera.info.mime_type, microphone.info.mime_type);
  }
  return { sid: room.localParticipant?.sid ?? '', others: room.participants.size, published };
}
"#;

const APP_TSCONFIG: &str = r#"{
  "compilerOptions": {
    "target": "ES2022", "module": "ESNext", "moduleResolution": "Bundler",
    "lib": ["ES2022", "DOM", "DOM.Iterable"], "strict": true, "noEmit": true, "types": []
  },
  "files": ["index.ts"]
}"#;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>npm package</title></head>
<body><script src="/app.js"></script></body></html>"#;

/// What the subscriber's connection has decoded.
const STATS: &str = r#"
    const stats = await app.room.subscriber.getStats();
    let framesDecoded = 0, audioPackets = 0;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') audioPackets += s.packetsReceived || 0;
    });
    return { framesDecoded, audioPackets, received: app.received };
"#;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/js")
}

/// Where the outer process leaves the page for the test in the namespace.
fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm_package")
}

/// Runs `program args` in `dir`, failing with its output; returns its stdout.
fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program} (Node.js and npm: see .ci/run): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Packs `sdk/js`, installs the tarball into a new app, type-checks the app
/// and bundles it into `site/` (outside the namespace: npm needs the registry).
fn build_site(work: &Path) {
    let sdk = sdk_dir();
    let bin = sdk.join("node_modules/.bin");
    if !bin.join("esbuild").exists() || !bin.join("tsc").exists() {
        run_in(&sdk, "npm", &["ci", "--no-audit", "--no-fund"]);
    }
    // The declarations compile, and match the typed example of the whole API.
    run_in(&sdk, "npm", &["run", "check"]);

    let _ = std::fs::remove_dir_all(work);
    let (pack, app, site) = (work.join("pack"), work.join("app"), work.join("site"));
    for dir in [&pack, &app, &site] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let packed = run_in(
        &sdk,
        "npm",
        &[
            "pack",
            "--json",
            "--pack-destination",
            pack.to_str().unwrap(),
        ],
    );
    let packed: Value = serde_json::from_str(&packed).expect("npm pack --json");
    let files: Vec<&str> = packed[0]["files"]
        .as_array()
        .expect("npm pack lists its files")
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(sdk.join("package.json")).unwrap()).unwrap();
    let types = manifest["types"].as_str().expect("package.json has types");
    assert_eq!(manifest["exports"]["."]["types"], types, "{manifest}");
    for shipped in [
        "package.json",
        "README.md",
        "switchboard.js",
        "switchboard.d.ts",
        types.trim_start_matches("./"),
    ] {
        assert!(
            files.contains(&shipped),
            "{shipped} not in the tarball: {files:?}"
        );
    }
    let tarball = pack.join(packed[0]["filename"].as_str().unwrap());
    assert!(tarball.exists(), "{}", tarball.display());

    std::fs::write(
        app.join("package.json"),
        r#"{ "name": "switchboard-npm-test-app", "private": true, "type": "module" }"#,
    )
    .unwrap();
    std::fs::write(app.join("index.ts"), APP_TS).unwrap();
    std::fs::write(app.join("tsconfig.json"), APP_TSCONFIG).unwrap();
    run_in(
        &app,
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            tarball.to_str().unwrap(),
        ],
    );
    assert!(app
        .join("node_modules/@switchboard/client/switchboard.d.ts")
        .exists());
    // The app type-checks against the types of the installed package, found by its name.
    run_in(
        &app,
        bin.join("tsc").to_str().unwrap(),
        &["-p", "tsconfig.json"],
    );
    let outfile = format!("--outfile={}", site.join("app.js").display());
    run_in(
        &app,
        bin.join("esbuild").to_str().unwrap(),
        &[
            "index.ts",
            "--bundle",
            "--format=iife",
            "--log-level=warning",
            &outfile,
        ],
    );
    std::fs::write(site.join("index.html"), PAGE).unwrap();
}

/// Serves the page and its bundle (and nothing else) on 127.0.0.1; returns
/// the base URL and the paths asked for.
async fn serve_site(site: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let router = axum::Router::new().fallback(move |uri: Uri| {
        let (site, seen) = (site.clone(), seen.clone());
        async move {
            seen.lock().unwrap().push(uri.path().to_owned());
            let (file, mime) = match uri.path() {
                "/" => ("index.html", "text/html; charset=utf-8"),
                "/app.js" => ("app.js", "text/javascript; charset=utf-8"),
                _ => return HttpStatus::NOT_FOUND.into_response(),
            };
            let body = std::fs::read(site.join(file)).unwrap();
            ([(header::CONTENT_TYPE, mime)], body).into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, asked)
}

async fn token(s: &Server, identity: &str, grants: Value) -> (String, String) {
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": "npm", "identity": identity, "grants": grants })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    (
        t["url"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

fn page_url(base: &str, ws: &str, token: &str, publish: bool) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.query_pairs_mut()
        .append_pair("url", ws)
        .append_pair("token", token)
        .append_pair("publish", if publish { "1" } else { "0" });
    url.into()
}

#[test]
fn a_page_bundling_the_npm_package_joins_a_room() {
    let work = work_dir();
    if std::env::var_os("SWITCHBOARD_TEST_NETNS").is_none() {
        build_site(&work);
    }
    isolated(
        "npm_package::a_page_bundling_the_npm_package_joins_a_room",
        || async move {
            let site = work.join("site");
            assert!(
                site.join("app.js").exists(),
                "the bundle was built before entering the namespace"
            );
            let s = Server::start_with(Backend::Sqlite, &["--dev"]).await;
            let (st, _) = send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "npm" })),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED);
            let (base, asked) = serve_site(site).await;
            let driver = Driver::start().await;
            let alice = driver.browser().await;
            let bob = driver.browser().await;

            // Alice's page joins and publishes camera and microphone.
            let (ws, t) = token(&s, "alice", json!({})).await;
            alice
                .client
                .goto(&page_url(&base, &ws, &t, true))
                .await
                .unwrap();
            let joined = alice.run("return await window.app.ready;", vec![]).await;
            assert_eq!(joined["others"], 0, "{joined}");
            assert_eq!(
                joined["published"],
                json!(["video/VP8", "audio/opus"]),
                "{joined}"
            );

            // Bob's page joins, subscribe-only, and decodes her media.
            let (ws, t) = token(&s, "bob", json!({ "can_publish": false })).await;
            bob.client
                .goto(&page_url(&base, &ws, &t, false))
                .await
                .unwrap();
            let joined = bob.run("return await window.app.ready;", vec![]).await;
            assert_eq!(joined["others"], 1, "{joined}");
            let mut stats = Value::Null;
            for _ in 0..100 {
                stats = bob.run(STATS, vec![]).await;
                if stats["framesDecoded"].as_u64().unwrap_or(0) > 20
                    && stats["audioPackets"].as_u64().unwrap_or(0) > 50
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(
                stats["framesDecoded"].as_u64().unwrap_or(0) > 20,
                "video frames decoded through the bundled SDK: {stats}"
            );
            assert!(
                stats["audioPackets"].as_u64().unwrap_or(0) > 50,
                "audio packets received through the bundled SDK: {stats}"
            );

            // The REST API sees both, and Alice's two tracks.
            let (st, list) = send(s.dev(Method::GET, "/v1/rooms/npm/participants")).await;
            assert_eq!(st, StatusCode::OK);
            let people = list["data"].as_array().unwrap();
            assert_eq!(people.len(), 2, "{list}");
            let a = people
                .iter()
                .find(|p| p["identity"] == "alice")
                .expect("alice listed");
            assert_eq!(a["state"], "active", "{a}");
            let mut kinds: Vec<_> = a["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["kind"].as_str().unwrap().to_owned())
                .collect();
            kinds.sort();
            assert_eq!(kinds, ["audio", "video"], "{a}");

            // Alice leaves; Bob's page is told.
            alice.run("window.app.room.leave();", vec![]).await;
            let mut left = Value::Null;
            for _ in 0..50 {
                left = bob.run("return window.app.left;", vec![]).await;
                if left == json!(["alice"]) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(left, json!(["alice"]));

            // Everything came from the bundle: the pages asked their origin for
            // nothing but themselves and app.js (not the server's /sdk/switchboard.js).
            let asked = asked.lock().unwrap().clone();
            assert!(
                asked
                    .iter()
                    .all(|p| ["/", "/app.js", "/favicon.ico"].contains(&p.as_str())),
                "{asked:?}"
            );
            assert_eq!(asked.iter().filter(|p| *p == "/app.js").count(), 2);

            bob.close().await;
            alice.close().await;
        },
    );
}
