//! Giving memory back to the system once connections have closed.
//!
//! glibc keeps what a thread frees in that thread's arena for its next
//! allocations, so after a large meeting ends a node goes on holding its
//! peak, and the next meeting's memory comes on top of what is left
//! scattered there. In a ladder of loads run one after another on one node,
//! the 200-subscriber load peaked at 98 MiB against 82 MiB on a fresh node.
//! `malloc_trim` hands the free pages of every arena back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the trimmer looks whether connections have closed since it last trimmed.
const INTERVAL: Duration = Duration::from_secs(10);

/// Connections closed since the last trim, by every worker of the process.
static CLOSED: AtomicU64 = AtomicU64::new(0);

/// Notes that a connection closed: the next round trims.
pub(super) fn connection_closed() {
    CLOSED.fetch_add(1, Ordering::Relaxed);
}

/// Trims every `INTERVAL` in which a connection closed, until `stop` is set.
pub(super) fn trimmer(stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("media-memory".into())
        .spawn(move || {
            let step = Duration::from_millis(250);
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited < INTERVAL {
                    continue;
                }
                waited = Duration::ZERO;
                if CLOSED.swap(0, Ordering::Relaxed) > 0 {
                    trim();
                }
            }
        })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only locks glibc's own arenas.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "freed memory handed back");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
