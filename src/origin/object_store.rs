//! [`ObjectSegmentStore`]: a [`SegmentStore`] in an object store (S3 and S3-compatible
//! servers through the [`object_store`] crate), so that several origins behind a load
//! balancer share one recording. Feature `object-store`.
//!
//! The layout of the bucket, the consistency rules and the costs are in the docs of
//! [`ObjectSegmentStore`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use super::index::{self, ReadAt, Verify, HEADER_LEN, RECORD_LEN};
use super::router::valid_stream_name;
use super::store::{CmafKey, SegmentRecord, SegmentStore, Series};
use crate::error::{Error, Result};

/// Records per index chunk object (64 KiB of records plus the 64-byte header).
pub const CHUNK_RECORDS: u64 = 1024;
const INDEX: &str = "index";
const INDEX_TS: &str = "ts";
const INDEX_CMAF: &str = "cmaf";
const MARK: &str = "mark";
const INIT: &str = "init.mp4";
/// Most CMAF renditions written per stream (as many as a
/// [`crate::package::cmaf::CmafPresentation`] makes).
const MAX_RENDITIONS: usize = crate::package::cmaf::MAX_RENDITIONS;
/// Deletes in flight at once when a stream or retention removes many objects.
const DELETE_CONCURRENCY: usize = 16;
/// Most directory levels [`Client::walk`] descends below a stream.
const WALK_DEPTH: usize = 4;

/// Makes rustls' `ring` provider the process-wide TLS crypto provider, unless one is
/// installed already; returns whether this call installed it. Idempotent and cheap.
///
/// The `object-store` feature builds `object_store`'s HTTP client on rustls without a
/// bundled provider (so the build needs no aws-lc), and rustls needs a process default
/// before `AmazonS3Builder::build` (or any other `object_store` HTTP store) is called:
/// call this first. A host that installs its own provider need not.
///
/// ```
/// strom::origin::install_tls_provider();
/// // object_store::aws::AmazonS3Builder::new() ... .build()
/// ```
pub fn install_tls_provider() -> bool {
    rustls::crypto::CryptoProvider::get_default().is_none()
        && rustls::crypto::ring::default_provider()
            .install_default()
            .is_ok()
}

/// Options of an [`ObjectSegmentStore`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectSegmentStoreOptions {
    /// Age retention, in milliseconds: after each indexed put, the records of the
    /// series that ended at least this long before its newest record ended (by
    /// [`SegmentRecord::program_date_time_end`]; the store reads no clock) are dropped
    /// and their objects deleted. `None` keeps them. Default: `Some(172_800_000)`
    /// (48 hours).
    pub max_age_ms: Option<i64>,
    /// Most records per series (the TS segments of a stream, or the fragments of one
    /// rendition); an indexed put beyond it drops the oldest. Default: 262 144
    /// (72 hours of 1 s segments). Values below 1 are treated as 1.
    pub max_records_per_series: u64,
    /// Most streams under the prefix; a put for one more stream is an
    /// [`Error::limit`] (counted by a LIST when this store first writes a stream).
    /// Default: 1024.
    pub max_streams: usize,
    /// Largest object a put accepts; larger is an [`Error::limit`]. Default: 256 MiB.
    pub max_object_bytes: usize,
    /// Longest time one call (one request, or one batch of parallel requests) may
    /// take, in milliseconds; then it is cancelled and fails with
    /// [`crate::ErrorKind::Io`]. Default: 10 000.
    pub call_timeout_ms: u64,
    /// How old, in milliseconds, what this store knows of a series it does not write
    /// may be before `records`, `record_at` and `last_record` read it again from the
    /// bucket (records another origin appended show up after at most this long). 0
    /// reads it on every call. Default: 1 000.
    pub refresh_ms: u64,
    /// Most full index chunks kept in memory (64 KiB each), for all series together.
    /// Default: 32 (2 MiB). Values below `parallel_requests` are raised to it.
    pub cache_chunks: usize,
    /// Index chunks fetched in parallel while visiting records. Default: 8. Values
    /// below 1 are treated as 1.
    pub parallel_requests: usize,
}

impl Default for ObjectSegmentStoreOptions {
    fn default() -> Self {
        ObjectSegmentStoreOptions {
            max_age_ms: Some(48 * 3600 * 1000),
            max_records_per_series: 1 << 18,
            max_streams: 1024,
            max_object_bytes: 256 << 20,
            call_timeout_ms: 10_000,
            refresh_ms: 1_000,
            cache_chunks: 32,
            parallel_requests: 8,
        }
    }
}

/// Requests an [`ObjectSegmentStore`] has made since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RequestCounts {
    /// GET requests (objects and index chunks; a missing object counts too).
    pub gets: u64,
    /// PUT requests (objects, index chunks, marks).
    pub puts: u64,
    /// DELETE and HEAD requests.
    pub deletes_and_heads: u64,
    /// LIST requests (one per listed directory; the client may page it).
    pub lists: u64,
}

#[derive(Debug, Default)]
struct Counters {
    gets: AtomicU64,
    puts: AtomicU64,
    others: AtomicU64,
    lists: AtomicU64,
}

fn os_err(op: &str, path: &Path, e: object_store::Error) -> Error {
    Error::io(format!("object store: {op} {path}: {e}"))
}

/// The async side: requests to the object store, counted. Runs on the worker thread.
#[derive(Debug, Clone)]
struct Client {
    store: Arc<dyn ObjectStore>,
    counts: Arc<Counters>,
}

impl Client {
    async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        self.counts.gets.fetch_add(1, Ordering::Relaxed);
        match self.store.get(path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| os_err("get", path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os_err("get", path, e)),
        }
    }
    async fn head(&self, path: &Path) -> Result<bool> {
        self.counts.others.fetch_add(1, Ordering::Relaxed);
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(os_err("head", path, e)),
        }
    }
    async fn put(&self, path: &Path, data: Bytes) -> Result<()> {
        self.counts.puts.fetch_add(1, Ordering::Relaxed);
        self.store
            .put(path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| os_err("put", path, e))
    }
    async fn delete(&self, path: &Path) -> Result<()> {
        self.counts.others.fetch_add(1, Ordering::Relaxed);
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_err("delete", path, e)),
        }
    }
    /// Deletes `paths`, [`DELETE_CONCURRENCY`] at a time; the first error after all ran.
    async fn delete_all(&self, paths: Vec<Path>) -> Result<()> {
        let mut set = tokio::task::JoinSet::new();
        let mut first_err = None;
        for p in paths {
            if set.len() >= DELETE_CONCURRENCY {
                if let Some(Ok(Err(e))) = set.join_next().await {
                    first_err.get_or_insert(e);
                }
            }
            let c = self.clone();
            set.spawn(async move { c.delete(&p).await });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Err(e)) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
    /// One directory level: objects and sub-directories (every page).
    async fn list_dir(&self, dir: &Path) -> Result<(Vec<ObjectMeta>, Vec<Path>)> {
        self.counts.lists.fetch_add(1, Ordering::Relaxed);
        let r = self
            .store
            .list_with_delimiter(Some(dir))
            .await
            .map_err(|e| os_err("list", dir, e))?;
        Ok((r.objects, r.common_prefixes))
    }
    /// Every object under `dir`, up to [`WALK_DEPTH`] levels down.
    async fn walk(&self, dir: &Path) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut level = vec![dir.clone()];
        for _ in 0..=WALK_DEPTH {
            let mut next = Vec::new();
            for d in level {
                let (objects, dirs) = self.list_dir(&d).await?;
                out.extend(objects);
                next.extend(dirs);
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(out)
    }
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The thread that runs the async requests, on its own current-thread runtime.
#[derive(Debug)]
struct Worker {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl Worker {
    fn start(timeout: Duration) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(format!("object store: runtime: {e}")))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("strom-object-store".into())
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(|e| Error::io(format!("object store: worker thread: {e}")))?;
        Ok(Worker {
            jobs: Some(tx),
            thread: Some(thread),
            timeout,
        })
    }

    /// Runs `fut` on the worker and waits for it, at most the call timeout.
    fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let timeout = self.timeout;
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::pin(async move {
            let r = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::io(format!(
                        "object store: {what}: timed out after {} ms",
                        timeout.as_millis()
                    )))
                });
            let _ = tx.send(r);
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| Error::io("object store: worker stopped"))?;
        // The job answers by its own timeout; the margin covers a stalled worker.
        match rx.recv_timeout(timeout.saturating_add(Duration::from_secs(1))) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::io(format!(
                "object store: {what}: no answer from the worker"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::io("object store: worker stopped"))
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the worker's loop; its runtime drops what is left.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What is known of one series: counters, two records and the open chunk.
#[derive(Debug, Clone)]
struct SeriesState {
    /// Position of the oldest live record.
    first_live: u64,
    /// Records appended (positions `0..count`).
    count: u64,
    first: Option<SegmentRecord>,
    /// The last record (live or not): the next number must be above.
    last: Option<SegmentRecord>,
    /// The open chunk object (`count / CHUNK_RECORDS`): header and its records.
    open: Bytes,
}

impl SeriesState {
    fn empty() -> Self {
        SeriesState {
            first_live: 0,
            count: 0,
            first: None,
            last: None,
            open: Bytes::copy_from_slice(&index::encode_header(0)),
        }
    }
    fn open_chunk(&self) -> u64 {
        self.count / CHUNK_RECORDS
    }
    fn live(&self) -> std::ops::Range<u64> {
        self.first_live..self.count
    }
}

#[derive(Debug)]
struct SeriesEntry {
    state: SeriesState,
    loaded: Instant,
    /// This store appended to it: what it knows is the newest.
    written: bool,
}

type SeriesKey = (String, Option<String>);

/// Full chunks, least recently used first.
#[derive(Debug, Default)]
struct ChunkCache {
    entries: VecDeque<((SeriesKey, u64), Bytes)>,
}

impl ChunkCache {
    fn get(&mut self, key: &SeriesKey, chunk: u64) -> Option<Bytes> {
        let at = self
            .entries
            .iter()
            .position(|((k, c), _)| *c == chunk && k == key)?;
        let e = self.entries.remove(at)?;
        let b = e.1.clone();
        self.entries.push_back(e);
        Some(b)
    }
    fn insert(&mut self, key: SeriesKey, chunk: u64, bytes: Bytes, cap: usize) {
        self.entries
            .retain(|((k, c), _)| !(*c == chunk && *k == key));
        while self.entries.len() >= cap.max(1) {
            self.entries.pop_front();
        }
        self.entries.push_back(((key, chunk), bytes));
    }
    fn forget_stream(&mut self, stream: &str) {
        self.entries.retain(|((k, _), _)| k.0 != stream);
    }
}

#[derive(Debug, Default)]
struct Inner {
    series: BTreeMap<SeriesKey, SeriesEntry>,
    cache: ChunkCache,
    /// Streams this store has written (admitted under `max_streams`).
    streams: BTreeSet<String>,
    /// Renditions this store has written per stream.
    renditions: BTreeMap<String, BTreeSet<String>>,
}

/// A [`SegmentStore`] in an object store: every object and its index record in a
/// bucket under a key prefix, shared by the origins that open the same bucket and
/// prefix (one writer per stream, any number of readers). Feature `object-store`.
///
/// This store is the crate's one network adapter, and the only place with an async
/// runtime: the [`SegmentStore`] trait is synchronous and is called from the host's
/// threads (often inside the host's own tokio runtime, holding a `std::sync::Mutex`), so
/// the store never blocks on a runtime in the caller's thread. It owns one thread with a
/// current-thread tokio runtime; each call sends a job to it and waits on a std channel,
/// at most [`ObjectSegmentStoreOptions::call_timeout_ms`] (the job is cancelled at that
/// time too). It works from any thread, inside a runtime or not.
///
/// # Layout
///
/// ```text
/// {prefix}/{stream}/{sequence}.ts
/// {prefix}/{stream}/{rendition}/init.mp4
/// {prefix}/{stream}/{rendition}/{number}.m4s
/// {prefix}/{stream}/index/ts/mark                  first live record of the TS index
/// {prefix}/{stream}/index/ts/{chunk:08}.idx        records chunk*1024 .. chunk*1024+1023
/// {prefix}/{stream}/index/cmaf/{rendition}/mark
/// {prefix}/{stream}/index/cmaf/{rendition}/{chunk:08}.idx
/// ```
///
/// Stream and rendition names are checked with [`super::valid_stream_name`] before a key
/// is built. A chunk object is an index file of [`super::index`] (its 64-byte header,
/// then up to [`CHUNK_RECORDS`] records of 64 bytes with their CRC); position `p` of a
/// series is record `p % 1024` of chunk `p / 1024`. Full chunks are never written again;
/// the last (open) chunk is rewritten whole on each append (a PUT replaces an object
/// atomically). `mark` is an index header ([`super::index::encode_header`]) whose first
/// live position says which records retention has dropped.
///
/// # Consistency
///
/// The object is stored first, its record after: the index never names an object that
/// was not completely stored. Retention writes the new mark, then deletes the chunks
/// before it, then the objects. One writer per stream at a time (the origin its
/// publisher is connected to); any number of readers. A store that has not written a
/// series reads it again from the bucket at most every
/// [`ObjectSegmentStoreOptions::refresh_ms`] (a LIST of the series and one or two
/// GETs), so readers see the records another origin appended within that time.
/// Reopening (a new store on the same bucket and prefix) discovers streams, series and
/// chunks by LIST; a last chunk with a torn or corrupted tail is read up to its last
/// valid record, and the next append rewrites it without the tail.
///
/// # Memory and requests
///
/// Per series the store keeps counters, the first and last records and the open chunk
/// (at most 64 KiB), plus a cache of at most
/// [`ObjectSegmentStoreOptions::cache_chunks`] full chunks (64 KiB each) shared by all
/// series: memory does not grow with what is stored. [`SegmentStore::records`] reads the
/// chunks it visits, [`ObjectSegmentStoreOptions::parallel_requests`] at a time (48 hours
/// of 2 s segments are 85 chunks: 11 rounds of 8 parallel GETs);
/// [`SegmentStore::record_at`] and the first record of `records` are binary searches over
/// the chunks (about 7 GETs over 85 chunks, cached after). [`ObjectSegmentStore::requests`]
/// counts the requests made.
///
/// # Errors
///
/// A failed or timed-out request is an [`crate::ErrorKind::Io`] naming the operation,
/// the key and the client's error; it never panics. Methods of the trait that return no
/// `Result` (`get`, `list`, `stream_bytes` ...) log the error at debug level and answer
/// as for a missing object.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use object_store::memory::InMemory;
/// use strom::origin::{ObjectSegmentStore, SegmentRecord, SegmentStore, Series};
/// use strom::time::Timestamp;
///
/// let bucket = Arc::new(InMemory::new());
/// let mut store = ObjectSegmentStore::new(bucket.clone(), "rec", Default::default()).unwrap();
/// for n in 0..3u64 {
///     let r = SegmentRecord::new(n, Timestamp::from_secs(2 * n as i64), Timestamp::from_secs(2))
///         .with_program_date_time(1_700_000_000_000 + 2000 * n as i64);
///     store.put_indexed("cam", Series::Ts, &r, Bytes::from(vec![0x47; 188])).unwrap();
/// }
/// // Another origin on the same bucket and prefix.
/// let other = ObjectSegmentStore::new(bucket, "rec", Default::default()).unwrap();
/// assert_eq!(other.stored_streams(), ["cam"]);
/// assert_eq!(other.last_record("cam", Series::Ts).unwrap().size, 188);
/// assert_eq!(other.get("cam", 1).unwrap(), Bytes::from(vec![0x47; 188]));
/// assert_eq!(other.record_at("cam", Series::Ts, 1_700_000_003_000).unwrap().number, 1);
/// ```
#[derive(Debug)]
pub struct ObjectSegmentStore {
    client: Client,
    prefix: Path,
    opts: ObjectSegmentStoreOptions,
    inner: Mutex<Inner>,
    // Last: dropped after everything that could still send it a job.
    worker: Worker,
}

/// Which series, and its index directory.
#[derive(Debug, Clone, Copy)]
struct Sel<'a> {
    stream: &'a str,
    rendition: Option<&'a str>,
}

impl Sel<'_> {
    fn key(&self) -> SeriesKey {
        (self.stream.to_owned(), self.rendition.map(str::to_owned))
    }
}

fn sel<'a>(stream: &'a str, series: Series<'a>) -> Sel<'a> {
    match series {
        Series::Ts => Sel {
            stream,
            rendition: None,
        },
        Series::Cmaf { rendition } => Sel {
            stream,
            rendition: Some(rendition),
        },
    }
}

fn chunk_name(chunk: u64) -> String {
    format!("{chunk:08}.idx")
}

/// The chunk number of an object name `{digits}.idx`.
fn chunk_number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".idx")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The number of an object name `{digits}.{ext}`.
fn object_number(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_suffix(ext)?.strip_suffix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks a full chunk object: a valid header and [`CHUNK_RECORDS`] valid records.
fn check_full_chunk(path: &Path, bytes: &Bytes) -> Result<()> {
    let rec = index::recover(&bytes[..], bytes.len() as u64)
        .map_err(|e| e.context(format!("object store: index chunk {path}")))?;
    if rec.count != CHUNK_RECORDS {
        return Err(Error::malformed(format!(
            "object store: index chunk {path}: {} valid records of {CHUNK_RECORDS}",
            rec.count
        )));
    }
    Ok(())
}

/// What loading a series from the bucket found.
struct Loaded {
    state: SeriesState,
    /// Full chunks read on the way, for the cache.
    full: Vec<(u64, Bytes)>,
}

fn record_in(chunk: &[u8], pos: u64) -> Result<SegmentRecord> {
    let at = HEADER_LEN + (pos % CHUNK_RECORDS) as usize * RECORD_LEN;
    let b = chunk
        .get(at..at + RECORD_LEN)
        .ok_or_else(|| Error::malformed("object store: record past its chunk"))?;
    index::decode_record(b)
}

/// Reads one series' index from the bucket: its chunks by LIST, the last one (up to
/// its last valid record), the mark, and the chunk of the first live record.
async fn load_series(c: Client, dir: Path) -> Result<Option<Loaded>> {
    let (objects, _) = c.list_dir(&dir).await?;
    let mut chunks: Vec<u64> = Vec::new();
    let mut has_mark = false;
    for o in &objects {
        match o.location.filename() {
            Some(MARK) => has_mark = true,
            Some(name) => chunks.extend(chunk_number(name)),
            None => {}
        }
    }
    chunks.sort_unstable();
    let (Some(&first_c), Some(&last_c)) = (chunks.first(), chunks.last()) else {
        return Ok(has_mark.then(|| Loaded {
            state: SeriesState::empty(),
            full: Vec::new(),
        }));
    };
    let mut full = Vec::new();
    let last_path = dir.clone().join(chunk_name(last_c));
    let bytes = c.get(&last_path).await?.unwrap_or_default();
    let (n, valid) = match index::recover(&bytes[..], bytes.len() as u64) {
        Ok(r) => (
            r.count.min(CHUNK_RECORDS),
            bytes.slice(..index::record_offset(r.count.min(CHUNK_RECORDS)) as usize),
        ),
        Err(e) => {
            tracing::debug!("object store: {last_path}: {e}; read as empty");
            (0, Bytes::copy_from_slice(&index::encode_header(0)))
        }
    };
    let mut state = SeriesState::empty();
    state.count = last_c * CHUNK_RECORDS + n;
    if n == CHUNK_RECORDS {
        full.push((last_c, valid));
    } else {
        state.open = valid;
    }
    // The last record: in the last chunk, or the one before when it holds none.
    state.last = if n > 0 {
        let chunk = full.last().map_or(&state.open, |(_, b)| b);
        Some(record_in(chunk, n - 1)?)
    } else if last_c > first_c {
        let p = dir.clone().join(chunk_name(last_c - 1));
        let b = c
            .get(&p)
            .await?
            .ok_or_else(|| Error::io(format!("object store: index chunk {p} missing")))?;
        check_full_chunk(&p, &b)?;
        let r = record_in(&b, CHUNK_RECORDS - 1)?;
        full.push((last_c - 1, b));
        Some(r)
    } else {
        None
    };
    let mut first_live = first_c * CHUNK_RECORDS;
    if has_mark {
        let p = dir.clone().join(MARK);
        match c.get(&p).await?.map(|b| index::decode_header(&b)) {
            Some(Ok(m)) => first_live = first_live.max(m.first_live),
            Some(Err(e)) => tracing::debug!("object store: {p}: {e}; ignored"),
            None => {}
        }
    }
    state.first_live = first_live.min(state.count);
    if state.first_live < state.count {
        let fc = state.first_live / CHUNK_RECORDS;
        let chunk = if fc == state.open_chunk() {
            state.open.clone()
        } else if let Some((_, b)) = full.iter().find(|(k, _)| *k == fc) {
            b.clone()
        } else {
            let p = dir.clone().join(chunk_name(fc));
            let b = c
                .get(&p)
                .await?
                .ok_or_else(|| Error::io(format!("object store: index chunk {p} missing")))?;
            check_full_chunk(&p, &b)?;
            full.push((fc, b.clone()));
            b
        };
        state.first = Some(record_in(&chunk, state.first_live)?);
    }
    Ok(Some(Loaded { state, full }))
}

/// A series' records as one virtual index file ([`ReadAt`]) over its chunks, for the
/// searches and visits of [`super::index`].
struct View<'a> {
    store: &'a ObjectSegmentStore,
    sel: Sel<'a>,
    key: SeriesKey,
    state: &'a SeriesState,
    /// Chunks fetched at once when one is missing.
    ahead: u64,
}

impl View<'_> {
    fn chunk(&self, chunk: u64) -> Result<Bytes> {
        if chunk == self.state.open_chunk() {
            return Ok(self.state.open.clone());
        }
        if let Some(b) = self.store.lock().cache.get(&self.key, chunk) {
            return Ok(b);
        }
        // This one and the next missing full chunks, in parallel.
        let last_full = self.state.open_chunk().saturating_sub(1);
        let want: Vec<u64> = {
            let mut inner = self.store.lock();
            (chunk..=last_full.min(chunk.saturating_add(self.ahead - 1)))
                .filter(|&c| c == chunk || inner.cache.get(&self.key, c).is_none())
                .collect()
        };
        let dir = self.store.index_dir(self.sel);
        let client = self.store.client.clone();
        let got = self.store.worker.run("get index chunks", async move {
            let mut set = tokio::task::JoinSet::new();
            for c in want {
                let client = client.clone();
                let p = dir.clone().join(chunk_name(c));
                set.spawn(async move {
                    let b = client.get(&p).await?.ok_or_else(|| {
                        Error::io(format!("object store: index chunk {p} missing"))
                    })?;
                    check_full_chunk(&p, &b)?;
                    Ok::<_, Error>((c, b))
                });
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.map_err(|e| Error::io(format!("object store: task: {e}")))??);
            }
            Ok(out)
        })?;
        let mut inner = self.store.lock();
        let cap = self.store.cache_cap();
        let mut this = None;
        for (c, b) in got {
            if c == chunk {
                this = Some(b.clone());
            }
            inner.cache.insert(self.key.clone(), c, b, cap);
        }
        this.ok_or_else(|| Error::io("object store: index chunk not fetched"))
    }
}

impl ReadAt for View<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut rel = offset
            .checked_sub(HEADER_LEN as u64)
            .ok_or_else(|| Error::usage("object store: index header read"))?;
        let mut done = 0;
        while done < buf.len() {
            let pos = rel / RECORD_LEN as u64;
            if pos >= self.state.count {
                return Err(Error::malformed("object store: read past the index").at_offset(offset));
            }
            let chunk = self.chunk(pos / CHUNK_RECORDS)?;
            let at = HEADER_LEN as u64
                + (pos % CHUNK_RECORDS) * RECORD_LEN as u64
                + rel % RECORD_LEN as u64;
            let src = usize::try_from(at)
                .ok()
                .and_then(|a| chunk.get(a..))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Error::malformed("object store: read past an index chunk").at_offset(offset)
                })?;
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
            rel += n as u64;
        }
        Ok(())
    }
}

impl ObjectSegmentStore {
    /// A store over `store` (an `object_store` S3, GCS, Azure, local or in-memory
    /// store) under the key prefix `prefix` (`""` for the bucket's root; `/`-separated
    /// parts). Makes no request: streams and series are discovered by LIST when they
    /// are first asked for.
    ///
    /// Errors: a prefix that is not a valid object path ([`Error::usage`]); the worker
    /// thread or its runtime cannot start ([`crate::ErrorKind::Io`]).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        opts: ObjectSegmentStoreOptions,
    ) -> Result<Self> {
        let prefix = Path::parse(prefix)
            .map_err(|e| Error::usage(format!("object store: prefix {prefix:?}: {e}")))?;
        let worker = Worker::start(Duration::from_millis(opts.call_timeout_ms.max(1)))?;
        Ok(ObjectSegmentStore {
            client: Client {
                store,
                counts: Arc::default(),
            },
            prefix,
            opts,
            inner: Mutex::default(),
            worker,
        })
    }

    /// The options the store was created with.
    pub fn options(&self) -> &ObjectSegmentStoreOptions {
        &self.opts
    }

    /// Requests made so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        let c = &self.client.counts;
        RequestCounts {
            gets: c.gets.load(Ordering::Relaxed),
            puts: c.puts.load(Ordering::Relaxed),
            deletes_and_heads: c.others.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave `Inner` half-updated in a way reads could trust
        // less than a fresh load: take it as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_cap(&self) -> usize {
        self.opts.cache_chunks.max(self.ahead() as usize)
    }

    fn ahead(&self) -> u64 {
        self.opts.parallel_requests.max(1) as u64
    }

    fn stream_dir(&self, stream: &str) -> Path {
        self.prefix.clone().join(stream)
    }

    fn index_dir(&self, s: Sel<'_>) -> Path {
        let d = self.stream_dir(s.stream).join(INDEX);
        match s.rendition {
            None => d.clone().join(INDEX_TS),
            Some(r) => d.clone().join(INDEX_CMAF).join(r),
        }
    }

    fn object_path(&self, s: Sel<'_>, number: u64) -> Path {
        match s.rendition {
            None => self.stream_dir(s.stream).join(format!("{number}.ts")),
            Some(r) => self
                .stream_dir(s.stream)
                .join(r)
                .join(format!("{number}.m4s")),
        }
    }

    fn cmaf_path(&self, stream: &str, key: CmafKey<'_>) -> Path {
        match key {
            CmafKey::Init { rendition } => self.stream_dir(stream).join(rendition).join(INIT),
            CmafKey::Fragment { rendition, number } => self.object_path(
                Sel {
                    stream,
                    rendition: Some(rendition),
                },
                number,
            ),
        }
    }

    fn valid(s: Sel<'_>) -> bool {
        valid_stream_name(s.stream) && s.rendition.is_none_or(valid_stream_name)
    }

    fn check_put(&self, s: Sel<'_>, len: usize) -> Result<()> {
        if !Self::valid(s) {
            return Err(Error::usage(format!(
                "object store: invalid stream or rendition name {:?} {:?}",
                s.stream, s.rendition
            )));
        }
        if len > self.opts.max_object_bytes {
            return Err(Error::limit(format!(
                "object store: object of {len} bytes over the limit of {}",
                self.opts.max_object_bytes
            )));
        }
        self.admit(s)
    }

    /// Admits a stream (and a rendition) this store has not written yet under
    /// `max_streams` (a LIST of the prefix) and the renditions limit.
    fn admit(&self, s: Sel<'_>) -> Result<()> {
        let known = {
            let inner = self.lock();
            let stream_known = inner.streams.contains(s.stream);
            let rendition_ok = match s.rendition {
                None => true,
                Some(r) => inner
                    .renditions
                    .get(s.stream)
                    .is_none_or(|set| set.contains(r) || set.len() < MAX_RENDITIONS),
            };
            if !rendition_ok {
                return Err(Error::limit(format!(
                    "object store: stream {}: more than {MAX_RENDITIONS} renditions",
                    s.stream
                )));
            }
            stream_known
        };
        if !known {
            let dir = self.prefix.clone();
            let client = self.client.clone();
            let (_, dirs) = self
                .worker
                .run("list streams", async move { client.list_dir(&dir).await })?;
            let names: BTreeSet<&str> = dirs.iter().filter_map(|d| d.filename()).collect();
            if !names.contains(s.stream) && names.len() >= self.opts.max_streams {
                return Err(Error::limit(format!(
                    "object store: more than {} streams",
                    self.opts.max_streams
                )));
            }
        }
        let mut inner = self.lock();
        inner.streams.insert(s.stream.to_owned());
        if let Some(r) = s.rendition {
            inner
                .renditions
                .entry(s.stream.to_owned())
                .or_default()
                .insert(r.to_owned());
        }
        Ok(())
    }

    fn put_object(&self, what: &'static str, path: Path, data: Bytes) -> Result<()> {
        let client = self.client.clone();
        self.worker
            .run(what, async move { client.put(&path, data).await })
    }

    fn get_object(&self, path: Path) -> Option<Bytes> {
        let client = self.client.clone();
        let shown = path.to_string();
        self.worker
            .run("get", async move { client.get(&path).await })
            .unwrap_or_else(|e| {
                tracing::debug!("object store: get {shown}: {e}");
                None
            })
    }

    /// What is known of a series: from memory when this store writes it or read it less
    /// than `refresh_ms` ago (or `for_write`), else read again from the bucket. `None`:
    /// the series has no index.
    fn state(&self, s: Sel<'_>, for_write: bool) -> Result<Option<SeriesState>> {
        let key = s.key();
        {
            let inner = self.lock();
            if let Some(e) = inner.series.get(&key) {
                let fresh = e.loaded.elapsed() < Duration::from_millis(self.opts.refresh_ms);
                if e.written || (fresh && !for_write) {
                    return Ok(Some(e.state.clone()));
                }
            }
        }
        let dir = self.index_dir(s);
        let client = self.client.clone();
        let loaded = self.worker.run("load index", load_series(client, dir))?;
        let mut inner = self.lock();
        let cap = self.cache_cap();
        let Some(loaded) = loaded else {
            inner.series.remove(&key);
            return Ok(None);
        };
        for (c, b) in loaded.full {
            inner.cache.insert(key.clone(), c, b, cap);
        }
        inner.series.insert(
            key,
            SeriesEntry {
                state: loaded.state.clone(),
                loaded: Instant::now(),
                written: for_write,
            },
        );
        Ok(Some(loaded.state))
    }

    fn view<'a>(&'a self, s: Sel<'a>, state: &'a SeriesState, ahead: u64) -> View<'a> {
        View {
            store: self,
            sel: s,
            key: s.key(),
            state,
            ahead: ahead.max(1),
        }
    }

    /// Appends `record` to the series' index (the object is stored already).
    fn append(&self, s: Sel<'_>, mut state: SeriesState, record: SegmentRecord) -> Result<()> {
        let mut open = Vec::with_capacity(state.open.len() + RECORD_LEN);
        open.extend_from_slice(&state.open);
        open.extend_from_slice(&index::encode_record(&record));
        let open = Bytes::from(open);
        let chunk = state.open_chunk();
        self.put_object(
            "put index chunk",
            self.index_dir(s).join(chunk_name(chunk)),
            open.clone(),
        )?;
        state.count += 1;
        state.last = Some(record);
        if state.first.is_none() {
            state.first_live = state.count - 1;
            state.first = Some(record);
        }
        let key = s.key();
        let mut inner = self.lock();
        if state.count.is_multiple_of(CHUNK_RECORDS) {
            let cap = self.cache_cap();
            inner.cache.insert(key.clone(), chunk, open, cap);
            state.open = Bytes::copy_from_slice(&index::encode_header(0));
        } else {
            state.open = open;
        }
        inner.series.insert(
            key,
            SeriesEntry {
                state,
                loaded: Instant::now(),
                written: true,
            },
        );
        Ok(())
    }

    /// Drops the records retention no longer keeps: the mark first, then the dead
    /// chunks, then the objects.
    fn retain(&self, s: Sel<'_>) -> Result<()> {
        let Some(mut state) = self.state(s, true)? else {
            return Ok(());
        };
        let (Some(first), Some(last)) = (state.first, state.last) else {
            return Ok(());
        };
        let max = self.opts.max_records_per_series.max(1);
        let mut new_first = state.first_live.max(state.count.saturating_sub(max));
        if let Some(age) = self.opts.max_age_ms {
            let cutoff = last.program_date_time_end().saturating_sub(age);
            if first.program_date_time_end() <= cutoff {
                let v = self.view(s, &state, 1);
                let at = index::first_ending_after(&v, state.live(), cutoff)?;
                new_first = new_first.max(at);
            }
        }
        // The newest record stays.
        new_first = new_first.min(state.count - 1);
        if new_first <= state.first_live {
            return Ok(());
        }
        let mut dead = Vec::new();
        {
            let v = self.view(s, &state, self.ahead());
            index::visit_verified(
                &v,
                state.first_live..new_first,
                Verify::Fields,
                &mut |_, r| {
                    dead.push(self.object_path(s, r.number));
                    true
                },
            )?;
        }
        let new_first_rec = {
            let v = self.view(s, &state, 1);
            index::read_record(&v, new_first)?
        };
        let dir = self.index_dir(s);
        self.put_object(
            "put index mark",
            dir.clone().join(MARK),
            Bytes::copy_from_slice(&index::encode_header(new_first)),
        )?;
        let dead_chunks: Vec<Path> = (state.first_live / CHUNK_RECORDS..new_first / CHUNK_RECORDS)
            .map(|c| dir.clone().join(chunk_name(c)))
            .collect();
        state.first_live = new_first;
        state.first = Some(new_first_rec);
        {
            let mut inner = self.lock();
            if let Some(e) = inner.series.get_mut(&s.key()) {
                e.state = state;
            }
        }
        let client = self.client.clone();
        self.worker.run("delete expired", async move {
            client.delete_all(dead_chunks).await?;
            client.delete_all(dead).await
        })
    }

    fn do_records(
        &self,
        s: Sel<'_>,
        from: u64,
        visit: &mut dyn FnMut(&SegmentRecord) -> bool,
    ) -> Result<()> {
        if !Self::valid(s) {
            return Ok(());
        }
        let Some(state) = self.state(s, false)? else {
            return Ok(());
        };
        let v = self.view(s, &state, 1);
        let start = index::first_at_or_after(&v, state.live(), from)?;
        let v = self.view(s, &state, self.ahead());
        index::visit_verified(&v, start..state.count, Verify::Fields, &mut |_, r| visit(r))
    }

    /// Names of the streams under the prefix that have an index.
    fn list_streams(&self) -> Result<Vec<String>> {
        let dir = self.prefix.clone();
        let client = self.client.clone();
        self.worker.run("list streams", async move {
            let (_, dirs) = client.list_dir(&dir).await?;
            let mut set = tokio::task::JoinSet::new();
            for d in dirs {
                let Some(name) = d.filename().filter(|n| valid_stream_name(n)) else {
                    continue;
                };
                let name = name.to_owned();
                let client = client.clone();
                let index_dir = d.clone().join(INDEX);
                set.spawn(async move {
                    let (_, series) = client.list_dir(&index_dir).await?;
                    let has = series
                        .iter()
                        .any(|p| matches!(p.filename(), Some(INDEX_TS | INDEX_CMAF)));
                    Ok::<_, Error>(has.then_some(name))
                });
            }
            let mut names = Vec::new();
            while let Some(r) = set.join_next().await {
                let r = r.map_err(|e| Error::io(format!("object store: task: {e}")))??;
                names.extend(r);
            }
            names.sort();
            Ok(names)
        })
    }
}

impl SegmentStore for ObjectSegmentStore {
    fn put(&mut self, stream: &str, sequence: u64, data: Bytes) -> Result<()> {
        let s = Sel {
            stream,
            rendition: None,
        };
        self.check_put(s, data.len())?;
        self.put_object("put segment", self.object_path(s, sequence), data)
    }

    fn get(&self, stream: &str, sequence: u64) -> Option<Bytes> {
        let s = Sel {
            stream,
            rendition: None,
        };
        Self::valid(s).then(|| self.get_object(self.object_path(s, sequence)))?
    }

    fn remove(&mut self, stream: &str, sequence: u64) -> bool {
        let s = Sel {
            stream,
            rendition: None,
        };
        if !Self::valid(s) {
            return false;
        }
        let path = self.object_path(s, sequence);
        let client = self.client.clone();
        self.worker
            .run("remove", async move {
                let had = client.head(&path).await?;
                if had {
                    client.delete(&path).await?;
                }
                Ok(had)
            })
            .unwrap_or_else(|e| {
                tracing::debug!("{e}");
                false
            })
    }

    fn list(&self, stream: &str) -> Vec<u64> {
        if !valid_stream_name(stream) {
            return Vec::new();
        }
        let dir = self.stream_dir(stream);
        let client = self.client.clone();
        let r = self
            .worker
            .run("list", async move { client.list_dir(&dir).await });
        match r {
            Ok((objects, _)) => {
                let mut v: Vec<u64> = objects
                    .iter()
                    .filter_map(|o| object_number(o.location.filename()?, "ts"))
                    .collect();
                v.sort_unstable();
                v
            }
            Err(e) => {
                tracing::debug!("{e}");
                Vec::new()
            }
        }
    }

    /// Bytes of every object of the stream (segments, fragments, init segments; not
    /// the index): a LIST of the stream's keys (a page per 1 000 objects), for
    /// `/streams.json`, not for hot paths.
    fn stream_bytes(&self, stream: &str) -> usize {
        if !valid_stream_name(stream) {
            return 0;
        }
        let dir = self.stream_dir(stream);
        let index_dirs = [
            dir.clone().join(INDEX).join(INDEX_TS),
            dir.clone().join(INDEX).join(INDEX_CMAF),
        ];
        let client = self.client.clone();
        let r = self
            .worker
            .run("list", async move { client.walk(&dir).await });
        match r {
            Ok(objects) => objects
                .iter()
                .filter(|o| !index_dirs.iter().any(|d| o.location.prefix_matches(d)))
                .map(|o| usize::try_from(o.size).unwrap_or(usize::MAX))
                .fold(0usize, usize::saturating_add),
            Err(e) => {
                tracing::debug!("{e}");
                0
            }
        }
    }

    /// Deletes every object of the stream, its index first (other origins stop
    /// listing it), then its objects. A failure is logged at debug level; what is left
    /// goes with the next `remove_stream`.
    fn remove_stream(&mut self, stream: &str) {
        if !valid_stream_name(stream) {
            return;
        }
        {
            let mut inner = self.lock();
            inner.series.retain(|k, _| k.0 != stream);
            inner.cache.forget_stream(stream);
            inner.streams.remove(stream);
            inner.renditions.remove(stream);
        }
        let dir = self.stream_dir(stream);
        let index_dir = dir.clone().join(INDEX);
        let index_dirs = [
            index_dir.clone().join(INDEX_TS),
            index_dir.clone().join(INDEX_CMAF),
        ];
        let client = self.client.clone();
        let r = self.worker.run("remove stream", async move {
            let objects = client.walk(&dir).await?;
            let (index, rest): (Vec<Path>, Vec<Path>) = objects
                .into_iter()
                .map(|o| o.location)
                .partition(|p| index_dirs.iter().any(|d| p.prefix_matches(d)));
            client.delete_all(index).await?;
            client.delete_all(rest).await
        });
        if let Err(e) = r {
            tracing::debug!("object store: remove stream {stream}: {e}");
        }
    }

    fn put_cmaf(&mut self, stream: &str, key: CmafKey<'_>, data: Bytes) -> Result<()> {
        let s = Sel {
            stream,
            rendition: Some(key.rendition()),
        };
        self.check_put(s, data.len())?;
        self.put_object("put cmaf", self.cmaf_path(stream, key), data)
    }

    fn get_cmaf(&self, stream: &str, key: CmafKey<'_>) -> Option<Bytes> {
        let s = Sel {
            stream,
            rendition: Some(key.rendition()),
        };
        Self::valid(s).then(|| self.get_object(self.cmaf_path(stream, key)))?
    }

    /// Stores the object, then appends its record to the series' index (the record's
    /// `size` is the data's length), then applies retention (a failure of retention is
    /// logged at debug level, not returned: the put is stored).
    fn put_indexed(
        &mut self,
        stream: &str,
        series: Series<'_>,
        record: &SegmentRecord,
        data: Bytes,
    ) -> Result<()> {
        let s = sel(stream, series);
        self.check_put(s, data.len())?;
        let state = self.state(s, true)?.unwrap_or_else(SeriesState::empty);
        if let Some(last) = state.last {
            if record.number <= last.number {
                return Err(Error::usage(format!(
                    "object store: {stream}: record {} not above the last one {}",
                    record.number, last.number
                )));
            }
        }
        let record = record.with_size(data.len() as u64);
        self.put_object("put object", self.object_path(s, record.number), data)?;
        self.append(s, state, record)?;
        if let Err(e) = self.retain(s) {
            tracing::debug!("object store: {stream}: retention: {e}");
        }
        Ok(())
    }

    fn records(
        &self,
        stream: &str,
        series: Series<'_>,
        from: u64,
        visit: &mut dyn FnMut(&SegmentRecord) -> bool,
    ) -> Result<()> {
        self.do_records(sel(stream, series), from, visit)
    }

    fn record_at(&self, stream: &str, series: Series<'_>, unix_ms: i64) -> Option<SegmentRecord> {
        let s = sel(stream, series);
        if !Self::valid(s) {
            return None;
        }
        let r = (|| {
            let Some(state) = self.state(s, false)? else {
                return Ok(None);
            };
            let v = self.view(s, &state, 1);
            let at = index::first_ending_after(&v, state.live(), unix_ms)?;
            if at >= state.count {
                return Ok(None);
            }
            index::read_record(&v, at).map(Some)
        })();
        r.unwrap_or_else(|e: Error| {
            tracing::debug!("object store: record_at {stream}: {e}");
            None
        })
    }

    fn last_record(&self, stream: &str, series: Series<'_>) -> Option<SegmentRecord> {
        let s = sel(stream, series);
        if !Self::valid(s) {
            return None;
        }
        match self.state(s, false) {
            Ok(Some(state)) => state.last.filter(|_| state.first_live < state.count),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("object store: last_record {stream}: {e}");
                None
            }
        }
    }

    fn stored_streams(&self) -> Vec<String> {
        self.list_streams().unwrap_or_else(|e| {
            tracing::debug!("object store: stored_streams: {e}");
            Vec::new()
        })
    }

    fn stored_renditions(&self, stream: &str) -> Vec<String> {
        if !valid_stream_name(stream) {
            return Vec::new();
        }
        let dir = self.stream_dir(stream);
        let client = self.client.clone();
        let r = self.worker.run("list renditions", async move {
            let (_, dirs) = client.list_dir(&dir).await?;
            let mut names = BTreeSet::new();
            for d in &dirs {
                match d.filename() {
                    Some(INDEX) => {
                        // The index, and maybe a rendition named `index` too.
                        let (objects, _) = client.list_dir(d).await?;
                        if !objects.is_empty() {
                            names.insert(INDEX.to_owned());
                        }
                    }
                    Some(n) if valid_stream_name(n) => {
                        names.insert(n.to_owned());
                    }
                    _ => {}
                }
            }
            let (_, indexed) = client
                .list_dir(&dir.clone().join(INDEX).join(INDEX_CMAF))
                .await?;
            names.extend(
                indexed
                    .iter()
                    .filter_map(|d| d.filename())
                    .filter(|n| valid_stream_name(n))
                    .map(str::to_owned),
            );
            Ok(names.into_iter().collect())
        });
        r.unwrap_or_else(|e| {
            tracing::debug!("object store: stored_renditions {stream}: {e}");
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use object_store::memory::InMemory;

    fn rec(n: u64) -> SegmentRecord {
        SegmentRecord::new(
            n,
            Timestamp::from_secs(2 * n as i64),
            Timestamp::from_secs(2),
        )
        .with_program_date_time(1_700_000_000_000 + 2000 * n as i64)
    }

    fn store(bucket: &Arc<InMemory>, o: ObjectSegmentStoreOptions) -> ObjectSegmentStore {
        ObjectSegmentStore::new(bucket.clone(), "p/q", o).unwrap()
    }

    #[test]
    fn chunks_fill_and_reopen_across_chunk_boundaries() {
        let bucket = Arc::new(InMemory::new());
        let o = ObjectSegmentStoreOptions {
            max_age_ms: None,
            cache_chunks: 2,
            parallel_requests: 2,
            ..Default::default()
        };
        let s = store(&bucket, o.clone());
        let n = 3 * CHUNK_RECORDS + 5;
        for i in 0..n {
            s.append(
                Sel {
                    stream: "a",
                    rendition: None,
                },
                s.state(
                    Sel {
                        stream: "a",
                        rendition: None,
                    },
                    true,
                )
                .unwrap()
                .unwrap_or_else(SeriesState::empty),
                rec(i).with_size(i),
            )
            .unwrap();
        }
        let r = ObjectSegmentStore::new(bucket.clone(), "p/q", o).unwrap();
        let mut seen = 0;
        r.records("a", Series::Ts, 0, &mut |x| {
            assert_eq!(x.number, seen);
            seen += 1;
            true
        })
        .unwrap();
        assert_eq!(seen, n);
        assert_eq!(r.last_record("a", Series::Ts).unwrap().number, n - 1);
        let at = r.record_at("a", Series::Ts, 1_700_000_000_000 + 2000 * 2050 + 1);
        assert_eq!(at.unwrap().number, 2050);
        // The cache stays within its bound.
        assert!(r.lock().cache.entries.len() <= 2);
    }

    #[test]
    fn names_and_limits_are_typed_errors() {
        let bucket = Arc::new(InMemory::new());
        let o = ObjectSegmentStoreOptions {
            max_object_bytes: 10,
            ..Default::default()
        };
        let mut s = store(&bucket, o);
        let e = s.put("../x", 0, Bytes::new()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        let e = s.put("x", 0, Bytes::from(vec![0; 11])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Limit);
        assert_eq!(s.get("../x", 0), None);
        assert!(ObjectSegmentStore::new(bucket, "a//b", Default::default()).is_err());
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use crate::time::Timestamp;
    use object_store::memory::InMemory;

    #[test]
    fn count_retention_deletes_dead_chunks() {
        let bucket = Arc::new(InMemory::new());
        let o = ObjectSegmentStoreOptions {
            max_age_ms: None,
            max_records_per_series: 500,
            ..Default::default()
        };
        let mut s = ObjectSegmentStore::new(bucket.clone(), "cnt", o).unwrap();
        let n = 2 * CHUNK_RECORDS + 100;
        for i in 0..n {
            let r = SegmentRecord::new(
                i,
                Timestamp::from_secs(2 * i as i64),
                Timestamp::from_secs(2),
            );
            s.put_indexed("b", Series::Ts, &r, Bytes::from_static(b"abc"))
                .unwrap();
            s.retain(Sel {
                stream: "b",
                rendition: None,
            })
            .unwrap();
        }
        let st = s
            .state(
                Sel {
                    stream: "b",
                    rendition: None,
                },
                false,
            )
            .unwrap()
            .unwrap();
        assert_eq!(st.first_live, n - 500);
        let client = s.client.clone();
        let p = Path::from("cnt/b/index/ts/00000000.idx");
        let got = s
            .worker
            .run("t", async move { client.get(&p).await })
            .unwrap();
        assert!(got.is_none(), "chunk 0 left");
    }
}
