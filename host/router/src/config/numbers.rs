//! The number directory: every number of every trunk (the `numbers` lists
//! of `[[trunk]]` and the rows of `numbers_file`), found in O(1) by the
//! INVITE that dials it, by the termination caller-ID check and by
//! plugins (`numbers` interface).
//!
//! A number is kept as its E.164 digits read as an integer (E.164 has no
//! leading zero, so each digit string has a value of its own) with its
//! trunk and label: 16 bytes in the table instead of a string, so a
//! million numbers take tens of megabytes, not hundreds.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// Every number, its trunk and its label.
#[derive(Clone, Debug, Default)]
pub struct NumberIndex {
    owners: HashMap<u64, Owner>,
    /// Distinct labels; `Owner::label` is 1 + an index here (0: none).
    labels: Vec<Box<str>>,
    /// Numbers per trunk.
    counts: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owner {
    trunk: u32,
    label: u32,
}

/// The key of an E.164 number (`+` and 7 to 15 digits, no leading zero);
/// `None` for anything else, which no trunk can own.
pub(super) fn key(number: &str) -> Option<u64> {
    let digits = number.strip_prefix('+')?;
    if !(7..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    digits.bytes().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// The number of a key: its digits after `+`.
fn number_of(key: u64) -> String {
    format!("+{key}")
}

impl NumberIndex {
    /// The trunk (index into the settings' trunks) that owns `number`.
    pub fn trunk_of(&self, number: &str) -> Option<usize> {
        self.owners.get(&key(number)?).map(|o| o.trunk as usize)
    }

    /// The label of `number`, if it has one.
    pub fn label_of(&self, number: &str) -> Option<&str> {
        let o = self.owners.get(&key(number)?)?;
        o.label.checked_sub(1).map(|i| &*self.labels[i as usize])
    }

    /// Numbers in all.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// How many numbers trunk `trunk` owns.
    pub fn count_of(&self, trunk: usize) -> usize {
        self.counts.get(trunk).copied().unwrap_or(0)
    }

    /// Each trunk's numbers (by trunk index), sorted, at most `limit` of
    /// each (one walk of the whole table: for the admin API and `check`,
    /// not for calls).
    pub fn by_trunk(&self, limit: usize) -> Vec<Vec<String>> {
        let mut keys: Vec<Vec<u64>> = vec![Vec::new(); self.counts.len()];
        for (k, o) in &self.owners {
            keys[o.trunk as usize].push(*k);
        }
        keys.into_iter()
            .map(|mut k| {
                k.sort_unstable();
                k.truncate(limit);
                k.into_iter().map(number_of).collect()
            })
            .collect()
    }

    /// Every number with its trunk and label, sorted by number (a walk of
    /// the whole table: for diffs on reload).
    pub fn entries(&self) -> Vec<(String, usize, Option<&str>)> {
        let mut keys: Vec<(&u64, &Owner)> = self.owners.iter().collect();
        keys.sort_unstable_by_key(|(k, _)| **k);
        keys.into_iter()
            .map(|(k, o)| (number_of(*k), o.trunk as usize, o.label.checked_sub(1).map(|i| &*self.labels[i as usize])))
            .collect()
    }
}

/// What a reload does to one trunk's numbers: those it gains and those it
/// loses (at most [`SHOWN`] of each named, all counted), and how many
/// changed label.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct NumberDelta {
    pub added: Vec<String>,
    pub added_count: usize,
    pub removed: Vec<String>,
    pub removed_count: usize,
    pub relabelled: usize,
}

/// Numbers named per trunk in a reload's summary (the rest are counted).
pub(super) const SHOWN: usize = 10;

/// Per trunk name, what changed between `old` (trunks named `old_names`)
/// and `new`: two walks of the tables, no sorting of them.
pub(super) fn changes(
    old: &NumberIndex,
    old_names: &[&str],
    new: &NumberIndex,
    new_names: &[&str],
) -> std::collections::BTreeMap<String, NumberDelta> {
    let mut out: std::collections::BTreeMap<String, NumberDelta> = Default::default();
    let label = |x: &NumberIndex, o: &Owner| o.label.checked_sub(1).map(|i| x.labels[i as usize].clone());
    for (k, n) in &new.owners {
        let (name, before) = (new_names[n.trunk as usize], old.owners.get(k));
        match before {
            Some(o) if old_names[o.trunk as usize] == name => {
                if label(old, o) != label(new, n) {
                    out.entry(name.to_owned()).or_default().relabelled += 1;
                }
            }
            _ => {
                let d = out.entry(name.to_owned()).or_default();
                d.added_count += 1;
                d.added.push(number_of(*k));
            }
        }
    }
    for (k, o) in &old.owners {
        let name = old_names[o.trunk as usize];
        let kept = new.owners.get(k).is_some_and(|n| new_names[n.trunk as usize] == name);
        if !kept {
            let d = out.entry(name.to_owned()).or_default();
            d.removed_count += 1;
            d.removed.push(number_of(*k));
        }
    }
    for d in out.values_mut() {
        for list in [&mut d.added, &mut d.removed] {
            list.sort_unstable();
            list.truncate(SHOWN);
        }
    }
    out
}

/// Builds a [`NumberIndex`], refusing a number that two trunks (or two
/// rows) claim.
#[derive(Default)]
pub(super) struct IndexBuilder {
    index: NumberIndex,
    label_ids: HashMap<Box<str>, u32>,
}

/// Why a number was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Not E.164.
    NotE164,
    /// Already a number of this trunk (index).
    Taken(usize),
}

impl IndexBuilder {
    /// Room for `n` more numbers (a file's worth: one allocation).
    pub(super) fn reserve(&mut self, n: usize) {
        self.index.owners.reserve(n);
    }

    /// `number` belongs to trunk `trunk`, with `label`.
    pub(super) fn insert(&mut self, number: &str, trunk: usize, label: Option<&str>) -> Result<(), Refused> {
        let k = key(number).ok_or(Refused::NotE164)?;
        let label = match label.filter(|l| !l.is_empty()) {
            None => 0,
            Some(l) => match self.label_ids.get(l) {
                Some(&id) => id,
                None => {
                    self.index.labels.push(l.into());
                    let id = self.index.labels.len() as u32;
                    self.label_ids.insert(l.into(), id);
                    id
                }
            },
        };
        match self.index.owners.entry(k) {
            std::collections::hash_map::Entry::Occupied(o) => Err(Refused::Taken(o.get().trunk as usize)),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Owner { trunk: trunk as u32, label });
                if self.index.counts.len() <= trunk {
                    self.index.counts.resize(trunk + 1, 0);
                }
                self.index.counts[trunk] += 1;
                Ok(())
            }
        }
    }

    pub(super) fn finish(mut self) -> NumberIndex {
        self.index.owners.shrink_to_fit();
        self.index
    }
}

/// Read `numbers_file` (`text`, read from `path`; CSV: number, trunk,
/// label; the label optional; a first row `number,trunk,label` is a
/// header; `#` starts a comment) into `builder`. `trunks` are the trunks'
/// names in order. Errors name the file's line.
pub(super) fn read_file(
    path: &Path,
    text: &[u8],
    trunks: &[&str],
    builder: &mut IndexBuilder,
) -> Result<(), ConfigError> {
    let err = |line: u64, message: String| ConfigError {
        file: path.to_owned(),
        line: line as usize,
        column: 1,
        key: "numbers_file".into(),
        message,
    };
    // A row is ~30 bytes: room for them all at once.
    builder.reserve(text.len() / 24);
    let by_name: HashMap<&str, usize> = trunks.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut row = csv::StringRecord::new();
    let mut first = true;
    // The line of a byte offset, counted as the reader goes (the reader's
    // own line count skips blank lines).
    let (mut counted_to, mut line) = (0usize, 1u64);
    let mut line_at = |byte: u64| {
        let byte = (byte as usize).min(text.len());
        if byte > counted_to {
            line += text[counted_to..byte].iter().filter(|&&b| b == b'\n').count() as u64;
            counted_to = byte;
        }
        line
    };
    loop {
        let at = reader.position().byte();
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(at, |p| p.byte());
                let why = match e.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8 text", err.field() + 1),
                    _ => format!("not CSV: {e}"),
                };
                return Err(err(line_at(record_start(text, at)), why));
            }
        }
        let line = line_at(record_start(text, row.position().map_or(at, |p| p.byte())));
        if std::mem::take(&mut first) && row.get(0) == Some("number") && row.get(1) == Some("trunk") {
            continue; // the header
        }
        if row.len() == 1 && row[0].is_empty() {
            continue; // a blank line
        }
        if !(2..=3).contains(&row.len()) {
            return Err(err(line, format!("{} fields; a row is number,trunk[,label]", row.len())));
        }
        let (number, trunk) = (&row[0], &row[1]);
        let Some(&ti) = by_name.get(trunk) else {
            return Err(err(line, format!("trunk `{trunk}` is not a [[trunk]] of the configuration")));
        };
        match builder.insert(number, ti, row.get(2)) {
            Ok(()) => {}
            Err(Refused::NotE164) => return Err(err(line, format!("`{number}` is not E.164 (+ and 7..15 digits)"))),
            Err(Refused::Taken(other)) => {
                return Err(err(line, format!("{number} already belongs to trunk `{}`", trunks[other])))
            }
        }
    }
    Ok(())
}

/// Where the record that the reader says starts at `byte` really starts:
/// past the blank and comment lines it skipped.
fn record_start(text: &[u8], byte: u64) -> u64 {
    let mut at = byte as usize;
    loop {
        match text.get(at) {
            Some(b'\r' | b'\n') => at += 1,
            Some(b'#') => match text[at..].iter().position(|&b| b == b'\n') {
                Some(end) => at += end + 1,
                None => return text.len() as u64,
            },
            _ => return at as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sip_core::E164;

    #[test]
    fn a_number_keys_by_its_digits_and_nothing_else_keys() {
        assert_eq!(key("+14155550100"), Some(14_155_550_100));
        assert_eq!(key("+999999999999999"), Some(999_999_999_999_999));
        for bad in ["14155550100", "+0415555010", "+1415", "+1234567890123456", "+1 415 555", "+", "", "+1415555010x"] {
            assert_eq!(key(bad), None, "{bad}");
            assert!(E164::parse(bad).is_none(), "{bad}: the same rule as E164::parse");
        }
        assert_eq!(number_of(key("+442071838750").unwrap()), "+442071838750");
    }

    #[test]
    fn the_index_finds_trunks_and_labels_and_refuses_a_number_twice() {
        let mut b = IndexBuilder::default();
        b.insert("+14155550100", 0, Some("Support")).unwrap();
        b.insert("+14155550101", 2, Some("Support")).unwrap();
        b.insert("+14155550102", 2, None).unwrap();
        assert_eq!(b.insert("+14155550100", 1, None), Err(Refused::Taken(0)));
        assert_eq!(b.insert("4155550100", 1, None), Err(Refused::NotE164));
        let index = b.finish();
        assert_eq!(index.trunk_of("+14155550101"), Some(2));
        assert_eq!(index.trunk_of("+14155550199"), None);
        assert_eq!(index.trunk_of("not a number"), None);
        assert_eq!(index.label_of("+14155550100"), Some("Support"));
        assert_eq!(index.label_of("+14155550102"), None);
        assert_eq!(index.labels.len(), 1, "a label shared by numbers is kept once");
        assert_eq!((index.len(), index.count_of(0), index.count_of(1), index.count_of(2)), (3, 1, 0, 2));
        assert_eq!(index.by_trunk(10)[2], ["+14155550101", "+14155550102"]);
        assert_eq!(index.by_trunk(1), [vec!["+14155550100"], vec![], vec!["+14155550101"]]);
    }

    #[test]
    fn a_reload_says_which_numbers_moved_came_and_went_per_trunk() {
        let build = |rows: &[(&str, usize, Option<&str>)]| {
            let mut b = IndexBuilder::default();
            for (n, t, l) in rows {
                b.insert(n, *t, *l).unwrap();
            }
            b.finish()
        };
        let old = build(&[("+14155550100", 0, None), ("+14155550101", 0, Some("a")), ("+14155550102", 1, None)]);
        // Trunk order changed too: names, not indexes, decide.
        let new = build(&[("+14155550100", 1, None), ("+14155550101", 1, Some("b")), ("+14155550103", 0, None)]);
        let c = changes(&old, &["east", "west"], &new, &["west", "east"]);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c["east"],
            NumberDelta { relabelled: 1, ..Default::default() },
            "its numbers stayed; one label changed"
        );
        let west = NumberDelta {
            added: vec!["+14155550103".into()],
            added_count: 1,
            removed: vec!["+14155550102".into()],
            removed_count: 1,
            relabelled: 0,
        };
        assert_eq!(c["west"], west);
        assert!(changes(&new, &["west", "east"], &new, &["west", "east"]).is_empty());
        let numbers: Vec<String> = (0..25).map(|i| format!("+1415555{i:04}")).collect();
        let many = build(&numbers.iter().map(|n| (n.as_str(), 0, None)).collect::<Vec<_>>());
        let c = changes(&NumberIndex::default(), &["east"], &many, &["east"]);
        assert_eq!((c["east"].added.len(), c["east"].added_count), (SHOWN, 25));
    }

    fn read(csv: &str) -> Result<NumberIndex, ConfigError> {
        let mut b = IndexBuilder::default();
        read_file(Path::new("conf/numbers.csv"), csv.as_bytes(), &["east", "west"], &mut b)?;
        Ok(b.finish())
    }

    #[test]
    fn a_numbers_file_reads_with_its_header_comments_quotes_and_blank_lines() {
        let index = read(
            "number,trunk,label\n# moved from east in March\n+14155550100,west,\"Sales, EMEA\"\n\n +14155550101 , east\n",
        )
        .unwrap();
        assert_eq!(index.trunk_of("+14155550100"), Some(1));
        assert_eq!(index.label_of("+14155550100"), Some("Sales, EMEA"));
        assert_eq!((index.trunk_of("+14155550101"), index.label_of("+14155550101")), (Some(0), None));
    }

    #[test]
    fn a_bad_row_is_refused_with_its_line() {
        let cases = [
            ("+14155550100,north\n", 1, "trunk `north` is not a [[trunk]]"),
            ("number,trunk\n+14155550100,east\n+14155550100,west\n", 3, "+14155550100 already belongs to trunk `east`"),
            ("+14155550100,east\n\n+1415,east\n", 3, "`+1415` is not E.164"),
            ("+14155550100,east\n# a comment\n+14155550100,west\n", 3, "already belongs"),
            ("+14155550100\n", 1, "1 fields; a row is number,trunk[,label]"),
            ("+14155550100,east,a,b\n", 1, "4 fields"),
        ];
        for (csv, line, message) in cases {
            let e = read(csv).unwrap_err();
            assert_eq!((e.line, e.key.as_str()), (line, "numbers_file"), "{csv:?}: {e}");
            assert!(e.message.contains(message), "{csv:?}: {e}");
            assert!(e.to_string().starts_with(&format!("conf/numbers.csv:{line}:1: numbers_file: ")), "{e}");
        }
        let mut b = IndexBuilder::default();
        let e = read_file(Path::new("n.csv"), b"# c\n\n+14155550100,east,\xff\n", &["east"], &mut b).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert_eq!(e.message, "field 3 is not UTF-8 text");
    }
}
