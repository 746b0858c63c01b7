//! The threads asynchronous handlers run on: their own tokio runtime, whose
//! threads the kernel schedules below everything else on the node.
//!
//! A handler may compute until its deadline. Run on the node's main runtime,
//! one project's spinning handlers take whole cores from the API, the media
//! signaling, the webhook sender and every other project's quick handlers,
//! and those see their latency multiply. On threads with a nice value of
//! [`NICE`], a busy handler still uses any idle core, but gives way as soon
//! as anything at normal priority wants the CPU. Join hooks stay on the main
//! runtime: a participant waits for them.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

/// How far below normal priority handler threads run (`nice` 10: about a
/// tenth of a normal thread's share of a contended core).
pub const NICE: i32 = 10;

/// A runtime for asynchronous handlers, at low priority.
pub struct HandlerPool {
    runtime: Option<Runtime>,
}

impl HandlerPool {
    /// A pool of `threads` worker threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("functions-handler")
            .enable_all()
            .on_thread_start(lower_priority)
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the pool and waits for it; `None` if it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let runtime = self.runtime.as_ref()?;
        match runtime.spawn(work).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "an asynchronous handler's task failed");
                None
            }
        }
    }
}

impl Drop for HandlerPool {
    fn drop(&mut self) {
        // A runtime dropped inside another would block it while its threads stop.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a thread id names one thread: only this one is lowered.
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), NICE) {
        tracing::warn!(error = %e, "handler threads run at normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_threads_below_normal_priority() {
        let pool = HandlerPool::new(1).unwrap();
        let nice = pool
            .run(async { rustix::process::getpriority_process(Some(rustix::thread::gettid())) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nice, NICE);
        let here = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(here, 0, "the caller's thread keeps its priority");
        assert_eq!(pool.run(async { panic!("handler bug") }).await, None::<()>);
    }
}
