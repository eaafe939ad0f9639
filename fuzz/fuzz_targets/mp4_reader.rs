//! Treats the input as a whole MP4 file and drives `Mp4Demuxer` to completion, checking
//! the drive contract: reads stay inside the file, frames come in decode order (per track
//! and across tracks), nothing follows `EndOfStream`, and errors end the stream.
//!
//! When the input's length is odd, the host transforms samples in place as it reads
//! (`read_samples`, `supply_transformed`): every listed range lies inside its read and
//! apart from the others; audio samples are XORed, others left as they are; a frame
//! flagged `TRANSFORMED` is the very memory listed, transformed exactly once.
#![no_main]

use std::collections::HashMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::container::mp4::{Mp4Demuxer, Mp4Options};
use strom::media::{Event, FrameFlags, Item, MediaKind};
use strom::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let file = Bytes::copy_from_slice(data);
    let mut opts = Mp4Options::default();
    // Small limits keep executions fast; small reads exercise run planning and eviction.
    opts.max_samples = 50_000;
    opts.read_size = 64 << (data.last().copied().unwrap_or(0) % 16);
    opts.max_buffered = opts.read_size * 2;
    let mut d = Mp4Demuxer::with_options(file.len() as u64, opts);
    let mut last: Option<Timestamp> = None;
    let mut ended = false;
    let mut items = 0usize;
    let transform = data.len() % 2 == 1;
    // Transformed samples by address: the bytes the frame must carry.
    let mut expect: HashMap<usize, Vec<u8>> = HashMap::new();
    for _ in 0..1_000_000 {
        while let Some(item) = d.poll_item() {
            items += 1;
            assert!(items < 1_000_000, "too many items");
            assert!(!ended, "item after EndOfStream");
            match item {
                Ok(Item::Frame(f)) => {
                    assert!(d.tracks().iter().any(|t| t.id == f.track));
                    if let Some(prev) = last {
                        assert!(prev <= f.dts, "decode order");
                    }
                    last = Some(f.dts);
                    if f.flags.contains(FrameFlags::TRANSFORMED) {
                        assert!(transform, "flagged without transforming");
                        let want = expect.remove(&(f.data.as_ptr() as usize));
                        assert_eq!(want.as_deref(), Some(&f.data[..]), "transformed once");
                    }
                }
                Ok(Item::Event(Event::EndOfStream)) => ended = true,
                Ok(_) => {}
                Err(_) => {
                    assert!(d.is_finished());
                    assert!(d.poll_item().is_none() && d.poll_read().is_none());
                    return;
                }
            }
        }
        let Some(req) = d.poll_read() else {
            assert!(ended && d.is_finished(), "stalled without finishing");
            return;
        };
        assert!(
            req.len > 0 && req.end() <= file.len() as u64,
            "read outside the file"
        );
        let start = req.offset as usize;
        let supplied = if transform {
            let mut buf = file[start..start + req.len].to_vec();
            let mut listed = d.read_samples();
            let audio: Vec<u32> = d
                .tracks()
                .iter()
                .filter(|t| t.kind == MediaKind::Audio)
                .map(|t| t.id)
                .collect();
            listed.sort_by_key(|s| s.start);
            for (i, s) in listed.iter().enumerate() {
                assert!(s.len > 0 && s.start + s.len <= buf.len(), "listed outside the read");
                if let Some(next) = listed.get(i + 1) {
                    assert!(s.start + s.len <= next.start, "listed samples overlap");
                }
                let bytes = &mut buf[s.range()];
                if audio.contains(&s.track) {
                    bytes.iter_mut().for_each(|b| *b ^= 0xA5);
                }
                expect.insert(bytes.as_ptr() as usize, bytes.to_vec());
            }
            d.supply_transformed(req.offset, Bytes::from(buf))
        } else {
            d.supply(req.offset, file.slice(start..start + req.len))
        };
        if supplied.is_err() {
            assert!(d.is_finished());
            return;
        }
    }
    panic!("demuxer did not finish");
});
