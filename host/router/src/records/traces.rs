//! SIP traces beside the store: append-only segment files in a directory
//! next to the SQLite file (`trunkline.db` -> `trunkline.db-traces/`),
//! each record's row holding where its trace is (segment, offset, length).
//!
//! Why not a column: a packed trace is ~7 KB a call; SQLite stores that in
//! overflow pages written twice (to its write-ahead log, then to the file
//! at a checkpoint) and its B-tree work on them cost the writer about as
//! much as the rest of the row (bench/README.md, session 12). Appended
//! here, the bytes are written once, straight from each packed trace
//! (gathered by `writev`, no copy into a buffer of ours), in one system
//! call per batch.
//!
//! Crash safety: the writer appends a batch's traces and flushes them
//! before it commits the rows that point at them, so a committed row never
//! points past what was written (a crash in between leaves unreferenced
//! bytes, harmless). Retention deletes whole segments no row points into.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and the next one started past this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// A trace longer than this is a corrupt row, not something to allocate.
const MAX_TRACE: u64 = 16 << 20;

/// Where one trace is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceAt {
    pub segment: i64,
    pub offset: i64,
    pub length: i64,
}

/// The directory of the store at `db`.
pub fn dir_of(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-traces");
    db.with_file_name(name)
}

fn segment_path(dir: &Path, segment: i64) -> PathBuf {
    dir.join(format!("{segment:08}.trace"))
}

/// The segments in `dir`, by number.
fn segments(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".trace").and_then(|n| n.parse::<i64>().ok()) {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The writer's side: appends to the newest segment.
pub struct TraceLog {
    dir: PathBuf,
    segment: i64,
    file: Option<File>,
    /// The segment's length, counting `pending`.
    len: u64,
    /// Traces appended and not yet written, in order.
    pending: Vec<Vec<u8>>,
    /// Buffers written, emptied, for the next batch ([`TraceLog::spare`]).
    spare: Vec<Vec<u8>>,
}

impl TraceLog {
    /// The segments of the store at `db` (the directory is created). Each
    /// start writes a new segment, so a segment cut short by a crash is
    /// never appended to.
    pub fn open(db: &Path) -> std::io::Result<TraceLog> {
        let dir = dir_of(db);
        std::fs::create_dir_all(&dir)?;
        let segment = segments(&dir)?.last().map_or(1, |n| n + 1);
        Ok(TraceLog { dir, segment, file: None, len: 0, pending: Vec::new(), spare: Vec::new() })
    }

    /// Append a record's stored form, then its packed trace, in the same
    /// segment (kept until [`TraceLog::flush`] writes them); where the
    /// trace is (the record is the `record.len()` bytes before it).
    pub fn append(&mut self, record: Vec<u8>, packed: Vec<u8>) -> std::io::Result<TraceAt> {
        if self.file.is_some() && self.len >= SEGMENT_BYTES {
            self.flush()?;
            self.file = None;
            self.segment += 1;
            self.len = 0;
        }
        if self.file.is_none() {
            let path = segment_path(&self.dir, self.segment);
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            self.len = f.metadata()?.len();
            self.file = Some(f);
        }
        self.len += record.len() as u64;
        let at = TraceAt { segment: self.segment, offset: self.len as i64, length: packed.len() as i64 };
        self.len += packed.len() as u64;
        if !record.is_empty() {
            self.pending.push(record);
        }
        self.pending.push(packed);
        Ok(at)
    }

    /// Written buffers kept for reuse at most: two batches' records and traces.
    const SPARE: usize = 1024;
    /// A buffer larger than this is let go, not kept.
    const SPARE_BYTES: usize = 64 << 10;

    /// An empty buffer, one written before if there is one: the writer
    /// packs records and traces into buffers it reuses, so that a batch
    /// does not fault in fresh pages (bench/README.md, session 17).
    pub fn spare(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Write what [`TraceLog::append`] kept (before the rows that point
    /// at it are committed). On an error the segment is left behind (its
    /// tail may be cut short: no committed row points there) and the next
    /// append starts a new one.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let Some(file) = &mut self.file else { return Ok(()) };
        let written = write_all_vectored(file, &self.pending);
        for mut b in self.pending.drain(..) {
            if self.spare.len() < Self::SPARE && b.capacity() <= Self::SPARE_BYTES {
                b.clear();
                self.spare.push(b);
            }
        }
        if written.is_err() {
            self.file = None;
            self.segment += 1;
            self.len = 0;
        }
        written
    }

    /// Delete the segments before `segment` (no row points into them);
    /// `None`: no row points anywhere, all but the one being written go.
    /// Returns how many went.
    pub fn remove_before(&mut self, segment: Option<i64>) -> std::io::Result<usize> {
        let keep_from = segment.unwrap_or(self.segment).min(self.segment);
        let mut gone = 0;
        for n in segments(&self.dir)? {
            if n < keep_from {
                std::fs::remove_file(segment_path(&self.dir, n))?;
                gone += 1;
            }
        }
        Ok(gone)
    }
}

/// Write `bufs` whole, in as few system calls as the kernel allows.
fn write_all_vectored(file: &mut File, bufs: &[Vec<u8>]) -> std::io::Result<()> {
    /// Linux's IOV_MAX.
    const MAX_SLICES: usize = 1024;
    for chunk in bufs.chunks(MAX_SLICES) {
        let mut slices: Vec<IoSlice<'_>> = chunk.iter().map(|b| IoSlice::new(b)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Read the trace at `at` from the store at `db`.
pub fn read(db: &Path, at: TraceAt) -> std::io::Result<Vec<u8>> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let (Ok(offset), Ok(length)) = (u64::try_from(at.offset), u64::try_from(at.length)) else {
        return Err(bad("a negative offset or length"));
    };
    if length > MAX_TRACE {
        return Err(bad("longer than any trace"));
    }
    let path = segment_path(&dir_of(db), at.segment);
    let mut f = File::open(&path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut out = vec![0; length as usize];
    f.read_exact(&mut out).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_read_back_where_they_were_appended_and_old_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let mut log = TraceLog::open(&db).unwrap();
        let a = log.append(Vec::new(), b"first".to_vec()).unwrap();
        let b = log.append(b"rec".to_vec(), b"second!".to_vec()).unwrap();
        log.flush().unwrap();
        assert_eq!((a.segment, a.offset, b.offset, b.length), (1, 0, 8, 7));
        assert_eq!(read(&db, TraceAt { segment: 1, offset: 5, length: 10 }).unwrap(), b"recsecond!");
        assert_eq!(read(&db, b).unwrap(), b"second!");
        // The written buffers come back, emptied, for the next batch.
        let spare: Vec<Vec<u8>> = (0..4).map(|_| log.spare()).collect();
        let capacities: Vec<usize> = spare.iter().map(Vec::capacity).collect();
        assert!(spare.iter().all(Vec::is_empty), "emptied");
        assert_eq!(capacities, [7, 3, 5, 0], "the three buffers written, last first; then a new one");
        // A restart writes a new segment; the old one stays readable.
        drop(log);
        let mut log = TraceLog::open(&db).unwrap();
        let c = log.append(Vec::new(), b"third".to_vec()).unwrap();
        log.flush().unwrap();
        assert_eq!((c.segment, c.offset), (2, 0));
        assert_eq!(read(&db, a).unwrap(), b"first");
        // Rows point into segment 2 only: segment 1 goes.
        assert_eq!(log.remove_before(Some(2)).unwrap(), 1);
        assert!(read(&db, a).is_err());
        assert_eq!(read(&db, c).unwrap(), b"third");
        // No row at all: the segment being written stays.
        assert_eq!(log.remove_before(None).unwrap(), 0);
        // Bad positions are errors, not allocations or panics.
        for bad in [
            TraceAt { segment: 2, offset: -1, length: 1 },
            TraceAt { segment: 2, offset: 0, length: i64::MAX },
            TraceAt { segment: 2, offset: 3, length: 9 },
            TraceAt { segment: 7, offset: 0, length: 1 },
        ] {
            assert!(read(&db, bad).is_err(), "{bad:?}");
        }
    }
}
