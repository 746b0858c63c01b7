//! A release `switchboard serve --dev` started for a benchmark, and CPU time
//! read from `/proc`, shared by the benchmarks that load the media tier.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

/// CPU seconds from `/proc/PID/stat` fields utime+stime (own) or cutime+cstime (reaped children).
pub fn cpu_seconds(pid: &str, children: bool) -> anyhow::Result<f64> {
    switchboard_media::load::cpu_seconds(pid, children)
        .with_context(|| format!("cannot read the CPU time of process {pid} from /proc"))
}

/// A server process, killed when dropped.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The base URL a `switchboard serve` started with a piped stdout prints
/// once it listens; the rest of its output is read and dropped.
pub fn listening_url(child: &mut Child) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.split("listening on ").nth(1) {
                    break url.trim().to_owned();
                }
            }
            _ => bail!("the server exited before listening"),
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok(url)
}

/// Starts `binary` in dev mode on a fresh data directory and waits until it listens.
pub fn start_server(binary: &PathBuf) -> anyhow::Result<ServerProcess> {
    let dir = tempfile::tempdir()?;
    // A free media port: the benchmark runs two builds side by side.
    let mut child = Command::new(binary)
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args(["serve", "--dev", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SWITCHBOARD_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let url = listening_url(&mut child)?;
    Ok(ServerProcess {
        child,
        url,
        _dir: dir,
    })
}
