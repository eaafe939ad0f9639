//! Treats the input as a whole MP4 file and drives `Mp4Demuxer` to completion, checking
//! the drive contract: reads stay inside the file, frames come in decode order (per track
//! and across tracks), nothing follows `EndOfStream`, and errors end the stream.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::container::mp4::{Mp4Demuxer, Mp4Options};
use strom::media::{Event, Item};
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
        if d.supply(req.offset, file.slice(start..start + req.len))
            .is_err()
        {
            assert!(d.is_finished());
            return;
        }
    }
    panic!("demuxer did not finish");
});
