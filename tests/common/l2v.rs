//! The live-to-VOD fixture of `tests/l2v.rs` and `tests/l2v_dash.rs`: a 60 s stream
//! recorded by an Origin on a MemoryStore with two SCTE-35 breaks, and two creatives.

use std::path::PathBuf;

use bytes::Bytes;
use strom::ingest::flv::FlvDemuxer;
use strom::media::{CueKind, Event, Item, SpliceCue};
use strom::origin::{MemoryStore, MemoryStoreOptions, Origin, OriginOptions};
use strom::pipeline::Stage;
use strom::time::Timestamp;

use super::{avc_aac_small_25, small_clip_mp4, Container};

pub const T0: i64 = 1_760_000_000_000;
/// Frames per second of the clip.
pub const FPS: i64 = 25;

/// (event id, splice time ms, duration ms, segmentation type) of the breaks, and where
/// each is cut: keyframes every 2 s, so 10 s -> 10 s .. 18 s, and 31 s -> 32 s .. 38 s
/// (37 s asked for the return: the next keyframe is 38 s).
pub const BREAKS: [(u32, i64, i64, Option<u8>); 2] =
    [(11, 10_000, 8_000, None), (12, 31_000, 6_000, Some(0x34))];
pub const CUTS_MS: [(i64, i64); 2] = [(10_000, 18_000), (32_000, 38_000)];

/// The recording: stream `show`, published at [`T0`], unpublished after its last frame.
pub fn record() -> Origin<MemoryStore> {
    let flv = avc_aac_small_25(60, Container::Flv);
    let mut demux = FlvDemuxer::new();
    demux
        .push(Bytes::from(std::fs::read(&flv).expect("read the clip")))
        .expect("FLV");
    demux.finish().expect("FLV end");
    let mut items: Vec<Item> = Vec::new();
    while let Some(i) = demux.poll() {
        items.push(i.expect("FLV item"));
    }
    let mut store_opts = MemoryStoreOptions::default();
    store_opts.max_segments_per_stream = 1000;
    store_opts.max_bytes_per_stream = 1 << 30;
    let mut o = Origin::new(MemoryStore::new(store_opts), OriginOptions::default());
    o.publish("show", T0).expect("publish");
    let mut cues: Vec<(i64, Item)> = Vec::new();
    for (id, at, dur, seg_type) in BREAKS {
        let raw = strom::scte35::splice_insert_section(
            id,
            true,
            Some((at * 90) as u64),
            Some((dur * 90) as u64),
            true,
        );
        let mut cue = SpliceCue::new(
            id,
            CueKind::Out,
            Timestamp::from_millis(at),
            Some(Timestamp::from_millis(dur)),
        )
        .with_raw(raw);
        if let Some(t) = seg_type {
            cue = cue.with_segmentation_type(t);
        }
        // Sent four seconds ahead, as encoders do.
        cues.push((at - 4_000, Item::Event(Event::Cue(cue))));
    }
    let mut now = T0;
    for item in items {
        if let Some(f) = item.as_frame() {
            let t = f.dts.as_millis();
            now = now.max(T0 + t);
            while cues.first().is_some_and(|(send, _)| *send <= t) {
                let (_, cue) = cues.remove(0);
                o.push("show", cue, now).expect("cue");
            }
        }
        o.push("show", item, now).expect("push");
    }
    o.unpublish("show", now + 40).expect("unpublish");
    o
}

pub const CREATIVES: [(&str, &str, u32, u32); 2] = [
    ("ad-a", "smptebars", 880, 4),
    ("ad-b", "rgbtestsrc", 1320, 3),
];

/// A creative clip: `picture` and a `tone` Hz sine, `seconds` long, MP4, with the codec
/// parameters of the content (`avc_aac_small_25`): 320x180 25 fps H.264 High by x264
/// (B-frames, GOP 2 s, 200 kbit/s), AAC-LC 48 kHz stereo 64 kbit/s.
pub fn creative_mp4(id: &str, picture: &str, tone: u32, seconds: u32) -> PathBuf {
    small_clip_mp4(
        &format!("l2v_{id}_{seconds}s.mp4"),
        picture,
        tone,
        48_000,
        2,
        seconds,
    )
}
