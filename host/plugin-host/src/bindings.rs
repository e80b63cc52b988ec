//! The only `bindgen!` of the host: Rust types for `wit/` (the single source of truth).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
    additional_derives: [PartialEq],
    with: {
        // A hook's `call` handle stands for the call the store is running
        // a hook for (`HostState::messages`); it carries no data itself.
        "trunkline:policy/types.call": crate::message::CallHandle,
    },
});
