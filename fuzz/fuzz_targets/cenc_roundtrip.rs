//! CENC protect -> decrypt invariant (`strom::container::fmp4::protect_fragment`,
//! `Fmp4Reader::read_segment_decrypted`).
//!
//! A track (H.264 I slices with SEI/AUD units and sometimes two slices per picture, or
//! AAC; any track id, including ids `cenc` IV derivation refuses), a scheme (`cenc` with
//! an IV seed, or `cbcs`) and up to four fragments of valid frames come from the input.
//! Each fragment is written clear and protected from the writer's table; then:
//! * protection is deterministic (the same bytes twice) and keeps the sample sizes,
//!   timing and flags; a refusal is a typed error that appends nothing;
//! * strom's reader decrypts every protected fragment to exactly the clear frames, from
//!   `senc` and, with the `senc` renamed away, from `saiz`/`saio`;
//! * encrypted payloads differ from the clear ones wherever a full block was protected.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::container::fmp4::{protect_fragment, Fmp4Reader, Fmp4Writer};
use strom::time::Timestamp;

#[path = "shared/params.rs"]
mod params;

#[path = "shared/input.rs"]
mod input;
use input::Input;

#[path = "shared/cenc.rs"]
mod cenc;
use cenc::{frames, protection, scale, track, KEY, KID};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let sel = inp.u8();
    let (video, cbcs) = (sel & 1 == 1, sel & 2 == 2);
    let id = match inp.u8() % 4 {
        0 => 4096 + u32::from(inp.u16()),
        _ => u32::from(inp.u16() % 4095) + 1,
    };
    let seed = inp.i64() as u64;
    let track = track(id, video);
    let p = protection(cbcs, seed);
    let mut w = Fmp4Writer::new(track.clone()).expect("valid track");
    let mut init = BytesMut::new();
    w.protected_init_segment(&p, &mut init).expect("init");
    let init = init.freeze();
    let mut reader = Fmp4Reader::new(init.clone()).expect("own init");
    let mut start = 0i64;
    for seq in 1..=u32::from(inp.u8() % 4) + 1 {
        let frames = frames(&mut inp, id, video, start);
        start += frames.len() as i64 * 3000;
        let mut clear = BytesMut::new();
        let end = Timestamp::new(start, scale());
        let info = w
            .media_segment(&frames, seq, Some(end), &mut clear)
            .expect("valid frames");
        let mut out = BytesMut::from(&b"xy"[..]);
        let r = protect_fragment(&clear, &info, &track, &p, &KEY, &mut out);
        let pinfo = match r {
            Ok(i) => i,
            Err(e) => {
                // Only cenc IV derivation refuses these inputs, appending nothing.
                assert!(id >= 4096 && !cbcs, "{e}");
                assert_eq!(&out[..], b"xy");
                return;
            }
        };
        let frag = out.split_off(2).freeze();
        assert_eq!(pinfo.len, frag.len());
        let mut again = BytesMut::new();
        protect_fragment(&clear, &info, &track, &p, &KEY, &mut again).expect("same input");
        assert_eq!(&again[..], &frag[..], "deterministic");
        for ((s, c), f) in pinfo.samples.iter().zip(&info.samples).zip(&frames) {
            assert_eq!(
                (s.size, s.dts, s.duration, s.flags),
                (c.size, c.dts, c.duration, c.flags)
            );
            let enc = &frag[s.offset..s.offset + s.size as usize];
            if !video && f.data.len() >= 16 {
                assert_ne!(enc[..16], f.data[..16], "audio sample left clear");
            }
        }
        let back = reader
            .read_segment_decrypted(frag.clone(), &[(KID, KEY)])
            .expect("own fragment");
        assert_eq!(back.len(), frames.len());
        for (b, f) in back.iter().zip(&frames) {
            assert_eq!((&b.data, b.dts, b.pts), (&f.data, f.dts, f.pts));
        }
        // The same through saiz/saio.
        let mut no_senc = frag.to_vec();
        let moof = &frag[pinfo.moof_offset..pinfo.data_offset];
        if let Some(at) = moof.windows(4).position(|w| w == b"senc") {
            let at = pinfo.moof_offset + at;
            if moof.windows(4).any(|w| w == b"saio") {
                no_senc[at..at + 4].copy_from_slice(b"free");
                let mut r2 = Fmp4Reader::new(init.clone()).expect("own init");
                let back = r2
                    .read_segment_decrypted(Bytes::from(no_senc), &[(KID, KEY)])
                    .expect("saio fallback");
                for (b, f) in back.iter().zip(&frames) {
                    assert_eq!(b.data, f.data);
                }
            }
        }
    }
});
