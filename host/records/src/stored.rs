//! A record's stored form, and the columns a store fills from it.
//!
//! The writer stores the bytes the engine sealed as they are, behind a
//! head of what only it knows (the wall-clock times, the messages the
//! trace's caps left out) and before the media facts: it never decodes a
//! whole record, only reads the columns of its row from the leading
//! fields, borrowed ([`Stored::columns`]). Decoding and encoding again
//! (some 40 strings allocated and freed a call) was a fifth of the
//! writer's work (bench/README.md, session 18).
//!
//! Postcard does not describe itself, so a change to the fields of
//! [`CallRecord`] or of what it holds needs a new version, and the old
//! layout kept to read the old ones: the tests `the_stored_form_of_*`
//! fail until both are done.

use crate::CallRecord;

/// Version 1 (session 15 to 17): the byte `1`, then [`CallRecord`] as
/// postcard encodes it (fields in their order, lengths as varints, no
/// names). Still read.
pub const RECORD_V1: u8 = 1;

/// Version 2: the byte `2`; the head, postcard `(started_at: i64,
/// ended_at: i64, trace_dropped: u32)`, which overrides those fields of
/// the record; the record as in version 1; then the media facts, postcard
/// `Vec<String>`, which replace the record's own `media` unless empty.
pub const RECORD_V2: u8 = 2;

/// A record ready to store: its stored form (version 2) and its packed
/// trace ([`crate::trace`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The store's number for it, once stored.
    pub id: i64,
    pub record: Vec<u8>,
    pub trace: Vec<u8>,
}

/// What a store's row of `calls` holds besides the stored form, read
/// from it without decoding the rest ([`Stored::columns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns<'a> {
    pub call_id: &'a str,
    pub started_at: i64,
    pub ended_at: i64,
    pub trunk: &'a str,
    pub direction: &'a str,
    pub caller: &'a str,
    pub called: &'a str,
    pub outcome: &'a str,
    pub status: u16,
    /// As SQL integers: clamped to `i64`.
    pub pdd_ms: Option<i64>,
    pub duration_ms: i64,
    pub hangup_by: &'a str,
    /// The targets tried.
    pub attempts: i64,
}

impl Stored {
    /// `record` in its stored form, with `trace` (packed).
    pub fn new(record: &CallRecord, trace: Vec<u8>) -> Stored {
        let mut bytes = Vec::new();
        record.encode_into(&mut bytes);
        Stored { id: 0, record: bytes, trace }
    }

    /// The row's columns, read from the head and the record's leading
    /// fields (borrowed: nothing allocated); why not, if these are not
    /// the bytes of a version 2 record.
    pub fn columns(&self) -> Result<Columns<'_>, String> {
        let Some((&RECORD_V2, rest)) = self.record.split_first() else {
            return Err("not a version 2 record".into());
        };
        leading(&mut Reader(rest)).ok_or_else(|| "the record's leading fields do not read".to_owned())
    }
}

impl CallRecord {
    /// Append the stored form (version 2) to `out`. `id` and `trace` are
    /// stored apart (the row's number, the trace's segment) and should be
    /// empty here.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(RECORD_V2);
        let buffer = std::mem::take(out);
        // Writing into a Vec cannot fail, and every field is a type postcard encodes.
        let buffer = postcard::to_extend(&(self.started_at, self.ended_at, self.trace_dropped), buffer)
            .expect("integers encode into a Vec");
        let mut buffer = postcard::to_extend(self, buffer).expect("a record encodes into a Vec");
        buffer.push(0); // no media facts apart: they are in the record
        *out = buffer;
    }

    /// Read a stored form back (version 1 or 2); why not, if it is not one
    /// (a corrupt row).
    pub fn decode(bytes: &[u8]) -> Result<CallRecord, String> {
        let e = |e: postcard::Error| e.to_string();
        match bytes.split_first() {
            Some((&RECORD_V1, rest)) => match postcard::take_from_bytes::<CallRecord>(rest).map_err(e)? {
                (record, []) => Ok(record),
                (_, extra) => Err(format!("{} bytes after the record", extra.len())),
            },
            Some((&RECORD_V2, rest)) => {
                let ((started_at, ended_at, trace_dropped), rest) =
                    postcard::take_from_bytes::<(i64, i64, u32)>(rest).map_err(e)?;
                let (mut record, rest) = postcard::take_from_bytes::<CallRecord>(rest).map_err(e)?;
                let (media, rest) = postcard::take_from_bytes::<Vec<String>>(rest).map_err(e)?;
                if !rest.is_empty() {
                    return Err(format!("{} bytes after the record", rest.len()));
                }
                record.started_at = started_at;
                record.ended_at = ended_at;
                record.trace_dropped = trace_dropped;
                if !media.is_empty() {
                    record.media = media;
                }
                Ok(record)
            }
            Some((version, _)) => Err(format!("unknown record version {version}")),
            None => Err("empty".into()),
        }
    }
}

/// The head and the leading fields of a [`CallRecord`] in its postcard
/// form, up to `targets` (counted): what [`Columns`] needs. Read by hand,
/// not through serde: postcard's deserializer spent some 3,000
/// instructions a record on these twenty fields, this reader a fraction
/// (bench/README.md, session 18). The fuzz target `records` checks it
/// against [`CallRecord::decode`] on any input, and
/// `tests::the_leading_fields_read_as_the_record_holds_them` on a record.
fn leading<'a>(r: &mut Reader<'a>) -> Option<Columns<'a>> {
    let (started_at, ended_at, _trace_dropped) = (r.i64()?, r.i64()?, r.varint(u32::MAX.into())?);
    let _id = r.i64()?;
    let call_id = r.str()?;
    for _ in 0..r.len()? {
        r.skip_str()?; // leg_call_ids
    }
    let trunk = r.str()?;
    r.skip_str()?; // account
    let direction = r.str()?;
    let (caller, called) = (r.str()?, r.str()?);
    r.skip_str()?; // source
    r.skip_str()?; // transport
    let (_started_at, _ended_at) = (r.i64()?, r.i64()?);
    let pdd_ms = r.option(|r| r.varint(u64::MAX))?;
    let _answer_ms = r.option(|r| r.varint(u64::MAX))?;
    let duration_ms = r.varint(u64::MAX)?;
    let (hangup_by, outcome) = (r.str()?, r.str()?);
    let status = r.varint(u16::MAX.into())? as u16;
    r.skip_str()?; // reason
    let attempts = r.len()?;
    for _ in 0..attempts {
        // A TargetRecord: uri, address, call_id, at_ms, responses (at_ms, status, reason), ended.
        for _ in 0..3 {
            r.skip_str()?;
        }
        r.varint(u64::MAX)?;
        for _ in 0..r.len()? {
            r.varint(u64::MAX)?;
            r.varint(u16::MAX.into())?;
            r.skip_str()?;
        }
        r.option(Reader::skip_str)?;
    }
    let integer = |v: u64| v.min(i64::MAX as u64) as i64;
    Some(Columns {
        call_id,
        started_at,
        ended_at,
        trunk,
        direction,
        caller,
        called,
        outcome,
        status,
        pdd_ms: pdd_ms.map(integer),
        duration_ms: integer(duration_ms),
        hangup_by,
        attempts: attempts as i64,
    })
}

/// Postcard's wire format, read: varints (7 bits a byte, least
/// significant first), zigzag for signed, a varint length before a
/// string's UTF-8 or a sequence's elements, a byte 0 or 1 before an
/// option's value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A varint of at most `max` (the type's maximum).
    fn varint(&mut self, max: u64) -> Option<u64> {
        let mut value: u64 = 0;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return (value <= max && (i < 9 || byte <= 1)).then_some(value);
            }
        }
        None
    }

    fn i64(&mut self) -> Option<i64> {
        let v = self.varint(u64::MAX)?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A length that the bytes left could hold (each element takes a byte at least).
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.varint(u64::MAX)?).ok()?;
        (n <= self.0.len()).then_some(n)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        let (text, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(text).ok()
    }

    /// A string passed over, its UTF-8 not checked (most of a record's
    /// strings are not columns: checking them cost more than the rest).
    fn skip_str(&mut self) -> Option<()> {
        let n = self.len()?;
        self.0 = &self.0[n..];
        Some(())
    }

    fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        let (&tag, rest) = self.0.split_first()?;
        self.0 = rest;
        match tag {
            0 => Some(None),
            1 => value(self).map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let r = sample();
        let mut out = vec![9, 9];
        r.encode_into(&mut out);
        assert_eq!(out[..3], [9, 9, RECORD_V2], "appended after what was there");
        assert_eq!(CallRecord::decode(&out[2..]), Ok(r));
    }

    #[test]
    fn the_stored_form_of_version_1_still_reads() {
        // Written by sessions 15 to 17 (RECORD_V1): rows in stores today.
        let v1 = "010003614068010262310174034143310b6f726967696e6174696f6e052b31353535052b31363636\
                  0e3132372e302e302e313a353036300375647080a0899fc568d8a4899fc568010200ac020663616c\
                  6c657208616e737765726564c801026f6b01057369703a78127564703a3132372e302e302e313a35\
                  303830026231010102c801024f4b010963616e63656c6c656401017005312e302e30087072652d64\
                  69616c08636f6e74696e75654601017201016d0000";
        let bytes: Vec<u8> = (0..v1.len()).step_by(2).map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap()).collect();
        assert_eq!(CallRecord::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn the_stored_form_of_version_2_does_not_change() {
        // Stored records are read back by later routers: if this fails, a
        // field changed; give the new layout a new version and keep
        // reading this one (see the module's docs).
        let mut out = Vec::new();
        sample().encode_into(&mut out);
        assert_eq!(
            hex(&out),
            "0280a0899fc568d8a4899fc56800\
             0003614068010262310174034143310b6f726967696e6174696f6e052b31353535052b31363636\
             0e3132372e302e302e313a353036300375647080a0899fc568d8a4899fc568010200ac020663616c\
             6c657208616e737765726564c801026f6b01057369703a78127564703a3132372e302e302e313a35\
             303830026231010102c801024f4b010963616e63656c6c656401017005312e302e30087072652d64\
             69616c08636f6e74696e75654601017201016d000000"
        );
    }

    #[test]
    fn the_leading_fields_read_as_the_record_holds_them() {
        let mut r = sample();
        r.targets.push(crate::TargetRecord { responses: vec![Default::default(); 3], ..Default::default() });
        r.pdd_ms = Some(u64::MAX);
        let stored = Stored::new(&r, Vec::new());
        let c = stored.columns().unwrap();
        assert_eq!(
            c,
            Columns {
                call_id: "a@h",
                started_at: r.started_at,
                ended_at: r.ended_at,
                trunk: "t",
                direction: "origination",
                caller: "+1555",
                called: "+1666",
                outcome: "answered",
                status: 200,
                pdd_ms: Some(i64::MAX),
                duration_ms: 300,
                hangup_by: "caller",
                attempts: 2,
            }
        );
    }

    #[test]
    fn what_is_not_a_stored_record_is_refused_with_the_reason() {
        let mut good = Vec::new();
        sample().encode_into(&mut good);
        assert_eq!(CallRecord::decode(&[]), Err("empty".into()));
        assert_eq!(CallRecord::decode(&[7, 0]), Err("unknown record version 7".into()));
        assert!(CallRecord::decode(&good[..good.len() - 3]).is_err(), "truncated");
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(CallRecord::decode(&longer), Err("1 bytes after the record".into()));
        let cut = Stored { record: good[..20].to_vec(), ..Stored::default() };
        assert!(cut.columns().is_err(), "truncated columns");
        assert_eq!(Stored::default().columns(), Err("not a version 2 record".into()));
    }
}
