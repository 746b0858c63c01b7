//! What a function can call: `host` (logging, key-value store) and `actions`
//! (changes to live rooms), implemented over the store and the media tier.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::directory::{
    NoMediaTier, ParticipantDirectory, ParticipantUpdate, RecordingDirectory,
};
use switchboard_core::event::{EventPayload, RoomRef};
use switchboard_core::function::LogLine;
use switchboard_core::recording::RecordingSpec;
use switchboard_core::{Clock, Event, Identity, RoomName, SystemClock};
use switchboard_recording::control;
use switchboard_store::rooms::RoomPatch;
use switchboard_store::Store;
use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::switchboard::functions::{actions, host};

/// Longest key of the key-value store, in bytes.
pub const MAX_KV_KEY: usize = 256;
/// Largest value of the key-value store, in bytes.
pub const MAX_KV_VALUE: usize = 64 << 10;
/// Largest room or participant metadata and `emit` data, in bytes.
const MAX_METADATA: usize = 64 << 10;

/// What functions' host calls reach: the database, the live rooms and the time.
pub struct Services {
    /// The database (key-value store, room metadata, the event log).
    pub store: Option<Store>,
    /// Live participants.
    pub directory: Arc<dyn ParticipantDirectory>,
    /// Recordings on the media tier.
    pub recorders: Arc<dyn RecordingDirectory>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl Services {
    /// Services over `store`, `directory` and `recorders`.
    pub fn new(
        store: Store,
        directory: Arc<dyn ParticipantDirectory>,
        recorders: Arc<dyn RecordingDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store: Some(store),
            directory,
            recorders,
            clock,
        })
    }

    /// Services that reach nothing (the trial instantiation at upload).
    pub(crate) fn detached() -> Arc<Self> {
        Arc::new(Self {
            store: None,
            directory: Arc::new(NoMediaTier),
            recorders: Arc::new(NoMediaTier),
            clock: Arc::new(SystemClock),
        })
    }

    fn store(&self) -> Result<&Store, String> {
        self.store
            .as_ref()
            .ok_or_else(|| "no storage is reachable from here".to_owned())
    }
}

/// The wall clock functions see: always the Unix epoch. Functions get no
/// wall clock (use the event's `created-at`); WASI requires one to exist.
pub(crate) struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// Who an invocation runs for.
#[derive(Clone)]
pub struct CallContext {
    /// The project and the services its actions reach.
    pub services: Arc<Services>,
    /// The project.
    pub project: switchboard_core::ProjectId,
    /// The function's name (the source of its `function.event`s).
    pub function: String,
    /// Record actions without applying them.
    pub dry_run: bool,
    /// Where events this invocation emits stand in a chain of
    /// `function.event`s (see [`switchboard_core::EventPayload::FunctionEvent`]).
    pub emit_chain: u32,
}

/// The state of one invocation's store.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    console: MemoryOutputPipe,
    ctx: CallContext,
    logs: Vec<LogLine>,
    dropped_logs: usize,
    max_lines: usize,
    max_line_bytes: usize,
    actions: Vec<String>,
    emits_left: usize,
    max_emits: usize,
}

impl CallState {
    pub(crate) fn new(
        wasi: WasiCtx,
        table: ResourceTable,
        limits: StoreLimits,
        console: MemoryOutputPipe,
        ctx: CallContext,
        caps: &crate::Limits,
    ) -> Self {
        Self {
            wasi,
            table,
            limits,
            console,
            ctx,
            logs: Vec::new(),
            dropped_logs: 0,
            max_lines: caps.log_lines,
            max_line_bytes: caps.log_line_bytes,
            actions: Vec::new(),
            emits_left: caps.emits_per_invocation,
            max_emits: caps.emits_per_invocation,
        }
    }

    fn push_log(&mut self, level: &str, message: &str) {
        if self.logs.len() >= self.max_lines {
            self.dropped_logs += 1;
            return;
        }
        let mut end = message.len().min(self.max_line_bytes);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        self.logs.push(LogLine {
            level: level.to_owned(),
            message: message[..end].to_owned(),
        });
    }

    /// The log (with console output) and the actions, leaving them empty.
    pub(crate) fn take_output(&mut self) -> (Vec<LogLine>, Vec<String>) {
        let console = self.console.contents();
        for line in String::from_utf8_lossy(&console).lines() {
            if !line.is_empty() {
                self.push_log("stdout", line);
            }
        }
        if self.dropped_logs > 0 {
            let note = format!("{} more log lines were dropped", self.dropped_logs);
            self.logs.push(LogLine {
                level: "warn".into(),
                message: note,
            });
            self.dropped_logs = 0;
        }
        (
            std::mem::take(&mut self.logs),
            std::mem::take(&mut self.actions),
        )
    }

    /// Records `what`; true when it should also be applied (not a dry run).
    fn act(&mut self, what: String) -> bool {
        self.actions.push(what);
        !self.ctx.dry_run
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KV_KEY {
        return Err(format!("keys are 1 to {MAX_KV_KEY} bytes"));
    }
    Ok(())
}

fn room_name(room: &str) -> Result<RoomName, String> {
    RoomName::new(room).map_err(|e| format!("`{room}` is not a room name: {e}"))
}

fn identity(identity: &str) -> Result<Identity, String> {
    Identity::new(identity).map_err(|e| format!("`{identity}` is not an identity: {e}"))
}

fn check_size(what: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_METADATA {
        return Err(format!(
            "{what} of {} bytes is over the {MAX_METADATA}-byte limit",
            value.len()
        ));
    }
    Ok(())
}

impl host::Host for CallState {
    async fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Debug => "debug",
            host::Level::Info => "info",
            host::Level::Warn => "warn",
            host::Level::Error => "error",
        };
        self.push_log(level, &message);
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        if check_key(&key).is_err() {
            return Ok(None);
        }
        let store = self.ctx.services.store().map_err(wasmtime::Error::msg)?;
        // A read that fails must not look like a missing key (an allow-list
        // would deny on it), so it ends the invocation instead.
        store
            .functions()
            .kv_get(self.ctx.project, &key)
            .await
            .map_err(|e| wasmtime::Error::msg(format!("the key-value store is unavailable: {e}")))
    }

    async fn kv_set(&mut self, key: String, value: String) -> Result<(), String> {
        check_key(&key)?;
        if value.len() > MAX_KV_VALUE {
            return Err(format!("values are at most {MAX_KV_VALUE} bytes"));
        }
        let services = self.ctx.services.clone();
        let stored = services
            .store()?
            .functions()
            .kv_set(self.ctx.project, &key, &value, services.clock.now())
            .await
            .map_err(|e| format!("the key-value store is unavailable: {e}"))?;
        if stored {
            Ok(())
        } else {
            Err(format!(
                "the project's key-value store is full ({} keys)",
                switchboard_store::functions::MAX_KV_KEYS
            ))
        }
    }

    async fn kv_delete(&mut self, key: String) -> Result<(), String> {
        check_key(&key)?;
        self.ctx
            .services
            .store()?
            .functions()
            .kv_delete(self.ctx.project, &key)
            .await
            .map_err(|e| format!("the key-value store is unavailable: {e}"))
    }
}

impl actions::Host for CallState {
    async fn set_room_metadata(&mut self, room: String, metadata: String) -> Result<(), String> {
        let name = room_name(&room)?;
        check_size("metadata", &metadata)?;
        if !self.act(format!("set-room-metadata {room}")) {
            return Ok(());
        }
        let patch = RoomPatch {
            metadata: Some(metadata),
            ..RoomPatch::default()
        };
        match self
            .ctx
            .services
            .store()?
            .rooms()
            .update(self.ctx.project, &name, patch)
            .await
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(format!("room `{room}` does not exist")),
            Err(e) => Err(format!("cannot reach the room registry: {e}")),
        }
    }

    async fn set_participant_metadata(
        &mut self,
        room: String,
        who: String,
        metadata: String,
    ) -> Result<(), String> {
        let name = room_name(&room)?;
        let id = identity(&who)?;
        check_size("metadata", &metadata)?;
        if !self.act(format!("set-participant-metadata {room} {who}")) {
            return Ok(());
        }
        let update = ParticipantUpdate {
            metadata: Some(metadata),
            ..ParticipantUpdate::default()
        };
        self.ctx
            .services
            .directory
            .update(self.ctx.project, &name, &id, update)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn mute_participant(
        &mut self,
        room: String,
        who: String,
        muted: bool,
    ) -> Result<(), String> {
        let name = room_name(&room)?;
        let id = identity(&who)?;
        if !self.act(format!("mute-participant {room} {who} {muted}")) {
            return Ok(());
        }
        let directory = self.ctx.services.directory.clone();
        let info = directory
            .get(self.ctx.project, &name, &id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("participant `{who}` is not connected to room `{room}`"))?;
        for track in info.tracks {
            directory
                .mute_track(self.ctx.project, &name, &id, track.sid, muted)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn remove_participant(&mut self, room: String, who: String) -> Result<(), String> {
        let name = room_name(&room)?;
        let id = identity(&who)?;
        if !self.act(format!("remove-participant {room} {who}")) {
            return Ok(());
        }
        self.ctx
            .services
            .directory
            .remove(self.ctx.project, &name, &id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn send_data(
        &mut self,
        room: String,
        topic: Option<String>,
        payload: String,
    ) -> Result<(), String> {
        let name = room_name(&room)?;
        if !self.act(format!("send-data {room}")) {
            return Ok(());
        }
        self.ctx
            .services
            .directory
            .send_data(self.ctx.project, &name, topic.as_deref(), &payload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn start_recording(&mut self, room: String) -> Result<String, String> {
        let name = room_name(&room)?;
        if !self.act(format!("start-recording {room}")) {
            return Ok(String::new());
        }
        let services = self.ctx.services.clone();
        let store = services.store()?;
        let found = store
            .rooms()
            .get(self.ctx.project, &name)
            .await
            .map_err(|e| format!("cannot reach the room registry: {e}"))?
            .ok_or_else(|| format!("room `{room}` does not exist"))?;
        let reference = RoomRef {
            sid: found.sid,
            name: found.name,
        };
        let rec = control::start(
            store,
            services.recorders.as_ref(),
            self.ctx.project,
            reference,
            RecordingSpec::all_tracks(),
            services.clock.now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(rec.id.to_string())
    }

    async fn stop_recording(&mut self, room: String) -> Result<(), String> {
        let name = room_name(&room)?;
        if !self.act(format!("stop-recording {room}")) {
            return Ok(());
        }
        let services = self.ctx.services.clone();
        let store = services.store()?;
        let open = store
            .recordings()
            .list_open(self.ctx.project, &name)
            .await
            .map_err(|e| format!("cannot reach the recordings: {e}"))?;
        if open.is_empty() {
            return Err(format!("room `{room}` has no recording running"));
        }
        for rec in open {
            control::stop(
                store,
                services.recorders.as_ref(),
                self.ctx.project,
                rec.id,
                services.clock.now(),
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn emit(&mut self, name: String, data: String) -> Result<(), String> {
        switchboard_core::function::check_name(&name).map_err(|_| {
            format!(
                "`{name}` is not an event name: use 1 to 64 characters of a-z, 0-9, `-` and `_`"
            )
        })?;
        check_size("event data", &data)?;
        let data: serde_json::Value =
            serde_json::from_str(&data).map_err(|e| format!("event data is not JSON: {e}"))?;
        let chain = self.ctx.emit_chain;
        if chain >= crate::MAX_EMIT_CHAIN {
            return Err(format!(
                "this handler runs on a function.event that handlers of function.events emitted {chain} times in a row; \
                 a chain stops at {} so that functions cannot trigger each other for ever",
                crate::MAX_EMIT_CHAIN
            ));
        }
        if self.emits_left == 0 {
            return Err(format!(
                "an invocation may emit at most {} events",
                self.max_emits
            ));
        }
        self.emits_left -= 1;
        if !self.act(format!("emit {name}")) {
            return Ok(());
        }
        let services = self.ctx.services.clone();
        let event = Event::new(
            self.ctx.project,
            services.clock.now(),
            EventPayload::FunctionEvent {
                function: self.ctx.function.clone(),
                name,
                data,
                chain,
            },
        );
        services
            .store()?
            .events()
            .record(event)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot append to the event log: {e}"))
    }
}

impl crate::bindings::switchboard::functions::types::Host for CallState {}
