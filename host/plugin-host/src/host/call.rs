//! `types.call`: the call a running hook is about, read part by part.
//!
//! A hook receives a borrowed handle (it cannot outlive the hook: the
//! component model ends the loan when the hook returns). Each method copies
//! one part into the sandbox, so a plugin pays for what it reads.

use std::sync::LazyLock;

use wasmtime::component::Resource;

use crate::bindings::trunkline::policy::types::{
    Direction, HostCall, MediaFacts, Party, RecordingMode, Transport, Variable,
};
use crate::message::{CallHandle, CallRecord};
use crate::state::HostState;

/// What a handle reads if no hook is running. Cannot happen (a handle only
/// exists during a hook, and the hook's call is set for exactly that
/// time), but the methods cannot fail, so they answer something empty.
static NO_CALL: LazyLock<CallRecord> = LazyLock::new(|| {
    let nobody = Party { display: None, user: None, host: String::new() };
    CallRecord {
        call_id: String::new(),
        direction: Direction::Termination,
        account_id: String::new(),
        trunk_id: String::new(),
        trunk_name: String::new(),
        from: nobody.clone(),
        to: nobody.clone(),
        request_uri: nobody,
        source_address: String::new(),
        transport: Transport::Udp,
        variables: Vec::new(),
        media: MediaFacts { anchored: false, secure: false, codecs: Vec::new(), recording: false },
    }
});

impl HostState {
    /// The running hook's call.
    fn call(&self) -> &CallRecord {
        self.messages.call.as_deref().unwrap_or(&NO_CALL)
    }
}

impl HostCall for HostState {
    fn call_id(&mut self, _: Resource<CallHandle>) -> String {
        self.call().call_id.clone()
    }

    fn direction(&mut self, _: Resource<CallHandle>) -> Direction {
        self.call().direction
    }

    fn account_id(&mut self, _: Resource<CallHandle>) -> String {
        self.call().account_id.clone()
    }

    fn trunk_id(&mut self, _: Resource<CallHandle>) -> String {
        self.call().trunk_id.clone()
    }

    fn trunk_name(&mut self, _: Resource<CallHandle>) -> String {
        self.call().trunk_name.clone()
    }

    fn from(&mut self, _: Resource<CallHandle>) -> Party {
        self.call().from.clone()
    }

    fn to(&mut self, _: Resource<CallHandle>) -> Party {
        self.call().to.clone()
    }

    fn request_uri(&mut self, _: Resource<CallHandle>) -> Party {
        self.call().request_uri.clone()
    }

    fn source_address(&mut self, _: Resource<CallHandle>) -> String {
        self.call().source_address.clone()
    }

    fn transport(&mut self, _: Resource<CallHandle>) -> Transport {
        self.call().transport
    }

    fn variables(&mut self, _: Resource<CallHandle>) -> Vec<Variable> {
        self.call().variables.clone()
    }

    fn media(&mut self, _: Resource<CallHandle>) -> MediaFacts {
        self.call().media.clone()
    }

    /// Granted in `pre-dial` on an anchored call; the chain hands the
    /// request to the engine when the hook returns.
    fn start_recording(&mut self, _: Resource<CallHandle>, mode: RecordingMode) -> bool {
        let allowed = self.messages.may_record && self.call().media.anchored;
        if allowed {
            self.messages.recording = Some(mode);
        }
        allowed
    }

    /// Handles are only ever lent to a plugin, never given: nothing to free.
    fn drop(&mut self, _: Resource<CallHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}
