//! Headless Chromium for end-to-end tests, driven over WebDriver (chromedriver),
//! inside a network namespace that has only loopback.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// Runs `body` in a fresh network namespace holding only loopback, so media
/// traffic can reach nothing but 127.0.0.1: the test binary re-runs itself
/// under `unshare --net` for the one test `name`.
pub fn isolated<F: std::future::Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    isolated_in(name, &["--net"], body);
}

/// [`isolated`], in the namespaces `unshare` is given (`--mount` as well lets
/// the test mount file systems no one else sees).
pub fn isolated_in<F: std::future::Future<Output = ()>>(
    name: &str,
    namespaces: &[&str],
    body: impl FnOnce() -> F,
) {
    if std::env::var_os("SWITCHBOARD_TEST_NETNS").is_some() {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("run ip");
        assert!(
            up.success(),
            "cannot bring loopback up in the test namespace"
        );
        // Several crates enable both ring and aws-lc in rustls; pick one for the WebDriver client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(body());
        if let Some(ran) = std::env::var_os("SWITCHBOARD_TEST_NETNS_RAN") {
            std::fs::write(ran, name).expect("mark the isolated test as run");
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // The body marks this file when it has run: a `name` that is not the
    // test's full path would otherwise run nothing, and pass.
    let ran = std::env::temp_dir().join(format!(
        "switchboard-netns-{}-{}",
        std::process::id(),
        name.replace("::", "-")
    ));
    let _ = std::fs::remove_file(&ran);
    let status = Command::new("unshare")
        .args(namespaces)
        .arg("--")
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SWITCHBOARD_TEST_NETNS", "1")
        .env("SWITCHBOARD_TEST_NETNS_RAN", &ran)
        .status()
        .expect("run unshare (util-linux) to isolate the browser test's network");
    assert!(
        status.success(),
        "{name} failed inside its network namespace (see output above)"
    );
    assert!(
        std::fs::remove_file(&ran).is_ok(),
        "no test named `{name}` ran in the namespace: name it by its full path (module::test)"
    );
}

/// Runs `program args` inside the test's network namespace (`ip`, `nft`),
/// failing the test with its output when it fails.
pub fn netns_run(program: &str, args: &[&str]) {
    assert!(
        std::env::var_os("SWITCHBOARD_TEST_NETNS").is_some(),
        "{program} {args:?} changes the network: run it only inside `isolated`"
    );
    run_or_fail(program, args);
}

/// Runs `program args`, failing the test with its output when it fails.
pub fn run_or_fail(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program} (install it: see .ci/run): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A chromedriver process.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub async fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        Self::started(child, format!("http://127.0.0.1:{port}")).await
    }

    /// A chromedriver (and so its Chromiums) in network namespace `netns`,
    /// where it listens on `ip` for WebDriver requests from `client` only.
    pub async fn start_in(netns: &str, ip: &str, client: &str) -> Self {
        // The namespace is the test's own: no other process holds this port.
        let port = 9515;
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "chromedriver"])
            .arg(format!("--port={port}"))
            .arg(format!("--allowed-ips={client}"))
            .arg("--allowed-origins=*")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        Self::started(child, format!("http://{ip}:{port}")).await
    }

    async fn started(child: Child, url: String) -> Self {
        // Owned by a Driver from here on, so it is killed however the test ends.
        let driver = Self { child, url };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .is_ok()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A new headless Chromium with a fake camera and microphone.
    pub async fn browser(&self) -> Browser {
        self.browser_with(&[], &[]).await
    }

    /// [`Driver::browser`] with the command-line switches `extra`, and
    /// without those of `without`.
    pub async fn browser_with(&self, extra: &[&str], without: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--allow-loopback-in-peer-connection".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.retain(|a| !without.contains(&a.as_str()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        // Keeps the console, for tests that fail on its errors.
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::rustls()
            .expect("rustls client")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("start Chromium through chromedriver");
        Browser {
            client,
            driver: self.url.clone(),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser.
pub struct Browser {
    pub client: Client,
    /// chromedriver's URL, for what WebDriver has no command for.
    driver: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Runs an async script body (`args` available as `args`) and returns its value;
    /// a thrown error fails the test with its message.
    pub async fn run(&self, body: &str, args: Vec<Value>) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             const args = Array.from(arguments).slice(0, -1);\n\
             (async () => {{ {body} }})().then((v) => done({{ ok: v === undefined ? null : v }}), (e) => done({{ err: String(e && e.stack || e) }}));"
        );
        let out = self
            .client
            .execute_async(&script, args)
            .await
            .expect("script ran");
        if let Some(err) = out.get("err") {
            panic!("browser script failed: {err}");
        }
        out.get("ok").cloned().unwrap_or(Value::Null)
    }

    /// The console's errors since the last call (chromedriver's browser log, level SEVERE).
    pub async fn console_errors(&self) -> Vec<String> {
        let session = self
            .client
            .session_id()
            .await
            .expect("a session")
            .expect("a session id");
        let log: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON log");
        log["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a screenshot of the page as `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Closes the browser.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
