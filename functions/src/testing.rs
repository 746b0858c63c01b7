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
