//! Group commit: concurrent writers share one transaction.
//!
//! A transaction that waits for its commit to reach the disk costs a flush,
//! and one that takes a lock (a project's event sequence) holds it until
//! then; one write per transaction therefore caps a busy project at the
//! disk's flush rate. A [`Queue`] lets callers queue their writes instead:
//! the first caller that finds no writer running starts one in a task, and
//! each of its rounds writes everything queued meanwhile in one transaction,
//! so one flush covers them all. Each caller still returns only once its own
//! write has committed.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::StoreError;

/// Where a queued write's result goes.
pub(crate) type Reply<R> = oneshot::Sender<Result<R, StoreError>>;

/// Writes of `T` waiting for the writer, answered with `R`.
pub(crate) struct Queue<T, R> {
    state: Mutex<State<T, R>>,
    /// Writes per round at most.
    max: usize,
}

struct State<T, R> {
    waiting: Vec<(T, Reply<R>)>,
    writing: bool,
}

impl<T: Send + 'static, R: Send + 'static> Queue<T, R> {
    /// An empty queue writing at most `max` items per round.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: Vec::new(),
                writing: false,
            }),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` and waits until a round has written it. `write` gets each
    /// round's items and must answer every one of them.
    pub(crate) async fn submit<W, Fut>(self: &Arc<Self>, item: T, write: W) -> Result<R, StoreError>
    where
        W: FnMut(Vec<(T, Reply<R>)>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.waiting.push((item, reply));
            !std::mem::replace(&mut state.writing, true)
        };
        if start {
            // A task of its own, so a caller that stops waiting never strands
            // the writes queued behind its own.
            let queue = Arc::clone(self);
            tokio::spawn(async move { queue.write_all(write).await });
        }
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    async fn write_all<W, Fut>(self: Arc<Self>, mut write: W)
    where
        W: FnMut(Vec<(T, Reply<R>)>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let stopped = Stopped(&self);
        loop {
            let round = {
                let mut state = self.lock();
                let n = state.waiting.len().min(self.max);
                if n == 0 {
                    state.writing = false;
                }
                state.waiting.drain(..n).collect::<Vec<_>>()
            };
            if round.is_empty() {
                std::mem::forget(stopped);
                return;
            }
            write(round).await;
        }
    }
}

/// Clears the running mark if the writer ends early (a panic, or its runtime
/// shutting down), failing the callers still queued rather than leaving them
/// waiting.
struct Stopped<'a, T, R>(&'a Queue<T, R>);

impl<T, R> Drop for Stopped<'_, T, R> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        state.writing = false;
        state.waiting.clear();
    }
}
