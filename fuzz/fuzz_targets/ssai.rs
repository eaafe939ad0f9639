//! Drives server-side ad insertion (`strom::package::ssai::AdSessions`) with a live
//! stream decoded from the input: segments of random lengths, breaks that open (with or
//! without a planned duration) and close (early, late, back to back), publisher
//! discontinuities, a random window size, creatives and a slate of random segment
//! lengths, and sessions that join and reload at random. After every reload:
//! * the playlist writes and parses back (`EXT-X-MEDIA-SEQUENCE`, segment count);
//! * a sequence number keeps its URI, duration and discontinuity flag forever;
//! * `EXT-X-MEDIA-SEQUENCE` and `EXT-X-DISCONTINUITY-SEQUENCE` never go back, and the
//!   latter grows by the flags of the items that left the window;
//! * the decider is asked once per session and break (no session is evicted here, and
//!   the timeline, fed like an indexing store, has no gap);
//! * nothing panics.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::media::{CueKind, Event, SpliceCue};
use strom::package::ads::{AdBreak, BreakTracker};
use strom::package::hls::{HlsAdMarkers, MediaPlaylist, MediaSegment, PlaylistType};
use strom::package::ssai::{
    AdDecider, AdSessions, ContentSegment, ContentTimeline, Creative, CreativeSegment, LiveView,
    SsaiOptions,
};
use strom::time::Timestamp;

struct Recorder(Vec<(String, u64)>, Vec<Arc<Creative>>);

impl AdDecider for Recorder {
    fn decide(&mut self, brk: &AdBreak, session: &str) -> Vec<Arc<Creative>> {
        self.0.push((session.to_string(), brk.first_sequence));
        self.1.clone()
    }
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
}

fn creative(id: &str, durations: &[i64]) -> Arc<Creative> {
    let segs = durations
        .iter()
        .map(|&d| CreativeSegment::new(Timestamp::from_millis(d), Bytes::from_static(&[0x47; 188])))
        .collect();
    Arc::new(Creative::from_segments(id, segs, Vec::new()).expect("valid creative"))
}

#[derive(Default)]
struct Seen {
    items: BTreeMap<u64, (String, i64, bool)>,
    last: Option<(u64, u64)>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(head) = input.byte() else { return };
    let keep = 1 + usize::from(head % 8);
    let target_s = 2 + u64::from(head >> 6);
    let ms = |b: u8| 250 * (1 + i64::from(b % 12));
    let mut creatives = Vec::new();
    for i in 0..1 + input.byte().unwrap_or(0) % 3 {
        let n = 1 + input.byte().unwrap_or(0) % 4;
        let d: Vec<i64> = (0..n).map(|_| ms(input.byte().unwrap_or(3))).collect();
        creatives.push(creative(&format!("c{i}"), &d));
    }
    let slate = (input.byte().unwrap_or(0) % 2 == 0)
        .then(|| creative("slate", &[ms(input.byte().unwrap_or(5))]));
    let mut decider = Recorder(Vec::new(), creatives);
    let mut opts = SsaiOptions::default();
    // Room for every session: none is evicted (and re-joins with new numbers).
    opts.max_sessions = 4;
    opts.max_plans_per_session = 1 + usize::from(input.byte().unwrap_or(2) % 4);
    let mut sessions = AdSessions::new(opts);
    // Every break remembered (a stream forgetting breaks a session still walks makes it
    // join again: the unit tests cover that).
    let mut tracker = BreakTracker::new(4096);
    let mut window = MediaPlaylist::new(PlaylistType::Live);
    window.target_duration = Some(target_s);
    let mut timeline = ContentTimeline::default();
    let (mut seq, mut t_ms, mut id) = (0u64, 0i64, 0u32);
    let mut active: Option<u32> = None;
    let mut seen: Vec<Seen> = (0..4).map(|_| Seen::default()).collect();
    while let Some(op) = input.byte() {
        match op % 4 {
            // A segment, maybe with cues and a discontinuity.
            0 | 1 => {
                let arg = input.byte().unwrap_or(0);
                let mut events = Vec::new();
                let at = Timestamp::from_millis(t_ms);
                match (active, arg % 8) {
                    (None, 0 | 1) => {
                        id += 1;
                        let planned =
                            (arg & 0x80 != 0).then(|| Timestamp::from_millis(ms(arg) * 4));
                        events.push(Event::Cue(SpliceCue::new(id, CueKind::Out, at, planned)));
                        active = Some(id);
                    }
                    (Some(b), 2 | 3) => {
                        events.push(Event::Cue(SpliceCue::new(b, CueKind::In, at, None)));
                        active = None;
                        if arg % 8 == 3 {
                            id += 1;
                            events.push(Event::Cue(SpliceCue::new(id, CueKind::Out, at, None)));
                            active = Some(id);
                        }
                    }
                    _ => {}
                }
                // Content segments fit the target (what a live segmenter gives).
                let dur = (ms(input.byte().unwrap_or(7))).min(target_s as i64 * 1000);
                let ads = tracker.on_segment(seq, at, 1_700_000_000_000 + t_ms, &events);
                let mut e = MediaSegment::new(format!("{seq}.ts"), Timestamp::from_millis(dur))
                    .with_discontinuity(arg & 0x40 != 0)
                    .with_program_date_time(1_700_000_000_000 + t_ms);
                (e.date_ranges, e.cue) = ads.hls(HlsAdMarkers::default());
                window.push_segment(e);
                // What an indexing store remembers: the timeline has no gap.
                timeline.insert(
                    seq,
                    ContentSegment::new(Timestamp::from_millis(dur), arg & 0x40 != 0),
                );
                while window.segments.len() > keep {
                    window.pop_front();
                }
                seq += 1;
                t_ms += dur;
            }
            // A reload of session k.
            _ => {
                if window.segments.is_empty() {
                    continue;
                }
                let k = usize::from(input.byte().unwrap_or(0) % 4);
                let name = format!("s{k}");
                timeline.observe(&window);
                let breaks: Vec<AdBreak> = tracker.breaks().cloned().collect();
                let view = LiveView::new(&window, &breaks, &timeline, &[]);
                let Ok(pl) = sessions.session_playlist(&name, &view, &mut decider, slate.as_ref())
                else {
                    panic!("a non-empty window always gives a playlist");
                };
                let text = pl.write().expect("writes");
                assert!(text.starts_with("#EXTM3U\n"));
                assert_eq!(text.matches("#EXTINF:").count(), pl.segments.len());
                let s = &mut seen[k];
                if let Some((m, d)) = s.last {
                    assert!(pl.media_sequence >= m);
                    assert!(pl.discontinuity_sequence >= d);
                    let gone: Option<u64> = (m..pl.media_sequence)
                        .map(|n| s.items.get(&n).map(|i| u64::from(i.2)))
                        .sum();
                    if let Some(g) = gone {
                        assert_eq!(pl.discontinuity_sequence, d + g);
                    }
                }
                s.last = Some((pl.media_sequence, pl.discontinuity_sequence));
                for (i, seg) in pl.segments.iter().enumerate() {
                    let n = pl.media_sequence + i as u64;
                    let item = (seg.uri.clone(), seg.duration.as_millis(), seg.discontinuity);
                    let old = s.items.entry(n).or_insert_with(|| item.clone());
                    assert_eq!(*old, item, "number {n}");
                }
            }
        }
    }
    // Decisions once per session and break.
    let unique: HashSet<_> = decider.0.iter().collect();
    assert_eq!(unique.len(), decider.0.len());
});
