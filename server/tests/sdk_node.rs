//! The Node (TypeScript) server SDK in `sdk/node`, tested against the real
//! binary: `npm ci`, `npm run build` and `npm test` with the SDK's tests
//! pointed at a dev server (rooms, a token signed offline that the media node
//! admits, a real webhook verified with the SDK, paging through events, the
//! README's examples) and at a second server with a tight rate limit (retries
//! on `429`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::Server;
use switchboard_store::Backend;
use tokio::process::Command;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/node")
}

/// Runs `npm args` in the SDK with `env`, failing with npm's output.
async fn npm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new("npm")
        .args(args)
        .current_dir(sdk_dir())
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run npm (Node.js 20 or newer)");
    assert!(
        out.status.success(),
        "`npm {}` failed ({}) in {}:\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        sdk_dir().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    out
}

/// Whether `node_modules` was installed from the current `package-lock.json`.
fn installed() -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(sdk_dir().join("node_modules/.package-lock.json")),
        modified(sdk_dir().join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => installed >= locked,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_passes_its_tests_against_a_real_server() {
    let s = Server::start(Backend::Sqlite).await;
    // A second server whose key may make 10 requests a second, 5 at once.
    let config = tempfile::tempdir().unwrap();
    let limits = config.path().join("switchboard.toml");
    std::fs::write(
        &limits,
        "[limits]\nrequests_per_key = { per_second = 10, burst = 5 }\n",
    )
    .unwrap();
    let limited = Server::start_with(
        Backend::Sqlite,
        &["--dev", "--config", limits.to_str().unwrap()],
    )
    .await;

    if !installed() {
        npm(&["ci", "--no-audit", "--no-fund"], &[]).await;
    }
    npm(&["run", "build"], &[]).await;
    let bin = common::binary();
    let out = npm(
        &["test"],
        &[
            ("SWITCHBOARD_URL", s.base.as_str()),
            ("SWITCHBOARD_API_KEY", "devkey"),
            ("SWITCHBOARD_API_SECRET", "secret"),
            ("SWITCHBOARD_LIMITED_URL", limited.base.as_str()),
            ("SWITCHBOARD_BIN", bin.as_str()),
        ],
    )
    .await;
    let report = String::from_utf8_lossy(&out.stdout);
    // Every test ran: none was skipped for want of a server or the binary.
    assert!(
        report.contains("# skipped 0") && report.contains("# fail 0"),
        "{report}"
    );
    println!("{report}");
}
