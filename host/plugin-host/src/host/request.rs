//! `types.request`: the request a running hook is about (`on-invite`'s
//! inbound INVITE, `pre-dial`'s outgoing one), read part by part like the
//! call (`host/call.rs`).

use wasmtime::component::Resource;

use crate::bindings::trunkline::policy::types::HostRequest;
use crate::message::{RequestHandle, RequestRecord};
use crate::state::HostState;

/// What a handle reads if no request is set. Cannot happen (only the hooks
/// that set one receive a handle), but the methods cannot fail.
static NO_REQUEST: RequestRecord = RequestRecord { method: String::new(), uri: String::new(), body: String::new() };

impl HostState {
    /// The running hook's request.
    fn request(&self) -> &RequestRecord {
        self.messages.request.as_deref().unwrap_or(&NO_REQUEST)
    }
}

impl HostRequest for HostState {
    fn method(&mut self, _: Resource<RequestHandle>) -> String {
        self.request().method.clone()
    }

    fn uri(&mut self, _: Resource<RequestHandle>) -> String {
        self.request().uri.clone()
    }

    fn body(&mut self, _: Resource<RequestHandle>) -> String {
        self.request().body.clone()
    }

    /// Handles are only ever lent to a plugin, never given: nothing to free.
    fn drop(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}
