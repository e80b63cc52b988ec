//! The only `bindgen!` of the host: Rust types for `wit/` (the single source of truth).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
    additional_derives: [PartialEq],
});
