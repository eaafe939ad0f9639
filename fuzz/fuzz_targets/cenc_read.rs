//! Protected fMP4 reading and CENC decryption of hostile bytes
//! (`strom::container::fmp4`, `strom::crypto::cenc`): never a panic, typed errors only.
//!
//! The first byte picks what the rest of the input becomes:
//! 0. an init segment (`encv`/`enca`, `sinf`/`frma`/`schm`/`tenc`, `pssh` parsing); when
//!    it reads, the reader's protection accessors and a decrypting read of nothing;
//! 1. a media segment after a valid protected init segment (H.264 or AAC, `cenc` or
//!    `cbcs`), read with decryption (`senc`, PIFF `senc`, `saiz`, `saio`, `sbgp` parsing);
//! 2. overwrites and a truncation of a valid protected fragment (within its `moof`
//!    mostly: `senc` counts and subsample tables larger than their samples, `saiz`
//!    sizes, `saio` offsets, `trun` sizes), read with decryption; a read of the valid
//!    fragment must give the clear frames back;
//! 3. a video sample for `SubsampleGenerator` (H.264 and H.265 slice headers, in-band
//!    parameter sets) and a hostile subsample table for `SampleCipher::decrypt`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::container::fmp4::Fmp4Reader;
use strom::crypto::cenc::{Pattern, SampleCipher, Subsample, SubsampleGenerator};
use strom::crypto::{Iv, Scheme};
use strom::media::{CodecConfig, H264Config, H265Config};

#[path = "shared/params.rs"]
mod params;
use params::{HVCC, PPS, SPS};

#[path = "shared/input.rs"]
mod input;
use input::Input;

#[path = "shared/cenc.rs"]
mod cenc;
use cenc::{protected, KEY, KID};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let mode = inp.u8();
    let sel = inp.u8();
    let (video, cbcs) = (sel & 1 == 1, sel & 2 == 2);
    let keys = [(KID, KEY)];
    match mode % 4 {
        0 => {
            if let Ok(mut r) = Fmp4Reader::new(Bytes::copy_from_slice(inp.0)) {
                let ids: Vec<u32> = r.tracks().iter().map(|t| t.id).collect();
                for id in ids {
                    let _ = r.encryption(id);
                }
                let _ = r.pssh().len();
                let _ = r.read_segment_decrypted(Bytes::new(), &keys);
            }
        }
        1 => {
            let (init, _, _) = protected(&mut Input(&[]), video, cbcs);
            let mut r = Fmp4Reader::new(init).expect("own init");
            let _ = r.read_segment_decrypted(Bytes::copy_from_slice(inp.0), &keys);
        }
        2 => {
            let (init, frag, frames) = protected(&mut inp, video, cbcs);
            let mut r = Fmp4Reader::new(init.clone()).expect("own init");
            let back = r
                .read_segment_decrypted(frag.clone(), &keys)
                .expect("own fragment");
            assert_eq!(back.len(), frames.len());
            for (b, f) in back.iter().zip(&frames) {
                assert_eq!(b.data, f.data);
            }
            let moof_end = frag.len() - frames.iter().map(|f| f.data.len()).sum::<usize>();
            let mut bad = frag.to_vec();
            for _ in 0..(inp.u8() % 8) + 1 {
                let at = usize::from(inp.u16()) % moof_end.max(1);
                bad[at] = inp.u8();
            }
            if inp.u8() & 1 == 1 {
                let cut = usize::from(inp.u16()) % bad.len();
                bad.truncate(cut);
            }
            let mut r = Fmp4Reader::new(init).expect("own init");
            let _ = r.read_segment_decrypted(Bytes::from(bad), &keys);
        }
        _ => {
            let config = if video {
                CodecConfig::H264(
                    H264Config::from_parameter_sets(
                        Bytes::from_static(SPS),
                        Bytes::from_static(PPS),
                    )
                    .expect("constant"),
                )
            } else {
                CodecConfig::H265(H265Config::from_hvcc(Bytes::from_static(HVCC)).expect("hvcC"))
            };
            let scheme = if cbcs { Scheme::Cbcs } else { Scheme::Cenc };
            let mut g = SubsampleGenerator::new(&config, scheme)
                .expect("params")
                .expect("video");
            let n = usize::from(inp.u8() % 8);
            let mut subs = Vec::new();
            for _ in 0..n {
                subs.push(Subsample::new(inp.u16(), u32::from(inp.u16())));
            }
            let sample = inp.0;
            let mut out = Vec::new();
            if g.subsamples(sample, &mut out).is_ok() {
                let total: u64 = out.iter().map(Subsample::len).sum();
                assert_eq!(total, sample.len() as u64);
                if !cbcs {
                    assert!(out.iter().all(|s| s.protected % 16 == 0));
                }
                subs = out;
            }
            let cipher = SampleCipher::new(scheme, &KEY).expect("scheme");
            let pattern = if cbcs {
                Pattern::CBCS_VIDEO
            } else {
                Pattern::NONE
            };
            let mut buf = sample.to_vec();
            let iv = Iv::Iv8([7; 8]);
            if cipher.encrypt(&mut buf, &iv, &subs, pattern).is_ok() {
                cipher
                    .decrypt(&mut buf, &iv, &subs, pattern)
                    .expect("same arguments");
                assert_eq!(buf, sample);
            } else {
                assert_eq!(buf, sample);
            }
        }
    }
});
