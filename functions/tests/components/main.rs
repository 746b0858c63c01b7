//! The function host against small components written in WAT (encoded with
//! `wat` and `wit-component` here): every hostile case ends its own
//! invocation only, uploads that do not fit are refused with a clear error,
//! and the key-value store, logs, gate and asynchronous handlers work on a
//! real database (SQLite and PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::admission::{Admission, JoinGate, JoinRequest};
use switchboard_core::directory::NoMediaTier;
use switchboard_core::event::RoomRef;
use switchboard_core::function::{FailurePolicy, Triggers};
use switchboard_core::recording::RecordingStatus;
use switchboard_core::room::ParticipantPermissions;
use switchboard_core::{Event, EventPayload, Identity, ProjectId, RoomName, RoomSid, SystemClock};
use switchboard_functions::gate::FunctionGate;
use switchboard_functions::{FunctionHost, Limits, Services};
use switchboard_store::functions::NewVersion;
use switchboard_store::testing::TestDb;
use switchboard_store::{Backend, Store};

mod quotas;

switchboard_store::on_both_backends!(
    the_gate_denies_with_the_functions_reason_and_logs_it,
    a_failing_hook_follows_the_projects_policy,
    the_key_value_store_persists_between_invocations,
    async_handlers_run_once_per_event_and_record_invocations,
    functions_start_and_stop_recordings,
);

/// The module every test component starts from: a memory, a bump allocator,
/// and handlers that allow and succeed. `{imports}`, `{joining}` and `{event}`
/// are replaced by each test.
const TEMPLATE: &str = r#"
(module
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (data (i32.const 16) "go away")
  (data (i32.const 32) "hello from wat")
  (data (i32.const 64) "counter")
  (data (i32.const 80) "1")
  (func (export "switchboard:functions/handler@0.1.0#on-joining")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    {joining})
  (func (export "switchboard:functions/handler@0.1.0#on-event")
    (param i32 i32 i32 i32 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)
    {event})
  {extra}
)
"#;

/// `decision::allow` at address 256.
const ALLOW: &str = "(i32.store8 (i32.const 256) (i32.const 0)) (i32.const 256)";
/// `ok` at address 512.
const OK: &str = "(i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)";
const LOG_IMPORT: &str =
    r#"(import "switchboard:functions/host@0.1.0" "log" (func $log (param i32 i32 i32)))"#;

struct Parts<'a> {
    imports: &'a str,
    joining: &'a str,
    event: &'a str,
    extra: &'a str,
}

impl Default for Parts<'_> {
    fn default() -> Self {
        Self {
            imports: "",
            joining: ALLOW,
            event: OK,
            extra: "",
        }
    }
}

fn component(parts: Parts<'_>) -> Vec<u8> {
    let text = TEMPLATE
        .replace("{imports}", parts.imports)
        .replace("{joining}", parts.joining)
        .replace("{event}", parts.event)
        .replace("{extra}", parts.extra);
    encode(&text, "function")
}

/// Encodes a core module in WAT as a component of `world` in `wit/`.
fn encode(wat_text: &str, world: &str) -> Vec<u8> {
    switchboard_functions::testing::component_from_wat(wat_text, world).expect("test WAT encodes")
}

struct Fixture {
    host: Arc<FunctionHost>,
    store: Store,
    project: ProjectId,
    _db: TestDb,
    _cache: tempfile::TempDir,
}

async fn fixture(backend: Backend, limits: Limits) -> Fixture {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let project = store
        .projects()
        .create("functions", chrono::Utc::now())
        .await
        .unwrap()
        .id;
    let cache = tempfile::tempdir().unwrap();
    let services = Services::new(
        store.clone(),
        Arc::new(NoMediaTier),
        Arc::new(NoMediaTier),
        Arc::new(SystemClock),
    );
    let host = FunctionHost::new(services, limits, Some(cache.path().to_owned())).unwrap();
    Fixture {
        host,
        store,
        project,
        _db: db,
        _cache: cache,
    }
}

impl Fixture {
    async fn deploy(&self, name: &str, bytes: Vec<u8>, events: &[&str]) {
        let digest = self.host.runtime().check(&bytes).await.unwrap();
        self.store
            .functions()
            .deploy(
                self.project,
                name,
                NewVersion {
                    digest,
                    triggers: Triggers::parse(events.iter().map(|s| s.to_string()).collect())
                        .unwrap(),
                    component: bytes,
                    activate: true,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }

    fn join_request(&self, identity: &str) -> JoinRequest {
        JoinRequest {
            project: self.project,
            room: RoomName::new("standup").unwrap(),
            identity: Identity::new(identity).unwrap(),
            name: String::new(),
            metadata: String::new(),
            permissions: ParticipantPermissions {
                can_publish: true,
                can_subscribe: true,
                can_publish_data: true,
            },
        }
    }

    async fn invocations(
        &self,
        name: &str,
        want: usize,
    ) -> Vec<switchboard_store::functions::Invocation> {
        let f = self
            .store
            .functions()
            .get(self.project, name)
            .await
            .unwrap()
            .unwrap();
        for _ in 0..200 {
            let list = self
                .store
                .functions()
                .invocations(f.id, None, 100)
                .await
                .unwrap();
            if list.len() >= want {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} was not invoked {want} times");
    }
}

/// Runs `bytes`' asynchronous handler once on a sample event.
async fn run_event(f: &Fixture, bytes: Vec<u8>) -> switchboard_functions::Run<()> {
    f.deploy("probe", bytes, &["room.started"]).await;
    let func = f
        .store
        .functions()
        .get(f.project, "probe")
        .await
        .unwrap()
        .unwrap();
    let deployed = f
        .store
        .functions()
        .deployed(&func, None)
        .await
        .unwrap()
        .unwrap();
    f.host
        .run_event(f.project, &deployed, &sample_event(f.project), false)
        .await
        .unwrap()
}

fn sample_event(project: ProjectId) -> Event {
    Event::new(
        project,
        chrono::Utc::now(),
        EventPayload::RoomStarted {
            room: RoomRef {
                sid: RoomSid::new(),
                name: RoomName::new("standup").unwrap(),
            },
        },
    )
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let limits = Limits {
        event_deadline: Duration::from_millis(100),
        ..Limits::default()
    };
    let f = fixture(Backend::Sqlite, limits).await;
    let run = run_event(
        &f,
        component(Parts {
            event: "(loop br 0) (i32.const 0)",
            ..Parts::default()
        }),
    )
    .await;
    let failure = run.result.unwrap_err();
    assert_eq!(failure.outcome, "timeout", "{failure:?}");
    assert!(run.duration < Duration::from_secs(2), "{:?}", run.duration);
    // The host is unaffected: a well-behaved component runs next.
    let ok = run_event(&f, component(Parts::default())).await;
    assert!(ok.result.is_ok(), "{:?}", ok.result);
}

#[tokio::test]
async fn burning_fuel_is_stopped_when_it_runs_out() {
    let limits = Limits {
        fuel: 1_000_000,
        ..Limits::default()
    };
    let f = fixture(Backend::Sqlite, limits).await;
    let run = run_event(
        &f,
        component(Parts {
            event: "(loop br 0) (i32.const 0)",
            ..Parts::default()
        }),
    )
    .await;
    assert_eq!(run.result.unwrap_err().outcome, "out_of_fuel");
    assert!(run.fuel_used >= 999_000, "{}", run.fuel_used);
}

#[tokio::test]
async fn a_memory_bomb_traps_at_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let f = fixture(Backend::Sqlite, limits).await;
    let bomb = "(loop (drop (memory.grow (i32.const 16))) (br 0)) (i32.const 0)";
    let run = run_event(
        &f,
        component(Parts {
            event: bomb,
            ..Parts::default()
        }),
    )
    .await;
    let failure = run.result.unwrap_err();
    assert_eq!(failure.outcome, "out_of_memory", "{failure:?}");
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack_and_traps() {
    let f = fixture(Backend::Sqlite, Limits::default()).await;
    let run = run_event(
        &f,
        component(Parts {
            event: "(call $deep (i32.const 0)) (i32.const 0)",
            extra: "(func $deep (param i32) (call $deep (i32.add (local.get 0) (i32.const 1))))",
            ..Parts::default()
        }),
    )
    .await;
    assert_eq!(run.result.unwrap_err().outcome, "stack_overflow");
}

#[tokio::test]
async fn a_panic_traps_and_keeps_the_lines_logged_before_it() {
    let f = fixture(Backend::Sqlite, Limits::default()).await;
    let run = run_event(
        &f,
        component(Parts {
            imports: LOG_IMPORT,
            event: "(call $log (i32.const 1) (i32.const 32) (i32.const 14)) unreachable",
            ..Parts::default()
        }),
    )
    .await;
    let failure = run.result.unwrap_err();
    assert_eq!(failure.outcome, "trap");
    assert!(
        failure.message.contains("unreachable"),
        "{}",
        failure.message
    );
    assert_eq!(run.logs.len(), 1);
    assert_eq!(run.logs[0].level, "info");
    assert_eq!(run.logs[0].message, "hello from wat");
}

#[tokio::test]
async fn an_error_result_is_reported_as_an_error() {
    let f = fixture(Backend::Sqlite, Limits::default()).await;
    let err =
        "(i32.store8 (i32.const 512) (i32.const 1)) (i32.store (i32.const 516) (i32.const 16)) \
               (i32.store (i32.const 520) (i32.const 7)) (i32.const 512)";
    let run = run_event(
        &f,
        component(Parts {
            event: err,
            ..Parts::default()
        }),
    )
    .await;
    let failure = run.result.unwrap_err();
    assert_eq!(
        (failure.outcome, failure.message.as_str()),
        ("error", "go away")
    );
}

#[tokio::test]
async fn uploads_that_do_not_fit_are_refused_with_the_reason() {
    let f = fixture(Backend::Sqlite, Limits::default()).await;
    let rt = f.host.runtime();
    let refuse = |bytes: Vec<u8>| {
        let rt = rt.clone();
        async move { rt.check(&bytes).await.unwrap_err().to_string() }
    };
    assert!(refuse(b"hello".to_vec()).await.contains("not WebAssembly"));
    let core = wat::parse_str("(module)").unwrap();
    assert!(refuse(core)
        .await
        .contains("core WebAssembly module, not a component"));
    let mut truncated = component(Parts::default());
    truncated.truncate(truncated.len() / 2);
    assert!(refuse(truncated).await.contains("not valid WebAssembly"));
    // A component of another shape: it exports nothing.
    let empty = wat::parse_str("(component)").unwrap();
    let e = refuse(empty).await;
    assert!(
        e.contains("does not export `switchboard:functions/handler@0.1.0`"),
        "{e}"
    );
    // Initial memory of 128 MiB, over the 64 MiB limit.
    let big = TEMPLATE
        .replace(
            "(memory (export \"memory\") 2)",
            "(memory (export \"memory\") 2048)",
        )
        .replace("{imports}", "")
        .replace("{joining}", ALLOW)
        .replace("{event}", OK)
        .replace("{extra}", "");
    let e = refuse(encode(&big, "function")).await;
    assert!(e.contains("does not fit the limits"), "{e}");
    // A table over the element limit.
    let table = component(Parts {
        extra: "(table 200000 funcref)",
        ..Parts::default()
    });
    let e = refuse(table).await;
    assert!(e.contains("does not fit the limits"), "{e}");
    let huge = vec![0u8; switchboard_core::function::MAX_COMPONENT_BYTES + 1];
    assert!(refuse(huge).await.contains("the limit is 33554432 bytes"));
}

#[tokio::test]
async fn a_component_importing_what_functions_cannot_use_is_refused() {
    let f = fixture(Backend::Sqlite, Limits::default()).await;
    // A component that imports an interface the host does not provide.
    let bytes = wat::parse_str(
        r#"(component
             (import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func))))
           )"#,
    )
    .unwrap();
    let e = f
        .host
        .runtime()
        .check(&bytes)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("imports something functions cannot use"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_projects_runaway_function_leaves_anothers_join_fast() {
    let limits = Limits {
        joining_deadline: Duration::from_millis(50),
        ..Limits::default()
    };
    let f = fixture(Backend::Sqlite, limits).await;
    f.deploy(
        "spin",
        component(Parts {
            joining: "(loop br 0) (i32.const 0)",
            ..Parts::default()
        }),
        &["participant.joining"],
    )
    .await;
    let other = f
        .store
        .projects()
        .create("other", chrono::Utc::now())
        .await
        .unwrap()
        .id;
    let digest = f
        .host
        .runtime()
        .check(&component(Parts::default()))
        .await
        .unwrap();
    f.store
        .functions()
        .deploy(
            other,
            "gate",
            NewVersion {
                digest,
                triggers: Triggers::parse(vec!["participant.joining".into()]).unwrap(),
                component: component(Parts::default()),
                activate: true,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let gate = Arc::new(FunctionGate::new(f.host.clone()));
    let spinning: Vec<_> = (0..8)
        .map(|i| {
            let gate = gate.clone();
            let req = f.join_request(&format!("spinner{i}"));
            tokio::spawn(async move { gate.check(req).await })
        })
        .collect();
    let mut other_req = f.join_request("ann");
    other_req.project = other;
    let started = std::time::Instant::now();
    let answer = gate.check(other_req).await;
    assert!(matches!(answer, Admission::Admit { .. }), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    for s in spinning {
        // The spinning project's policy is the default, fail open.
        assert!(matches!(s.await.unwrap(), Admission::Admit { .. }));
    }
    let invocations = f.invocations("spin", 8).await;
    assert!(invocations
        .iter()
        .all(|i| i.outcome == "timeout" || i.outcome == "busy"));
}

async fn the_gate_denies_with_the_functions_reason_and_logs_it(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    let deny = "(call $log (i32.const 2) (i32.const 32) (i32.const 14)) \
                (i32.store8 (i32.const 256) (i32.const 1)) (i32.store (i32.const 260) (i32.const 16)) \
                (i32.store (i32.const 264) (i32.const 7)) (i32.const 256)";
    f.deploy(
        "bouncer",
        component(Parts {
            imports: LOG_IMPORT,
            joining: deny,
            ..Parts::default()
        }),
        &["participant.joining"],
    )
    .await;
    let gate = FunctionGate::new(f.host.clone());
    let answer = gate.check(f.join_request("bob")).await;
    assert_eq!(
        answer,
        Admission::Deny {
            reason: "go away".into()
        }
    );
    let list = f.invocations("bouncer", 1).await;
    assert_eq!(list[0].trigger, "joining");
    assert_eq!(list[0].decision.as_deref(), Some("deny"));
    assert_eq!(list[0].outcome, "ok");
    assert!(list[0].fuel_used > 0);
    assert_eq!(list[0].logs[0].level, "warn");
    assert_eq!(list[0].logs[0].message, "hello from wat");
}

async fn a_failing_hook_follows_the_projects_policy(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    f.deploy(
        "broken",
        component(Parts {
            joining: "unreachable",
            ..Parts::default()
        }),
        &["participant.joining"],
    )
    .await;
    let gate = FunctionGate::new(f.host.clone());
    let open = gate.check(f.join_request("ann")).await;
    assert_eq!(open, Admission::unchanged(&f.join_request("ann")));
    f.store
        .functions()
        .set_failure_policy(f.project, FailurePolicy::Closed)
        .await
        .unwrap();
    match gate.check(f.join_request("ann")).await {
        Admission::Deny { reason } => assert!(reason.contains("`broken`"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let list = f.invocations("broken", 2).await;
    assert!(list.iter().all(|i| i.outcome == "trap"));
}

/// kv-set("counter", "1") then kv-get("counter") into the log.
const KV_IMPORTS: &str = r#"
  (import "switchboard:functions/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "switchboard:functions/host@0.1.0" "kv-get" (func $kv_get (param i32 i32 i32)))
  (import "switchboard:functions/host@0.1.0" "kv-set" (func $kv_set (param i32 i32 i32 i32 i32)))
"#;

async fn the_key_value_store_persists_between_invocations(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    // First run: set. Both runs: get, and log the value when there is one.
    let body = "(if (i32.eqz (i32.load8_u (i32.const 4000))) (then \
                  (call $kv_set (i32.const 64) (i32.const 7) (i32.const 80) (i32.const 1) (i32.const 1024)))) \
                (call $kv_get (i32.const 64) (i32.const 7) (i32.const 1024)) \
                (if (i32.load8_u (i32.const 1024)) (then \
                  (call $log (i32.const 1) (i32.load (i32.const 1028)) (i32.load (i32.const 1032))))) \
                (i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)";
    let bytes = component(Parts {
        imports: KV_IMPORTS,
        event: body,
        ..Parts::default()
    });
    let run = run_event(&f, bytes.clone()).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(run.logs.len(), 1, "{:?}", run.logs);
    assert_eq!(run.logs[0].message, "1");
    assert_eq!(
        f.store
            .functions()
            .kv_get(f.project, "counter")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    // A fresh instance (memory reset to its image) still reads the stored value.
    let run = run_event(&f, bytes).await;
    assert_eq!(run.logs[0].message, "1");
}

async fn async_handlers_run_once_per_event_and_record_invocations(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    f.deploy(
        "watcher",
        component(Parts {
            imports: LOG_IMPORT,
            event: "(call $log (i32.const 1) (i32.const 32) (i32.const 14)) (i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)",
            ..Parts::default()
        }),
        &["room.*"],
    )
    .await;
    let worker = switchboard_functions::worker::Worker::new(
        f.host.clone(),
        f.store.clone(),
        Duration::from_millis(50),
    );
    let tasks = worker.start();
    for _ in 0..3 {
        f.store
            .events()
            .record(sample_event(f.project))
            .await
            .unwrap();
    }
    // An event the function does not handle.
    f.store
        .events()
        .record(Event::new(
            f.project,
            chrono::Utc::now(),
            EventPayload::WebhookTest {
                webhook_id: "wh".into(),
            },
        ))
        .await
        .unwrap();
    // 3 room.started + the function.deployed of the deployment is not a room event.
    let list = f.invocations("watcher", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list2 = f.invocations("watcher", 3).await;
    assert_eq!(list2.len(), 3, "each event runs the handler once: {list:?}");
    assert!(list2
        .iter()
        .all(|i| i.trigger == "event" && i.event_type == "room.started" && i.outcome == "ok"));
    let mut ids: Vec<_> = list2.iter().map(|i| i.event_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for t in tasks {
        t.abort();
    }
}

const RECORDING_IMPORTS: &str = r#"
  (import "switchboard:functions/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "switchboard:functions/actions@0.1.0" "start-recording" (func $start (param i32 i32 i32)))
  (import "switchboard:functions/actions@0.1.0" "stop-recording" (func $stop (param i32 i32 i32)))
"#;

async fn functions_start_and_stop_recordings(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    let (room, _) = f
        .store
        .rooms()
        .create(
            f.project,
            switchboard_store::rooms::NewRoom::named(RoomName::new("studio").unwrap()),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    // Start a recording of "studio" and log its id (or the error), then stop it,
    // then try a room that does not exist and log that error.
    let log_result = |at: u32| {
        format!(
            "(call $log (i32.const 1) (i32.load (i32.const {})) (i32.load (i32.const {})))",
            at + 4,
            at + 8
        )
    };
    let body = format!(
        "(call $start (i32.const 96) (i32.const 6) (i32.const 1024)) {} \
         (call $stop (i32.const 96) (i32.const 6) (i32.const 1040)) \
         (if (i32.load8_u (i32.const 1040)) (then {})) \
         (call $start (i32.const 112) (i32.const 7) (i32.const 1056)) {} \
         (i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)",
        log_result(1024),
        log_result(1040),
        log_result(1056)
    );
    let bytes = component(Parts {
        imports: RECORDING_IMPORTS,
        event: &body,
        extra: r#"(data (i32.const 96) "studio") (data (i32.const 112) "nowhere")"#,
        ..Parts::default()
    });
    let run = run_event(&f, bytes).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    let logs: Vec<&str> = run.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[0].starts_with("rec_"), "{logs:?}");
    assert_eq!(logs[1], "room `nowhere` does not exist");
    let recs = f
        .store
        .recordings()
        .list(f.project, Some(&room.name), None, 10)
        .await
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].id.to_string(), logs[0]);
    // With no media tier nothing ever recorded it, so stopping failed it, saying why.
    assert_eq!(recs[0].status, RecordingStatus::Failed);
    assert!(recs[0]
        .error
        .as_deref()
        .unwrap()
        .contains("before any track"));
}
