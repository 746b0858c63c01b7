//! The Python server SDK (`sdk/python`), installed from the tree with pip and
//! run against the real server: its tests create rooms, sign a token offline
//! that the media node lets join, receive a real webhook and verify it with
//! the Standard Webhooks library, page through events, check that every
//! operation of `/v1/openapi.json` has a method, and run the README's quick
//! start. See issue 25.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Server;
use switchboard_store::Backend;

switchboard_store::on_both_backends!(the_python_sdk_passes_its_tests_against_the_server);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python")
}

/// Copies the package's sources, so that building it writes nothing into the tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "__pycache__" || name == "build" || name.ends_with(".egg-info") {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&*name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `pip install` of the package into `site` (a `--target` directory). The
/// build uses the installed setuptools when it can, and fetches a build
/// backend from the package index only when that fails (an old setuptools
/// without `wheel`).
fn pip_install(pkg: &Path, site: &Path) {
    let install = |isolated: bool| {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "install", "--quiet", "--no-deps"]);
        if !isolated {
            cmd.arg("--no-build-isolation");
        }
        cmd.arg("--target").arg(site).arg(pkg);
        cmd.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .expect("python3 -m pip runs")
    };
    let offline = install(false);
    if offline.status.success() {
        return;
    }
    let isolated = install(true);
    assert!(
        isolated.status.success(),
        "pip install of sdk/python failed.\nwithout build isolation:\n{}\nwith it:\n{}",
        text(&offline),
        text(&isolated)
    );
}

async fn the_python_sdk_passes_its_tests_against_the_server(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let (pkg, site) = (tmp.path().join("pkg"), tmp.path().join("site"));
    copy_tree(&sdk_dir(), &pkg);
    pip_install(&pkg, &site);

    let python = |args: &[&str]| {
        let mut cmd = Command::new("python3");
        cmd.args(args)
            .current_dir(tmp.path())
            .env("PYTHONPATH", &site)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    };
    // The package imported is the installed one, and its one dependency is there.
    let out = python(&[
        "-c",
        "import standardwebhooks, switchboard; print(switchboard.__file__)",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "the installed SDK does not import (is standardwebhooks installed? \
         pip install -r server/tests/peers/requirements.txt):\n{}",
        text(&out)
    );
    let file = String::from_utf8_lossy(&out.stdout);
    assert!(
        Path::new(file.trim()).starts_with(&site),
        "imported {file} instead of the installed package"
    );

    let s = Server::start(b).await;
    let tests = sdk_dir().join("tests");
    let out = python(&["-m", "unittest", "discover", "-v", "-s"])
        .arg(&tests)
        .env("SWITCHBOARD_URL", &s.base)
        .env("SWITCHBOARD_API_KEY", "devkey")
        .env("SWITCHBOARD_API_SECRET", "secret")
        .output()
        .unwrap();
    let report = text(&out);
    assert!(
        out.status.success(),
        "the Python SDK's tests failed:\n{report}\nserver log:\n{}",
        s.log()
    );
    // Every test ran: the server tests skip themselves only without a server.
    assert!(!report.contains("skipped"), "{report}");
    assert!(report.contains("test_a_token_signed_offline_joins_the_room_on_the_media_node"));
    assert!(report.contains("test_the_quick_start_runs"));
}
