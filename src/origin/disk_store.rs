//! [`DiskStore`]: a durable [`SegmentStore`] on a local file system, in constant
//! memory, with an append-only segment index per series ([`super::index`]).
//!
//! This module is the crate's one file-system adapter: it opens, writes, renames and
//! deletes files with `std::fs` and reads the index with positioned reads; the index
//! format and its logic (recovery, searches) live in the sans-IO [`super::index`].
//!
//! # Layout
//!
//! ```text
//! {root}/strom-store                 marks the directory as a store
//! {root}/{stream}/segments.idx        index of the MPEG-TS segments
//! {root}/{stream}/{sequence}.ts
//! {root}/{stream}/{rendition}/init.mp4
//! {root}/{stream}/{rendition}/fragments.idx
//! {root}/{stream}/{rendition}/{number}.m4s
//! ```
//!
//! Stream and rendition names come from the network: every name is checked with
//! [`super::valid_stream_name`] (`[A-Za-z0-9_-]{1,64}`) before a path is built.
//!
//! # Crash safety
//!
//! Every object is written to `.{name}.tmp` in its directory, synced, renamed to its
//! name and the directory synced ([`SyncPolicy::Always`]); its index record is
//! appended (and synced) only then, so the index never lists an object that is not
//! completely on disk. Retention persists the index's new first live record
//! ([`super::index::Mark`]) before it deletes objects. [`DiskStore::open`] truncates
//! a torn last record, deletes temporary files, objects outside the live records of
//! their index, and streams left without records.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::index::{self, Mark, ReadAt};
use super::router::valid_stream_name;
use super::store::{CmafKey, SegmentRecord, SegmentStore, Series};
use crate::error::{Error, Result};

/// Name of the file that marks a directory as a [`DiskStore`] root.
const STORE_MARKER: &str = "strom-store";
const MARKER_TEXT: &[u8] = b"strom disk store 1\n";
const TS_INDEX: &str = "segments.idx";
const CMAF_INDEX: &str = "fragments.idx";
const INIT: &str = "init.mp4";
/// Most CMAF renditions kept per stream (as many as a
/// [`crate::package::cmaf::CmafPresentation`] makes).
const MAX_RENDITIONS: usize = crate::package::cmaf::MAX_RENDITIONS;
/// An index is rewritten without its dead prefix once the prefix has at least this
/// many records and as many as the live part.
const COMPACT_MIN_DEAD: u64 = 4096;

/// When a [`DiskStore`] waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// `fsync` every object, its directory entry, every index append and mark: what
    /// was stored survives a power loss. Each put waits for the disk a few times.
    #[default]
    Always,
    /// No `fsync`: the order of writes still makes the store consistent after the
    /// process is killed (the kernel keeps what was written), but not after a power
    /// loss or a kernel crash. For tests, caches and disposable recordings.
    Never,
}

/// Options of a [`DiskStore`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskStoreOptions {
    /// Age retention, in milliseconds: after each put, the records of a stream that
    /// ended at least this long before its newest record ended (by
    /// [`SegmentRecord::program_date_time_end`]; the store reads no clock) are
    /// deleted with their objects. `None` keeps them. Objects stored without a
    /// record are not aged. Default: `Some(172_800_000)` (48 hours).
    pub max_age_ms: Option<i64>,
    /// Most bytes per stream (segments, fragments, init segments); a put beyond it
    /// deletes the oldest objects of the stream (by wall-clock time of their
    /// records; objects without a record first, lowest number first) while keeping
    /// the newest object of each series. Default: 256 GiB.
    pub max_bytes_per_stream: u64,
    /// Most bytes in the whole store; beyond it the oldest objects of any stream go,
    /// as for [`max_bytes_per_stream`](Self::max_bytes_per_stream). Default:
    /// `u64::MAX` (the disk is the limit).
    pub max_bytes_total: u64,
    /// Most streams held at once; a put for one more stream, or an
    /// [`open`](DiskStore::open) finding more, is an [`Error::limit`]. Default: 1024.
    pub max_streams: usize,
    /// Most objects (records and objects stored without a record) per series (the
    /// TS segments of a stream, or the fragments of one rendition); storing one
    /// more deletes the oldest. Default: 262 144 (72 hours of 1 s segments).
    pub max_records_per_series: u64,
    /// Largest object (segment, fragment or init segment) a put accepts; larger is
    /// an [`Error::limit`]. Default: 256 MiB.
    pub max_object_bytes: usize,
    /// When to wait for the disk. Default: [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
}

impl Default for DiskStoreOptions {
    fn default() -> Self {
        DiskStoreOptions {
            max_age_ms: Some(48 * 3600 * 1000),
            max_bytes_per_stream: 256 << 30,
            max_bytes_total: u64::MAX,
            max_streams: 1024,
            max_records_per_series: 1 << 18,
            max_object_bytes: 256 << 20,
            sync: SyncPolicy::Always,
        }
    }
}

/// What is kept in memory of one series: counters and two records, never a
/// per-record table.
#[derive(Debug, Clone)]
struct SeriesState {
    /// Records in the index file, dead ones included.
    count: u64,
    /// The persisted first live record.
    mark: Mark,
    /// The first live record.
    first: Option<SegmentRecord>,
    /// The last record of the file (live or not): the next number must be above.
    last: Option<SegmentRecord>,
    /// Sum of the sizes of the live records.
    live_bytes: u64,
    /// Objects stored without a record (numbers above `last`) and their bytes.
    loose_objects: u64,
    loose_bytes: u64,
}

impl Default for SeriesState {
    fn default() -> Self {
        SeriesState {
            count: 0,
            mark: Mark::new(0),
            first: None,
            last: None,
            live_bytes: 0,
            loose_objects: 0,
            loose_bytes: 0,
        }
    }
}

impl SeriesState {
    fn live(&self) -> Range<u64> {
        self.mark.first_live..self.count
    }
    fn live_count(&self) -> u64 {
        self.count.saturating_sub(self.mark.first_live)
    }
    fn objects(&self) -> u64 {
        self.live_count() + self.loose_objects
    }
    fn bytes(&self) -> u64 {
        self.live_bytes.saturating_add(self.loose_bytes)
    }
}

#[derive(Debug, Default)]
struct Rendition {
    series: SeriesState,
    init_bytes: u64,
}

#[derive(Debug, Default)]
struct StreamState {
    ts: SeriesState,
    renditions: BTreeMap<String, Rendition>,
}

impl StreamState {
    fn bytes(&self) -> u64 {
        self.renditions
            .values()
            .fold(self.ts.bytes(), |b, r| b + r.series.bytes() + r.init_bytes)
    }
    fn has_records(&self) -> bool {
        self.ts.live_count() > 0 || self.renditions.values().any(|r| r.series.live_count() > 0)
    }
    fn series(&self, rendition: Option<&str>) -> Option<&SeriesState> {
        match rendition {
            None => Some(&self.ts),
            Some(r) => self.renditions.get(r).map(|r| &r.series),
        }
    }
    fn series_mut(&mut self, rendition: Option<&str>) -> Option<&mut SeriesState> {
        match rendition {
            None => Some(&mut self.ts),
            Some(r) => self.renditions.get_mut(r).map(|r| &mut r.series),
        }
    }
}

/// A durable [`SegmentStore`] under one root directory: per stream its MPEG-TS
/// segments and CMAF objects as files, and per series an append-only index of
/// [`SegmentRecord`]s ([`super::index`]) that [`SegmentStore::records`],
/// [`SegmentStore::record_at`] and [`SegmentStore::last_record`] read: DVR windows
/// of days, recording, and restarts that serve every segment served before,
/// byte-identical.
///
/// Memory does not grow with what is stored: per series it keeps counters and the
/// first and last records; reads are positioned reads of the index in 64 KiB chunks
/// (`records` over 48 hours of 2 s segments reads 5.5 MB). Objects stored with
/// [`put`](SegmentStore::put) / [`put_cmaf`](SegmentStore::put_cmaf) have no record:
/// they are served, counted and evicted (by a directory scan), and deleted on the
/// next [`open`](Self::open). One `DiskStore` owns its root at a time; files
/// deleted behind its back are served as missing (an index record whose object is
/// gone stays listed unless it is the oldest, which the next `open` skips).
///
/// Errors: a failed write (a full disk `ENOSPC`, a file over `RLIMIT_FSIZE`
/// `EFBIG`, a permission error) is an [`crate::ErrorKind::Io`] naming the path; the
/// store stays consistent (the object is deleted, the index is unchanged).
///
/// ```
/// use bytes::Bytes;
/// use strom::origin::{DiskStore, DiskStoreOptions, SegmentRecord, SegmentStore, Series};
/// use strom::time::Timestamp;
///
/// let root = std::env::temp_dir().join(format!("strom-doc-{}", std::process::id()));
/// let mut store = DiskStore::open(&root, DiskStoreOptions::default()).unwrap();
/// for n in 0..3u64 {
///     let r = SegmentRecord::new(n, Timestamp::from_secs(2 * n as i64), Timestamp::from_secs(2))
///         .with_program_date_time(1_700_000_000_000 + 2000 * n as i64);
///     store.put_indexed("cam", Series::Ts, &r, Bytes::from(vec![0x47; 188])).unwrap();
/// }
/// drop(store);
/// let store = DiskStore::open(&root, DiskStoreOptions::default()).unwrap();
/// assert_eq!(store.stored_streams(), ["cam"]);
/// assert_eq!(store.last_record("cam", Series::Ts).unwrap().size, 188);
/// assert_eq!(store.get("cam", 1).unwrap(), Bytes::from(vec![0x47; 188]));
/// let at = store.record_at("cam", Series::Ts, 1_700_000_003_000).unwrap();
/// assert_eq!(at.number, 1);
/// std::fs::remove_dir_all(&root).unwrap();
/// ```
#[derive(Debug)]
pub struct DiskStore {
    root: PathBuf,
    opts: DiskStoreOptions,
    streams: BTreeMap<String, StreamState>,
    total_bytes: u64,
}

/// The file-system side: paths under the root and atomic writes.
#[derive(Clone, Copy)]
struct Fs<'a> {
    root: &'a Path,
    sync: bool,
}

fn io_err(op: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("disk store: {op} {}: {e}", path.display()))
}

/// An index file read with positioned reads.
struct IndexFile<'a>(&'a File, &'a Path);

impl ReadAt for IndexFile<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0
            .read_exact_at(buf, offset)
            .map_err(|e| io_err("read", self.1, e))
    }
}

/// The number in an object name `{number}.{ext}` (digits only).
fn object_number(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_suffix(ext)?.strip_suffix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn is_tmp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn file_len(path: &Path) -> Option<u64> {
    fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

impl Fs<'_> {
    fn series_dir(&self, stream: &str, rendition: Option<&str>) -> PathBuf {
        let dir = self.root.join(stream);
        match rendition {
            None => dir,
            Some(r) => dir.join(r),
        }
    }
    fn ext(rendition: Option<&str>) -> &'static str {
        if rendition.is_some() {
            "m4s"
        } else {
            "ts"
        }
    }
    fn index_name(rendition: Option<&str>) -> &'static str {
        if rendition.is_some() {
            CMAF_INDEX
        } else {
            TS_INDEX
        }
    }
    fn object(&self, stream: &str, rendition: Option<&str>, number: u64) -> PathBuf {
        self.series_dir(stream, rendition)
            .join(format!("{number}.{}", Self::ext(rendition)))
    }
    fn index(&self, stream: &str, rendition: Option<&str>) -> PathBuf {
        self.series_dir(stream, rendition)
            .join(Self::index_name(rendition))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        if self.sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("sync directory", dir, e))?;
        }
        Ok(())
    }

    /// Creates the directory of a series (and its stream's) if needed.
    fn ensure_dir(&self, stream: &str, rendition: Option<&str>) -> Result<()> {
        let dir = self.series_dir(stream, rendition);
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&dir).map_err(|e| io_err("create directory", &dir, e))?;
        self.sync_dir(self.root)?;
        if rendition.is_some() {
            self.sync_dir(&self.root.join(stream))?;
        }
        Ok(())
    }

    /// Writes `data` as `dir/name`: to `.{name}.tmp`, synced, renamed, the directory
    /// synced. On error neither the temporary file nor (when `clear` is set) `name`
    /// remains.
    fn write_atomic(&self, dir: &Path, name: &str, data: &[u8], clear: bool) -> Result<()> {
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(name);
        let r = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| io_err("create", &tmp, e))?;
            f.write_all(data).map_err(|e| io_err("write", &tmp, e))?;
            if self.sync {
                f.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
            }
            drop(f);
            fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
            self.sync_dir(dir)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
            if clear {
                let _ = fs::remove_file(&path);
            }
        }
        r
    }

    /// Appends `record` as record `at` of the series' index (created if missing).
    /// On error the file is cut back to `at` records.
    fn append(
        &self,
        stream: &str,
        rendition: Option<&str>,
        at: u64,
        r: &SegmentRecord,
    ) -> Result<()> {
        let path = self.index(stream, rendition);
        let open = || OpenOptions::new().read(true).write(true).open(&path);
        let f = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => {
                let dir = self.series_dir(stream, rendition);
                self.write_atomic(
                    &dir,
                    Self::index_name(rendition),
                    &index::encode_header(0),
                    true,
                )?;
                open().map_err(|e| io_err("open", &path, e))?
            }
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let offset = index::record_offset(at);
        let res = f
            .write_all_at(&index::encode_record(r), offset)
            .and_then(|()| if self.sync { f.sync_data() } else { Ok(()) });
        if let Err(e) = res {
            let _ = f.set_len(offset);
            return Err(io_err("append to", &path, e));
        }
        Ok(())
    }

    /// Persists `mark` in the header of the series' index.
    fn write_mark(&self, stream: &str, rendition: Option<&str>, mark: Mark) -> Result<()> {
        let path = self.index(stream, rendition);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        f.write_all_at(&mark.encode(), mark.slot_offset())
            .and_then(|()| if self.sync { f.sync_data() } else { Ok(()) })
            .map_err(|e| io_err("write mark of", &path, e))
    }

    /// Opens the series' index for reading.
    fn open_index(&self, stream: &str, rendition: Option<&str>) -> Result<(File, PathBuf)> {
        let path = self.index(stream, rendition);
        let f = File::open(&path).map_err(|e| io_err("open", &path, e))?;
        Ok((f, path))
    }

    /// Rewrites the series' index with its live records only, leaving out position
    /// `skip`: to a temporary file, renamed over the index.
    fn rewrite(
        &self,
        stream: &str,
        rendition: Option<&str>,
        st: &mut SeriesState,
        skip: Option<u64>,
    ) -> Result<()> {
        let (f, path) = self.open_index(stream, rendition)?;
        let src = IndexFile(&f, &path);
        let dir = self.series_dir(stream, rendition);
        let name = Self::index_name(rendition);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut out = Vec::with_capacity(index::CHUNK_RECORDS * index::RECORD_LEN);
        let mut count = 0u64;
        let r = (|| {
            let mut w = File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
            out.extend_from_slice(&index::encode_header(0));
            let mut werr = None;
            index::visit(&src, st.live(), &mut |i, r| {
                if Some(i) != skip {
                    out.extend_from_slice(&index::encode_record(r));
                    count += 1;
                }
                if out.len() >= index::CHUNK_RECORDS * index::RECORD_LEN {
                    if let Err(e) = w.write_all(&out) {
                        werr = Some(e);
                        return false;
                    }
                    out.clear();
                }
                true
            })?;
            if let Some(e) = werr {
                return Err(io_err("write", &tmp, e));
            }
            w.write_all(&out).map_err(|e| io_err("write", &tmp, e))?;
            if self.sync {
                w.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
            }
            fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
            self.sync_dir(&dir)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
            return r;
        }
        if let Some(at) = skip {
            if st.live().contains(&at) {
                let removed = index::read_record(&src, at)?;
                st.live_bytes = st.live_bytes.saturating_sub(removed.size);
            }
        }
        drop(f);
        st.count = count;
        st.mark = Mark::new(0);
        let (f, path) = self.open_index(stream, rendition)?;
        let src = IndexFile(&f, &path);
        st.first = match count {
            0 => None,
            _ => Some(index::read_record(&src, 0)?),
        };
        if skip.is_some() && count > 0 {
            // The record left out may have been the last one.
            st.last = Some(index::read_record(&src, count - 1)?);
        }
        Ok(())
    }

    /// Makes records before position `new_first` dead: persists the mark, then
    /// deletes their objects; rewrites the index once its dead prefix is large.
    fn advance(
        &self,
        stream: &str,
        rendition: Option<&str>,
        st: &mut SeriesState,
        new_first: u64,
    ) -> Result<()> {
        let new_first = new_first.min(st.count);
        if new_first <= st.mark.first_live {
            return Ok(());
        }
        let mark = st.mark.next(new_first);
        self.write_mark(stream, rendition, mark)?;
        let (f, path) = self.open_index(stream, rendition)?;
        let src = IndexFile(&f, &path);
        let mut freed = 0u64;
        index::visit(&src, st.mark.first_live..new_first, &mut |_, r| {
            freed = freed.saturating_add(r.size);
            let _ = fs::remove_file(self.object(stream, rendition, r.number));
            true
        })?;
        st.mark = mark;
        st.live_bytes = st.live_bytes.saturating_sub(freed);
        st.first = if new_first < st.count {
            Some(index::read_record(&src, new_first)?)
        } else {
            None
        };
        drop(f);
        if st.mark.first_live >= COMPACT_MIN_DEAD && st.mark.first_live >= st.live_count() {
            self.rewrite(stream, rendition, st, None)?;
        }
        Ok(())
    }

    /// Deletes the lowest-numbered object of the series that has no record.
    fn evict_loose(
        &self,
        stream: &str,
        rendition: Option<&str>,
        st: &mut SeriesState,
    ) -> Result<bool> {
        let dir = self.series_dir(stream, rendition);
        let ext = Self::ext(rendition);
        let above = st.last.map(|l| l.number);
        let rd = fs::read_dir(&dir).map_err(|e| io_err("list", &dir, e))?;
        let lowest = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| object_number(e.file_name().to_str()?, ext))
            .filter(|&n| above.is_none_or(|a| n > a))
            .min();
        let Some(n) = lowest else {
            st.loose_objects = 0;
            st.loose_bytes = 0;
            return Ok(false);
        };
        let path = self.object(stream, rendition, n);
        let len = file_len(&path).unwrap_or(0);
        fs::remove_file(&path).map_err(|e| io_err("delete", &path, e))?;
        st.loose_objects = st.loose_objects.saturating_sub(1);
        st.loose_bytes = st.loose_bytes.saturating_sub(len);
        Ok(true)
    }

    /// Recovers the index of a series found on disk and cleans its directory:
    /// truncates a torn tail, drops leading records whose object is missing,
    /// deletes temporary files and objects outside the live records (objects put
    /// without a record, or written before a crash let their record be appended).
    fn recover_series(&self, stream: &str, rendition: Option<&str>) -> Result<SeriesState> {
        let path = self.index(stream, rendition);
        let mut st = SeriesState::default();
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => {
                let len = f.metadata().map_err(|e| io_err("stat", &path, e))?.len();
                let rec = index::recover(&IndexFile(&f, &path), len)
                    .map_err(|e| e.context(format!("disk store: index {}", path.display())))?;
                if rec.valid_len < len {
                    tracing::debug!(
                        "disk store: {}: torn tail, {} of {len} bytes kept",
                        path.display(),
                        rec.valid_len
                    );
                    f.set_len(rec.valid_len)
                        .and_then(|()| if self.sync { f.sync_data() } else { Ok(()) })
                        .map_err(|e| io_err("truncate", &path, e))?;
                }
                st.count = rec.count;
                st.mark = rec.mark;
                st.first = rec.first;
                st.last = rec.last;
                st.live_bytes = rec.live_bytes;
                // Deletions are not synced: after a power loss the mark may be older
                // than them. Skip records whose object is gone.
                let mut first_live = st.mark.first_live;
                let src = IndexFile(&f, &path);
                while let Some(r) = st.first {
                    if self.object(stream, rendition, r.number).exists() {
                        break;
                    }
                    first_live += 1;
                    st.live_bytes = st.live_bytes.saturating_sub(r.size);
                    st.first = if first_live < st.count {
                        Some(index::read_record(&src, first_live)?)
                    } else {
                        None
                    };
                }
                if first_live > st.mark.first_live {
                    st.mark = st.mark.next(first_live);
                    self.write_mark(stream, rendition, st.mark)?;
                }
            }
            Err(e) if e.kind() == IoKind::NotFound => {}
            Err(e) => return Err(io_err("open", &path, e)),
        }
        let dir = self.series_dir(stream, rendition);
        let ext = Self::ext(rendition);
        let live = match (st.first, st.last) {
            (Some(f), Some(l)) => Some(f.number..=l.number),
            _ => None,
        };
        let rd = fs::read_dir(&dir).map_err(|e| io_err("list", &dir, e))?;
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = is_tmp(name)
                || object_number(name, ext)
                    .is_some_and(|n| !live.as_ref().is_some_and(|l| l.contains(&n)));
            if stale {
                tracing::debug!("disk store: {stream}: deleting {name} (no live record)");
                let _ = fs::remove_file(e.path());
            }
        }
        if st.live_count() == 0 && st.count > 0 {
            // Nothing live: forget the index, numbering may start again.
            let _ = fs::remove_file(&path);
            st = SeriesState::default();
        }
        Ok(st)
    }

    /// Deletes what the store keeps of a stream: its indexes first (so no index
    /// lists a deleted object), then its files.
    fn delete_stream(&self, stream: &str, renditions: impl Iterator<Item = String>) {
        let _ = fs::remove_file(self.index(stream, None));
        for r in renditions {
            let _ = fs::remove_file(self.index(stream, Some(&r)));
        }
        let dir = self.root.join(stream);
        let _ = self.sync_dir(&dir);
        let _ = fs::remove_dir_all(&dir);
        let _ = self.sync_dir(self.root);
    }
}

impl DiskStore {
    /// Opens (or creates) the store under `root`.
    ///
    /// A new or empty directory gets a `strom-store` marker file; a
    /// non-empty directory without it is refused ([`Error::usage`]), so a wrong path
    /// never has its files deleted. Then every stream directory is recovered: torn
    /// last index records are truncated, temporary files, objects without a live
    /// record and streams without records are deleted, retention is applied.
    ///
    /// Time and memory: reads the live records of every index once (a few ms per
    /// 100 000 records) and lists every directory; keeps only counters.
    ///
    /// Errors: [`Error::io`] (the root cannot be created or read), [`Error::usage`]
    /// (not a store), an index whose header does not decode ([`Error::malformed`] /
    /// [`Error::unsupported`], naming the file), more streams or renditions than
    /// the limits ([`Error::limit`]).
    pub fn open(root: impl AsRef<Path>, opts: DiskStoreOptions) -> Result<DiskStore> {
        let root = root.as_ref().to_path_buf();
        let fs_ = Fs {
            root: &root,
            sync: opts.sync == SyncPolicy::Always,
        };
        fs::create_dir_all(&root).map_err(|e| io_err("create directory", &root, e))?;
        let marker = root.join(STORE_MARKER);
        match fs::read(&marker) {
            Ok(text) if text == MARKER_TEXT => {}
            Ok(_) => {
                return Err(Error::unsupported("disk store: unknown store marker")
                    .context(marker.display().to_string()))
            }
            Err(e) if e.kind() == IoKind::NotFound => {
                let mut entries = fs::read_dir(&root).map_err(|e| io_err("list", &root, e))?;
                if entries.next().is_some() {
                    return Err(Error::usage(
                        "disk store: directory is not empty and has no store marker",
                    )
                    .context(root.display().to_string()));
                }
                fs_.write_atomic(&root, STORE_MARKER, MARKER_TEXT, true)?;
            }
            Err(e) => return Err(io_err("read", &marker, e)),
        }
        let mut streams = BTreeMap::new();
        let rd = fs::read_dir(&root).map_err(|e| io_err("list", &root, e))?;
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_tmp(name) {
                let _ = fs::remove_file(e.path());
                continue;
            }
            if !valid_stream_name(name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let st = Self::recover_stream(fs_, name)?;
            if !st.has_records() {
                fs_.delete_stream(name, st.renditions.into_keys());
                continue;
            }
            if streams.len() >= opts.max_streams {
                return Err(
                    Error::limit("disk store: more streams on disk than max_streams")
                        .context(root.display().to_string()),
                );
            }
            streams.insert(name.to_string(), st);
        }
        let total_bytes = streams.values().map(StreamState::bytes).sum();
        let mut store = DiskStore {
            root,
            opts,
            streams,
            total_bytes,
        };
        let names: Vec<String> = store.streams.keys().cloned().collect();
        for name in names {
            store.retain(&name, None);
        }
        Ok(store)
    }

    fn recover_stream(fs_: Fs<'_>, stream: &str) -> Result<StreamState> {
        let mut st = StreamState {
            ts: fs_.recover_series(stream, None)?,
            renditions: BTreeMap::new(),
        };
        let dir = fs_.root.join(stream);
        let rd = fs::read_dir(&dir).map_err(|e| io_err("list", &dir, e))?;
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !valid_stream_name(name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let series = fs_.recover_series(stream, Some(name))?;
            if series.live_count() == 0 {
                let _ = fs::remove_file(e.path().join(INIT));
                let _ = fs::remove_dir(e.path());
                continue;
            }
            if st.renditions.len() >= MAX_RENDITIONS {
                return Err(Error::limit("disk store: too many renditions on disk")
                    .context(dir.display().to_string()));
            }
            let init_bytes = file_len(&e.path().join(INIT)).unwrap_or(0);
            st.renditions
                .insert(name.to_string(), Rendition { series, init_bytes });
        }
        Ok(st)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options of this store.
    pub fn options(&self) -> &DiskStoreOptions {
        &self.opts
    }

    /// Number of streams held.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Bytes of every object held (the figure [`DiskStoreOptions::max_bytes_total`]
    /// bounds).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    fn fs(&self) -> Fs<'_> {
        Fs {
            root: &self.root,
            sync: self.opts.sync == SyncPolicy::Always,
        }
    }

    /// Checks the names and the size, and makes room for a new stream or rendition.
    fn admit(&mut self, stream: &str, rendition: Option<&str>, len: usize) -> Result<()> {
        if !valid_stream_name(stream) || !rendition.is_none_or(valid_stream_name) {
            return Err(Error::usage("disk store: invalid stream or rendition name"));
        }
        if len > self.opts.max_object_bytes {
            return Err(
                Error::limit("disk store: object larger than max_object_bytes")
                    .context(format!("{stream}: {len} bytes")),
            );
        }
        if !self.streams.contains_key(stream) && self.streams.len() >= self.opts.max_streams {
            return Err(Error::limit("disk store: too many streams").context(stream.to_string()));
        }
        let st = self.streams.entry(stream.to_string()).or_default();
        if let Some(r) = rendition {
            if !st.renditions.contains_key(r) {
                if st.renditions.len() >= MAX_RENDITIONS {
                    return Err(
                        Error::limit("disk store: too many renditions").context(stream.to_string())
                    );
                }
                st.renditions.insert(r.to_string(), Rendition::default());
            }
        }
        Ok(())
    }

    /// Forgets a stream or rendition that [`admit`](Self::admit) added when the put
    /// then failed and nothing was stored.
    fn unadmit(&mut self, stream: &str, rendition: Option<&str>) {
        let Some(st) = self.streams.get_mut(stream) else {
            return;
        };
        if let Some(r) = rendition {
            if st
                .renditions
                .get(r)
                .is_some_and(|r| r.series.objects() == 0 && r.init_bytes == 0)
            {
                st.renditions.remove(r);
            }
        }
        if st.ts.objects() == 0 && st.renditions.is_empty() {
            self.streams.remove(stream);
        }
    }

    /// Stores one object of a series, with or without a record.
    fn put_object(
        &mut self,
        stream: &str,
        rendition: Option<&str>,
        number: u64,
        record: Option<SegmentRecord>,
        data: &[u8],
    ) -> Result<()> {
        self.admit(stream, rendition, data.len())?;
        let r = self.put_admitted(stream, rendition, number, record, data);
        if r.is_err() {
            self.unadmit(stream, rendition);
        }
        r
    }

    fn put_admitted(
        &mut self,
        stream: &str,
        rendition: Option<&str>,
        number: u64,
        record: Option<SegmentRecord>,
        data: &[u8],
    ) -> Result<()> {
        let fs_ = Fs {
            root: &self.root,
            sync: self.opts.sync == SyncPolicy::Always,
        };
        let Some(state) = self.streams.get_mut(stream) else {
            return Err(Error::usage("disk store: stream vanished"));
        };
        let before = state.bytes();
        let Some(st) = state.series_mut(rendition) else {
            return Err(Error::usage("disk store: rendition vanished"));
        };
        if let Some(last) = st.last {
            if number <= last.number {
                let what = if record.is_some() {
                    "disk store: record number not above the last indexed one"
                } else {
                    "disk store: an indexed number is not replaced without a record"
                };
                return Err(
                    Error::usage(what).context(format!("{stream}: {number} after {}", last.number))
                );
            }
        }
        fs_.ensure_dir(stream, rendition)?;
        let path = fs_.object(stream, rendition, number);
        let old = file_len(&path);
        let dir = fs_.series_dir(stream, rendition);
        let name = format!("{number}.{}", Fs::ext(rendition));
        let mut result = fs_.write_atomic(&dir, &name, data, true);
        if let (Ok(()), Some(r)) = (&result, &record) {
            result = fs_.append(stream, rendition, st.count, r);
            if result.is_err() {
                let _ = fs::remove_file(&path);
            }
        }
        // A loose object of this number was replaced, or is gone after an error.
        if let Some(old) = old {
            st.loose_objects = st.loose_objects.saturating_sub(1);
            st.loose_bytes = st.loose_bytes.saturating_sub(old);
        }
        let len = data.len() as u64;
        match (&result, record) {
            (Ok(()), Some(r)) => {
                st.count += 1;
                st.last = Some(r);
                st.first.get_or_insert(r);
                st.live_bytes += len;
            }
            (Ok(()), None) => {
                st.loose_objects += 1;
                st.loose_bytes += len;
            }
            (Err(_), _) => {}
        }
        let after = state.bytes();
        self.total_bytes = self
            .total_bytes
            .saturating_sub(before)
            .saturating_add(after);
        result?;
        self.retain(stream, Some(rendition));
        Ok(())
    }

    /// Applies retention to `stream` after a put to the series `written` (its newest
    /// object is kept), or to the whole stream after [`open`](Self::open); then the
    /// store-wide byte budget.
    ///
    /// A failure here does not fail the put that was stored: it is logged, and the
    /// next put retries (what is over the limits is still over them).
    fn retain(&mut self, stream: &str, written: Option<Option<&str>>) {
        if let Err(e) = self.retain_or_fail(stream, written) {
            tracing::debug!("disk store: {stream}: retention stopped: {e}");
            self.total_bytes = self.streams.values().map(StreamState::bytes).sum();
        }
    }

    fn retain_or_fail(&mut self, stream: &str, written: Option<Option<&str>>) -> Result<()> {
        let fs_ = Fs {
            root: &self.root,
            sync: self.opts.sync == SyncPolicy::Always,
        };
        let opts = &self.opts;
        let Some(state) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        let before = state.bytes();
        let names: Vec<Option<String>> = std::iter::once(None)
            .chain(state.renditions.keys().cloned().map(Some))
            .collect();
        // Age, against the newest record of the stream.
        if let Some(max_age) = opts.max_age_ms {
            let newest = names
                .iter()
                .filter_map(|n| state.series(n.as_deref()))
                .filter(|s| s.live_count() > 0)
                .filter_map(|s| s.last.map(|l| l.program_date_time_end()))
                .max();
            if let Some(newest) = newest {
                let cutoff = newest.saturating_sub(max_age);
                for n in &names {
                    let rendition = n.as_deref();
                    let Some(st) = state.series_mut(rendition) else {
                        continue;
                    };
                    if st.first.is_none_or(|f| f.program_date_time_end() > cutoff) {
                        continue;
                    }
                    let (f, path) = fs_.open_index(stream, rendition)?;
                    let mut to =
                        index::first_ending_after(&IndexFile(&f, &path), st.live(), cutoff)?;
                    if written == Some(rendition) {
                        to = to.min(st.count.saturating_sub(1));
                    }
                    fs_.advance(stream, rendition, st, to)?;
                }
            }
        }
        // Objects per series.
        if let Some(rendition) = written {
            if let Some(st) = state.series_mut(rendition) {
                let excess = st
                    .objects()
                    .saturating_sub(opts.max_records_per_series.max(1));
                let indexed = excess.min(st.live_count().saturating_sub(1));
                fs_.advance(stream, rendition, st, st.mark.first_live + indexed)?;
                for _ in indexed..excess {
                    if !fs_.evict_loose(stream, rendition, st)? {
                        break;
                    }
                }
            }
        }
        // Bytes of the stream.
        while state.bytes() > opts.max_bytes_per_stream {
            let Some(victim) = oldest(state, &names) else {
                break;
            };
            evict_one(fs_, stream, state, victim.as_deref())?;
        }
        let after = state.bytes();
        self.total_bytes = self
            .total_bytes
            .saturating_sub(before)
            .saturating_add(after);
        // Bytes of the store.
        while self.total_bytes > self.opts.max_bytes_total {
            let mut best: Option<(i64, String, Option<String>)> = None;
            for (name, state) in &self.streams {
                let names: Vec<Option<String>> = std::iter::once(None)
                    .chain(state.renditions.keys().cloned().map(Some))
                    .collect();
                if let Some(v) = oldest(state, &names) {
                    let key = victim_key(state.series(v.as_deref()));
                    if best.as_ref().is_none_or(|b| key < b.0) {
                        best = Some((key, name.clone(), v));
                    }
                }
            }
            let Some((_, name, v)) = best else { break };
            let Some(state) = self.streams.get_mut(&name) else {
                break;
            };
            let before = state.bytes();
            evict_one(fs_, &name, state, v.as_deref())?;
            let after = state.bytes();
            self.total_bytes = self
                .total_bytes
                .saturating_sub(before)
                .saturating_add(after);
        }
        Ok(())
    }
}

/// Eviction order: series with objects without a record first, then by the
/// wall-clock time of the first live record.
fn victim_key(st: Option<&SeriesState>) -> i64 {
    match st.and_then(|s| if s.live_count() > 0 { s.first } else { None }) {
        Some(f) => f.program_date_time,
        None => i64::MIN,
    }
}

/// The series of `state` whose oldest object goes first, among those holding more
/// than their newest object.
fn oldest(state: &StreamState, names: &[Option<String>]) -> Option<Option<String>> {
    names
        .iter()
        .filter(|n| state.series(n.as_deref()).is_some_and(|s| s.objects() > 1))
        .min_by_key(|n| victim_key(state.series(n.as_deref())))
        .cloned()
}

/// Deletes the oldest object of one series of `state`.
fn evict_one(
    fs_: Fs<'_>,
    stream: &str,
    state: &mut StreamState,
    rendition: Option<&str>,
) -> Result<()> {
    let Some(st) = state.series_mut(rendition) else {
        return Ok(());
    };
    if st.live_count() > 0 {
        fs_.advance(stream, rendition, st, st.mark.first_live + 1)
    } else {
        fs_.evict_loose(stream, rendition, st).map(|_| ())
    }
}

fn rendition_of(series: Series<'_>) -> Option<&str> {
    match series {
        Series::Ts => None,
        Series::Cmaf { rendition } => Some(rendition),
    }
}

impl SegmentStore for DiskStore {
    /// Stores segment `sequence` without a record (served and counted, not indexed;
    /// deleted by the next [`DiskStore::open`]).
    ///
    /// Errors: as [`SegmentStore::put_indexed`]; a `sequence` at or below the last
    /// indexed one is an [`Error::usage`] (an indexed segment is not replaced).
    fn put(&mut self, stream: &str, sequence: u64, data: Bytes) -> Result<()> {
        self.put_object(stream, None, sequence, None, &data)
    }

    fn get(&self, stream: &str, sequence: u64) -> Option<Bytes> {
        if !valid_stream_name(stream) {
            return None;
        }
        fs::read(self.fs().object(stream, None, sequence))
            .ok()
            .map(Bytes::from)
    }

    /// Removes segment `sequence`: the oldest record advances the index's first live
    /// record; a record in the middle rewrites the index without it (time
    /// proportional to the records kept); an object without a record is deleted.
    fn remove(&mut self, stream: &str, sequence: u64) -> bool {
        let fs_ = Fs {
            root: &self.root,
            sync: self.opts.sync == SyncPolicy::Always,
        };
        let Some(state) = self.streams.get_mut(stream) else {
            return false;
        };
        let before = state.bytes();
        let st = &mut state.ts;
        let path = fs_.object(stream, None, sequence);
        let removed = match (st.first, st.last) {
            (Some(f), Some(_)) if sequence == f.number => fs_
                .advance(stream, None, st, st.mark.first_live + 1)
                .is_ok(),
            (Some(f), Some(l)) if (f.number..=l.number).contains(&sequence) => {
                let found = fs_.open_index(stream, None).and_then(|(f, p)| {
                    let src = IndexFile(&f, &p);
                    let at = index::first_at_or_after(&src, st.live(), sequence)?;
                    let hit = at < st.count && index::read_record(&src, at)?.number == sequence;
                    Ok(hit.then_some(at))
                });
                match found {
                    Ok(Some(at)) => {
                        fs_.rewrite(stream, None, st, Some(at)).is_ok()
                            && fs::remove_file(&path).is_ok()
                    }
                    _ => false,
                }
            }
            _ => match file_len(&path) {
                Some(len) if st.last.is_none_or(|l| sequence > l.number) => {
                    let ok = fs::remove_file(&path).is_ok();
                    if ok {
                        st.loose_objects = st.loose_objects.saturating_sub(1);
                        st.loose_bytes = st.loose_bytes.saturating_sub(len);
                    }
                    ok
                }
                _ => false,
            },
        };
        let after = state.bytes();
        self.total_bytes = self
            .total_bytes
            .saturating_sub(before)
            .saturating_add(after);
        if !state.has_records() && state.ts.loose_objects == 0 && state.renditions.is_empty() {
            let state = self.streams.remove(stream);
            fs_.delete_stream(
                stream,
                state.into_iter().flat_map(|s| s.renditions.into_keys()),
            );
        }
        removed
    }

    /// The sequence numbers of the `{sequence}.ts` files of `stream` (a directory
    /// listing), ascending.
    fn list(&self, stream: &str) -> Vec<u64> {
        if !valid_stream_name(stream) {
            return Vec::new();
        }
        let Ok(rd) = fs::read_dir(self.root.join(stream)) else {
            return Vec::new();
        };
        let mut v: Vec<u64> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| object_number(e.file_name().to_str()?, "ts"))
            .collect();
        v.sort_unstable();
        v
    }

    fn stream_bytes(&self, stream: &str) -> usize {
        self.streams
            .get(stream)
            .map_or(0, |s| usize::try_from(s.bytes()).unwrap_or(usize::MAX))
    }

    /// Deletes the stream's indexes, then its directory.
    fn remove_stream(&mut self, stream: &str) {
        if !valid_stream_name(stream) {
            return;
        }
        let renditions = match self.streams.remove(stream) {
            Some(s) => {
                self.total_bytes = self.total_bytes.saturating_sub(s.bytes());
                s.renditions.into_keys().collect()
            }
            None => Vec::new(),
        };
        self.fs().delete_stream(stream, renditions.into_iter());
    }

    /// Stores an init segment (replacing the old one atomically) or a fragment
    /// without a record (as [`put`](SegmentStore::put)).
    fn put_cmaf(&mut self, stream: &str, key: CmafKey<'_>, data: Bytes) -> Result<()> {
        let rendition = key.rendition();
        match key {
            CmafKey::Fragment { number, .. } => {
                self.put_object(stream, Some(rendition), number, None, &data)
            }
            CmafKey::Init { .. } => {
                self.admit(stream, Some(rendition), data.len())?;
                let fs_ = self.fs();
                let dir = fs_.series_dir(stream, Some(rendition));
                let r = fs_
                    .ensure_dir(stream, Some(rendition))
                    .and_then(|()| fs_.write_atomic(&dir, INIT, &data, false));
                let now = file_len(&dir.join(INIT)).unwrap_or(0);
                if let Some(state) = self.streams.get_mut(stream) {
                    let before = state.bytes();
                    if let Some(rs) = state.renditions.get_mut(rendition) {
                        rs.init_bytes = now;
                    }
                    let after = state.bytes();
                    self.total_bytes = self
                        .total_bytes
                        .saturating_sub(before)
                        .saturating_add(after);
                }
                if r.is_err() {
                    self.unadmit(stream, Some(rendition));
                    return r;
                }
                self.retain(stream, Some(Some(rendition)));
                Ok(())
            }
        }
    }

    fn get_cmaf(&self, stream: &str, key: CmafKey<'_>) -> Option<Bytes> {
        let rendition = key.rendition();
        if !valid_stream_name(stream) || !valid_stream_name(rendition) {
            return None;
        }
        let fs_ = self.fs();
        let path = match key {
            CmafKey::Init { .. } => fs_.series_dir(stream, Some(rendition)).join(INIT),
            CmafKey::Fragment { number, .. } => fs_.object(stream, Some(rendition), number),
        };
        fs::read(path).ok().map(Bytes::from)
    }

    /// Writes the object atomically, then appends `record` (its `size` set to the
    /// length of `data`) to the series' index; then applies retention.
    ///
    /// Errors: an invalid stream or rendition name, a number not above the last
    /// record ([`Error::usage`]); an object over
    /// [`DiskStoreOptions::max_object_bytes`], one stream or rendition too many
    /// ([`Error::limit`]); a failed write ([`Error::io`]: nothing is indexed, the
    /// object is deleted).
    fn put_indexed(
        &mut self,
        stream: &str,
        series: Series<'_>,
        record: &SegmentRecord,
        data: Bytes,
    ) -> Result<()> {
        let record = record.with_size(data.len() as u64);
        self.put_object(
            stream,
            rendition_of(series),
            record.number,
            Some(record),
            &data,
        )
    }

    fn records(
        &self,
        stream: &str,
        series: Series<'_>,
        from: u64,
        visit: &mut dyn FnMut(&SegmentRecord) -> bool,
    ) -> Result<()> {
        let rendition = rendition_of(series);
        let Some(st) = self.streams.get(stream).and_then(|s| s.series(rendition)) else {
            return Ok(());
        };
        let Some(first) = st.first else {
            return Ok(());
        };
        let (f, path) = self.fs().open_index(stream, rendition)?;
        let src = IndexFile(&f, &path);
        let start = if from <= first.number {
            st.mark.first_live
        } else {
            index::first_at_or_after(&src, st.live(), from)?
        };
        // Checked when the index was opened, or appended by this process.
        index::visit_verified(&src, start..st.count, index::Verify::Fields, &mut |_, r| {
            visit(r)
        })
    }

    /// Binary search over the index (O(log n) reads of one record).
    fn record_at(&self, stream: &str, series: Series<'_>, unix_ms: i64) -> Option<SegmentRecord> {
        let rendition = rendition_of(series);
        let st = self.streams.get(stream)?.series(rendition)?;
        let first = st.first?;
        if first.program_date_time_end() > unix_ms {
            return Some(first);
        }
        let (f, path) = self.fs().open_index(stream, rendition).ok()?;
        let src = IndexFile(&f, &path);
        let at = index::first_ending_after(&src, st.live(), unix_ms).ok()?;
        if at >= st.count {
            return None;
        }
        index::read_record(&src, at).ok()
    }

    fn last_record(&self, stream: &str, series: Series<'_>) -> Option<SegmentRecord> {
        let st = self.streams.get(stream)?.series(rendition_of(series))?;
        if st.live_count() == 0 {
            return None;
        }
        st.last
    }

    fn stored_streams(&self) -> Vec<String> {
        self.streams
            .iter()
            .filter(|(_, s)| s.has_records())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The renditions with an init segment or fragments, sorted.
    fn stored_renditions(&self, stream: &str) -> Vec<String> {
        self.streams
            .get(stream)
            .map(|s| s.renditions.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        assert_eq!(object_number("12.ts", "ts"), Some(12));
        assert_eq!(object_number("0.m4s", "m4s"), Some(0));
        assert_eq!(object_number("+1.ts", "ts"), None);
        assert_eq!(object_number(".ts", "ts"), None);
        assert_eq!(object_number("1.m4s", "ts"), None);
        assert_eq!(object_number("18446744073709551616.ts", "ts"), None);
        assert!(is_tmp(".3.ts.tmp"));
        assert!(!is_tmp("3.ts"));
    }
}
