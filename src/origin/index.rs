//! The segment index of a durable store: an append-only file of fixed-size
//! [`SegmentRecord`]s, one file per (stream, [`super::Series`]), and the logic over it
//! (recovery of a torn tail, binary search by number and by wall-clock time, chunked
//! visits). Sans-IO: every function reads through [`ReadAt`] (a file with positioned
//! reads in [`super::DiskStore`], a byte slice in tests and fuzzing) and returns bytes
//! to write; nothing here opens a file.
//!
//! # Format, version 1
//!
//! All integers are big-endian. CRCs are CRC-32/MPEG-2
//! ([`crate::container::ts::psi::crc32_mpeg2`], ISO/IEC 13818-1 Annex A).
//!
//! Header, [`HEADER_LEN`] = 64 bytes:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8  | magic [`MAGIC`] `STROMIDX` |
//! | 8  | 2  | version [`VERSION`] (1) |
//! | 10 | 2  | record length [`RECORD_LEN`] (64) |
//! | 12 | 4  | CRC of bytes 0..12 |
//! | 16 | 24 | mark slot 0 |
//! | 40 | 24 | mark slot 1 |
//!
//! A mark slot ([`Mark`]) is `generation: u64`, `first_live: u64` (the position of
//! the oldest record whose object is still stored; records before it are dead),
//! 4 reserved zero bytes and the CRC of the 20 bytes before it. Generation `g` is
//! written to slot `g % 2`, so updating the mark never overwrites the current one:
//! a torn slot write leaves the previous mark, which the store persisted before it
//! deleted any object. The valid slot with the higher generation wins.
//!
//! Record `i` ([`RECORD_LEN`] = 64 bytes) starts at [`record_offset`]`(i)`; the
//! timescale is kept per record (a CMAF rendition may change its timescale across a
//! discontinuity):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | `number` u64 |
//! | 8  | 8 | `start` ticks i64 |
//! | 16 | 4 | `start` timescale u32 (non-zero) |
//! | 20 | 8 | `duration` ticks i64 |
//! | 28 | 4 | `duration` timescale u32 (non-zero) |
//! | 32 | 8 | `program_date_time` i64, Unix ms |
//! | 40 | 8 | `size` u64, bytes of the object |
//! | 48 | 4 | flags: bit 0 `discontinuity`; bit 1 in an ad break, bit 2 the break's first segment, bit 3 a segmentation type in bits 8..16 ([`super::AdMark`]); others zero |
//! | 52 | 8 | `discontinuity_sequence` u64 |
//! | 60 | 4 | CRC of bytes 0..60 |
//!
//! Numbers strictly increase along the file. Records are only appended; the file
//! is rewritten (to a temporary name, then renamed over) only to drop a dead prefix.
//! A crash can leave a torn last record (a short write, a bad CRC, a number not
//! above the previous one): [`recover`] finds the valid prefix to truncate to.
//!
//! ```
//! use strom::origin::index::{self, ReadAt};
//! use strom::origin::SegmentRecord;
//! use strom::time::Timestamp;
//!
//! let mut file = index::encode_header(0).to_vec();
//! for n in 0..10u64 {
//!     let r = SegmentRecord::new(n, Timestamp::from_millis(n as i64 * 2000), Timestamp::from_millis(2000))
//!         .with_program_date_time(1_700_000_000_000 + n as i64 * 2000)
//!         .with_size(100);
//!     file.extend_from_slice(&index::encode_record(&r));
//! }
//! file.extend_from_slice(&[0xAB; 30]); // a torn append
//! let rec = index::recover(&file[..], file.len() as u64).unwrap();
//! assert_eq!((rec.count, rec.valid_len), (10, index::record_offset(10)));
//! assert_eq!(rec.live_bytes, 1000);
//! let at = index::first_at_or_after(&file[..], rec.live(), 7).unwrap();
//! assert_eq!(index::read_record(&file[..], at).unwrap().number, 7);
//! let at = index::first_ending_after(&file[..], rec.live(), 1_700_000_005_000).unwrap();
//! assert_eq!(at, 2); // 4 000..6 000 ms plays at 5 000 ms
//! ```

use std::ops::Range;

use super::store::SegmentRecord;
use crate::container::ts::psi::crc32_mpeg2;
use crate::error::{Error, Result};
use crate::time::{Timescale, Timestamp};

/// The first 8 bytes of an index file.
pub const MAGIC: [u8; 8] = *b"STROMIDX";
/// The format version this module reads and writes.
pub const VERSION: u16 = 1;
/// Bytes of the file header (magic, version, record length, two mark slots).
pub const HEADER_LEN: usize = 64;
/// Bytes of one record.
pub const RECORD_LEN: usize = 64;
/// Bytes of one mark slot inside the header.
pub const SLOT_LEN: usize = 24;
/// Records read per chunk by [`visit`] and [`recover`] (64 KiB).
pub const CHUNK_RECORDS: usize = 1024;

const SLOT0: usize = 16;
const FLAG_DISCONTINUITY: u32 = 1;
/// The segment is in an ad break.
const FLAG_AD: u32 = 1 << 1;
/// The segment is its break's first.
const FLAG_AD_FIRST: u32 = 1 << 2;
/// Bits 8..16 hold the break's segmentation type.
const FLAG_AD_TYPE: u32 = 1 << 3;
/// Every flag bit a record may carry.
const KNOWN_FLAGS: u32 = FLAG_DISCONTINUITY | FLAG_AD | FLAG_AD_FIRST | FLAG_AD_TYPE | 0xFF00;

/// Byte offset of record `i`: `HEADER_LEN + i * RECORD_LEN` (saturating).
pub const fn record_offset(i: u64) -> u64 {
    (HEADER_LEN as u64).saturating_add(i.saturating_mul(RECORD_LEN as u64))
}

/// Whole records in a file of `len` bytes (a torn tail not counted).
pub const fn record_count(len: u64) -> u64 {
    len.saturating_sub(HEADER_LEN as u64) / RECORD_LEN as u64
}

/// Positioned reads of an index: a file (`std::os::unix::fs::FileExt::read_exact_at`)
/// or, for tests and fuzzing, a byte slice.
pub trait ReadAt {
    /// Fills `buf` with the bytes at `offset`. Errors: fewer bytes available
    /// ([`Error::malformed`] for a slice), or the host's read error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| Error::malformed("index: read past its end").at_offset(offset))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Which records of an index are live: the persisted part of the header.
///
/// Written to slot `generation % 2` ([`Mark::slot_offset`]), so the previous mark
/// survives a torn write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mark {
    /// Increases by one with each update.
    pub generation: u64,
    /// Position of the oldest live record; records before it are dead (their
    /// objects were deleted or are being deleted).
    pub first_live: u64,
}

impl Mark {
    /// The mark of a new file whose live records start at `first_live`.
    pub const fn new(first_live: u64) -> Self {
        Mark {
            generation: 1,
            first_live,
        }
    }

    /// The next mark, with the live records starting at `first_live`.
    #[must_use]
    pub const fn next(self, first_live: u64) -> Self {
        Mark {
            generation: self.generation.saturating_add(1),
            first_live,
        }
    }

    /// Byte offset of the slot this mark is written to.
    pub const fn slot_offset(self) -> u64 {
        (SLOT0 + SLOT_LEN * (self.generation % 2) as usize) as u64
    }

    /// The slot bytes of this mark, to write at [`slot_offset`](Self::slot_offset).
    pub fn encode(self) -> [u8; SLOT_LEN] {
        let mut b = [0u8; SLOT_LEN];
        b[0..8].copy_from_slice(&self.generation.to_be_bytes());
        b[8..16].copy_from_slice(&self.first_live.to_be_bytes());
        let crc = crc32_mpeg2(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Mark> {
        let crc = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
        let body = b.get(..20)?;
        if crc32_mpeg2(body) != crc || body[16..20] != [0; 4] {
            return None;
        }
        Some(Mark {
            generation: be_u64(body, 0)?,
            first_live: be_u64(body, 8)?,
        })
    }
}

/// The header of a new index whose live records start at `first_live`: slot 0
/// holds generation 0 and slot 1 generation 1 ([`Mark::new`]), both valid.
pub fn encode_header(first_live: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_be_bytes());
    h[10..12].copy_from_slice(&(RECORD_LEN as u16).to_be_bytes());
    let crc = crc32_mpeg2(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_be_bytes());
    let current = Mark::new(first_live);
    let previous = Mark {
        generation: 0,
        first_live,
    };
    for m in [previous, current] {
        let at = m.slot_offset() as usize;
        h[at..at + SLOT_LEN].copy_from_slice(&m.encode());
    }
    h
}

/// The current [`Mark`] of a header (the first [`HEADER_LEN`] bytes of an index).
///
/// Errors: too short, wrong magic or header CRC ([`Error::malformed`]), another
/// version or record length ([`Error::unsupported`]), no valid mark slot
/// ([`Error::malformed`]).
pub fn decode_header(h: &[u8]) -> Result<Mark> {
    let h = h
        .get(..HEADER_LEN)
        .ok_or_else(|| Error::malformed("index: header too short"))?;
    if h[0..8] != MAGIC {
        return Err(Error::malformed("index: bad magic"));
    }
    let crc = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    if crc32_mpeg2(&h[..12]) != crc {
        return Err(Error::malformed("index: bad header CRC").at_offset(12));
    }
    if u16::from_be_bytes([h[8], h[9]]) != VERSION {
        return Err(Error::unsupported("index: unknown version").at_offset(8));
    }
    if usize::from(u16::from_be_bytes([h[10], h[11]])) != RECORD_LEN {
        return Err(Error::unsupported("index: unknown record length").at_offset(10));
    }
    let a = Mark::decode(&h[SLOT0..SLOT0 + SLOT_LEN]);
    let b = Mark::decode(&h[SLOT0 + SLOT_LEN..SLOT0 + 2 * SLOT_LEN]);
    match (a, b) {
        (Some(a), Some(b)) => Ok(if b.generation > a.generation { b } else { a }),
        (Some(m), None) | (None, Some(m)) => Ok(m),
        (None, None) => Err(Error::malformed("index: no valid mark slot").at_offset(16)),
    }
}

/// The [`RECORD_LEN`] bytes of `r` (format in the module docs).
pub fn encode_record(r: &SegmentRecord) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..8].copy_from_slice(&r.number.to_be_bytes());
    b[8..16].copy_from_slice(&r.start.ticks().to_be_bytes());
    b[16..20].copy_from_slice(&r.start.scale().get().to_be_bytes());
    b[20..28].copy_from_slice(&r.duration.ticks().to_be_bytes());
    b[28..32].copy_from_slice(&r.duration.scale().get().to_be_bytes());
    b[32..40].copy_from_slice(&r.program_date_time.to_be_bytes());
    b[40..48].copy_from_slice(&r.size.to_be_bytes());
    let mut flags = if r.discontinuity {
        FLAG_DISCONTINUITY
    } else {
        0
    };
    if let Some(ad) = r.ad {
        flags |= FLAG_AD;
        if ad.first {
            flags |= FLAG_AD_FIRST;
        }
        if let Some(t) = ad.segmentation_type {
            flags |= FLAG_AD_TYPE | (u32::from(t) << 8);
        }
    }
    b[48..52].copy_from_slice(&flags.to_be_bytes());
    b[52..60].copy_from_slice(&r.discontinuity_sequence.to_be_bytes());
    let crc = crc32_mpeg2(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Decodes one record from the first [`RECORD_LEN`] bytes of `b`.
///
/// Errors ([`Error::malformed`]; the callers that read add the record's offset):
/// too short, bad CRC, a
/// zero timescale, unknown flags.
pub fn decode_record(b: &[u8]) -> Result<SegmentRecord> {
    let b = b
        .get(..RECORD_LEN)
        .ok_or_else(|| Error::malformed("index: short record"))?;
    let crc = u32::from_be_bytes([b[60], b[61], b[62], b[63]]);
    if crc32_mpeg2(&b[..60]) != crc {
        return Err(Error::malformed("index: bad record CRC"));
    }
    decode_fields(b)
}

/// Decodes the fields of a record without its CRC: for records [`recover`] or the
/// writer already checked ([`Verify::Fields`]).
fn decode_fields(b: &[u8]) -> Result<SegmentRecord> {
    let field = |at: usize| be_u64(b, at).ok_or_else(|| Error::malformed("index: short record"));
    let scale = |at: usize| {
        Timescale::new(be_u32(b, at).unwrap_or(0))
            .ok_or_else(|| Error::malformed("index: zero timescale"))
    };
    let flags = be_u32(b, 48).unwrap_or(u32::MAX);
    if flags & !KNOWN_FLAGS != 0 || (flags & FLAG_AD == 0 && flags & !FLAG_DISCONTINUITY != 0) {
        return Err(Error::malformed("index: unknown record flags"));
    }
    if flags & FLAG_AD_TYPE == 0 && flags & 0xFF00 != 0 {
        return Err(Error::malformed(
            "index: segmentation type without its flag",
        ));
    }
    let ad = (flags & FLAG_AD != 0).then(|| {
        super::AdMark::new(
            flags & FLAG_AD_FIRST != 0,
            (flags & FLAG_AD_TYPE != 0).then_some((flags >> 8) as u8),
        )
    });
    let start = Timestamp::new(field(8)? as i64, scale(16)?);
    let duration = Timestamp::new(field(20)? as i64, scale(28)?);
    Ok(SegmentRecord::new(field(0)?, start, duration)
        .with_program_date_time(field(32)? as i64)
        .with_size(field(40)?)
        .with_discontinuity(flags & FLAG_DISCONTINUITY != 0)
        .with_discontinuity_sequence(field(52)?)
        .with_ad(ad))
}

/// Reads and decodes record `i`.
///
/// Errors: as [`ReadAt::read_at`] and [`decode_record`], with the record's offset.
pub fn read_record<R: ReadAt + ?Sized>(src: &R, i: u64) -> Result<SegmentRecord> {
    let mut b = [0u8; RECORD_LEN];
    let at = record_offset(i);
    src.read_at(at, &mut b)?;
    decode_record(&b).map_err(|e| e.at_offset(at))
}

/// What [`recover`] found in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The current mark; its `first_live` is at most [`count`](Self::count).
    pub mark: Mark,
    /// Records in the valid prefix (dead ones included).
    pub count: u64,
    /// Bytes of the valid prefix: the length to truncate the file to.
    pub valid_len: u64,
    /// The first live record, if any.
    pub first: Option<SegmentRecord>,
    /// The last record of the valid prefix (live or not) when it decodes: the number
    /// the next append must exceed.
    pub last: Option<SegmentRecord>,
    /// Sum of the `size` of the live records.
    pub live_bytes: u64,
}

impl Recovered {
    /// Positions of the live records: `mark.first_live..count`.
    pub fn live(&self) -> Range<u64> {
        self.mark.first_live..self.count
    }
}

/// Finds the valid prefix of an index of `len` bytes: the header's mark, then every
/// live record from `first_live` on while it decodes and its number is above the
/// previous one. Reads the live records once, in chunks of [`CHUNK_RECORDS`], never
/// the dead prefix (but the one record before `first_live`, for [`Recovered::last`]
/// when nothing is live).
///
/// A `first_live` past the records of the file (the file lost records the mark had
/// passed) is clamped: nothing is live.
///
/// Errors: a bad header (as [`decode_header`]); a read error of `src`.
pub fn recover<R: ReadAt + ?Sized>(src: &R, len: u64) -> Result<Recovered> {
    let mut h = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 {
        return Err(Error::malformed("index: shorter than its header"));
    }
    src.read_at(0, &mut h)?;
    let mut mark = decode_header(&h)?;
    let full = record_count(len);
    mark.first_live = mark.first_live.min(full);
    let mut count = mark.first_live;
    let mut first = None;
    let mut last = None;
    let mut live_bytes = 0u64;
    let mut buf = vec![0u8; CHUNK_RECORDS * RECORD_LEN];
    'scan: while count < full {
        let n = (full - count).min(CHUNK_RECORDS as u64) as usize;
        let chunk = &mut buf[..n * RECORD_LEN];
        src.read_at(record_offset(count), chunk)?;
        for b in chunk.chunks_exact(RECORD_LEN) {
            let Ok(r) = decode_record(b) else {
                break 'scan;
            };
            if last.is_some_and(|l: SegmentRecord| r.number <= l.number) {
                break 'scan;
            }
            first.get_or_insert(r);
            last = Some(r);
            live_bytes = live_bytes.saturating_add(r.size);
            count += 1;
        }
    }
    if last.is_none() && count > 0 {
        last = read_record(src, count - 1).ok();
    }
    Ok(Recovered {
        mark,
        count,
        valid_len: record_offset(count),
        first,
        last,
        live_bytes,
    })
}

/// Binary search: the first position in `range` whose record satisfies `after`,
/// assuming `after` is false then true along the range (one read per step).
fn partition<R: ReadAt + ?Sized>(
    src: &R,
    range: Range<u64>,
    after: impl Fn(&SegmentRecord) -> bool,
) -> Result<u64> {
    let (mut lo, mut hi) = (range.start, range.end.max(range.start));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if after(&read_record(src, mid)?) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Position of the first record in `range` whose number is at least `number`
/// (`range.end` when none is): where [`super::SegmentStore::records`] starts.
/// O(log n) reads of one record.
///
/// Errors: a read error, a record that does not decode.
pub fn first_at_or_after<R: ReadAt + ?Sized>(
    src: &R,
    range: Range<u64>,
    number: u64,
) -> Result<u64> {
    partition(src, range, |r| r.number >= number)
}

/// Position of the first record in `range` that is still playing or starts at or
/// after wall-clock time `unix_ms` ([`SegmentRecord::program_date_time_end`] after
/// it; `range.end` when none is): start-over, and age retention. Assumes
/// `program_date_time_end` does not decrease along the index (wall-clock stamps of
/// consecutive segments); otherwise the answer is some position in `range`.
///
/// Errors: a read error, a record that does not decode.
pub fn first_ending_after<R: ReadAt + ?Sized>(
    src: &R,
    range: Range<u64>,
    unix_ms: i64,
) -> Result<u64> {
    partition(src, range, |r| r.program_date_time_end() > unix_ms)
}

/// How much [`visit_verified`] checks of each record it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verify {
    /// The CRC and the fields ([`decode_record`]): bytes nobody checked yet.
    Crc,
    /// The fields only (non-zero timescales, known flags): records that [`recover`]
    /// checked when the index was opened, or that this process appended. About three
    /// times faster (the CRC is most of the cost of a record).
    Fields,
}

/// Visits the records at positions `range` in order, reading [`CHUNK_RECORDS`] at a
/// time, until `visit` returns `false`. `visit` gets the position and the record.
/// Each record's CRC is checked ([`Verify::Crc`]).
///
/// Errors: a read error, a record that does not decode (with its offset).
pub fn visit<R: ReadAt + ?Sized>(
    src: &R,
    range: Range<u64>,
    visit: &mut dyn FnMut(u64, &SegmentRecord) -> bool,
) -> Result<()> {
    visit_verified(src, range, Verify::Crc, visit)
}

/// [`visit`], checking each record as `verify` says.
///
/// Errors: a read error, a record that does not decode (with its offset).
pub fn visit_verified<R: ReadAt + ?Sized>(
    src: &R,
    range: Range<u64>,
    verify: Verify,
    visit: &mut dyn FnMut(u64, &SegmentRecord) -> bool,
) -> Result<()> {
    let mut buf = vec![0u8; CHUNK_RECORDS * RECORD_LEN];
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(CHUNK_RECORDS as u64) as usize;
        let chunk = &mut buf[..n * RECORD_LEN];
        src.read_at(record_offset(at), chunk)?;
        for b in chunk.chunks_exact(RECORD_LEN) {
            let r = match verify {
                Verify::Crc => decode_record(b),
                Verify::Fields => decode_fields(b),
            };
            let r = r.map_err(|e| e.at_offset(record_offset(at)))?;
            if !visit(at, &r) {
                return Ok(());
            }
            at += 1;
        }
    }
    Ok(())
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn rec(n: u64) -> SegmentRecord {
        SegmentRecord::new(
            n,
            Timestamp::new(n as i64 * 180_000, Timescale::MPEG),
            Timestamp::new(180_000, Timescale::MPEG),
        )
        .with_program_date_time(1_700_000_000_000 + n as i64 * 2000)
        .with_size(1000 + n)
        .with_discontinuity(n % 7 == 3)
        .with_discontinuity_sequence(n / 7)
        .with_ad(match n % 5 {
            1 => Some(super::super::AdMark::new(true, Some(0x34))),
            2 => Some(super::super::AdMark::new(false, None)),
            _ => None,
        })
    }

    fn file(numbers: impl IntoIterator<Item = u64>, first_live: u64) -> Vec<u8> {
        let mut f = encode_header(first_live).to_vec();
        for n in numbers {
            f.extend_from_slice(&encode_record(&rec(n)));
        }
        f
    }

    #[test]
    fn record_round_trip_every_field() {
        let r = SegmentRecord::new(
            u64::MAX - 1,
            Timestamp::new(-5, Timescale::new(48_000).unwrap()),
            Timestamp::new(i64::MAX, Timescale::new(1).unwrap()),
        )
        .with_program_date_time(i64::MIN)
        .with_size(u64::MAX)
        .with_discontinuity(true)
        .with_discontinuity_sequence(u64::MAX - 7);
        let b = encode_record(&r);
        let back = decode_record(&b).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.start.scale().get(), 48_000);
        assert_eq!(back.start.ticks(), -5);
        assert_eq!(back.duration.scale().get(), 1);
        assert_eq!(back.discontinuity_sequence, u64::MAX - 7);
        assert_eq!(crc32_mpeg2(&b), 0, "a record including its CRC checks to 0");
    }

    #[test]
    fn decode_rejects_each_bad_field() {
        let good = encode_record(&rec(5));
        for i in 0..RECORD_LEN {
            let mut b = good;
            b[i] ^= 0x40;
            let e = decode_record(&b).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Malformed, "byte {i}");
        }
        // Valid CRC over a zero timescale, unknown flags (bit 4; a segmentation type
        // without its flag; ad bits without the ad flag).
        for (at, v) in [(19, 0u8), (51, 0x10), (50, 0x34), (51, 0x04)] {
            let mut b = good;
            if at == 19 {
                b[16..20].fill(0);
            } else {
                b[48..52].fill(0);
                b[at] = v;
            }
            let crc = crc32_mpeg2(&b[..60]);
            b[60..].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(decode_record(&b).unwrap_err().kind(), ErrorKind::Malformed);
        }
        assert!(decode_record(&good[..63]).is_err());
    }

    #[test]
    fn header_marks_alternate_and_survive_a_torn_slot() {
        let mut h = encode_header(0);
        let m = decode_header(&h).unwrap();
        assert_eq!(m, Mark::new(0));
        let m2 = m.next(17);
        assert_ne!(m2.slot_offset(), m.slot_offset());
        let at = m2.slot_offset() as usize;
        h[at..at + SLOT_LEN].copy_from_slice(&m2.encode());
        assert_eq!(decode_header(&h).unwrap(), m2);
        // Tear the next write: the previous mark stays.
        let m3 = m2.next(40);
        let at3 = m3.slot_offset() as usize;
        h[at3..at3 + 8].copy_from_slice(&m3.encode()[..8]);
        assert_eq!(decode_header(&h).unwrap(), m2);
        h[at3..at3 + SLOT_LEN].copy_from_slice(&m3.encode());
        assert_eq!(decode_header(&h).unwrap().first_live, 40);
        // Both slots broken, wrong magic, version, record length.
        let mut bad = h;
        bad[20] ^= 1;
        bad[44] ^= 1;
        assert_eq!(
            decode_header(&bad).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(
            decode_header(&bad).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        for at in [9, 11] {
            let mut bad = h;
            bad[at] ^= 3;
            let crc = crc32_mpeg2(&bad[..12]);
            bad[12..16].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(
                decode_header(&bad).unwrap_err().kind(),
                ErrorKind::Unsupported
            );
        }
        assert!(decode_header(&h[..63]).is_err());
    }

    #[test]
    fn recover_finds_the_valid_prefix() {
        let f = file(0..100, 0);
        let r = recover(&f[..], f.len() as u64).unwrap();
        assert_eq!((r.count, r.valid_len), (100, f.len() as u64));
        assert_eq!(r.first, Some(rec(0)));
        assert_eq!(r.last, Some(rec(99)));
        assert_eq!(r.live_bytes, (0..100).map(|n| 1000 + n).sum::<u64>());
        // Short write of the last record.
        for cut in 1..RECORD_LEN {
            let r = recover(&f[..f.len() - cut], (f.len() - cut) as u64).unwrap();
            assert_eq!(r.count, 99);
            assert_eq!(r.last, Some(rec(98)));
        }
        // A flipped byte in record 60: the prefix before it.
        let mut g = f.clone();
        g[record_offset(60) as usize + 61] ^= 1;
        let r = recover(&g[..], g.len() as u64).unwrap();
        assert_eq!((r.count, r.last), (60, Some(rec(59))));
        // A number not above the previous one (a stale record after a rewrite).
        let mut g = file(0..10, 0);
        g.extend_from_slice(&encode_record(&rec(9)));
        let r = recover(&g[..], g.len() as u64).unwrap();
        assert_eq!(r.count, 10);
        // Live part only; a dead prefix is not read (garbage there is fine).
        let mut g = file(0..50, 20);
        g[record_offset(3) as usize..record_offset(4) as usize].fill(0xFF);
        let r = recover(&g[..], g.len() as u64).unwrap();
        assert_eq!(
            (r.live(), r.first, r.live_bytes),
            (20..50, Some(rec(20)), (20..50).map(|n| 1000 + n).sum())
        );
        // A mark past the records: nothing live, the last record still known.
        let g = file(0..5, 9);
        let r = recover(&g[..], g.len() as u64).unwrap();
        assert_eq!((r.live(), r.first, r.last), (5..5, None, Some(rec(4))));
        // Empty and broken files.
        let g = encode_header(0);
        let r = recover(&g[..], 64).unwrap();
        assert_eq!((r.count, r.first, r.last), (0, None, None));
        assert!(recover(&g[..10], 10).is_err());
    }

    #[test]
    fn searches_by_number_and_time() {
        // Numbers with gaps: 0, 3, 6, ...
        let f = file((0..1000).map(|i| i * 3), 0);
        let all = 0..1000;
        assert_eq!(first_at_or_after(&f[..], all.clone(), 0).unwrap(), 0);
        assert_eq!(first_at_or_after(&f[..], all.clone(), 3).unwrap(), 1);
        assert_eq!(first_at_or_after(&f[..], all.clone(), 4).unwrap(), 2);
        assert_eq!(first_at_or_after(&f[..], all.clone(), 2997).unwrap(), 999);
        assert_eq!(first_at_or_after(&f[..], all.clone(), 2998).unwrap(), 1000);
        assert_eq!(first_at_or_after(&f[..], 500..1000, 3).unwrap(), 500);
        // Record at position i has number 3i, pdt base + 6000 i, 2 s long.
        let base = 1_700_000_000_000;
        let t = |i: i64| base + i * 6000;
        assert_eq!(first_ending_after(&f[..], all.clone(), 0).unwrap(), 0);
        assert_eq!(first_ending_after(&f[..], all.clone(), t(10)).unwrap(), 10);
        assert_eq!(
            first_ending_after(&f[..], all.clone(), t(10) + 1999).unwrap(),
            10
        );
        // In the 4 s gap after record 10, the next one.
        assert_eq!(
            first_ending_after(&f[..], all.clone(), t(10) + 2000).unwrap(),
            11
        );
        assert_eq!(
            first_ending_after(&f[..], all.clone(), t(999) + 2000).unwrap(),
            1000
        );
        // Same answer as a linear walk for every ms boundary around some records.
        for ms in (t(100) - 10..t(103) + 10).step_by(250) {
            let mut lin = 1000;
            visit(&f[..], all.clone(), &mut |i, r| {
                if r.program_date_time_end() > ms {
                    lin = i;
                    false
                } else {
                    true
                }
            })
            .unwrap();
            assert_eq!(first_ending_after(&f[..], all.clone(), ms).unwrap(), lin);
        }
    }

    #[test]
    fn visit_reads_in_chunks_and_stops() {
        let n = CHUNK_RECORDS as u64 * 2 + 17;
        let f = file(0..n, 0);
        let mut seen = Vec::new();
        visit(&f[..], 5..n, &mut |i, r| {
            assert_eq!(i, r.number);
            seen.push(r.number);
            true
        })
        .unwrap();
        assert_eq!(seen, (5..n).collect::<Vec<_>>());
        let mut k = 0;
        visit(&f[..], 0..n, &mut |_, _| {
            k += 1;
            k < 3
        })
        .unwrap();
        assert_eq!(k, 3);
        // A range past the end is a read error, not a panic.
        assert!(visit(&f[..], 0..n + 1, &mut |_, _| true).is_err());
        let mut g = f.clone();
        g[record_offset(1500) as usize] ^= 1;
        let e = visit(&g[..], 0..n, &mut |_, _| true).unwrap_err();
        assert_eq!(e.offset(), Some(record_offset(1500)));
        // Fields only: the flipped number passes, a zero timescale does not.
        let mut k = 0;
        visit_verified(&g[..], 0..n, Verify::Fields, &mut |_, _| {
            k += 1;
            true
        })
        .unwrap();
        assert_eq!(k, n);
        g[record_offset(1600) as usize + 16..record_offset(1600) as usize + 20].fill(0);
        let e = visit_verified(&g[..], 0..n, Verify::Fields, &mut |_, _| true).unwrap_err();
        assert_eq!(e.offset(), Some(record_offset(1600)));
    }
}
