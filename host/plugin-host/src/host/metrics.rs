//! `metrics`: counters and histograms under the plugin's name.

use crate::bindings::trunkline::policy::metrics::Host;
use crate::state::HostState;

impl Host for HostState {
    fn counter(&mut self, name: String, delta: u64) {
        if !self.scope.assigned {
            return;
        }
        self.scope.services.metrics.counter(&self.scope.plugin, &name, delta);
    }

    fn histogram(&mut self, name: String, value: f64) {
        if !self.scope.assigned {
            return;
        }
        self.scope.services.metrics.histogram(&self.scope.plugin, &name, value);
    }
}
