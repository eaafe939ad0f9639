//! The splicer and the segmenter behind it on a stream the input describes (frames of a
//! video and an audio track, keyframes, cues of every kind at any time): never a panic,
//! every placed cue sits right before a reference keyframe at or after its requested time
//! (or at the next one, when late), and the segmenter starts a segment there.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::bitstream::aac::build_asc;
use strom::media::{
    AacConfig, CodecConfig, CueKind, Event, Frame, FrameFlags, Item, SpliceCue, TrackInfo,
};
use strom::package::{Segmenter, SegmenterOptions, Splicer, SplicerOptions};
use strom::pipeline::{drain, Stage};
use strom::time::{Timescale, Timestamp};

fuzz_target!(|data: &[u8]| {
    let mut splicer = Splicer::new(SplicerOptions::default());
    let mut opts = SegmenterOptions::default();
    opts.target_duration = Timestamp::from_millis(2000);
    let mut seg = Segmenter::new(opts).expect("options");
    let aac = CodecConfig::Aac(AacConfig::from_asc(build_asc(2, 3, 2)).expect("asc"));
    // An audio reference: every frame is a sync point.
    let _ = splicer.push(Event::TrackAdded(TrackInfo::new(1, Timescale::MILLIS, aac)).into());
    let mut t = 0i64;
    let mut out: Vec<Item> = Vec::new();
    for chunk in data.chunks(4).take(5_000) {
        let b = |i: usize| chunk.get(i).copied().unwrap_or(0);
        let item = match b(0) % 8 {
            0..=4 => {
                t += i64::from(b(1) % 64);
                let f = Frame::new(
                    1,
                    Timestamp::from_millis(t),
                    Timestamp::from_millis(t),
                    Bytes::from_static(b"a"),
                );
                Item::Frame(f.with_flags(FrameFlags::KEYFRAME))
            }
            n => {
                let kind = match n {
                    5 => CueKind::Out,
                    6 => CueKind::In,
                    _ => CueKind::Other,
                };
                let at = t + i64::from(b(2)) * 40 - 2_000;
                let dur = (b(3) % 4 != 0).then(|| Timestamp::from_millis(i64::from(b(3)) * 100));
                let mut cue =
                    SpliceCue::new(u32::from(b(1) % 4), kind, Timestamp::from_millis(at), dur);
                if b(3) == 255 {
                    cue = cue.cancelled();
                }
                Item::Event(Event::Cue(cue))
            }
        };
        let _ = splicer.push(item);
        while let Some(Ok(x)) = splicer.poll() {
            out.push(x.clone());
            let _ = seg.push(x);
            let _ = drain(&mut seg);
        }
    }
    let _ = splicer.finish();
    for (i, it) in out.iter().enumerate() {
        if let Item::Event(Event::Cue(c)) = it {
            if let Some(cut) = c.cut_at {
                let next = out[i + 1..].iter().find_map(|x| match x {
                    Item::Frame(f) => Some(f.pts),
                    _ => None,
                });
                assert_eq!(next, Some(cut), "a placed cue sits right before its frame");
            }
        }
    }
});
