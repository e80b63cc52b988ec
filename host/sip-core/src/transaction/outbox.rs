//! What a transaction has to send and to tell, waiting to be polled.

use std::collections::VecDeque;

use crate::message::Message;

/// Queued messages and events of one transaction, and (for server
/// transactions) the last response, which retransmitted requests get again.
#[derive(Debug)]
pub(crate) struct Outbox<E> {
    transmits: VecDeque<Message>,
    events: VecDeque<E>,
    last_response: Option<Message>,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Outbox { transmits: VecDeque::new(), events: VecDeque::new(), last_response: None }
    }
}

impl<E> Outbox<E> {
    /// An outbox with `first` already queued (a client transaction's request).
    pub(crate) fn sending(first: Message) -> Self {
        let mut o = Self::default();
        o.send(first);
        o
    }

    pub(crate) fn send(&mut self, m: Message) {
        self.transmits.push_back(m);
    }

    /// Queue a response and remember it as the one to repeat.
    pub(crate) fn respond(&mut self, r: Message) {
        self.transmits.push_back(r.clone());
        self.last_response = Some(r);
    }

    /// Queue the last response again (for a retransmitted request or Timer G).
    /// Send the last response again; false if there is none yet.
    pub(crate) fn repeat_last(&mut self) -> bool {
        if let Some(r) = &self.last_response {
            self.transmits.push_back(r.clone());
            return true;
        }
        false
    }

    pub(crate) fn emit(&mut self, e: E) {
        self.events.push_back(e);
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Message> {
        self.transmits.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }
}
