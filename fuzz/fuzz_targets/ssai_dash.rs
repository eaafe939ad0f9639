//! Drives server-side ad insertion for DASH (`strom::package::ssai::DashSessions`) with a
//! content MPD decoded from the input: a video and an audio timeline of random segment
//! lengths and timescales (the audio cut a little apart from the video), a random window
//! start, breaks of random start, planned and actual length (overlapping, back to back,
//! before or after the window), creatives and a slate with CMAF forms of random
//! fragment lengths (some without one), a random B-frame delay, a static or a dynamic
//! MPD at random request times, and sessions that come and go. After every request:
//! * the MPD writes (Period ids unique, starts in order, timelines without gaps: the
//!   writer checks), or the request fails with a typed error;
//! * every ad Period lists at most its creative's fragments, and lasts at most the
//!   break's planned (or actual) length from the cut;
//! * the decider is asked at most once per session and break;
//! * nothing panics.
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::media::{CueKind, Event, SpliceCue};
use strom::package::ads::{AdBreak, BreakTracker};
use strom::package::dash::{
    AdaptationSet, ContentType, Mpd, MpdType, Representation, SegmentTemplate, SegmentTimeline,
};
use strom::package::ssai::{
    AdDecider, Creative, CreativeCmaf, CreativeSegment, DashSessions, DashView, SsaiOptions,
};
use strom::time::{Timescale, Timestamp};

const AST: i64 = 1_700_000_000_000;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

struct Recorder(Vec<(String, u32, i64)>, Vec<Arc<Creative>>);

impl AdDecider for Recorder {
    fn decide(&mut self, brk: &AdBreak, session: &str) -> Vec<Arc<Creative>> {
        self.0
            .push((session.to_string(), brk.id, brk.start.as_millis()));
        self.1.clone()
    }
}

fn scale(b: u8) -> Timescale {
    Timescale::new([1000, 12_800, 48_000, 90_000, 44_100][usize::from(b % 5)]).expect("non-zero")
}

fn set(id: u32, kind: ContentType, scale: Timescale, segs: &[(u64, u64)]) -> Option<AdaptationSet> {
    let mut t = SegmentTemplate::new(scale);
    t.timeline = SegmentTimeline::from_segments(segs.iter().copied()).ok()?;
    let mut s = AdaptationSet::new(id, kind);
    let name = if kind == ContentType::Video {
        "v1"
    } else {
        "a2"
    };
    s.representations
        .push(Representation::new(name, 100_000, "avc1.64001e", t));
    Some(s)
}

/// A creative of `n` fragments of `ms` each (TS and CMAF), or TS only.
fn creative(id: &str, ms: &[i64], cmaf: bool) -> Arc<Creative> {
    let ts = Bytes::from_static(&[0x47; 188]);
    let segs = ms
        .iter()
        .map(|&d| CreativeSegment::new(Timestamp::from_millis(d), ts.clone()))
        .collect();
    let c = Creative::from_segments(id, segs, Vec::new()).expect("valid creative");
    if !cmaf {
        return Arc::new(c);
    }
    let mut t = 0u64;
    let segs: Vec<(u64, u64)> = ms
        .iter()
        .map(|&d| {
            let s = (t, d as u64);
            t += d as u64;
            s
        })
        .collect();
    let Some(mut v) = set(0, ContentType::Video, Timescale::MILLIS, &segs) else {
        return Arc::new(c);
    };
    v.representations[0].segment_template.start_number = 0;
    Arc::new(c.with_cmaf(CreativeCmaf::new(Vec::new(), vec![v])))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (vs, as_) = (scale(input.byte()), scale(input.byte()));
    let seg_ms = |b: u8| 500 * (1 + i64::from(b % 8));
    // Content: `n` segments; the audio boundaries `skew` ms before the video's.
    let n = 1 + usize::from(input.byte() % 40);
    let skew = i64::from(input.byte() % 50);
    let first = u64::from(input.byte()) * 500;
    let mut video = Vec::new();
    let mut audio = Vec::new();
    let mut t = first as i64;
    for i in 0..n {
        let d = seg_ms(input.byte());
        let a0 = if i == 0 { t } else { t - skew };
        video.push((ms_to(t, vs), ms_to(t + d, vs) - ms_to(t, vs)));
        audio.push((
            ms_to(a0, as_),
            ms_to(t + d - skew, as_)
                .saturating_sub(ms_to(a0, as_))
                .max(1),
        ));
        t += d;
    }
    let dynamic = input.byte() % 2 == 0;
    let mpd_type = if dynamic {
        MpdType::Dynamic {
            availability_start_time: AST,
            publish_time: AST + t,
            minimum_update_period: Some(Timestamp::from_secs(2)),
            media_presentation_duration: None,
            time_shift_buffer_depth: Some(Timestamp::from_secs(60)),
            suggested_presentation_delay: None,
        }
    } else {
        MpdType::Static {
            media_presentation_duration: Timestamp::from_millis(t),
        }
    };
    let mut content = Mpd::new(mpd_type);
    let (Some(v), Some(a)) = (
        set(0, ContentType::Video, vs, &video),
        set(1, ContentType::Audio, as_, &audio),
    ) else {
        return;
    };
    content.period_mut().adaptation_sets.push(v);
    content.period_mut().adaptation_sets.push(a);

    // Breaks, through a tracker as a presentation makes them.
    let mut tracker = BreakTracker::new(64);
    let mut at = 0i64;
    let mut id = 0u32;
    for seq in 0..u64::from(input.byte() % 16) {
        let arg = input.byte();
        at += seg_ms(arg);
        let when = Timestamp::from_millis(at);
        let cue = match arg % 4 {
            0 => {
                id += 1;
                let planned =
                    (arg & 0x80 != 0).then(|| Timestamp::from_millis(seg_ms(input.byte()) * 3));
                Some(SpliceCue::new(id, CueKind::Out, when, planned))
            }
            1 => Some(SpliceCue::new(id, CueKind::In, when, None)),
            _ => None,
        };
        let events: Vec<Event> = cue.into_iter().map(Event::Cue).collect();
        tracker.on_segment(seq, when, AST + at, &events);
    }
    let breaks: Vec<AdBreak> = tracker.breaks().cloned().collect();

    let mut creatives = Vec::new();
    for i in 0..input.byte() % 3 {
        let k = 1 + input.byte() % 3;
        let ms: Vec<i64> = (0..k).map(|_| seg_ms(input.byte())).collect();
        creatives.push(creative(&format!("c{i}"), &ms, input.byte() % 4 != 0));
    }
    let slate = (input.byte() % 2 == 0).then(|| creative("slate", &[seg_ms(input.byte())], true));
    let mut decider = Recorder(Vec::new(), creatives);
    let mut opts = SsaiOptions::default();
    opts.max_sessions = 3;
    let mut sessions = DashSessions::new(opts);
    let delay = Timestamp::from_millis(i64::from(input.byte() % 200));
    while !input.done() {
        let session = format!("s{}", input.byte() % 4);
        let now = AST + i64::from(input.byte()) * 250;
        let view = DashView::new(&content, &breaks, now)
            .with_slate(slate.as_ref())
            .with_delay(delay);
        let Ok(mpd) = sessions.session_mpd(&session, &view, &mut decider) else {
            continue;
        };
        let _ = mpd.write();
        for p in mpd.periods.iter().filter(|p| p.id.starts_with("ad")) {
            let listed: u64 = p
                .adaptation_sets
                .iter()
                .flat_map(|s| &s.representations)
                .map(|r| r.segment_template.timeline.segments())
                .max()
                .unwrap_or(0);
            assert!(listed <= 3, "at most a creative's fragments");
            assert!(
                p.duration.is_some_and(|d| d.as_millis() <= 3 * 4000),
                "at most a creative long"
            );
        }
    }
    // Decisions once per session and break (no session is evicted but by the limit of 3
    // with 4 names: an evicted session asks again; count only sessions never evicted).
    if sessions.len() < 3 {
        let unique: HashSet<_> = decider.0.iter().collect();
        assert_eq!(unique.len(), decider.0.len());
    }
});

fn ms_to(ms: i64, scale: Timescale) -> u64 {
    Timestamp::from_millis(ms.max(0))
        .rescale(scale, strom::time::Rounding::Nearest)
        .ticks()
        .max(0) as u64
}
