//! Which hook of a component has another signature than this host's WIT.
//!
//! wasmtime checks an export's type only when the export is looked up as a
//! typed function, which the generated bindings do while instantiating; a
//! mismatch then surfaces as an untyped error. When a plugin fails to
//! start, the runtime asks here, hook by hook, so that a plugin built
//! against another version of the WIT is reported as such, with the hook
//! named, and not as a plugin whose start-up failed.

use wasmtime::component::{ComponentNamedList, ComponentType, Func, Lift, Lower, Resource};
use wasmtime::{Engine, Store};

use crate::bindings::exports::trunkline::policy::hooks::{
    DialDecision, Fallback, HookSet, InviteDecision, RedirectDecision, Selection,
};
use crate::bindings::trunkline::policy::types::{Response, Summary, Target};
use crate::limits::Limits;
use crate::message::{CallHandle, RequestHandle};
use crate::plugin::Plugin;
use crate::state::{HostState, Services};

/// The exported interface the hooks live in.
const HOOKS_INTERFACE: &str = "trunkline:policy/hooks@0.2.0";

/// The first hook `plugin` exports with a signature other than this host's
/// WIT, if any. `None` also when the component cannot be instantiated at
/// all (its start-up failure is then the error to report).
pub(crate) fn mismatched_hook(
    engine: &Engine,
    services: &std::sync::Arc<Services>,
    plugin: &Plugin,
    limits: &Limits,
) -> Option<&'static str> {
    let mut store = crate::warm::new_store(engine, services, plugin, limits);
    let instance = plugin.pre.instance_pre().instantiate(&mut store).ok()?;
    let iface = instance.get_export_index(&mut store, None, HOOKS_INTERFACE)?;
    let func = |store: &mut Store<HostState>, name: &str| -> Option<Func> {
        let index = instance.get_export_index(&mut *store, Some(&iface), name)?;
        instance.get_func(&mut *store, index)
    };
    type Call = Resource<CallHandle>;
    type Request = Resource<RequestHandle>;
    let checks: [(&'static str, Check); 7] = [
        ("init", |f, s| fits::<(), (HookSet,)>(f, s)),
        ("on-invite", |f, s| fits::<(Call, Request), (InviteDecision,)>(f, s)),
        ("select-uri", |f, s| fits::<(Call, Vec<Target>), (Selection,)>(f, s)),
        ("on-redirect", |f, s| fits::<(Call, Response), (RedirectDecision,)>(f, s)),
        ("pre-dial", |f, s| fits::<(Call, Request, Target), (DialDecision,)>(f, s)),
        ("on-failure", |f, s| fits::<(Call, Option<Response>), (Fallback,)>(f, s)),
        ("on-call-end", |f, s| fits::<(Call, Summary), ()>(f, s)),
    ];
    checks.into_iter().find_map(|(name, check)| match func(&mut store, name) {
        Some(f) if !check(&f, &store) => Some(name),
        _ => None,
    })
}

/// Whether a hook export has this host's signature.
type Check = fn(&Func, &Store<HostState>) -> bool;

/// Whether `f` has the component type of `Params -> Results`.
fn fits<Params, Results>(f: &Func, store: &Store<HostState>) -> bool
where
    Params: ComponentNamedList + Lower + ComponentType,
    Results: ComponentNamedList + Lift + ComponentType,
{
    f.typed::<Params, Results>(store).is_ok()
}
