//! A real S3-compatible server for tests: s3rver (npm), which keeps objects
//! on disk and, like AWS, MinIO and Ceph, lets a multipart upload's part be
//! sent again (rclone's `serve s3` does not, so it cannot take live uploads).
//! It runs over a temporary directory on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::S3Config;

/// Where s3rver's npm package is installed (`npm ci` in it, done on first use).
const PACKAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3rver");

/// A running s3rver with one bucket, `recordings`; stopped on drop.
pub struct S3Server {
    child: Child,
    /// Its base URL.
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// s3rver's executable, installed with npm if it is not yet. Test processes
/// may race to install it: each installs into its own directory and moves
/// it into place, and the first to get there wins.
fn executable() -> PathBuf {
    let package = Path::new(PACKAGE);
    let bin = package.join("node_modules/.bin/s3rver");
    if bin.exists() {
        return bin;
    }
    let scratch = tempfile::tempdir_in(package).expect("a scratch directory for npm");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(package.join(file), scratch.path().join(file))
            .expect("s3rver's package files");
    }
    let status = Command::new("npm")
        .args(["ci", "--silent", "--no-audit", "--no-fund"])
        .current_dir(scratch.path())
        .status()
        .expect("npm (Debian npm) must be installed to fetch s3rver");
    assert!(status.success(), "npm ci for s3rver in {PACKAGE} failed");
    // Another process may have won the race; its copy is as good.
    let _ = std::fs::rename(
        scratch.path().join("node_modules"),
        package.join("node_modules"),
    );
    assert!(bin.exists(), "s3rver is not at {}", bin.display());
    bin
}

impl S3Server {
    /// The access key id it accepts (s3rver's fixed one).
    pub const KEY: &str = "S3RVER";
    /// The secret it accepts.
    pub const SECRET: &str = "S3RVER";
    /// Its one bucket.
    pub const BUCKET: &str = "recordings";

    /// Starts it; panics if it cannot be installed or does not listen within 10 s.
    pub async fn start() -> Self {
        let bin = executable();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(bin)
            .arg("--directory")
            .arg(dir.path())
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--configure-bucket", Self::BUCKET, "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3rver must start (Node.js from Debian's nodejs)");
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("s3rver did not start");
    }

    /// A configuration for its bucket under `prefix`, uploading track files
    /// every `live_upload_seconds` while they are written.
    pub fn config(&self, prefix: &str, live_upload_seconds: u64) -> S3Config {
        S3Config {
            bucket: Self::BUCKET.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: None,
            access_key_id: Self::KEY.into(),
            secret_access_key: Self::SECRET.into(),
            allow_http: true,
            live_upload_seconds,
        }
    }

    /// The same, as the `[recordings.s3]` table of a server's config file.
    pub fn config_toml(&self, prefix: &str, live_upload_seconds: u64) -> String {
        format!(
            "[recordings.s3]\nbucket = \"{}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nallow_http = true\n\
             live_upload_seconds = {live_upload_seconds}\n",
            Self::BUCKET,
            self.endpoint,
            Self::KEY,
            Self::SECRET
        )
    }

    /// The file holding object `key` of the bucket (s3rver keeps each object
    /// as `KEY._S3rver_object`, beside its metadata).
    pub fn object(&self, key: impl AsRef<Path>) -> PathBuf {
        let mut path = self
            .dir
            .path()
            .join(Self::BUCKET)
            .join(key)
            .into_os_string();
        path.push("._S3rver_object");
        path.into()
    }

    /// The directory holding the objects under `prefix` (ending without `/`).
    pub fn folder(&self, prefix: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(Self::BUCKET).join(prefix)
    }
}
