//! What one project's functions may take of a node: compilations at once,
//! compiled artifacts on disk, events emitted per invocation, and chains of
//! `function.event`s (issue 22).

use super::*;

switchboard_store::on_both_backends!(
    an_invocation_emits_at_most_its_limit,
    functions_cannot_trigger_each_other_for_ever,
    a_deleted_functions_compiled_form_leaves_the_disk,
);

const EMIT_IMPORTS: &str = r#"
  (import "switchboard:functions/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "switchboard:functions/actions@0.1.0" "emit" (func $emit (param i32 i32 i32 i32 i32)))
"#;

/// A handler that emits `ping` `times` times, logging each refusal.
fn emitter(times: u32) -> Vec<u8> {
    let body = format!(
        "(block $done (loop $again \
           (call $emit (i32.const 96) (i32.const 4) (i32.const 112) (i32.const 2) (i32.const 1024)) \
           (if (i32.load8_u (i32.const 1024)) \
             (then (call $log (i32.const 1) (i32.load (i32.const 1028)) (i32.load (i32.const 1032))))) \
           (global.set $n (i32.add (global.get $n) (i32.const 1))) \
           (br_if $again (i32.lt_u (global.get $n) (i32.const {times}))))) {OK}"
    );
    component(Parts {
        imports: EMIT_IMPORTS,
        event: &body,
        extra: r#"(global $n (mut i32) (i32.const 0)) (data (i32.const 96) "ping") (data (i32.const 112) "{}")"#,
        ..Parts::default()
    })
}

async fn function_events(f: &Fixture) -> Vec<u32> {
    f.store
        .events()
        .list(f.project, &Default::default(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.payload {
            EventPayload::FunctionEvent { chain, .. } => Some(chain),
            _ => None,
        })
        .collect()
}

/// Issue 22: one invocation could append as many events to the log as its
/// fuel allowed; each reaches every webhook and function of the project.
async fn an_invocation_emits_at_most_its_limit(backend: Backend) {
    let f = fixture(
        backend,
        Limits {
            emits_per_invocation: 10,
            ..Limits::default()
        },
    )
    .await;
    let run = run_event(&f, emitter(15)).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(function_events(&f).await.len(), 10);
    let refusals: Vec<&str> = run.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    assert!(refusals
        .iter()
        .all(|m| *m == "an invocation may emit at most 10 events"));
}

/// Issue 22: two functions handling `function.event` that each emit one
/// triggered each other for ever (a function's own events never ran it, but
/// another's did). A chain of such events now stops at its third link.
async fn functions_cannot_trigger_each_other_for_ever(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    f.deploy("starter", emitter(1), &["room.started"]).await;
    f.deploy("ping", emitter(1), &["function.event"]).await;
    f.deploy("pong", emitter(1), &["function.event"]).await;
    let worker = switchboard_functions::worker::Worker::new(
        f.host.clone(),
        f.store.clone(),
        Duration::from_millis(50),
    );
    let tasks = worker.start();
    f.store
        .events()
        .record(sample_event(f.project))
        .await
        .unwrap();
    // starter: 1 (link 0); ping and pong on it: 2 (link 1); each on the
    // other's: 2 (link 2); each on the other's link 2: refused.
    let refused = f.invocations("ping", 3).await;
    f.invocations("pong", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut chains = function_events(&f).await;
    chains.sort();
    assert_eq!(chains, [0, 1, 1, 2, 2]);
    assert!(
        refused.iter().any(|i| i
            .logs
            .iter()
            .any(|l| l.message.contains("a chain stops at 3"))),
        "{refused:?}"
    );
    for t in tasks {
        t.abort();
    }
}

/// Issue 22: compiled versions stayed on disk for ever, whatever was deleted.
/// Those of deleted functions are swept; the cache also has a byte budget
/// (`artifacts` unit tests).
async fn a_deleted_functions_compiled_form_leaves_the_disk(backend: Backend) {
    let f = fixture(backend, Limits::default()).await;
    f.deploy("kept", emitter(1), &["room.started"]).await;
    f.deploy("gone", emitter(2), &["room.started"]).await;
    assert_eq!(compiled_on_disk(&f, 2).await, 2, "both are kept compiled");
    assert_eq!(f.host.sweep_artifacts().await.unwrap(), 0);
    assert!(f
        .store
        .functions()
        .delete(f.project, "gone", chrono::Utc::now())
        .await
        .unwrap());
    assert_eq!(f.host.sweep_artifacts().await.unwrap(), 1);
    assert_eq!(compiled_on_disk(&f, 1).await, 1);
}

/// How many compiled forms are on disk, once there are `want` (or after a while).
async fn compiled_on_disk(f: &Fixture, want: usize) -> usize {
    let mut n = 0;
    for _ in 0..100 {
        n = std::fs::read_dir(f._cache.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".cwasm")
            })
            .count();
        if n == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

/// Issue 22: every upload was compiled at once, each taking a core for up to
/// seconds, so a burst of uploads took every core of the node. Compilations
/// beyond the node's slots wait, then are refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_compilation_slots_wait_then_are_refused() {
    let f = fixture(
        Backend::Sqlite,
        Limits {
            compilations: 1,
            compile_wait: Duration::ZERO,
            ..Limits::default()
        },
    )
    .await;
    let uploads: Vec<_> = (0..6u32)
        .map(|i| {
            let runtime = f.host.runtime().clone();
            let bytes = emitter(i + 1);
            tokio::spawn(async move { runtime.check(&bytes).await })
        })
        .collect();
    let mut busy = 0;
    let mut compiled = 0;
    for u in uploads {
        match u.await.unwrap() {
            Ok(_) => compiled += 1,
            Err(switchboard_functions::CheckError::Busy(1)) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        compiled >= 1 && busy >= 1,
        "{compiled} compiled, {busy} refused"
    );
    let e = switchboard_functions::CheckError::Busy(1).to_string();
    assert!(e.contains("try again"), "{e}");
}
