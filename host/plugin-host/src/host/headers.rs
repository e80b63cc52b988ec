//! `headers`: the headers of the messages a running hook is about.

use crate::bindings::trunkline::policy::headers::{Host, Message};
use crate::bindings::trunkline::policy::types::Header;
use crate::message::HeaderList;
use crate::state::HostState;

impl HostState {
    fn message(&self, which: Message) -> Option<&HeaderList> {
        match which {
            Message::Inbound => self.messages.inbound.as_ref(),
            Message::Current => self.messages.current.as_ref(),
        }
    }
}

impl Host for HostState {
    fn first(&mut self, which: Message, name: String) -> Option<String> {
        self.message(which)?.first(&name).map(str::to_owned)
    }

    fn get(&mut self, which: Message, name: String) -> Vec<String> {
        self.message(which).map(|hs| hs.named(&name).map(str::to_owned).collect()).unwrap_or_default()
    }

    fn all(&mut self, which: Message) -> Vec<Header> {
        self.message(which).map(|hs| hs.to_vec()).unwrap_or_default()
    }
}
