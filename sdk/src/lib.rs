//! # trunkline-sdk
//!
//! Write Trunkline policy plugins in plain Rust. A plugin is a type that
//! implements [`Policy`] (every hook has a default: "continue, change
//! nothing"), exported by putting [`#[policy]`](macro@policy) on the impl.
//! Build it for `wasm32-wasip2` and drop the `.wasm` file into the router's
//! plugins directory.
//!
//! ```no_run
//! use trunkline_sdk::{policy, Call, Decision, InviteDecision, Policy, Request};
//!
//! #[derive(Default)]
//! struct BlockAnonymous;
//!
//! #[policy]
//! impl Policy for BlockAnonymous {
//!     fn on_invite(&self, call: &Call, _request: &Request) -> InviteDecision {
//!         if call.from().user.is_none() {
//!             return Decision::reject(403, "Anonymous calls are not accepted");
//!         }
//!         Decision::proceed()
//!     }
//! }
//! ```
//!
//! The same code compiles for the host target, where the host capabilities
//! ([`kv`], [`clock`], [`numbers`], [`config`], [`log`], [`metrics`]) are
//! backed by an in-memory fake that tests control through
//! [`testing::Harness`]. Plugin authors unit-test with `cargo test`, no SIP
//! network and no Wasm runtime needed.
//!
//! This crate is not the host: it never runs plugins, it only describes them.
#![deny(missing_docs)]

mod call;
mod decisions;
mod headers;
mod messages;
mod policy;
mod wit_helpers;

pub mod schedule;

pub mod clock;
pub mod config;
pub mod counter;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod numbers;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use call::{Call, CallData};
pub use decisions::Decision;
pub use headers::Headers;
pub use messages::{Request, Response};
pub use policy::Policy;
#[doc(inline)]
pub use trunkline_sip_core::NameAddr;
#[doc(inline)]
pub use trunkline_sip_core::E164;

// Each re-exported WIT type carries an example; its description comes from wit/.
/// ```
/// use trunkline_sdk::{DialDecision, HeaderEdit};
/// let d = DialDecision::edit(vec![HeaderEdit::add("X-Route", "primary")]);
/// ```
#[doc(inline)]
pub use wit::exports::trunkline::policy::hooks::DialDecision;
/// ```
/// let f = trunkline_sdk::Fallback::TwimlUrl("https://dr.example.com/twiml".into());
/// ```
#[doc(inline)]
pub use wit::exports::trunkline::policy::hooks::Fallback;
/// ```
/// use trunkline_sdk::HookSet;
/// let hooks = HookSet::ON_INVITE | HookSet::PRE_DIAL;
/// assert_ne!(hooks, HookSet::empty());
/// ```
#[doc(inline)]
pub use wit::exports::trunkline::policy::hooks::HookSet;
/// ```
/// let d: trunkline_sdk::InviteDecision = trunkline_sdk::Decision::reject(403, "Forbidden");
/// ```
#[doc(inline)]
pub use wit::exports::trunkline::policy::hooks::InviteDecision;
/// ```
/// let d = trunkline_sdk::RedirectDecision::NextTarget;
/// ```
#[doc(inline)]
pub use wit::exports::trunkline::policy::hooks::RedirectDecision;
/// ```
/// use trunkline_sdk::{Selection, Target};
/// let s = Selection::Ordered(vec![Target::new("sip:pbx1.example.com"), Target::new("sip:pbx2.example.com")]);
/// ```
#[doc(inline)]
pub use wit::exports::trunkline::policy::hooks::Selection;

/// Export a [`Policy`] impl as the plugin's hooks.
///
/// Put it on the `impl Policy for YourType` block. The plugin then tells the
/// host which hooks that block defines, and the host calls only those: a
/// hook left to its default costs a call nothing, not even an instance.
/// The type must implement [`Default`]; a value is created for each hook
/// call (instances are per call, so keep state in call variables or
/// [`kv`], not in the struct).
///
/// ```no_run
/// use trunkline_sdk::{policy, Call, Decision, Policy, Request, InviteDecision};
/// #[derive(Default)]
/// struct Noop;
/// #[policy]
/// impl Policy for Noop {
///     fn on_invite(&self, _: &Call, _: &Request) -> InviteDecision {
///         Decision::proceed()
///     }
/// }
/// ```
pub use trunkline_sdk_macros::policy;
/// ```
/// let call = trunkline_sdk::testing::CallBuilder::termination().build();
/// assert_eq!(call.direction(), trunkline_sdk::Direction::Termination);
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Direction;
/// ```
/// # fn f(s: &trunkline_sdk::Summary) {
/// let caller_hung_up = s.hangup_by == trunkline_sdk::HangupBy::Caller;
/// # }
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::HangupBy;
/// ```
/// let h = trunkline_sdk::Header::new("X-Tier", "gold");
/// assert_eq!(h.name, "X-Tier");
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Header;
/// ```
/// let e = trunkline_sdk::HeaderEdit::remove("Remote-Party-ID");
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::HeaderEdit;
/// ```
/// let mut t = trunkline_sdk::Target::new("sip:pbx.example.com");
/// t.health = trunkline_sdk::Health::Down;
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Health;
/// ```
/// let e = trunkline_sdk::InviteEdits::new().set_variable("tier", "gold");
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::InviteEdits;
/// ```
/// let call = trunkline_sdk::testing::CallBuilder::origination().build();
/// let facts: &trunkline_sdk::MediaFacts = call.media();
/// assert!(facts.anchored && !facts.secure);
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::MediaFacts;
/// ```
/// # fn f(s: &trunkline_sdk::Summary) {
/// let answered = s.outcome == trunkline_sdk::Outcome::Answered;
/// # }
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Outcome;
/// ```
/// let call = trunkline_sdk::testing::CallBuilder::origination().from("+14155550123").build();
/// let caller: &trunkline_sdk::Party = call.from();
/// assert_eq!(caller.host, "carrier.example");
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Party;
/// How [`Call::start_recording`] records: `Single` (mixed) or `Dual`.
#[doc(inline)]
pub use wit::trunkline::policy::types::RecordingMode;
/// ```
/// let r = trunkline_sdk::Reject::new(486, "Busy Here");
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Reject;
/// ```
/// # fn f(s: &trunkline_sdk::Summary) {
/// let talked_minutes = s.duration_ms / 60_000;
/// # }
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Summary;
/// ```
/// let t = trunkline_sdk::Target::new("sip:pbx.example.com;transport=tcp");
/// assert_eq!(t.transport, trunkline_sdk::Transport::Tcp);
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Target;
/// ```
/// assert_eq!(trunkline_sdk::Transport::from_uri("sips:pbx.example.com"), trunkline_sdk::Transport::Tls);
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Transport;
/// ```
/// let call = trunkline_sdk::testing::CallBuilder::origination().variable("tier", "gold").build();
/// let v: &trunkline_sdk::Variable = &call.variables()[0];
/// assert_eq!((v.name.as_str(), v.value.as_str()), ("tier", "gold"));
/// ```
#[doc(inline)]
pub use wit::trunkline::policy::types::Variable;

/// Every hook (what [`export_policy!`] declares).
#[doc(hidden)]
pub fn __all_hooks() -> HookSet {
    // wit-bindgen's flags have no `all()`.
    HookSet::ON_INVITE
        | HookSet::SELECT_URI
        | HookSet::ON_REDIRECT
        | HookSet::PRE_DIAL
        | HookSet::ON_FAILURE
        | HookSet::ON_CALL_END
}

/// Run once per instance by `init`, before any hook and off the call path:
/// the start-up a first hook call would otherwise pay (the allocator's first
/// use grows the heap).
#[doc(hidden)]
pub fn __start_up() {
    std::hint::black_box(Vec::<u8>::with_capacity(256));
}

/// Generated bindings for `wit/`. Plugin authors never need this module.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "::trunkline_sdk::wit",
        generate_all,
        additional_derives: [PartialEq],
    });
}

/// Export a [`Policy`] implementation as the plugin's hooks, all of them.
///
/// Prefer [`#[policy]`](macro@policy) on the impl, which exports only the
/// hooks the impl defines. This macro is for a type whose impl is written
/// elsewhere (e.g. by another macro): the host then calls every hook, and
/// the ones not overridden return their default.
///
/// ```no_run
/// #[derive(Default)]
/// struct Noop;
/// impl trunkline_sdk::Policy for Noop {}
/// trunkline_sdk::export_policy!(Noop);
/// ```
#[macro_export]
macro_rules! export_policy {
    ($ty:ty) => {
        $crate::export_policy!(@hooks $ty, $crate::__all_hooks());
    };
    (@hooks $ty:ty, $hooks:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wit::exports::trunkline::policy::hooks as __hooks;
            use $crate::wit::trunkline::policy::types as __types;
            struct __TrunklineExport;
            impl __hooks::Guest for __TrunklineExport {
                fn init() -> __hooks::HookSet {
                    $crate::__start_up();
                    $hooks
                }
                fn on_invite(call: &__types::Call, request: &__types::Request) -> __hooks::InviteDecision {
                    let (call, request) = ($crate::Call::__from_host(call), $crate::Request::__from_host(request));
                    $crate::Policy::on_invite(&<$ty as Default>::default(), &call, &request)
                }
                fn select_uri(call: &__types::Call, candidates: Vec<$crate::Target>) -> __hooks::Selection {
                    let call = $crate::Call::__from_host(call);
                    $crate::Policy::select_uri(&<$ty as Default>::default(), &call, &candidates)
                }
                fn on_redirect(call: &__types::Call, response: __types::Response) -> __hooks::RedirectDecision {
                    let (call, response) = ($crate::Call::__from_host(call), $crate::Response::__from_host(response));
                    $crate::Policy::on_redirect(&<$ty as Default>::default(), &call, &response)
                }
                fn pre_dial(
                    call: &__types::Call,
                    request: &__types::Request,
                    target: $crate::Target,
                ) -> __hooks::DialDecision {
                    let (call, request) = ($crate::Call::__from_host(call), $crate::Request::__from_host(request));
                    $crate::Policy::pre_dial(&<$ty as Default>::default(), &call, &request, &target)
                }
                fn on_failure(call: &__types::Call, last: Option<__types::Response>) -> __hooks::Fallback {
                    let (call, last) = ($crate::Call::__from_host(call), last.map($crate::Response::__from_host));
                    $crate::Policy::on_failure(&<$ty as Default>::default(), &call, last.as_ref())
                }
                fn on_call_end(call: &__types::Call, summary: $crate::Summary) {
                    let call = $crate::Call::__from_host(call);
                    $crate::Policy::on_call_end(&<$ty as Default>::default(), &call, &summary)
                }
            }
            $crate::wit::__export_policy_world!(__TrunklineExport with_types_in $crate::wit);
        };
    };
}
