//! The segment index of the disk store (`strom::origin::index`) on hostile bytes: never a
//! panic, and what recovery answers always decodes.
//!
//! The first byte picks what the rest of the input becomes:
//! 0. an index file as is, or behind a valid header: `recover`, then every live record it
//!    vouches for must decode
//!    (CRC checked) with increasing numbers, `first`/`last`/`live_bytes` must match them,
//!    and the searches (numbers and times from the input) must stay in range, the number
//!    search at the partition point; single records and headers decode or fail, and a
//!    record that decodes encodes back to the same bytes;
//! 1. a valid index built from the input (increasing numbers, any field values, a mark
//!    update torn or not), then corrupted (flipped bytes, a cut, garbage appended):
//!    recovery keeps exactly the records before the first damaged one, byte-identical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom::origin::index::{self, Mark, Verify};
use strom::origin::SegmentRecord;
use strom::time::{Timescale, Timestamp};

#[path = "shared/input.rs"]
mod input;
use input::Input;

fn check_recovered(file: &[u8], inp: &mut Input<'_>) -> Option<index::Recovered> {
    let rec = index::recover(file, file.len() as u64).ok()?;
    assert!(rec.mark.first_live <= rec.count);
    assert!(rec.valid_len <= file.len() as u64);
    assert_eq!(rec.valid_len, index::record_offset(rec.count));
    let mut seen: Vec<SegmentRecord> = Vec::new();
    index::visit(file, rec.live(), &mut |i, r| {
        assert_eq!(i, rec.mark.first_live + seen.len() as u64);
        if let Some(p) = seen.last() {
            assert!(r.number > p.number);
        }
        seen.push(*r);
        true
    })
    .expect("recovery vouched for these records");
    assert_eq!(seen.len() as u64, rec.count - rec.mark.first_live);
    assert_eq!(rec.first, seen.first().copied());
    if let Some(l) = seen.last() {
        assert_eq!(rec.last, Some(*l));
    }
    let bytes = seen.iter().fold(0u64, |a, r| a.saturating_add(r.size));
    assert_eq!(rec.live_bytes, bytes);
    // The fields-only walk gives the same records.
    let mut k = 0;
    index::visit_verified(file, rec.live(), Verify::Fields, &mut |_, r| {
        assert_eq!(*r, seen[k]);
        k += 1;
        true
    })
    .expect("fields of checked records");
    for _ in 0..4 {
        let number = inp.i64() as u64;
        let at = index::first_at_or_after(file, rec.live(), number).expect("search");
        assert!(rec.live().contains(&at) || at == rec.count);
        let i = (at - rec.mark.first_live) as usize;
        assert!(seen[..i].iter().all(|r| r.number < number));
        assert!(seen[i..].iter().all(|r| r.number >= number));
        let ms = inp.i64();
        let at = index::first_ending_after(file, rec.live(), ms).expect("search");
        assert!(rec.live().contains(&at) || at == rec.count);
    }
    Some(rec)
}

fn record(inp: &mut Input<'_>, number: u64) -> SegmentRecord {
    let scale = |inp: &mut Input<'_>| Timescale::new(u32::from(inp.u16()) + 1).expect("non-zero");
    let start = Timestamp::new(inp.i64(), scale(inp));
    let duration = Timestamp::new(inp.i64() >> 16, scale(inp));
    SegmentRecord::new(number, start, duration)
        .with_program_date_time(inp.i64())
        .with_size(inp.i64() as u64 >> 8)
        .with_discontinuity(inp.u8() & 1 == 1)
        .with_discontinuity_sequence(u64::from(inp.u16()))
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    match inp.u8() % 2 {
        0 => {
            // Half the time behind a valid header (with its mark from the input), so
            // that the records themselves are what is hostile.
            let mut owned = Vec::new();
            let file = if inp.u8() & 1 == 1 {
                owned.extend_from_slice(&index::encode_header(u64::from(inp.u16())));
                owned.extend_from_slice(inp.0);
                &owned[..]
            } else {
                inp.0
            };
            let _ = index::decode_header(file);
            for chunk in file.chunks(index::RECORD_LEN) {
                if let Ok(r) = index::decode_record(chunk) {
                    assert_eq!(&index::encode_record(&r)[..], chunk);
                }
            }
            let mut q = Input(file.get(file.len() / 2..).unwrap_or_default());
            check_recovered(file, &mut q);
        }
        _ => {
            let n = usize::from(inp.u8());
            let first_live = u64::from(inp.u8()) % (n as u64 + 1);
            let mut file = index::encode_header(first_live).to_vec();
            let mut records = Vec::with_capacity(n);
            let mut number = u64::from(inp.u16());
            for _ in 0..n {
                let r = record(&mut inp, number);
                file.extend_from_slice(&index::encode_record(&r));
                records.push(r);
                number = number.saturating_add(u64::from(inp.u8()) + 1);
                if number == u64::MAX {
                    break;
                }
            }
            let n = records.len();
            // A mark update, possibly torn (only part of its slot written).
            let mut first_live = first_live.min(n as u64);
            if inp.u8() & 1 == 1 {
                let next = Mark::new(first_live)
                    .next(first_live + u64::from(inp.u8()) % (n as u64 - first_live + 1));
                let slot = next.encode();
                let keep = usize::from(inp.u8()) % (slot.len() + 1);
                let at = next.slot_offset() as usize;
                file[at..at + keep].copy_from_slice(&slot[..keep]);
                if keep == slot.len() {
                    first_live = next.first_live;
                }
            }
            let clean = file.len();
            let rec = index::recover(&file[..], clean as u64).expect("own file");
            assert_eq!((rec.count, rec.mark.first_live), (n as u64, first_live));
            // Damage after the header: the first damaged live record and all after it
            // go (garbage appended may still form valid records after them).
            let record_of = |at: usize| ((at - index::HEADER_LEN) / index::RECORD_LEN) as u64;
            let mut first_bad = n as u64;
            let mut cut_below_live = false;
            for _ in 0..inp.u8() % 4 {
                let at =
                    index::HEADER_LEN + usize::from(inp.u16()) % (clean - index::HEADER_LEN + 1);
                if at < file.len() {
                    file[at] ^= inp.u8() | 1;
                    if record_of(at) >= first_live {
                        first_bad = first_bad.min(record_of(at));
                    }
                }
            }
            if inp.u8() & 1 == 1 {
                let cut =
                    index::HEADER_LEN + usize::from(inp.u16()) % (clean - index::HEADER_LEN + 1);
                file.truncate(cut);
                let whole = index::record_count(cut as u64);
                cut_below_live = whole < first_live;
                first_bad = first_bad.min(whole);
            }
            let garbage = inp.0;
            file.extend_from_slice(garbage);
            let mut q = Input(garbage);
            let rec = check_recovered(&file, &mut q).expect("the header is intact");
            if !cut_below_live {
                assert_eq!(rec.mark.first_live, first_live);
                assert!(
                    rec.count >= first_bad,
                    "{} records kept, {first_bad} intact",
                    rec.count
                );
                for i in first_live..first_bad {
                    let back = index::read_record(&file[..], i).expect("intact");
                    assert_eq!(back, records[i as usize]);
                }
            }
        }
    }
});
