//! `#[trunkline_sdk::policy]`: exports a `Policy` impl as the plugin's
//! hooks, and tells the host which hooks the impl defines so that it never
//! enters the plugin for the others. Use it through `trunkline-sdk`.
//!
//! Built on `proc_macro` alone: it only needs the impl's self type and the
//! names of its `fn` items, so it pulls in no parser crate.

use proc_macro::{Delimiter, TokenStream, TokenTree};

const USAGE: &str = "#[trunkline_sdk::policy] goes on `impl Policy for YourType { ... }`";

/// See `trunkline_sdk::policy`.
#[proc_macro_attribute]
pub fn policy(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("#[trunkline_sdk::policy] takes no arguments");
    }
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let body = match tokens.last() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => g.stream(),
        _ => return error(USAGE),
    };
    let is_ident = |t: &TokenTree, s: &str| matches!(t, TokenTree::Ident(i) if i.to_string() == s);
    let Some(impl_at) = tokens.iter().position(|t| is_ident(t, "impl")) else { return error(USAGE) };
    let Some(for_at) = tokens.iter().position(|t| is_ident(t, "for")) else { return error(USAGE) };
    if for_at < impl_at || !tokens[..for_at].last().is_some_and(|t| is_ident(t, "Policy")) {
        return error(USAGE);
    }
    if matches!(&tokens[impl_at + 1], TokenTree::Punct(p) if p.as_char() == '<') {
        return error(
            "#[trunkline_sdk::policy]: a generic impl cannot be exported; implement Policy for a concrete type",
        );
    }
    let ty: TokenStream = tokens[for_at + 1..tokens.len() - 1].iter().cloned().collect();
    let body: Vec<TokenTree> = body.into_iter().collect();
    // Every `fn` of `impl Policy` is a hook (rustc refuses any other), and
    // the WIT flag of hook `on_invite` is `HookSet::ON_INVITE`: no list of
    // hooks to keep in step with `wit/hooks.wit` here.
    let defined: Vec<String> = body
        .windows(2)
        .filter(|w| is_ident(&w[0], "fn"))
        .filter_map(|w| match &w[1] {
            TokenTree::Ident(name) => Some(name.to_string().to_uppercase()),
            _ => None,
        })
        .collect();
    let flags = if defined.is_empty() {
        "::trunkline_sdk::HookSet::empty()".to_owned()
    } else {
        defined.iter().map(|f| format!("::trunkline_sdk::HookSet::{f}")).collect::<Vec<_>>().join(" | ")
    };
    let export: TokenStream = format!("::trunkline_sdk::export_policy!(@hooks {ty}, {flags});")
        .parse()
        .expect("the export invocation is valid Rust");
    let mut out = item;
    out.extend(export);
    out
}

fn error(msg: &str) -> TokenStream {
    format!("compile_error!({msg:?});").parse().expect("compile_error! is valid Rust")
}
