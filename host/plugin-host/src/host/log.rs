//! `log`: plugin log lines, tagged and budgeted.

use crate::bindings::trunkline::policy::log::{Host, Level};
use crate::state::HostState;

/// Longest message kept; the rest is cut.
const MAX_MESSAGE: usize = 4096;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        let mut msg = message.as_str();
        if msg.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg = &msg[..end];
        }
        let s = &self.scope;
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(plugin = %s.plugin, version = %s.version, call_id = %s.call_id, "{msg}")
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
    }
}
