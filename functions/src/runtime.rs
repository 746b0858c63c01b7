//! The wasmtime engine: checking components, caching their compiled form and
//! running one invocation under the limits.
//!
//! Each version is compiled once (the serialized artifact is kept on disk,
//! keyed by the component's digest and the engine's compatibility hash) and
//! linked once into an [`InstancePre`]; an invocation then instantiates from
//! the pooling allocator with copy-on-write memory images, which costs
//! microseconds. The first 1 MiB of a pooled memory stays resident and is
//! reset with memset: cheaper than `madvise` for the few pages a call touches.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::artifacts::Artifacts;
use crate::bindings::exports::switchboard::functions::handler::{Decision, Event, Joining};
use crate::bindings::{Function, FunctionPre};
use crate::host::{CallContext, CallState, FrozenWallClock, Services};
use crate::Limits;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Console output kept per invocation.
const CONSOLE_BYTES: usize = 64 << 10;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0:#}")]
pub struct EngineError(pub(crate) wasmtime::Error);

/// Why a component is refused at upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Over the size limit.
    #[error("the component is {0} bytes; the limit is {max} bytes", max = switchboard_core::function::MAX_COMPONENT_BYTES)]
    TooLarge(usize),
    /// Not WebAssembly at all.
    #[error("this is not WebAssembly (it does not start with the `\\0asm` magic bytes); upload a component built with componentize-js, componentize-py, cargo-component or `wasm-tools component new`")]
    NotWasm,
    /// A core module instead of a component.
    #[error("this is a core WebAssembly module, not a component; wrap it with `wasm-tools component new` or build it with component tooling against functions/wit")]
    CoreModule,
    /// Does not validate or compile.
    #[error("the component is not valid WebAssembly: {0}")]
    Invalid(String),
    /// Imports something the host does not provide.
    #[error("the component imports something functions cannot use (only switchboard:functions/* and the wasi:cli/imports interfaces of WASI 0.2 are available; wasi:http is not): {0}")]
    Imports(String),
    /// Does not export the handler of the world.
    #[error("the component does not export `switchboard:functions/handler@0.1.0` with `on-joining` and `on-event` as functions/wit declares them: {0}")]
    Exports(String),
    /// Cannot be instantiated within the limits.
    #[error("the component does not fit the limits ({0})")]
    Limits(String),
    /// Every compilation slot of the node stayed taken.
    #[error("this node is compiling {0} other uploads; try again in a few seconds")]
    Busy(usize),
}

/// A compiled, linked version ready to instantiate.
pub struct Compiled {
    pre: FunctionPre<CallState>,
}

/// How an invocation ended when it did not return normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `error`, `trap`, `timeout`, `out_of_fuel`, `out_of_memory`, `stack_overflow` or `busy`.
    pub outcome: &'static str,
    /// What happened.
    pub message: String,
}

/// What one invocation did.
#[derive(Debug)]
pub struct Run<T> {
    /// What the handler returned, or how it failed.
    pub result: Result<T, Failure>,
    /// Wall time from instantiation to return.
    pub duration: Duration,
    /// Fuel burnt.
    pub fuel_used: u64,
    /// Log lines and console output.
    pub logs: Vec<switchboard_core::function::LogLine>,
    /// The actions asked for (applied unless it was a dry run).
    pub actions: Vec<String>,
}

/// The engine, the linker and the compiled-version cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    limits: Limits,
    compiled: Mutex<HashMap<String, Arc<Compiled>>>,
    artifacts: Option<Artifacts>,
    /// Compilations running at once: each takes a core for up to seconds.
    compiling: Arc<Semaphore>,
}

impl Runtime {
    /// An engine enforcing `limits`, keeping compiled artifacts in `artifacts` if given.
    pub fn new(limits: Limits, artifacts: Option<PathBuf>) -> Result<Arc<Self>, EngineError> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = limits.per_node as u32;
        pool.total_component_instances(slots)
            .total_core_instances(slots * limits.core_instances as u32)
            .total_memories(slots * limits.memories as u32)
            .total_tables(slots * limits.tables as u32)
            .total_stacks(slots)
            .max_core_instances_per_component(limits.core_instances as u32)
            .max_memories_per_component(limits.memories as u32)
            .max_tables_per_component(limits.tables as u32)
            .max_memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.stack_bytes)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(EngineError)?;
        let mut linker = Linker::new(&engine);
        // All of `wasi:cli/imports`, so components from any toolchain link; the
        // context built per call leaves them empty: no preopened directories,
        // no environment or arguments, no network, a frozen wall clock.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError)?;
        Function::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(EngineError)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hasher.finish();
        let artifacts = artifacts
            .map(|dir| Artifacts::new(dir, engine_hash, limits.artifact_bytes))
            .transpose()
            .map_err(|e| EngineError(e.into()))?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("functions-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| EngineError(e.into()))?;
        Ok(Arc::new(Self {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            artifacts,
            compiling: Arc::new(Semaphore::new(limits.compilations.max(1))),
            limits,
        }))
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks `bytes` against the world and the limits, compiles it and caches
    /// the result; returns its digest (SHA-256, hex).
    pub async fn check(self: &Arc<Self>, bytes: &[u8]) -> Result<String, CheckError> {
        if bytes.len() > switchboard_core::function::MAX_COMPONENT_BYTES {
            return Err(CheckError::TooLarge(bytes.len()));
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(CheckError::NotWasm);
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(CheckError::CoreModule);
        }
        let digest = hex::encode(Sha256::digest(bytes));
        let slot = tokio::time::timeout(
            self.limits.compile_wait,
            self.compiling.clone().acquire_owned(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or(CheckError::Busy(self.limits.compilations))?;
        let this = self.clone();
        let owned = bytes.to_vec();
        let component = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            this.compile(&owned)
        })
        .await
        .map_err(|e| CheckError::Invalid(e.to_string()))??;
        let compiled = self.link(&component)?;
        // Instantiating once proves the component fits the pool's limits
        // (initial memory, tables, instance counts) before anyone depends on it.
        let services = Services::detached();
        let mut store = self.new_store(&CallContext {
            project: switchboard_core::ProjectId::new(),
            services,
            function: String::new(),
            dry_run: true,
            emit_chain: 0,
        });
        store.set_epoch_deadline(ticks(self.limits.event_deadline));
        compiled
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| CheckError::Limits(format!("{e:#}")))?;
        self.remember(&digest, compiled);
        if self.artifacts.is_some() {
            let (this, digest) = (self.clone(), digest.clone());
            // A cache write that fails only costs a compilation later.
            tokio::task::spawn_blocking(move || {
                let written = this
                    .artifacts
                    .as_ref()
                    .map(|a| a.write(&digest, &component));
                if let Some(Err(e)) = written {
                    tracing::warn!(error = %e, "could not keep a compiled function artifact");
                }
            });
        }
        Ok(digest)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, CheckError> {
        Component::new(&self.engine, bytes).map_err(|e| {
            let message = format!("{e:#}");
            // Static sizes (initial memory, tables) are checked against the
            // instance pool when compiling.
            if message.contains("pooling allocator") {
                CheckError::Limits(message)
            } else {
                CheckError::Invalid(message)
            }
        })
    }

    fn link(&self, component: &Component) -> Result<Arc<Compiled>, CheckError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| CheckError::Imports(format!("{e:#}")))?;
        let pre = FunctionPre::new(pre).map_err(|e| CheckError::Exports(format!("{e:#}")))?;
        Ok(Arc::new(Compiled { pre }))
    }

    fn remember(&self, digest: &str, compiled: Arc<Compiled>) {
        let mut cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        // Versions are few per project; a full cache is simply started afresh.
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(digest.to_owned(), compiled);
    }

    fn artifact_path(&self, digest: &str) -> Option<PathBuf> {
        self.artifacts.as_ref().map(|a| a.path(digest))
    }

    /// Forgets every compiled version whose digest `live` refuses, in memory
    /// and on disk; returns how many artifacts left the disk.
    pub fn retain(&self, live: impl Fn(&str) -> bool) -> std::io::Result<usize> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|digest, _| live(digest));
        match &self.artifacts {
            Some(a) => Ok(a.retain(live)?.len()),
            None => Ok(0),
        }
    }

    /// The compiled form of the component with `digest`, if this node has it in memory.
    pub fn cached(&self, digest: &str) -> Option<Arc<Compiled>> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// The compiled form of the component with `digest`: from memory, from the
    /// artifact cache, or compiled from the bytes `fetch` returns.
    pub async fn load<F, Fut, E>(
        self: &Arc<Self>,
        digest: &str,
        fetch: F,
    ) -> Result<Arc<Compiled>, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
        E: std::fmt::Display,
    {
        if let Some(c) = self.cached(digest) {
            return Ok(c);
        }
        let this = self.clone();
        let path = self.artifact_path(digest);
        let from_disk = tokio::task::spawn_blocking(move || {
            let path = path.filter(|p| p.exists())?;
            Artifacts::touch(&path);
            // SAFETY: the file was written by `check` from this engine's own
            // `serialize` and is named by this engine's compatibility hash;
            // wasmtime re-checks the header and refuses mismatched artifacts.
            let component = unsafe { Component::deserialize_file(&this.engine, &path) }.ok()?;
            this.link(&component).ok()
        })
        .await
        .ok()
        .flatten();
        let compiled = match from_disk {
            Some(c) => c,
            None => {
                let bytes = fetch().await.map_err(|e| e.to_string())?;
                let slot = self.compiling.clone().acquire_owned().await;
                let this = self.clone();
                tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    this.compile(&bytes).and_then(|c| this.link(&c))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
            }
        };
        self.remember(digest, compiled.clone());
        Ok(compiled)
    }

    fn new_store(&self, ctx: &CallContext) -> Store<CallState> {
        let console = MemoryOutputPipe::new(CONSOLE_BYTES);
        let wasi: WasiCtx = WasiCtxBuilder::new()
            .stdout(console.clone())
            .stderr(console.clone())
            .wall_clock(FrozenWallClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits: StoreLimits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .table_elements(self.limits.table_elements)
            .instances(self.limits.core_instances)
            .memories(self.limits.memories)
            .tables(self.limits.tables)
            .trap_on_grow_failure(true)
            .build();
        let state = CallState::new(
            wasi,
            ResourceTable::new(),
            limits,
            console,
            ctx.clone(),
            &self.limits,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Fuel cannot fail to be set when fuel consumption is on.
        let _ = store.set_fuel(self.limits.fuel);
        store
    }

    /// Runs the `participant.joining` hook of `compiled` on `req`.
    pub async fn call_joining(
        &self,
        compiled: &Compiled,
        ctx: CallContext,
        req: Joining,
    ) -> Run<Decision> {
        let deadline = self.limits.joining_deadline;
        let mut store = self.new_store(&ctx);
        yield_every_tick(&mut store);
        let start = Instant::now();
        let call = async {
            let instance = compiled.pre.instantiate_async(&mut store).await?;
            instance
                .switchboard_functions_handler()
                .call_on_joining(&mut store, &req)
                .await
        };
        let result = bounded(deadline, call).await;
        self.finish(store, start, result.map_err(classify))
    }

    /// Runs the asynchronous handler of `compiled` on `event`.
    pub async fn call_event(&self, compiled: &Compiled, ctx: CallContext, event: Event) -> Run<()> {
        let deadline = self.limits.event_deadline;
        let mut store = self.new_store(&ctx);
        yield_every_tick(&mut store);
        let start = Instant::now();
        let call = async {
            let instance = compiled.pre.instantiate_async(&mut store).await?;
            instance
                .switchboard_functions_handler()
                .call_on_event(&mut store, &event)
                .await
        };
        let result = match bounded(deadline, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Failure {
                outcome: "error",
                message,
            }),
            Err(e) => Err(classify(e)),
        };
        self.finish(store, start, result)
    }

    fn finish<T>(
        &self,
        mut store: Store<CallState>,
        start: Instant,
        result: Result<T, Failure>,
    ) -> Run<T> {
        let duration = start.elapsed();
        let fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let (logs, actions) = store.data_mut().take_output();
        Run {
            result,
            duration,
            fuel_used,
            logs,
            actions,
        }
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Makes running guest code hand its thread back to the executor at every
/// epoch tick, so a busy function never holds a runtime thread that signaling
/// and other projects' invocations need; [`bounded`] enforces the deadline.
fn yield_every_tick(store: &mut Store<CallState>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
}

/// Runs `call` and stops it at `deadline`, whether the guest is computing
/// (it yields at every tick) or waiting on the host.
async fn bounded<T>(
    deadline: Duration,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(r) => r,
        Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
    }
}

/// Names how a call failed.
fn classify(e: wasmtime::Error) -> Failure {
    let message = format!("{e:#}");
    let outcome = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "timeout",
        Some(Trap::OutOfFuel) => "out_of_fuel",
        Some(Trap::StackOverflow) => "stack_overflow",
        Some(_) => "trap",
        None if message.contains("growing memory")
            || message.contains("memory") && message.contains("limit") =>
        {
            "out_of_memory"
        }
        None => "trap",
    };
    let message = match outcome {
        "timeout" => "the function missed its deadline and was stopped".to_owned(),
        _ => message,
    };
    Failure { outcome, message }
}
