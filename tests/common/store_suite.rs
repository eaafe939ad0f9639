//! A test suite for any [`SegmentStore`] that keeps records ([`SegmentStore::put_indexed`]):
//! functions generic over the store, so each store (memory, disk, an object store) runs
//! the same checks. `tests/disk_store.rs` runs them for `MemoryStore` and `DiskStore`.
//!
//! Each function panics with what differed. Stores are expected to keep at least the
//! last 200 objects of a series and 8 streams.

use bytes::Bytes;
use strom::origin::{CmafKey, SegmentRecord, SegmentStore, Series};
use strom::time::{Timescale, Timestamp};
use strom::ErrorKind;

/// Wall clock of record 0 in the suite (Unix ms).
pub const BASE_MS: i64 = 1_700_000_000_000;

/// Record `n` of a series of 2 s segments: media time in 90 kHz (or `scale`),
/// wall clock `BASE_MS + 2000 n`, a discontinuity every 50 records.
pub fn rec_in(n: u64, scale: Timescale) -> SegmentRecord {
    let two_s = 2 * i64::from(scale.get());
    SegmentRecord::new(
        n,
        Timestamp::new(n as i64 * two_s, scale),
        Timestamp::new(two_s, scale),
    )
    .with_program_date_time(BASE_MS + 2000 * n as i64)
    .with_discontinuity(n % 50 == 49)
    .with_discontinuity_sequence(n / 50)
}

/// [`rec_in`] at 90 kHz.
pub fn rec(n: u64) -> SegmentRecord {
    rec_in(n, Timescale::MPEG)
}

/// Deterministic bytes for object `n` of series `tag` (an xorshift stream), `len` long.
pub fn payload(tag: u64, n: u64, len: usize) -> Bytes {
    let mut x = (tag << 32 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes()[..(len - v.len()).min(8)]);
    }
    Bytes::from(v)
}

/// A size between 1 and about 3 000 bytes that varies with `n`.
pub fn size_of(n: u64) -> usize {
    1 + (n as usize * 7919) % 3000
}

/// Every record of `series` of `stream` from `from`, in order.
pub fn collect<S: SegmentStore + ?Sized>(
    s: &S,
    stream: &str,
    series: Series<'_>,
    from: u64,
) -> Vec<SegmentRecord> {
    let mut v = Vec::new();
    s.records(stream, series, from, &mut |r| {
        v.push(*r);
        true
    })
    .expect("records");
    v
}

/// The records as they were put: `size` is the data's length.
fn expected(numbers: impl Iterator<Item = u64>, scale: Timescale) -> Vec<SegmentRecord> {
    numbers
        .map(|n| rec_in(n, scale).with_size(size_of(n) as u64))
        .collect()
}

const V1: Series<'static> = Series::Cmaf { rendition: "v1" };
const A2: Series<'static> = Series::Cmaf { rendition: "a2" };

/// Puts `numbers` of TS segments and of two CMAF renditions (90 kHz and 48 kHz) with
/// init segments into `stream`.
pub fn fill<S: SegmentStore + ?Sized>(s: &mut S, stream: &str, numbers: std::ops::Range<u64>) {
    let a2_scale = Timescale::new(48_000).expect("non-zero");
    s.put_cmaf(
        stream,
        CmafKey::Init { rendition: "v1" },
        payload(9, 1, 700),
    )
    .expect("init v1");
    s.put_cmaf(
        stream,
        CmafKey::Init { rendition: "a2" },
        payload(9, 2, 500),
    )
    .expect("init a2");
    for n in numbers {
        // A wrong size in the record: the store records the data's length.
        let r = rec(n).with_size(999_999);
        s.put_indexed(stream, Series::Ts, &r, payload(0, n, size_of(n)))
            .expect("put ts");
        s.put_indexed(stream, V1, &rec(n), payload(1, n, size_of(n)))
            .expect("put v1");
        s.put_indexed(stream, A2, &rec_in(n, a2_scale), payload(2, n, size_of(n)))
            .expect("put a2");
    }
}

/// Checks that `stream` holds exactly `numbers` in all three series of [`fill`], records and
/// bytes identical to what was put.
pub fn check_filled<S: SegmentStore + ?Sized>(s: &S, stream: &str, numbers: std::ops::Range<u64>) {
    let a2_scale = Timescale::new(48_000).expect("non-zero");
    assert_eq!(
        collect(s, stream, Series::Ts, 0),
        expected(numbers.clone(), Timescale::MPEG),
        "{stream}: TS records"
    );
    assert_eq!(
        collect(s, stream, V1, 0),
        expected(numbers.clone(), Timescale::MPEG)
    );
    let a2 = collect(s, stream, A2, 0);
    assert_eq!(a2, expected(numbers.clone(), a2_scale));
    // Equal across timescales is not enough: the timescale itself is kept.
    assert!(a2
        .iter()
        .all(|r| r.start.scale() == a2_scale && r.duration.scale() == a2_scale));
    for n in numbers.clone() {
        assert_eq!(
            s.get(stream, n),
            Some(payload(0, n, size_of(n))),
            "{stream}: ts {n}"
        );
        for (tag, rendition) in [(1, "v1"), (2, "a2")] {
            let key = CmafKey::Fragment {
                rendition,
                number: n,
            };
            assert_eq!(
                s.get_cmaf(stream, key),
                Some(payload(tag, n, size_of(n))),
                "{rendition} {n}"
            );
        }
    }
    assert_eq!(
        s.get_cmaf(stream, CmafKey::Init { rendition: "v1" }),
        Some(payload(9, 1, 700))
    );
    let objects: usize = numbers.clone().map(|n| 3 * size_of(n)).sum();
    assert_eq!(
        s.stream_bytes(stream),
        objects + 700 + 500,
        "{stream}: stream_bytes"
    );
    let last = numbers.end.checked_sub(1).filter(|_| !numbers.is_empty());
    assert_eq!(s.last_record(stream, Series::Ts).map(|r| r.number), last);
    assert_eq!(
        s.last_record(stream, A2).map(|r| r.start.scale()),
        last.map(|_| a2_scale)
    );
}

/// Put, get and records of three series, `records` from a number and stopping early,
/// `record_at` against a linear walk.
pub fn indexed_round_trip<S: SegmentStore + ?Sized>(s: &mut S) {
    fill(s, "rt", 0..120);
    check_filled(s, "rt", 0..120);
    // From a number, and stopping.
    let from: Vec<u64> = collect(s, "rt", Series::Ts, 117)
        .iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(from, [117, 118, 119]);
    assert!(collect(s, "rt", Series::Ts, 120).is_empty());
    let mut k = 0;
    s.records("rt", V1, 10, &mut |r| {
        assert_eq!(r.number, 10 + k);
        k += 1;
        k < 5
    })
    .expect("records");
    assert_eq!(k, 5);
    // record_at: still playing or after the time given.
    let all = collect(s, "rt", Series::Ts, 0);
    for ms in [
        i64::MIN,
        0,
        BASE_MS - 1,
        BASE_MS,
        BASE_MS + 1999,
        BASE_MS + 2000,
        BASE_MS + 77_777,
        BASE_MS + 239_999,
        BASE_MS + 240_000,
        i64::MAX,
    ] {
        let linear = all.iter().find(|r| r.program_date_time_end() > ms).copied();
        assert_eq!(s.record_at("rt", Series::Ts, ms), linear, "record_at {ms}");
    }
    // Unknown streams and series answer nothing.
    assert!(collect(s, "nope", Series::Ts, 0).is_empty());
    assert!(collect(s, "rt", Series::Cmaf { rendition: "x9" }, 0).is_empty());
    assert_eq!(s.last_record("nope", Series::Ts), None);
    assert_eq!(s.record_at("rt", Series::Cmaf { rendition: "x9" }, 0), None);
    assert_eq!(s.get("rt", 120), None);
    s.remove_stream("rt");
}

/// A record number not above the last one of its series is a usage error and changes
/// nothing; series are independent.
pub fn numbers_must_increase<S: SegmentStore + ?Sized>(s: &mut S) {
    fill(s, "inc", 5..10);
    for n in [9, 3] {
        let e = s
            .put_indexed("inc", Series::Ts, &rec(n), payload(7, n, 10))
            .expect_err("not increasing");
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        let e = s
            .put_indexed("inc", V1, &rec(n), payload(7, n, 10))
            .expect_err("not increasing");
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    }
    check_filled(s, "inc", 5..10);
    // Gaps are fine.
    s.put_indexed("inc", Series::Ts, &rec(20), payload(0, 20, size_of(20)))
        .expect("gap");
    let numbers: Vec<u64> = collect(s, "inc", Series::Ts, 0)
        .iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(numbers, [5, 6, 7, 8, 9, 20]);
    assert_eq!(collect(s, "inc", Series::Ts, 10)[0].number, 20);
    s.remove_stream("inc");
}

/// Streams are independent; `stored_streams` lists those with records, sorted;
/// `remove_stream` forgets one (and its numbering).
pub fn streams_listed_and_removed<S: SegmentStore + ?Sized>(s: &mut S) {
    for name in ["s-b", "s_a", "s3"] {
        fill(s, name, 0..4);
    }
    assert_eq!(s.stored_streams(), ["s-b", "s3", "s_a"]);
    assert_eq!(s.stored_renditions("s3"), ["a2", "v1"]);
    assert!(s.stored_renditions("nope").is_empty());
    s.remove_stream("s3");
    assert_eq!(s.stored_streams(), ["s-b", "s_a"]);
    assert_eq!(s.get("s3", 1), None);
    assert_eq!(s.get_cmaf("s3", CmafKey::Init { rendition: "v1" }), None);
    assert_eq!(s.stream_bytes("s3"), 0);
    assert!(collect(s, "s3", Series::Ts, 0).is_empty());
    // Numbering starts again after a removal.
    fill(s, "s3", 0..2);
    check_filled(s, "s3", 0..2);
    check_filled(s, "s_a", 0..4);
    for name in ["s-b", "s_a", "s3"] {
        s.remove_stream(name);
    }
    assert!(s.stored_streams().is_empty());
}

/// A new init segment replaces the old one; the byte count follows.
pub fn init_replaced<S: SegmentStore + ?Sized>(s: &mut S) {
    fill(s, "init", 0..3);
    let before = s.stream_bytes("init");
    s.put_cmaf(
        "init",
        CmafKey::Init { rendition: "v1" },
        payload(9, 3, 1700),
    )
    .expect("init");
    assert_eq!(
        s.get_cmaf("init", CmafKey::Init { rendition: "v1" }),
        Some(payload(9, 3, 1700))
    );
    assert_eq!(s.stream_bytes("init"), before + 1000);
    s.remove_stream("init");
}

/// With a store limited to `max_streams` streams, one more is a limit error that stores
/// nothing.
pub fn stream_limit<S: SegmentStore + ?Sized>(s: &mut S, max_streams: usize) {
    for i in 0..max_streams {
        s.put_indexed(&format!("l{i}"), Series::Ts, &rec(0), payload(0, 0, 10))
            .expect("within the limit");
    }
    let e = s
        .put_indexed("over", Series::Ts, &rec(0), payload(0, 0, 10))
        .expect_err("one stream too many");
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    let e = s
        .put_cmaf("over", CmafKey::Init { rendition: "v1" }, payload(0, 0, 10))
        .expect_err("one stream too many");
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert_eq!(s.get("over", 0), None);
    assert_eq!(s.stored_streams().len(), max_streams);
    s.remove_stream("l0");
    s.put_indexed("over", Series::Ts, &rec(0), payload(0, 0, 10))
        .expect("room again");
    for i in 0..max_streams {
        s.remove_stream(&format!("l{i}"));
    }
    s.remove_stream("over");
}

/// What a store holds, to compare before and after a restart.
pub fn snapshot<S: SegmentStore + ?Sized>(s: &S) -> Vec<(String, Vec<SegmentRecord>, usize)> {
    s.stored_streams()
        .into_iter()
        .map(|name| {
            let mut all = collect(s, &name, Series::Ts, 0);
            all.extend(collect(s, &name, V1, 0));
            all.extend(collect(s, &name, A2, 0));
            let bytes = s.stream_bytes(&name);
            (name, all, bytes)
        })
        .collect()
}

/// A durable store: everything put is there after `reopen` (drop and open again),
/// byte-identical, with the same records; writing continues after the last number.
pub fn survives_reopen<S: SegmentStore>(mut s: S, reopen: impl Fn(S) -> S) -> S {
    fill(&mut s, "dur", 0..150);
    fill(&mut s, "dur2", 1000..1010);
    let before = snapshot(&s);
    let s2 = reopen(s);
    assert_eq!(snapshot(&s2), before, "records after reopen");
    check_filled(&s2, "dur", 0..150);
    check_filled(&s2, "dur2", 1000..1010);
    let mut s2 = s2;
    let e = s2
        .put_indexed("dur", Series::Ts, &rec(149), payload(0, 149, 5))
        .expect_err("the last number survives too");
    assert_eq!(e.kind(), ErrorKind::Usage);
    fill(&mut s2, "dur", 150..160);
    check_filled(&s2, "dur", 0..160);
    s2.remove_stream("dur");
    s2.remove_stream("dur2");
    s2
}
