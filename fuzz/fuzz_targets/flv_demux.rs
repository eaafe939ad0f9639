//! Drives `FlvDemuxer` over the input split into chunks (sizes drawn from the first
//! byte), then checks:
//! * chunking does not change the output (items and errors, in order);
//! * frames belong to announced tracks of the right kind, video payloads are canonical
//!   4-byte length-prefixed NAL units, audio frames are keyframes;
//! * per track, dts never steps back more than the 1 s threshold without a
//!   `Discontinuity` in between, and never jumps forward more than 10 s past the
//!   previous frame without one;
//! * exactly one `EndOfStream`, last; errors carry an offset inside the input;
//! * feeding the file's tags one by one through `push_tag` gives the same items;
//! * muxing the items with `FlvMuxer` succeeds, and demuxing that gives the same items.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::bitstream::nal;
use strom::ingest::flv::{FlvDemuxer, FlvMuxer, TagReader};
use strom::media::{Event, Item, MediaKind};
use strom::pipeline::Stage;
use strom::ErrorKind;

type Out = Result<Item, (ErrorKind, Option<u64>)>;

/// Pushes `chunks`, polling until `None` after each, then finishes.
fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>, input: &Bytes) -> Vec<Out> {
    let mut d = FlvDemuxer::new();
    let mut out = Vec::new();
    let drain = |d: &mut FlvDemuxer, out: &mut Vec<Out>| {
        let mut n = 0;
        while let Some(r) = d.poll() {
            n += 1;
            assert!(n < 1_000_000, "poll never returns None");
            out.push(r.map_err(|e| (e.kind(), e.offset())));
        }
    };
    for c in chunks {
        if d.push(input.slice_ref(c)).is_err() {
            break; // stopped by a fatal error
        }
        drain(&mut d, &mut out);
    }
    if let Err(e) = d.finish() {
        out.push(Err((e.kind(), e.offset())));
    }
    drain(&mut d, &mut out);
    assert!(d.poll().is_none());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let input = Bytes::copy_from_slice(rest);
    let whole = run(std::iter::once(&input[..]), &input);
    let size = 1 + (ctrl as usize % 64);
    let chunked = run(input.chunks(size), &input);
    assert_eq!(whole, chunked, "chunking changed the output");

    let mut kinds = [None::<MediaKind>; 3];
    let mut last_dts = [None::<i64>; 3];
    let mut last_any: Option<i64> = None;
    let mut items = Vec::new();
    let n = whole.len();
    for (i, r) in whole.into_iter().enumerate() {
        let item = match r {
            Err((_, offset)) => {
                assert!(
                    offset.is_some_and(|o| o <= input.len() as u64),
                    "error offset"
                );
                continue;
            }
            Ok(item) => item,
        };
        match &item {
            Item::Event(Event::TrackAdded(t) | Event::TrackChanged(t)) => {
                assert!(t.id == 1 || t.id == 2);
                assert_eq!(
                    t.kind,
                    if t.id == 1 {
                        MediaKind::Video
                    } else {
                        MediaKind::Audio
                    }
                );
                kinds[t.id as usize] = Some(t.kind);
            }
            Item::Event(Event::Discontinuity { track: None }) => {
                last_dts = [None; 3];
                last_any = None;
            }
            Item::Event(Event::EndOfStream) => assert_eq!(i, n - 1, "EndOfStream is last"),
            Item::Frame(f) => {
                let k = kinds
                    .get(f.track as usize)
                    .copied()
                    .flatten()
                    .expect("frame of an announced track");
                if k == MediaKind::Video {
                    assert!(
                        nal::iter_length_prefixed(&f.data, 4).all(|u| u.is_ok()),
                        "canonical video"
                    );
                } else {
                    assert!(f.is_keyframe() && f.pts == f.dts);
                }
                let t = f.dts.ticks();
                if let Some(prev) = last_dts[f.track as usize] {
                    assert!(t >= prev - 1000, "dts went back without a discontinuity");
                }
                if let Some(prev) = last_any {
                    assert!(
                        t <= prev + 10_000,
                        "dts jumped forward without a discontinuity"
                    );
                }
                last_dts[f.track as usize] = Some(t);
                last_any = Some(t);
            }
            _ => {}
        }
        items.push(item);
    }
    assert_eq!(
        items
            .iter()
            .filter(|i| **i == Item::Event(Event::EndOfStream))
            .count(),
        1
    );

    // RTMP-style input: the same tags, one `push_tag` each.
    if let Ok(reader) = TagReader::new(input.clone()) {
        let mut d = FlvDemuxer::without_header();
        let mut tagged = Vec::new();
        for tag in reader {
            let Ok(tag) = tag else { break };
            if tag.filter {
                continue; // no RTMP equivalent; the byte path reports and drops it
            }
            let _ = d.push_tag(tag.tag_type, tag.timestamp, tag.body);
            tagged.extend(
                std::iter::from_fn(|| d.poll())
                    .map(|r| r.expect("push_tag errors come from push_tag")),
            );
        }
        d.finish().expect("no partial bytes with push_tag");
        tagged.extend(std::iter::from_fn(|| d.poll()).map(|r| r.unwrap()));
        assert_eq!(tagged, items, "push_tag changed the output");
    }

    // What the demuxer produced, the muxer writes, and reading that back gives it again.
    let mut mux = FlvMuxer::new();
    let mut file = BytesMut::new();
    for item in &items {
        mux.write(item, &mut file)
            .expect("demuxed items are muxable");
    }
    let file = file.freeze();
    let again: Vec<Item> = run(std::iter::once(&file[..]), &file)
        .into_iter()
        .map(|r| r.expect("muxed output demuxes without error"))
        .collect();
    assert_eq!(again, items, "mux then demux changed the items");
});
