//! `metrics`: counters and histograms under the plugin's name.

use crate::bindings::trunkline::policy::metrics::Host;
use crate::state::HostState;

impl Host for HostState {
    fn counter(&mut self, name: String, delta: u64) {
        if let Some(s) = self.scope.of_call() {
            s.services.metrics.counter(&s.plugin, &name, delta);
        }
    }

    fn histogram(&mut self, name: String, value: f64) {
        if let Some(s) = self.scope.of_call() {
            s.services.metrics.histogram(&s.plugin, &name, value);
        }
    }
}
