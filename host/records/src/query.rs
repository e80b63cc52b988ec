//! Filters over the call records, shared by the admin API (`GET /calls?...`)
//! and `trunkline calls`: the same names, the same checks, the same errors.

use crate::OUTCOMES;

/// Most records one query returns.
pub const MAX_LIMIT: usize = 1000;
/// Records a query returns unless told.
pub const DEFAULT_LIMIT: usize = 50;

/// Which calls to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub trunk: Option<String>,
    /// The caller's or the called number (a leading `+` optional).
    pub number: Option<String>,
    /// Calls that started at or after this (Unix ms).
    pub since_ms: Option<i64>,
    pub outcome: Option<String>,
    pub limit: usize,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { trunk: None, number: None, since_ms: None, outcome: None, limit: DEFAULT_LIMIT }
    }
}

/// A value a filter's SQL binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlArg {
    Text(String),
    Int(i64),
}

impl Filter {
    /// The WHERE clause of this filter over the `calls` table (the same
    /// columns in every store) and the values it binds, in order (always
    /// bound, never spliced); `placeholder(n)` writes the n-th (from 1) in
    /// the store's syntax (`?1`, `$1`).
    pub fn sql_where(&self, placeholder: impl Fn(usize) -> String) -> (String, Vec<SqlArg>) {
        let mut clauses = Vec::new();
        let mut args = Vec::new();
        let mut bind = |arg: SqlArg| {
            args.push(arg);
            placeholder(args.len())
        };
        if let Some(t) = &self.trunk {
            clauses.push(format!("trunk = {}", bind(SqlArg::Text(t.clone()))));
        }
        if let Some(n) = &self.number {
            let p = bind(SqlArg::Text(n.trim_start_matches('+').to_owned()));
            clauses.push(format!("(ltrim(caller, '+') = {p} OR ltrim(called, '+') = {p})"));
        }
        if let Some(s) = self.since_ms {
            clauses.push(format!("started_at >= {}", bind(SqlArg::Int(s))));
        }
        if let Some(o) = &self.outcome {
            clauses.push(format!("outcome = {}", bind(SqlArg::Text(o.clone()))));
        }
        let clause = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        (clause, args)
    }
}

/// A filter's bad value: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

impl Filter {
    /// A filter from the query's parts, checked (`now_ms`: the wall clock).
    pub fn new(
        trunk: Option<String>,
        number: Option<String>,
        since: Option<&str>,
        outcome: Option<String>,
        limit: Option<usize>,
        now_ms: i64,
    ) -> Result<Filter, FilterError> {
        let since_ms = since.map(|s| parse_since(s, now_ms)).transpose()?;
        if let Some(o) = &outcome {
            if !OUTCOMES.contains(&o.as_str()) {
                return Err(FilterError {
                    field: "outcome",
                    message: format!("`{o}` is not one of {}", OUTCOMES.join(", ")),
                });
            }
        }
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(FilterError { field: "limit", message: format!("must be 1..={MAX_LIMIT}, not {limit}") });
        }
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(Filter { trunk: nonempty(trunk), number: nonempty(number), since_ms, outcome, limit })
    }
}

/// `--since`: a duration back from now (`90s`, `15m`, `1h`, `7d`), or an
/// RFC 3339 time (`2026-12-01T10:00:00Z`). Unix ms.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, FilterError> {
    let bad = || FilterError {
        field: "since",
        message: format!("`{s}` is neither a duration back from now (30s, 15m, 1h, 7d) nor an RFC 3339 time"),
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let unit = s.chars().last().ok_or_else(bad)?;
    let ms_per = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    let n: i64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    Ok(now_ms.saturating_sub(n.saturating_mul(ms_per)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_becomes_a_where_clause_of_bound_values_in_either_store_syntax() {
        let f =
            Filter::new(Some("t".into()), Some("+1555".into()), Some("1s"), Some("failed".into()), None, 5000).unwrap();
        let (clause, args) = f.sql_where(|n| format!("?{n}"));
        assert_eq!(
            clause,
            "WHERE trunk = ?1 AND (ltrim(caller, '+') = ?2 OR ltrim(called, '+') = ?2) AND started_at >= ?3 AND outcome = ?4"
        );
        assert_eq!(
            args,
            [SqlArg::Text("t".into()), SqlArg::Text("1555".into()), SqlArg::Int(4000), SqlArg::Text("failed".into())]
        );
        let (clause, _) = f.sql_where(|n| format!("${n}"));
        assert!(clause.starts_with("WHERE trunk = $1 AND (ltrim(caller, '+') = $2 OR"), "{clause}");
        assert_eq!(Filter::default().sql_where(|n| format!("?{n}")), (String::new(), vec![]));
    }

    #[test]
    fn since_takes_durations_and_times_and_names_itself_when_wrong() {
        assert_eq!(parse_since("90s", 100_000), Ok(10_000));
        assert_eq!(parse_since("1h", 4_000_000), Ok(400_000));
        assert_eq!(parse_since("2d", 0), Ok(-172_800_000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z", 0), Ok(1000));
        for bad in ["", "h", "1x", "-1h", "1.5h", "yesterday"] {
            assert_eq!(parse_since(bad, 0).unwrap_err().field, "since", "{bad}");
        }
    }

    #[test]
    fn filters_are_checked_and_name_the_field() {
        let e = Filter::new(None, None, None, Some("lost".into()), None, 0).unwrap_err();
        assert_eq!(e.field, "outcome");
        assert!(e.to_string().starts_with("outcome: `lost` is not one of answered"), "{e}");
        assert_eq!(Filter::new(None, None, None, None, Some(0), 0).unwrap_err().field, "limit");
        assert_eq!(Filter::new(None, None, None, None, Some(1001), 0).unwrap_err().field, "limit");
        let f = Filter::new(Some("t".into()), Some("".into()), Some("1s"), Some("failed".into()), None, 5000).unwrap();
        assert_eq!((f.trunk.as_deref(), f.number.as_deref(), f.since_ms), (Some("t"), None, Some(4000)));
    }
}
