//! What one invocation, one project and one node may use.

use std::time::Duration;

/// Limits enforced by wasmtime on every invocation, and concurrency caps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory of an instance (default 64 MiB); growing past it traps.
    pub memory_bytes: usize,
    /// Most elements of a table (default 100 000).
    pub table_elements: usize,
    /// Most core instances, memories and tables one component may create (default 32, 4, 16).
    pub core_instances: usize,
    /// Most memories one component may create.
    pub memories: usize,
    /// Most tables one component may create.
    pub tables: usize,
    /// Most WebAssembly stack an invocation may use (default 512 KiB); deeper recursion traps.
    pub stack_bytes: usize,
    /// Fuel (roughly, WebAssembly instructions) an invocation may burn (default 2 billion).
    pub fuel: u64,
    /// Wall-time deadline of a `participant.joining` hook (default 50 ms).
    pub joining_deadline: Duration,
    /// Wall-time deadline of an asynchronous handler (default 5 s).
    pub event_deadline: Duration,
    /// Invocations one project may run at once (default 8).
    pub per_project: usize,
    /// Asynchronous handlers one project may run at once (default: half the
    /// node's cores, at least 1). A handler may compute for its whole
    /// deadline, so more than that lets one project take every core.
    pub handlers_per_project: usize,
    /// Invocations this node may run at once (default 64); also the size of the instance pool.
    pub per_node: usize,
    /// Log lines kept per invocation (default 100).
    pub log_lines: usize,
    /// Longest log line kept, in bytes (default 4 KiB).
    pub log_line_bytes: usize,
    /// Components compiled at once on this node (default 2); each takes a core.
    pub compilations: usize,
    /// How long an upload waits for a compilation slot before it is refused (default 10 s).
    pub compile_wait: Duration,
    /// Most bytes of compiled versions kept on disk (default 1 GiB); the least
    /// recently used go first.
    pub artifact_bytes: u64,
    /// Events one invocation may `emit` (default 10).
    pub emits_per_invocation: usize,
}

/// How many `function.event`s may follow one another, each emitted by a
/// handler of the one before: a deeper chain is a loop (functions triggering
/// each other through their own events) and its next `emit` is refused.
pub const MAX_EMIT_CHAIN: u32 = 3;

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            core_instances: 32,
            memories: 4,
            tables: 16,
            stack_bytes: 512 << 10,
            fuel: 2_000_000_000,
            joining_deadline: Duration::from_millis(50),
            event_deadline: Duration::from_secs(5),
            per_project: 8,
            handlers_per_project: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).max(1)),
            per_node: 64,
            log_lines: 100,
            log_line_bytes: 4096,
            compilations: 2,
            compile_wait: Duration::from_secs(10),
            artifact_bytes: 1 << 30,
            emits_per_invocation: 10,
        }
    }
}
