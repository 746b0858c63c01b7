//! What this media node carries: rooms, participants, tracks, forwarded
//! bitrate and the process's CPU share, reported with every heartbeat so
//! placement can send new rooms to the least-loaded node.
//!
//! The CPU time comes from Linux's `/proc/PID/stat`; the load tester and the
//! benchmarks read other processes' the same way.
use std::process::Command;
use std::time::Instant;

use parking_lot::Mutex;
/// CPU seconds of process `pid` (`self` for this one): its own utime+stime,
/// or with `children`, the cutime+cstime of the children it reaped.
/// `None` when the process or `/proc` is not there.
pub fn cpu_seconds(pid: &str, children: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, cutime field 16.
    let first = if children { 16 } else { 14 };
    let ticks =
        fields.get(first - 3)?.parse::<f64>().ok()? + fields.get(first - 2)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// This process's share of the machine's CPU between two readings.
pub struct CpuShare {
    cores: f64,
    last: Mutex<Reading>,
}

/// The baseline of the next share and the share last computed.
struct Reading {
    at: Option<(Instant, f64)>,
    share: f32,
}

/// The shortest window a share is computed over: the kernel counts CPU time
/// in ticks of 10 ms, so over a few milliseconds a single tick would read as
/// a fully busy machine.
const MIN_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

impl CpuShare {
    /// A meter whose first reading is taken now.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let meter = Self {
            cores,
            last: Mutex::new(Reading {
                at: None,
                share: 0.0,
            }),
        };
        meter.sample();
        meter
    }

    /// The share of all cores (0.0 to 1.0) this process used since the last
    /// reading; the previous share when that was under half a second ago
    /// (0.0 at first), and 0.0 where `/proc` cannot be read.
    pub fn sample(&self) -> f32 {
        let Some(spent) = cpu_seconds("self", false) else {
            return 0.0;
        };
        let now = Instant::now();
        let mut last = self.last.lock();
        match last.at {
            Some((at, _)) if now.duration_since(at) < MIN_WINDOW => return last.share,
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                last.share = ((spent - before) / wall / self.cores).clamp(0.0, 1.0) as f32;
            }
            None => {}
        }
        last.at = Some((now, spent));
        last.share
    }
}

impl Default for CpuShare {
    fn default() -> Self {
        Self::new()
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Publishes the media ports' datagram count as the Prometheus counter
/// `switchboard_media_datagrams_sent_total`, once a second until aborted
/// (the packet path keeps it in one atomic, not in the metrics registry).
pub fn export_counters() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            // Looked up each time: the recorder may be installed after this starts.
            metrics::counter!("switchboard_media_datagrams_sent_total")
                .absolute(crate::transport::udp::datagrams_sent());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_spent_some_cpu_and_nothing_is_read_of_no_process() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds("self", false).is_some_and(|s| s > 0.0));
        assert_eq!(cpu_seconds("not-a-pid", false), None);
    }

    #[test]
    fn a_reading_right_after_the_last_repeats_the_last_share() {
        let meter = CpuShare::new();
        spin(std::time::Duration::from_millis(50));
        // 50 ms of work is a few clock ticks: too short a window to judge by.
        assert_eq!(meter.sample(), 0.0);
    }

    fn spin(time: std::time::Duration) {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < time {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn a_busy_thread_shows_in_the_share_and_an_idle_wait_does_not() {
        let meter = CpuShare::new();
        spin(std::time::Duration::from_millis(600));
        let busy = meter.sample();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
        // One core spinning is 1/cores of the machine; allow for the clock's 10 ms ticks.
        assert!(busy > 0.5 / cores && busy <= 1.0, "busy share {busy}");
        std::thread::sleep(std::time::Duration::from_millis(600));
        let idle = meter.sample();
        assert!(idle < 0.2 / cores, "idle share {idle}");
    }
}
