//! CMAF test helpers shared by the fMP4 and DASH tests: demux an MP4 with strom into
//! tracks and frames, shift a track to a zero first decode time, cut it into fragments,
//! expand a parsed DASH `SegmentTimeline`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use strom::container::mp4::Mp4Demuxer;
use strom::media::{Frame, Item, TrackInfo};
use strom::time::Timestamp;

/// Tracks and their frames, in decode order.
pub fn demux(path: &Path) -> (Vec<TrackInfo>, BTreeMap<u32, Vec<Frame>>) {
    let items = Mp4Demuxer::read_all(Bytes::from(fs::read(path).unwrap())).unwrap();
    let mut tracks = Vec::new();
    let mut frames: BTreeMap<u32, Vec<Frame>> = BTreeMap::new();
    for item in items {
        match item {
            Item::Frame(f) => frames.entry(f.track).or_default().push(f),
            Item::Event(strom::media::Event::TrackAdded(t)) => tracks.push(t),
            _ => {}
        }
    }
    (tracks, frames)
}

/// Shifts a track so its first decode time is 0 (tfdt is unsigned); returns the shift.
pub fn shift_to_zero(frames: &mut [Frame]) -> i64 {
    let first = frames[0].dts;
    for f in frames.iter_mut() {
        f.dts = Timestamp::new(f.dts.ticks() - first.ticks(), first.scale());
        f.pts = Timestamp::new(f.pts.ticks() - first.ticks(), first.scale());
    }
    -first.ticks()
}

/// Cuts `frames` into runs of about `every` ticks (video: at keyframes only).
pub fn cut(frames: &[Frame], every: i64, video: bool) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, f) in frames.iter().enumerate().skip(1) {
        let due = f.dts.ticks() - frames[start].dts.ticks() >= every;
        if due && (!video || f.is_keyframe()) {
            out.push(start..i);
            start = i;
        }
    }
    out.push(start..frames.len());
    out
}

/// The `(t, d)` of every segment a parsed `SegmentTimeline` lists (`@r` expanded).
pub fn expand(tl: &dash_mpd_core::SegmentTimeline) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 0;
    for s in &tl.segments {
        let mut t = s.t.unwrap_or(next);
        for _ in 0..=s.r.unwrap_or(0).max(0) {
            out.push((t, s.d));
            t += s.d;
        }
        next = t;
    }
    out
}
