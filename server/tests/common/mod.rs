//! Test harness: the real `switchboard` binary on port 0, on SQLite or PostgreSQL.
#![allow(dead_code)]

pub mod browser;
pub mod dashboard;
pub mod metering;
pub mod sdk_peer;
pub mod ws;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use switchboard_store::testing::TestDb;
use switchboard_store::{Backend, MasterKey, Store};

/// A running server process and what it runs on.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What the server printed on stdout up to the ready line.
    pub banner: String,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
    child: Option<Child>,
    pub http: reqwest::Client,
    /// The network namespace the process runs in (`ip netns exec`), if not the test's.
    netns: Option<String>,
    /// The address its HTTP listener binds.
    http_ip: String,
    /// Environment set after the harness's own (a database URL reached another way).
    env: Vec<(String, String)>,
}

/// The server under test: this build's, or the one `SWITCHBOARD_TEST_BIN`
/// names (to show an attack test failing on an older binary).
pub fn binary() -> String {
    std::env::var("SWITCHBOARD_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchboard").to_owned())
}

impl Server {
    /// A dev-mode server on a fresh database.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &["--dev"]).await
    }

    /// A server on a fresh database with extra `serve` arguments.
    pub async fn start_with(backend: Backend, args: &[&str]) -> Self {
        Self::start_on(backend, "127.0.0.1", args).await
    }

    /// [`Server::start_with`], its HTTP listener on `ip` (an address of the
    /// test's namespace that other namespaces reach) rather than loopback.
    pub async fn start_on(backend: Backend, ip: &str, args: &[&str]) -> Self {
        let db = TestDb::new(backend).await.expect("test database");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut server = Self::unstarted(db, tempfile::tempdir().expect("temp dir"), http);
        server.http_ip = ip.to_owned();
        server.spawn(args);
        server
    }

    fn unstarted(db: TestDb, data_dir: tempfile::TempDir, http: reqwest::Client) -> Self {
        Self {
            base: String::new(),
            banner: String::new(),
            db,
            data_dir,
            child: None,
            http,
            netns: None,
            http_ip: "127.0.0.1".into(),
            env: Vec::new(),
        }
    }

    /// Another node of this server's deployment: a second process on the
    /// same PostgreSQL database, with the same master key, started with `args`.
    pub fn sibling(&self, args: &[&str]) -> Server {
        self.sibling_in(None, "127.0.0.1", &[], args)
    }

    /// [`Server::sibling`] in network namespace `netns` (`ip netns exec`),
    /// listening for HTTP on `ip`, with `env` set over the harness's own.
    pub fn sibling_in(
        &self,
        netns: Option<&str>,
        ip: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let db = self
            .db
            .shared()
            .expect("several nodes share a PostgreSQL database");
        let data_dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            self.dir().join("master.key"),
            data_dir.path().join("master.key"),
        )
        .expect("the first node's master key");
        let mut server = Self::unstarted(db, data_dir, self.http.clone());
        server.netns = netns.map(str::to_owned);
        server.http_ip = ip.to_owned();
        server.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        server.spawn(args);
        server
    }

    /// A `switchboard` command pointed at this server's database and data directory.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        self.configure(&mut cmd);
        cmd
    }

    fn configure(&self, cmd: &mut Command) {
        // Tests run many servers at once: each takes a free media port.
        cmd.env("DATABASE_URL", &self.db.url)
            .env("SWITCHBOARD_RTC_UDP_PORT", "0")
            .env("SWITCHBOARD_DATA_DIR", self.data_dir.path())
            .env_remove("SWITCHBOARD_MASTER_KEY")
            .env_remove("SWITCHBOARD_HTTP_ADDR")
            .env_remove("SWITCHBOARD_DEV")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// The command that runs the server: in its namespace, if it has one.
    fn serve_command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns.as_str(), &binary()]);
                cmd
            }
            None => Command::new(binary()),
        };
        self.configure(&mut cmd);
        cmd
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("server.log")
    }

    fn spawn(&mut self, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = self.serve_command();
        if args.contains(&"--rtc-port-range") {
            // The test names where the media port comes from.
            command.env_remove("SWITCHBOARD_RTC_UDP_PORT");
        }
        let mut child = command
            .arg("serve")
            .args(["--http-addr", &format!("{}:0", self.http_ip)])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start switchboard");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = String::new();
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            for line in lines.by_ref() {
                banner.push_str(&line);
                banner.push('\n');
                if line.contains("listening on ") {
                    break;
                }
            }
            let _ = tx.send(banner);
            // Keep draining so the server never blocks on a full pipe.
            lines.for_each(drop);
        });
        let banner = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = banner
            .lines()
            .find_map(|l| l.split("listening on ").nth(1))
            .unwrap_or_else(|| panic!("server did not start; its log:\n{}", self.log()));
        self.base = addr.trim().to_owned();
        self.banner = banner;
        self.child = Some(child);
    }

    /// The one port (UDP, and ICE-TCP when enabled) every peer connection of
    /// this node uses, as its banner names it.
    pub fn media_port(&self) -> u16 {
        self.banner
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("media "))
            .and_then(|l| l.split(" port ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no media port in the banner:\n{}", self.banner))
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the process with SIGTERM and waits for it; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        false
    }

    /// Stops the server and starts it again on the same database and data directory.
    pub fn restart(&mut self, args: &[&str]) {
        assert!(
            self.terminate(),
            "server did not stop cleanly; log:\n{}",
            self.log()
        );
        self.spawn(args);
    }

    /// Kills the process with SIGKILL, so nothing is flushed or cleaned up.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same database and data directory after [`Server::kill_9`].
    pub fn start_again(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn(args);
    }

    /// Opens the server's database directly.
    pub async fn store(&self) -> Store {
        let key = MasterKey::load_or_create(&self.data_dir.path().join("master.key")).unwrap();
        Store::connect(&self.db.url, key).await.unwrap()
    }

    /// The dev project's event log, oldest first.
    pub async fn events(&self) -> Vec<switchboard_core::Event> {
        let (_, project) = send(self.dev(Method::GET, "/v1/project")).await;
        let project = project["id"]
            .as_str()
            .expect("the dev project")
            .parse()
            .unwrap();
        let store = self.store().await;
        store
            .events()
            .list(
                project,
                &switchboard_store::events::EventFilter::default(),
                0,
                1000,
            )
            .await
            .unwrap()
    }

    /// A request to `path` with no credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A request authenticated as the dev key.
    pub fn dev(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path)
            .basic_auth("devkey", Some("secret"))
    }

    /// A request authenticated with a bearer secret.
    pub fn bearer(&self, secret: &str, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(secret)
    }

    /// Creates another project through the CLI; returns (project id, key id, secret).
    pub fn create_project(&self, name: &str) -> (String, String, String) {
        let out = self
            .command()
            .args(["project", "create", name, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "project create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["project_id"].as_str().unwrap().to_owned(),
            v["key_id"].as_str().unwrap().to_owned(),
            v["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Runs a `switchboard` subcommand against this server's storage.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.data_dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `req`, returning the status and the JSON body (Null when empty).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.expect("request sent");
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// Asserts a JSON error with `status` and `code`; returns its message.
pub async fn expect_error(req: RequestBuilder, status: StatusCode, code: &str) -> String {
    let (got, body) = send(req).await;
    assert_eq!(got, status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("error message")
        .to_owned();
    assert!(!message.is_empty());
    message
}

/// A WAT component that allows every join and logs each event it sees.
pub fn logging_component() -> Vec<u8> {
    component_handling_events_with(
        "(call $log (i32.const 1) (i32.const 16) (i32.const 12))
         (i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)",
    )
}

/// A WAT component that allows every join and handles each event with
/// `body`, which returns the result's address (`$log` and the text "saw an
/// event" at 16 are there to use).
pub fn component_handling_events_with(body: &str) -> Vec<u8> {
    switchboard_functions::testing::handler_component(
        r#"(import "switchboard:functions/host@0.1.0" "log" (func $log (param i32 i32 i32)))"#,
        body,
        r#"(data (i32.const 16) "saw an event")"#,
    )
    .unwrap()
}
