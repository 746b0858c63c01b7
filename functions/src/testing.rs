//! Components from WAT, for tests and benchmarks: a core module written in
//! the text format, with the world of `wit/` embedded and wrapped by
//! `wit-component`, as component tooling would produce it.

/// Why a WAT module could not be made into a component.
#[derive(Debug, thiserror::Error)]
#[error("cannot build a component from WAT: {0}")]
pub struct EncodeError(String);

fn err(e: impl std::fmt::Display) -> EncodeError {
    EncodeError(format!("{e:#}"))
}

/// Encodes the core module `wat` as a component of `world` in `wit/`
/// (`function`, the world functions are written against).
pub fn component_from_wat(wat: &str, world: &str) -> Result<Vec<u8>, EncodeError> {
    let mut module = wat::parse_str(wat).map_err(err)?;
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/wit"))
        .map_err(err)?;
    let world = resolve.select_world(&[pkg], Some(world)).map_err(err)?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(err)?;
    wit_component::ComponentEncoder::default()
        .module(&module)
        .map_err(err)?
        .validate(true)
        .encode()
        .map_err(err)
}

/// A component whose join hook allows everyone and whose event handler runs
/// `event_body` (WAT instructions leaving the result's address: an `ok` is
/// a 0 byte there). `imports` and `extra` (functions, data) are placed in
/// the module; it has one page of memory and a bump allocator.
pub fn handler_component(
    imports: &str,
    event_body: &str,
    extra: &str,
) -> Result<Vec<u8>, EncodeError> {
    let wat = format!(
        r#"(module
      {imports}
      (memory (export "memory") 1)
      (global $heap (mut i32) (i32.const 4096))
      (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
        (local $p i32)
        (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
        (global.set $heap (i32.add (local.get $p) (local.get 3)))
        (local.get $p))
      {extra}
      (func (export "switchboard:functions/handler@0.1.0#on-joining")
        (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
        (i32.store8 (i32.const 256) (i32.const 0)) (i32.const 256))
      (func (export "switchboard:functions/handler@0.1.0#on-event")
        (param i32 i32 i32 i32 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)
        {event_body}))"#
    );
    component_from_wat(&wat, "function")
}
