//! Drives `TsDemuxer` over arbitrary chunks. The first byte picks the mode and the chunk
//! size: raw bytes, or transport packets built from the input (a valid PAT and PMT with
//! H.264, AAC, H.265 and SCTE 35 streams, then packets on those PIDs with fuzzed
//! headers, PES headers with fuzzed PTS/DTS, fuzzed bodies and now and then a valid
//! `splice_insert`), so the fuzzer reaches PES, section, Annex B and ADTS parsing.
//! Checks after the run:
//! * chunking does not change the output (items and error kinds and offsets, in order);
//! * bytes held stay within what the options allow (`buffered()` after every poll);
//! * frames belong to announced tracks; video payloads are 4-byte length-prefixed NAL
//!   units; audio frames are keyframes with pts == dts and a duration;
//! * per track, dts steps back more than 1 s or forward more than 10 s at most once per
//!   `Discontinuity` emitted before (tracks cross a new time base one after the other;
//!   each crosses each time base once);
//! * exactly one `EndOfStream`, last; errors are malformed, unsupported or limit, with
//!   an offset inside the input; the packets counted plus the bytes skipped are the
//!   input;
//! * the frames mux with `TsMuxer` without a panic.
#![no_main]

#[path = "shared/input.rs"]
mod input;

use bytes::{Bytes, BytesMut};
use input::Input;
use libfuzzer_sys::fuzz_target;
use strom::bitstream::nal;
use strom::container::ts::psi::{self, PmtStream};
use strom::container::ts::{TsDemuxer, TsDemuxerOptions, TsMuxer, TsMuxerOptions};
use strom::media::{Event, Item, MediaKind, TrackInfo};
use strom::pipeline::Stage;
use strom::scte35;
use strom::ErrorKind;

type Out = Result<Item, (ErrorKind, Option<u64>)>;

const MAX_PES: usize = 64 << 10;
const MAX_STREAMS: usize = 4;

fn options() -> TsDemuxerOptions {
    let mut o = TsDemuxerOptions::default();
    o.max_pes_size = MAX_PES;
    o.max_streams = MAX_STREAMS;
    o
}

/// Pushes `chunks`, polling until `None` after each, then finishes.
fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>, input: &Bytes) -> (Vec<Out>, u64, u64) {
    let mut d = TsDemuxer::with_options(options());
    let mut out = Vec::new();
    // Per stream: a PES packet, a partial ADTS frame, a section; PAT and PMT sections;
    // a partial packet and the sync search window; the chunk not read yet.
    let bound = MAX_STREAMS * (MAX_PES + 184 + 8192 + 4096) + 2 * 4096 + 188 + 4096;
    let drain = |d: &mut TsDemuxer, out: &mut Vec<Out>, chunk: usize| {
        let mut n = 0;
        while let Some(r) = d.poll() {
            n += 1;
            assert!(n < 1_000_000, "poll never returns None");
            out.push(r.map_err(|e| (e.kind(), e.offset())));
            assert!(d.buffered() <= bound + chunk, "{} bytes held", d.buffered());
        }
        assert!(
            d.buffered() <= bound,
            "{} bytes held after a drain",
            d.buffered()
        );
    };
    for c in chunks {
        d.push(input.slice_ref(c)).unwrap();
        drain(&mut d, &mut out, c.len());
    }
    d.finish().unwrap();
    drain(&mut d, &mut out, 0);
    assert!(d.poll().is_none());
    let s = d.stats();
    (out, s.packets, s.skipped_bytes)
}

/// Transport packets built from the fuzz input.
fn structured(data: &[u8]) -> Vec<u8> {
    let mut inp = Input(data);
    let mut ts = Vec::new();
    let pat = psi::pat_section(1, 0, 1, 0x1000);
    ts.extend_from_slice(&psi::section_packet(0, &pat).unwrap());
    let cuei = [0x05, 4, b'C', b'U', b'E', b'I'];
    let streams = [
        PmtStream {
            stream_type: 0x1b,
            pid: 0x100,
            language: None,
            descriptors: &[],
        },
        PmtStream {
            stream_type: 0x0f,
            pid: 0x101,
            language: Some(*b"eng"),
            descriptors: &[],
        },
        PmtStream {
            stream_type: 0x24,
            pid: 0x102,
            language: None,
            descriptors: &[],
        },
        PmtStream {
            stream_type: 0x86,
            pid: 0x1f0,
            language: None,
            descriptors: &cuei,
        },
    ];
    let pmt = psi::pmt_section(1, inp.u8() & 31, 0x100, &streams).unwrap();
    ts.extend_from_slice(&psi::section_packet(0x1000, &pmt).unwrap());
    let pids = [0x100u16, 0x101, 0x102, 0x1f0, 0, 0x1000];
    let mut cc = [0u8; 6];
    let mut packets = 0;
    while !inp.is_empty() && packets < 2000 {
        packets += 1;
        let sel = inp.u8();
        let k = usize::from(sel % 6);
        let pid = pids[k];
        let flags = inp.u8();
        let pusi = flags & 1 != 0;
        if flags & 0x80 == 0 {
            cc[k] = (cc[k] + 1) & 15;
        }
        let mut p = vec![0x47, (u8::from(pusi) << 6) | (pid >> 8) as u8, pid as u8];
        let mut body = Vec::new();
        if pusi && k < 3 {
            // A PES header with a fuzzed PTS (and DTS).
            let pts = inp.i64() as u64 & ((1 << 33) - 1);
            let sid = if k == 1 { 0xc0 } else { 0xe0 };
            let with_dts = flags & 2 != 0;
            let h = strom::container::ts::pes::PesHeader {
                stream_id: sid,
                pts,
                dts: with_dts.then(|| pts.wrapping_sub(u64::from(inp.u16()))),
                payload_len: usize::from(inp.u16() % 600),
            };
            let (bytes, n) = h.encode();
            body.extend_from_slice(&bytes[..n]);
            if flags & 4 != 0 {
                body[4] = 0;
                body[5] = 0;
            }
        } else if pusi && k == 3 && flags & 8 != 0 {
            body.push(0);
            let pts = inp.i64() as u64;
            let s = scte35::splice_insert_section(
                u32::from(inp.u16()),
                flags & 16 != 0,
                (flags & 32 != 0).then_some(pts),
                None,
                false,
            );
            body.extend_from_slice(&s[..s.len().min(183)]);
        }
        let n = usize::from(inp.u8() % 185);
        while body.len() < n {
            body.push(inp.u8());
        }
        body.truncate(184);
        if body.len() == 184 {
            p.push(0x10 | cc[k]);
        } else {
            let af = 183 - body.len();
            p.push(0x30 | cc[k]);
            p.push(af as u8);
            if af > 0 {
                p.push(
                    if flags & 64 != 0 { 0x40 } else { 0 } | if sel & 0x80 != 0 { 0x80 } else { 0 },
                );
                p.extend(std::iter::repeat_n(0xff, af - 1));
            }
        }
        p.extend_from_slice(&body);
        ts.extend_from_slice(&p);
    }
    ts
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let input = Bytes::from(if ctrl & 1 == 0 {
        rest.to_vec()
    } else {
        structured(rest)
    });
    let (whole, packets, skipped) = run(std::iter::once(&input[..]), &input);
    assert_eq!(
        packets * 188 + skipped,
        input.len() as u64,
        "every byte read or skipped"
    );
    let size = 1 + (usize::from(ctrl >> 1) * 37 % 1024);
    let (chunked, _, _) = run(input.chunks(size), &input);
    assert_eq!(whole, chunked, "chunking changed the output");

    let mut tracks: Vec<TrackInfo> = Vec::new();
    // Per track: last dts and jumps so far; discontinuities so far.
    let mut last: std::collections::HashMap<u32, (i64, u64)> = Default::default();
    let mut discontinuities = 0u64;
    let n = whole.len();
    let mut frames = Vec::new();
    for (i, r) in whole.into_iter().enumerate() {
        let item = match r {
            Err((kind, offset)) => {
                assert!(matches!(
                    kind,
                    ErrorKind::Malformed | ErrorKind::Unsupported | ErrorKind::Limit
                ));
                assert!(
                    offset.is_some_and(|o| o <= input.len() as u64),
                    "error offset"
                );
                continue;
            }
            Ok(item) => item,
        };
        match &item {
            Item::Event(Event::TrackAdded(t)) => {
                assert!(tracks.iter().all(|u| u.id != t.id), "added twice");
                tracks.push(t.clone());
            }
            Item::Event(Event::TrackChanged(t)) => {
                let known = tracks
                    .iter_mut()
                    .find(|u| u.id == t.id)
                    .expect("change of a known track");
                *known = t.clone();
            }
            Item::Event(Event::Discontinuity { track: None }) => discontinuities += 1,
            Item::Event(Event::EndOfStream) => assert_eq!(i, n - 1, "EndOfStream is last"),
            Item::Frame(f) => {
                let t = tracks
                    .iter()
                    .find(|t| t.id == f.track)
                    .expect("frame of an announced track");
                if t.kind == MediaKind::Video {
                    assert!(
                        nal::iter_length_prefixed(&f.data, 4).all(|u| u.is_ok()),
                        "canonical video"
                    );
                    assert!(!f.data.is_empty());
                } else {
                    assert!(f.is_keyframe() && f.pts == f.dts && f.duration.is_some());
                }
                let dts = f.dts.ticks();
                let mut jumps = 0;
                if let Some(&(prev, j)) = last.get(&f.track) {
                    jumps = j;
                    if dts < prev - 90_000 || dts > prev + 900_000 {
                        jumps += 1;
                        assert!(
                            jumps <= discontinuities,
                            "dts {prev} -> {dts}: more jumps than discontinuities"
                        );
                    }
                }
                last.insert(f.track, (dts, jumps));
                frames.push(f.clone());
            }
            _ => {}
        }
    }

    // What was read muxes without a panic (errors are fine: codecs the muxer refuses).
    if let Ok(mut mux) = TsMuxer::new(&tracks, TsMuxerOptions::default()) {
        let mut out = BytesMut::new();
        for f in &frames {
            let _ = mux.write_frame(f, &mut out);
        }
        let _ = mux.flush(&mut out);
    }
});
