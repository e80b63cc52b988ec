//! `numbers`: what the call's account owns.

use crate::bindings::trunkline::policy::numbers::Host;
use crate::state::HostState;

impl Host for HostState {
    fn is_owned(&mut self, number: String) -> bool {
        self.scope.of_call().is_some_and(|s| s.services.numbers.load().is_owned(&s.account, &number))
    }

    fn is_verified_caller_id(&mut self, number: String) -> bool {
        self.scope.of_call().is_some_and(|s| s.services.numbers.load().is_verified_caller_id(&s.account, &number))
    }

    fn label(&mut self, number: String) -> Option<String> {
        let s = self.scope.of_call()?;
        s.services.numbers.load().label(&s.account, &number)
    }
}
