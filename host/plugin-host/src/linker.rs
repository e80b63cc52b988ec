//! The one place that links every host interface: WASI (empty context) and
//! the `trunkline:policy` imports.

use wasmtime::component::{HasSelf, Linker};
use wasmtime::Engine;

use crate::bindings::Policy;
use crate::state::HostState;

pub(crate) fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Policy::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}
