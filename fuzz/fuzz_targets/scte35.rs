//! SCTE 35 sections from hostile bytes (`strom::scte35`): never a panic, typed errors
//! only, and every section that parses encodes and parses back to the same thing.
//!
//! The first byte picks what the rest of the input becomes:
//! 0. a section as is (typically from a corpus of real sections and their mutations);
//! 1. the same behind a valid CRC: the input's last four bytes are replaced by the
//!    CRC-32/MPEG-2 of the rest, so the fuzzer reaches the command and descriptor
//!    parsers instead of stopping at the CRC check.
//!
//! For every section that parses: `encode` succeeds and gives back `raw` when nothing
//! was changed; the canonical encoding (reserved bits set, no padding) parses to the
//! same typed value and is a fixed point; `signal()` does not panic, and its time and
//! duration stay in their wire widths; a signal placed with `to_cue` keeps its fields.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::scte35::{unwrap_pts, SpliceInfo, PTS_MAX};
use strom::time::{Timescale, Timestamp};

/// CRC-32/MPEG-2 (poly 0x04C11DB7, init all ones, no reflection, no final xor).
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The typed fields of a section, `raw` left out.
fn fields(info: &SpliceInfo) -> SpliceInfo {
    let mut f = info.clone();
    f.raw = Bytes::new();
    f
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut section = rest.to_vec();
    if mode & 1 == 1 && section.len() >= 7 {
        // Fix the CRC at the end of the declared section (or of the input).
        let declared = 3 + (usize::from(section[1] & 0x0F) << 8 | usize::from(section[2]));
        let end = declared.clamp(7, section.len());
        let crc = crc32_mpeg2(&section[..end - 4]);
        section[end - 4..end].copy_from_slice(&crc.to_be_bytes());
    }
    let input = Bytes::from(section);
    let info = match SpliceInfo::parse(input.clone()) {
        Ok(info) => info,
        Err(e) => {
            assert_eq!(e.kind(), strom::ErrorKind::Malformed, "{e}");
            return;
        }
    };
    assert!(input.starts_with(&info.raw));
    assert!(info.raw.len() <= 4096);

    // Unchanged: the sender's bytes back.
    let encoded = info.encode().expect("a parsed section encodes");
    assert_eq!(encoded, info.raw);

    // From the typed fields alone: the same value, and a fixed point.
    let canonical = fields(&info)
        .encode()
        .expect("a parsed section's fields encode");
    assert_eq!(canonical, info.encode_canonical().unwrap());
    let back = SpliceInfo::parse(canonical.clone()).expect("the canonical encoding parses");
    assert_eq!(fields(&back), fields(&info));
    assert_eq!(back.encode().unwrap(), canonical);

    // The ad signal.
    let signal = info.signal();
    assert_eq!(signal, back.signal());
    if let Some(sig) = signal {
        if let Some(pts) = sig.pts {
            assert!(pts <= PTS_MAX);
            let reference = i64::from(info.tier) << 30;
            let unwrapped = unwrap_pts(pts, reference);
            assert_eq!((unwrapped as u64) & PTS_MAX, pts);
            assert!((unwrapped - reference).abs() <= 1 << 32);
        }
        if let Some(d) = sig.duration {
            assert!(d < 1 << 40);
        }
        let at = Timestamp::new(sig.pts.map_or(0, |p| p as i64), Timescale::MPEG);
        let cue = sig.to_cue(at, info.raw.clone());
        assert_eq!((cue.id, cue.kind, cue.at), (sig.id, sig.kind, at));
        assert_eq!(cue.immediate, sig.pts.is_none());
        assert_eq!(
            (cue.cancel, cue.segmentation_type),
            (sig.cancel, sig.segmentation_type)
        );
        assert_eq!(cue.duration.map(|d| d.ticks() as u64), sig.duration);
    }
});
