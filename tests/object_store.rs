//! `ObjectSegmentStore` (feature `object-store`) against a real S3-compatible server:
//! moto's server mode (PyPI `moto[server]`, pinned in `scripts/test.sh`), started by each
//! test on 127.0.0.1 and a free port, killed by its handle at the end. No mock: requests
//! go over HTTP with SigV4 signatures through `object_store`'s S3 client.
//!
//! * the generic store suite (`tests/common/store_suite.rs`, also run on `MemoryStore` and
//!   `DiskStore`), called from inside a host's tokio runtime, and `survives_reopen`;
//! * two stores on the same prefix (two origins): the reader sees the writer's records and
//!   bytes, and what the writer appends later within `refresh_ms`;
//! * a writer dropped mid-way (an object stored without its record, a torn tail on the
//!   open index chunk): a reopened store recovers the valid records and writes on;
//! * 48 hours of 2 s records (86 400, 85 chunks): `records` and `record_at` in a bounded
//!   number of GETs (figures printed);
//! * the server gone: typed `Io` errors within the call timeout, no panic.
//!
//! Run with `cargo test --release --features object-store --test object_store -- --nocapture`
//! to see the figures. Without moto the tests fail with the command that installs it.
#![cfg(feature = "object-store")]

#[path = "common/store_suite.rs"]
#[allow(dead_code)]
mod store_suite;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use store_suite::{self as suite, payload, rec, size_of, BASE_MS};
use strom::origin::index;
use strom::origin::{
    ObjectSegmentStore, ObjectSegmentStoreOptions, SegmentStore, Series, OBJECT_CHUNK_RECORDS,
};
use strom::ErrorKind;

/// The moto release `scripts/test.sh` installs.
const MOTO: &str = "moto[server]==5.2.1";
const BUCKET: &str = "strom-test";

/// A moto server on 127.0.0.1, killed (by its handle) on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_hint() -> String {
    format!(
        "moto's S3 server is needed: python3 -m pip install '{MOTO}' \
         (or run scripts/test.sh, which installs it)"
    )
}

impl Moto {
    /// Starts `python3 -m moto.server` on a free port and creates [`BUCKET`]; waits at
    /// most 30 s for it to answer.
    fn start() -> Moto {
        let probe = Command::new("python3")
            .args(["-c", "import moto.server, flask, flask_cors"])
            .status();
        assert!(
            probe.is_ok_and(|s| s.success()),
            "python3 cannot import moto.server: {}",
            install_hint()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto: {e}; {}", install_hint()));
        let moto = Moto { child, port };
        let t0 = Instant::now();
        loop {
            if let Ok(status) = moto.raw("PUT", &format!("/{BUCKET}")) {
                assert_eq!(status, 200, "create bucket");
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "moto did not answer on 127.0.0.1:{port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// One plain HTTP/1.1 request without a body (moto does not check signatures):
    /// the status code.
    fn raw(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        let code = std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|c| c.parse().ok());
        code.ok_or_else(|| std::io::Error::other("not an HTTP answer"))
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn bucket(&self) -> Arc<dyn ObjectStore> {
        s3(&self.endpoint())
    }
}

fn s3(endpoint: &str) -> Arc<dyn ObjectStore> {
    strom::origin::install_tls_provider();
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .expect("S3 client"),
    )
}

fn opts() -> ObjectSegmentStoreOptions {
    let mut o = ObjectSegmentStoreOptions::default();
    o.max_streams = 8;
    o.call_timeout_ms = 20_000;
    o
}

fn open(
    bucket: &Arc<dyn ObjectStore>,
    prefix: &str,
    o: &ObjectSegmentStoreOptions,
) -> ObjectSegmentStore {
    ObjectSegmentStore::new(bucket.clone(), prefix, o.clone()).expect("store")
}

/// Runs `f` on a current-thread tokio runtime, as a host's request handler would.
fn in_runtime<T>(f: impl FnOnce() -> T) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move { f() })
}

/// A blocking GET on a thread and runtime of its own (the test's own view of the bucket).
fn raw_get(bucket: &Arc<dyn ObjectStore>, key: &str) -> Option<Bytes> {
    let b = bucket.clone();
    let key = Path::from(key);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                match b.get(&key).await {
                    Ok(r) => Some(r.bytes().await.expect("body")),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => panic!("get {key}: {e}"),
                }
            })
    })
    .join()
    .expect("get thread")
}

fn raw_put(bucket: &Arc<dyn ObjectStore>, key: &str, data: Bytes) {
    let b = bucket.clone();
    let key = Path::from(key);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move { b.put(&key, PutPayload::from(data)).await.expect("put") })
    })
    .join()
    .expect("put thread");
}

fn numbers(s: &ObjectSegmentStore, stream: &str, series: Series<'_>) -> Vec<u64> {
    suite::collect(s, stream, series, 0)
        .iter()
        .map(|r| r.number)
        .collect()
}

#[test]
fn suite_on_object_store_inside_a_runtime() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    let t0 = Instant::now();
    // Called from a tokio runtime's thread, as the example origin does behind a std Mutex:
    // the store must not block on a runtime of its own in this thread.
    let (requests, s) = in_runtime(|| {
        let mut s = open(&bucket, "suite", &opts());
        suite::indexed_round_trip(&mut s);
        suite::numbers_must_increase(&mut s);
        suite::streams_listed_and_removed(&mut s);
        suite::init_replaced(&mut s);
        suite::stream_limit(&mut s, 8);
        (s.requests(), s)
    });
    assert!(s.stored_streams().is_empty());
    println!(
        "suite: {:.1} s, {} GET, {} PUT, {} DELETE/HEAD, {} LIST",
        t0.elapsed().as_secs_f64(),
        requests.gets,
        requests.puts,
        requests.deletes_and_heads,
        requests.lists
    );
    // Everything removed: nothing is left under the prefix.
    let other = open(&bucket, "suite", &opts());
    assert!(other.stored_streams().is_empty());
    let s = suite::survives_reopen(open(&bucket, "dur", &opts()), |s| {
        drop(s);
        open(&bucket, "dur", &opts())
    });
    assert!(s.stored_streams().is_empty());
}

#[test]
fn two_origins_share_one_recording() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    let mut o = opts();
    o.refresh_ms = 300;
    let mut writer = open(&bucket, "shared/rec", &o);
    let reader = open(&bucket, "shared/rec", &o);
    suite::fill(&mut writer, "cam", 0..40);
    // The reader has never seen the stream: it discovers it by LIST.
    suite::check_filled(&reader, "cam", 0..40);
    assert_eq!(reader.stored_streams(), ["cam"]);
    assert_eq!(reader.stored_renditions("cam"), ["a2", "v1"]);
    assert_eq!(
        suite::snapshot(&reader),
        suite::snapshot(&writer),
        "same records and bytes"
    );
    // The writer goes on; the reader sees it within refresh_ms (and not before it
    // re-reads: what it knows is at most that old).
    suite::fill(&mut writer, "cam", 40..45);
    let t0 = Instant::now();
    let seen_at = loop {
        let last = reader.last_record("cam", Series::Ts).map(|r| r.number);
        if last == Some(44) {
            break t0.elapsed();
        }
        assert_eq!(
            last,
            Some(39),
            "the reader's view is the old or the new one"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "reader never refreshed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        seen_at <= Duration::from_millis(300 + 200),
        "seen after {seen_at:?}"
    );
    std::thread::sleep(Duration::from_millis(350));
    suite::check_filled(&reader, "cam", 0..45);
    println!(
        "reader saw the writer's appends after {} ms",
        seen_at.as_millis()
    );
    // A third origin with a different prefix sees nothing.
    let elsewhere = open(&bucket, "shared/other", &o);
    assert!(elsewhere.stored_streams().is_empty());
    writer.remove_stream("cam");
    std::thread::sleep(Duration::from_millis(350));
    assert!(reader.stored_streams().is_empty());
    assert_eq!(reader.last_record("cam", Series::Ts), None);
    assert_eq!(reader.get("cam", 3), None);
}

#[test]
fn writer_dropped_mid_way_is_recovered_on_reopen() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    let mut o = opts();
    o.max_age_ms = None;
    let n = OBJECT_CHUNK_RECORDS + 30; // a full chunk, and an open one
    let mut w = open(&bucket, "crash", &o);
    for i in 0..n {
        w.put_indexed("c", Series::Ts, &rec(i), payload(0, i, 40))
            .expect("put");
    }
    drop(w);
    // What a writer stopped between its steps leaves: the object of the next segment
    // without its record, and an open chunk with a torn tail (another store's client
    // that wrote it in parts, bytes of a record cut short).
    raw_put(&bucket, &format!("crash/c/{n}.ts"), payload(0, n, 40));
    let chunk_key = "crash/c/index/ts/00000001.idx";
    let chunk = raw_get(&bucket, chunk_key).expect("open chunk");
    assert_eq!(chunk.len(), index::record_offset(30) as usize);
    let mut torn = chunk.to_vec();
    torn.extend_from_slice(&index::encode_record(&rec(n + 5))[..37]);
    raw_put(&bucket, chunk_key, Bytes::from(torn));
    // A corrupted mark would be ignored; a valid one is kept (none was written: no
    // retention ran).
    assert!(raw_get(&bucket, "crash/c/index/ts/mark").is_none());

    let mut r = open(&bucket, "crash", &o);
    assert_eq!(numbers(&r, "c", Series::Ts), (0..n).collect::<Vec<_>>());
    assert_eq!(
        r.last_record("c", Series::Ts).map(|x| x.number),
        Some(n - 1)
    );
    // The object without a record is stored but not listed by records().
    assert_eq!(r.get("c", n), Some(payload(0, n, 40)));
    // Writing goes on after the last record; the chunk is rewritten without the tail.
    r.put_indexed("c", Series::Ts, &rec(n), payload(0, n, 41))
        .expect("put after reopen");
    let chunk = raw_get(&bucket, chunk_key).expect("open chunk");
    assert_eq!(chunk.len(), index::record_offset(31) as usize);
    let again = open(&bucket, "crash", &o);
    assert_eq!(
        numbers(&again, "c", Series::Ts),
        (0..=n).collect::<Vec<_>>()
    );
    assert_eq!(again.get("c", n).map(|b| b.len()), Some(41));
    // A last chunk that is garbage from its first byte: the records before it stay.
    raw_put(&bucket, chunk_key, Bytes::from_static(b"not an index"));
    let third = open(&bucket, "crash", &o);
    assert_eq!(
        numbers(&third, "c", Series::Ts),
        (0..OBJECT_CHUNK_RECORDS).collect::<Vec<_>>()
    );
    let e = {
        let mut third = third;
        let e = third
            .put_indexed("c", Series::Ts, &rec(3), payload(0, 3, 5))
            .expect_err("numbers increase across the lost chunk");
        third
            .put_indexed(
                "c",
                Series::Ts,
                &rec(OBJECT_CHUNK_RECORDS),
                payload(0, 0, 5),
            )
            .expect("writes on in the lost chunk");
        e
    };
    assert_eq!(e.kind(), ErrorKind::Usage);
}

#[test]
fn retention_by_age_and_count_across_chunks() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    let mut o = opts();
    o.max_age_ms = Some(60_000);
    let mut s = open(&bucket, "ret", &o);
    for n in 0..100 {
        s.put_indexed("a", Series::Ts, &rec(n), payload(0, n, 100))
            .expect("put");
    }
    // Newest ends at BASE + 200 s: records ending after BASE + 140 s stay (70..99).
    assert_eq!(numbers(&s, "a", Series::Ts), (70..100).collect::<Vec<_>>());
    assert_eq!(s.get("a", 69), None);
    assert_eq!(s.get("a", 70), Some(payload(0, 70, 100)));
    assert_eq!(s.stream_bytes("a"), 30 * 100);
    assert_eq!(s.record_at("a", Series::Ts, 0).map(|r| r.number), Some(70));
    // Another origin reads the mark.
    let r = open(&bucket, "ret", &o);
    assert_eq!(numbers(&r, "a", Series::Ts), (70..100).collect::<Vec<_>>());

    // By count, over chunk boundaries: dead chunks are deleted.
    let mut o = opts();
    o.max_age_ms = None;
    o.max_records_per_series = 500;
    let mut s = open(&bucket, "cnt", &o);
    let n = 2 * OBJECT_CHUNK_RECORDS + 100; // 2148: positions 1648.. stay, chunk 0 is dead
    for i in 0..n {
        s.put_indexed("b", Series::Ts, &rec(i), payload(0, i, 3))
            .expect("put");
    }
    let kept = numbers(&s, "b", Series::Ts);
    assert_eq!(kept, (n - 500..n).collect::<Vec<_>>());
    assert!(raw_get(&bucket, "cnt/b/index/ts/00000000.idx").is_none());
    assert!(raw_get(&bucket, "cnt/b/index/ts/00000001.idx").is_some());
    assert_eq!(s.get("b", n - 501), None);
    assert_eq!(s.list("b").len(), 500);
    let r = open(&bucket, "cnt", &o);
    assert_eq!(numbers(&r, "b", Series::Ts), kept);
    assert_eq!(
        r.record_at("b", Series::Ts, BASE_MS).map(|x| x.number),
        Some(n - 500)
    );
}

#[test]
fn forty_eight_hours_of_records_in_bounded_requests() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    // 86 400 records of 2 s as the store lays them out: 85 chunk objects (the last one
    // open), written directly (putting 86 400 objects through moto would take minutes).
    let total: u64 = 86_400;
    let t0 = Instant::now();
    let mut chunk = 0;
    while chunk * OBJECT_CHUNK_RECORDS < total {
        let mut b = index::encode_header(0).to_vec();
        let first = chunk * OBJECT_CHUNK_RECORDS;
        for n in first..(first + OBJECT_CHUNK_RECORDS).min(total) {
            b.extend_from_slice(&index::encode_record(&rec(n).with_size(size_of(n) as u64)));
        }
        raw_put(
            &bucket,
            &format!("dvr/cam/index/ts/{chunk:08}.idx"),
            Bytes::from(b),
        );
        chunk += 1;
    }
    assert_eq!(chunk, 85);
    println!(
        "48 h index: {chunk} chunks written in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let o = opts();
    let s = open(&bucket, "dvr", &o);
    let t = Instant::now();
    let mut count = 0u64;
    let mut expect = 0;
    s.records("cam", Series::Ts, 0, &mut |r| {
        assert_eq!(r.number, expect);
        assert_eq!(r.size, size_of(expect) as u64);
        expect += 1;
        count += 1;
        true
    })
    .expect("records");
    let all = t.elapsed();
    let q = s.requests();
    assert_eq!(count, total);
    // One LIST and a few GETs to load the series, then each of the 84 full chunks once.
    assert!(q.gets <= 84 + 4, "{q:?}");
    assert_eq!(q.lists, 1, "{q:?}");
    println!(
        "records over 48 h: {count} records in {} ms, {} GETs, {} LIST",
        all.as_millis(),
        q.gets,
        q.lists
    );

    // record_at on a fresh store: a binary search over the chunks.
    let s = open(&bucket, "dvr", &o);
    let t = Instant::now();
    let ms = BASE_MS + 2000 * 50_000 + 500;
    assert_eq!(
        s.record_at("cam", Series::Ts, ms).map(|r| r.number),
        Some(50_000)
    );
    let q = s.requests();
    assert!(q.gets <= 4 + 8, "record_at: {q:?}");
    println!(
        "record_at over 48 h: {} ms, {} GETs",
        t.elapsed().as_millis(),
        q.gets
    );
    // records from a number near the end: the search, then one or two chunks.
    let before = s.requests().gets;
    let tail = suite::collect(&s, "cam", Series::Ts, total - 10);
    assert_eq!(tail.len(), 10);
    assert!(s.requests().gets - before <= 8, "{:?}", s.requests());
    for ms in [
        i64::MIN,
        BASE_MS,
        BASE_MS + 1999,
        BASE_MS + 2000 * 86_399 + 1999,
    ] {
        let want = if ms < BASE_MS {
            0
        } else {
            ((ms - BASE_MS) / 2000) as u64
        };
        assert_eq!(
            s.record_at("cam", Series::Ts, ms).map(|r| r.number),
            Some(want)
        );
    }
    assert_eq!(
        s.record_at("cam", Series::Ts, BASE_MS + 2000 * 86_400),
        None
    );
}

#[test]
fn server_gone_is_a_typed_error_within_the_timeout() {
    let mut moto = Moto::start();
    let bucket = moto.bucket();
    let mut o = opts();
    o.call_timeout_ms = 1_500;
    let mut s = open(&bucket, "gone", &o);
    s.put_indexed("g", Series::Ts, &rec(0), payload(0, 0, 10))
        .expect("put while up");
    let _ = moto.child.kill();
    let _ = moto.child.wait();
    let t0 = Instant::now();
    let e = s
        .put_indexed("g", Series::Ts, &rec(1), payload(0, 1, 10))
        .expect_err("server gone");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(1_500 + 1_500),
        "{:?}",
        t0.elapsed()
    );
    println!("server gone: {e} after {} ms", t0.elapsed().as_millis());
    // Reads answer as missing; nothing panics; the last acknowledged record stays known.
    assert_eq!(s.get("g", 0), None);
    assert_eq!(s.last_record("g", Series::Ts).map(|r| r.number), Some(0));
    let e = s
        .records("g", Series::Cmaf { rendition: "v1" }, 0, &mut |_| true)
        .expect_err("index unreadable");
    assert_eq!(e.kind(), ErrorKind::Io);
    // Nothing listens at all.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut s = open(&s3(&format!("http://127.0.0.1:{port}")), "x", &o);
    let e = s.put("x", 0, payload(0, 0, 1)).expect_err("no server");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
}
