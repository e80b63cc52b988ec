//! `config`: the plugin's own table, looked up by dotted path.

use crate::bindings::trunkline::policy::config::{Host, Value};
use crate::state::HostState;

impl Host for HostState {
    fn get(&mut self, path: String) -> Option<Value> {
        Some(match self.scope.config.lookup(&path)? {
            toml::Value::String(s) => Value::Text(s.clone()),
            toml::Value::Integer(i) => Value::Integer(*i),
            toml::Value::Float(f) => Value::Float(*f),
            toml::Value::Boolean(b) => Value::Boolean(*b),
            toml::Value::Datetime(d) => Value::Text(d.to_string()),
            toml::Value::Array(a) => Value::Array(a.len() as u32),
            toml::Value::Table(t) => Value::Table(t.keys().cloned().collect()),
        })
    }
}
