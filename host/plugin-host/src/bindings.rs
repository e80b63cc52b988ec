//! The only `bindgen!` of the host: Rust types for `wit/` (the single source of truth).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
    additional_derives: [PartialEq],
    with: {
        // A hook's `call` and `request` handles stand for the call and the
        // request the store is running a hook for (`HostState::messages`);
        // they carry no data themselves.
        "trunkline:policy/types.call": crate::message::CallHandle,
        "trunkline:policy/types.request": crate::message::RequestHandle,
    },
});
