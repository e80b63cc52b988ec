//! State shared with other routers on engines the operator already runs
//! (`[store]`): plugin kv in Redis.

pub mod breaker;
pub mod redis_kv;
