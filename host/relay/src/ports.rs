//! The port pairs the call engine takes: the sans-IO pool, with each pair
//! bound (RTP and RTCP sockets, registered with a worker) before it is
//! handed out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use trunkline_media_core::ports::{Exhausted, PortPool, PortSource, RangeError};

use crate::table::Shared;

/// See the module docs. A pair that cannot be bound (another program holds
/// one of its ports) is retired and the next one tried.
pub struct BoundPorts {
    pool: PortPool,
    shared: Arc<Shared>,
}

impl BoundPorts {
    pub(crate) fn new(shared: Arc<Shared>, rest: Duration) -> Result<BoundPorts, RangeError> {
        Ok(BoundPorts { pool: PortPool::new(shared.first..=shared.last, rest)?, shared })
    }

    /// Hand out pairs from the `seed`-th free one (modulo their number) on.
    pub fn start_at(&mut self, seed: u64) {
        self.pool.rotate(seed);
    }

    /// The pool (pairs in use, resting, retired).
    pub fn pool(&self) -> &PortPool {
        &self.pool
    }
}

impl PortSource for BoundPorts {
    fn take(&mut self, now: Instant) -> Result<u16, Exhausted> {
        loop {
            let port = self.pool.take(now)?;
            match self.shared.bind_pair(port) {
                Ok(()) => return Ok(port),
                // Out of descriptors or buffers: the pair is fine, the
                // process is full; it rests and the call is refused.
                Err(e) if is_resource_limit(&e) => {
                    tracing::warn!("media ports {port}-{}: {e}: call refused (raise the open files limit)", port + 1);
                    self.pool.release(now, port);
                    let p = &self.pool;
                    return Err(Exhausted {
                        first: self.shared.first,
                        last: self.shared.last,
                        in_use: p.in_use(),
                        resting: p.resting(),
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        "media ports {port}-{} cannot be bound on {} ({e}): never used",
                        port + 1,
                        self.shared.bind
                    );
                    self.pool.retire(port);
                }
            }
        }
    }

    fn release(&mut self, now: Instant, port: u16) {
        self.pool.release(now, port);
    }

    fn in_use(&self) -> usize {
        self.pool.in_use()
    }
}

fn is_resource_limit(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
