//! `numbers`: what the call's account owns.

use crate::bindings::trunkline::policy::numbers::Host;
use crate::state::HostState;

impl Host for HostState {
    fn is_owned(&mut self, number: String) -> bool {
        if !self.scope.assigned {
            return false;
        }
        self.scope.services.numbers.is_owned(&self.scope.account, &number)
    }

    fn is_verified_caller_id(&mut self, number: String) -> bool {
        if !self.scope.assigned {
            return false;
        }
        self.scope.services.numbers.is_verified_caller_id(&self.scope.account, &number)
    }

    fn label(&mut self, number: String) -> Option<String> {
        if !self.scope.assigned {
            return None;
        }
        self.scope.services.numbers.label(&self.scope.account, &number)
    }
}
