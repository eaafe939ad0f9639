//! Re-timing arbitrary bytes as an MPEG-TS segment and as a CMAF fragment (live-to-VOD):
//! never a panic; a TS re-timed by `s` then by `-s` is the input again (PTS, DTS and PCR
//! are modular); a re-timed fragment is never longer than the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom::container::fmp4::retime_fragment;
use strom::container::ts::retime;

fuzz_target!(|data: &[u8]| {
    let (shift, body) = match data.split_first_chunk::<8>() {
        Some((s, rest)) => (i64::from_be_bytes(*s), rest),
        None => (0, data),
    };
    let ts_shift = shift % (1 << 33);
    if let Ok(out) = retime(body, ts_shift) {
        assert_eq!(out.len(), body.len());
        let back = retime(&out, -ts_shift).expect("re-timed output re-times");
        assert_eq!(&back[..], body, "retime by s then -s");
    }
    if let Ok(out) = retime_fragment(body, shift) {
        assert!(out.len() <= body.len());
    }
});
