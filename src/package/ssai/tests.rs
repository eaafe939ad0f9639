use std::collections::{HashMap, HashSet};

use super::*;
use crate::bitstream::aac::build_asc;
use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
use crate::media::{AacConfig, CueKind, H264Config, SpliceCue};
use crate::package::ads::BreakTracker;
use crate::package::hls::HlsAdMarkers;
use crate::ErrorKind;

const T0: i64 = 1_700_000_000_000;

fn ms(t: i64) -> Timestamp {
    Timestamp::from_millis(t)
}

/// A live stream as the origin sees it: a window of `keep` segments, its breaks, and
/// the timeline an origin keeps beside it.
struct Sim {
    tracker: BreakTracker,
    window: MediaPlaylist,
    timeline: ContentTimeline,
    next: u64,
    t_ms: i64,
    keep: usize,
    /// Every segment published: duration (ms).
    all: Vec<i64>,
}

impl Sim {
    fn new(keep: usize, target_s: u64) -> Sim {
        let mut window = MediaPlaylist::new(PlaylistType::Live);
        window.target_duration = Some(target_s);
        Sim {
            tracker: BreakTracker::new(64),
            window,
            timeline: ContentTimeline::default(),
            next: 0,
            t_ms: 0,
            keep,
            all: Vec::new(),
        }
    }

    /// Publishes one segment of `dur` ms with `events` (cues) at its start.
    fn push(&mut self, dur: i64, events: &[Event], disc: bool) -> u64 {
        let seq = self.next;
        self.next += 1;
        let ads = self
            .tracker
            .on_segment(seq, ms(self.t_ms), T0 + self.t_ms, events);
        let mut e = MediaSegment::new(format!("{seq}.ts"), ms(dur))
            .with_discontinuity(disc)
            .with_program_date_time(T0 + self.t_ms);
        (e.date_ranges, e.cue) = ads.hls(HlsAdMarkers::default());
        self.window.push_segment(e);
        // What an indexing store would give the origin after a pause.
        self.timeline
            .insert(seq, ContentSegment::new(ms(dur), disc));
        while self.window.segments.len() > self.keep {
            self.window.pop_front();
        }
        self.t_ms += dur;
        self.all.push(dur);
        seq
    }

    fn out(&self, id: u32, planned_ms: Option<i64>) -> Event {
        Event::Cue(SpliceCue::new(
            id,
            CueKind::Out,
            ms(self.t_ms),
            planned_ms.map(ms),
        ))
    }

    fn back(&self, id: u32) -> Event {
        Event::Cue(SpliceCue::new(id, CueKind::In, ms(self.t_ms), None))
    }

    fn breaks(&self) -> Vec<AdBreak> {
        self.tracker.breaks().cloned().collect()
    }

    /// The session's playlist now (the timeline observes the window first).
    fn poll(
        &mut self,
        sessions: &mut AdSessions,
        session: &str,
        decider: &mut dyn AdDecider,
        slate: Option<&Arc<Creative>>,
    ) -> MediaPlaylist {
        self.timeline.observe(&self.window);
        let breaks = self.breaks();
        let view = LiveView::new(&self.window, &breaks, &self.timeline, &[]);
        let pl = sessions
            .session_playlist(session, &view, decider, slate)
            .unwrap();
        // Always valid text that an independent parser reads back the same.
        let text = pl.write().unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.media_sequence, pl.media_sequence);
        assert_eq!(parsed.discontinuity_sequence, pl.discontinuity_sequence);
        assert_eq!(parsed.segments.len(), pl.segments.len());
        pl
    }
}

/// A creative of segments lasting `durations` ms (fake TS bytes).
fn creative(id: &str, durations: &[i64]) -> Arc<Creative> {
    let segs = durations
        .iter()
        .map(|&d| CreativeSegment::new(ms(d), Bytes::from(vec![0x47u8; 188])))
        .collect();
    Arc::new(Creative::from_segments(id, segs, Vec::new()).unwrap())
}

fn uris(pl: &MediaPlaylist) -> Vec<&str> {
    pl.segments.iter().map(|s| s.uri.as_str()).collect()
}

fn discs(pl: &MediaPlaylist) -> Vec<bool> {
    pl.segments.iter().map(|s| s.discontinuity).collect()
}

#[test]
fn ads_paced_then_content_fill_with_numbering_and_dates() {
    let mut sim = Sim::new(6, 2);
    let mut sessions = AdSessions::default();
    // Four 1 s ad segments replace the first 4 s of an 8 s break.
    let mut decider = StaticDecider(vec![creative("spot", &[1000, 1000, 1000, 1000])]);
    for _ in 0..5 {
        sim.push(2000, &[], false);
    }
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(pl.media_sequence, 0);
    assert_eq!(uris(&pl)[..2], ["../../0.ts", "../../1.ts"]);
    // The break starts at 5: 2 s published cover the first two ads only.
    let out = sim.out(1, Some(8000));
    sim.push(2000, &[out], false);
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(
        uris(&pl),
        [
            "../../0.ts",
            "../../1.ts",
            "../../2.ts",
            "../../3.ts",
            "../../4.ts",
            "/ads/spot/0.ts",
            "/ads/spot/1.ts"
        ]
    );
    assert_eq!(discs(&pl), [false, false, false, false, false, true, false]);
    // Ad dates: the break's start date plus their offset.
    let start = T0 + 10_000;
    assert_eq!(pl.segments[5].program_date_time, Some(start));
    assert_eq!(pl.segments[6].program_date_time, Some(start + 1000));
    // No marker of the substituted break.
    let text = pl.write().unwrap();
    assert!(
        !text.contains("CUE") && !text.contains("DATERANGE"),
        "{text}"
    );
    // 4 s published: all ads; 6 s: the content fills from 4 s (segment 7).
    sim.push(2000, &[], false);
    sim.push(2000, &[], false);
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(pl.media_sequence, 2);
    assert_eq!(
        uris(&pl),
        [
            "../../2.ts",
            "../../3.ts",
            "../../4.ts",
            "/ads/spot/0.ts",
            "/ads/spot/1.ts",
            "/ads/spot/2.ts",
            "/ads/spot/3.ts",
            "../../7.ts"
        ]
    );
    assert!(pl.segments[7].discontinuity);
    assert_eq!(pl.segments[7].program_date_time, Some(start + 4000));
    // The break ends at 9 (after 8 s): 4 ads + 2 content for 4 content segments, so
    // later numbers are the content's plus two.
    sim.push(2000, &[], false);
    let back = sim.back(1);
    sim.push(2000, &[back], false);
    sim.push(2000, &[], false);
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    let text = pl.write().unwrap();
    assert!(
        !text.contains("CUE-IN") && !text.contains("DATERANGE"),
        "{text}"
    );
    // Content window: 5..=10; the session's starts inside the break at 5 (the ads
    // overlapping content 5 onwards).
    assert_eq!(pl.media_sequence, 5);
    assert_eq!(
        uris(&pl),
        [
            "/ads/spot/0.ts",
            "/ads/spot/1.ts",
            "/ads/spot/2.ts",
            "/ads/spot/3.ts",
            "../../7.ts",
            "../../8.ts",
            "../../9.ts",
            "../../10.ts"
        ]
    );
    // Content after ads that were followed by the content's own segments: continuous.
    assert_eq!(
        discs(&pl),
        [true, false, false, false, true, false, false, false]
    );
    assert_eq!(pl.discontinuity_sequence, 0);
    // The session lists as much time as the content: 4 x 1 s + 2 x 2 s for the 8 s
    // break.
    let session_ms: i64 = pl.segments.iter().map(|s| s.duration.as_millis()).sum();
    let content_ms: i64 = sim
        .window
        .segments
        .iter()
        .map(|s| s.duration.as_millis())
        .sum();
    assert_eq!((session_ms, content_ms), (12_000, 12_000));
    // The window moves past the break: the discontinuities of the ad and of the rejoin
    // count in EXT-X-DISCONTINUITY-SEQUENCE; 11 is number 13.
    for _ in 0..4 {
        sim.push(2000, &[], false);
    }
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(sim.window.media_sequence, 9);
    assert_eq!(pl.media_sequence, 11);
    assert_eq!(pl.discontinuity_sequence, 2);
    assert_eq!(uris(&pl)[0], "../../9.ts");
    // The break's end (its CUE-IN and DATERANGE) is still in the window: dropped, the
    // plan is held for that.
    let text = pl.write().unwrap();
    assert!(
        !text.contains("CUE") && !text.contains("DATERANGE"),
        "{text}"
    );
    assert_eq!(sessions.plans("v"), 1);
    sim.push(2000, &[], false);
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(pl.media_sequence, 12);
    assert_eq!(sessions.plans("v"), 0, "the plan behind the window is gone");
}

#[test]
fn slate_fills_whole_segments_and_repeats_with_discontinuities() {
    let mut sim = Sim::new(10, 3);
    let mut sessions = AdSessions::default();
    let mut decider = StaticDecider(vec![creative("spot", &[2000])]);
    let slate = creative("slate", &[3000]);
    sim.push(2000, &[], false);
    sim.poll(&mut sessions, "v", &mut decider, Some(&slate));
    let out = sim.out(4, Some(10_000));
    sim.push(2000, &[out], false);
    for _ in 0..4 {
        sim.push(2000, &[], false);
    }
    let back = sim.back(4);
    sim.push(2000, &[back], false);
    let pl = sim.poll(&mut sessions, "v", &mut decider, Some(&slate));
    // 10 s: the 2 s spot, then the 3 s slate twice (8 s); the third would end at 11 s.
    assert_eq!(
        uris(&pl),
        [
            "../../0.ts",
            "/ads/spot/0.ts",
            "/ads/slate/0.ts",
            "/ads/slate/0.ts",
            "../../6.ts"
        ]
    );
    assert_eq!(discs(&pl), [false, true, true, true, true]);
    let dates: Vec<i64> = pl
        .segments
        .iter()
        .filter_map(|s| s.program_date_time)
        .collect();
    assert_eq!(dates, [T0, T0 + 2000, T0 + 4000, T0 + 7000, T0 + 12_000]);
    // 5 content segments replaced by 3 items: 6 is number 4.
    assert_eq!(pl.media_sequence, 0);
    assert_eq!(pl.segments.len(), 5);
}

#[test]
fn break_ended_before_joining_is_not_substituted_one_in_progress_is() {
    let mut sim = Sim::new(6, 2);
    let mut decider = StaticDecider(vec![creative("spot", &[2000])]);
    sim.push(2000, &[], false);
    let out = sim.out(1, Some(4000));
    sim.push(2000, &[out], false);
    sim.push(2000, &[], false);
    let back = sim.back(1);
    sim.push(2000, &[back], false);
    let mut sessions = AdSessions::default();
    let pl = sim.poll(&mut sessions, "late", &mut decider, None);
    assert_eq!(
        uris(&pl),
        ["../../0.ts", "../../1.ts", "../../2.ts", "../../3.ts"]
    );
    let text = pl.write().unwrap();
    assert!(text.contains("#EXT-X-CUE-OUT:DURATION=4.000") && text.contains("#EXT-X-CUE-IN"));
    // A session joining in the middle of a break whose start left the window.
    let out = sim.out(2, Some(20_000));
    sim.push(2000, &[out], false);
    for _ in 0..6 {
        sim.push(2000, &[], false);
    }
    assert_eq!(sim.window.media_sequence, 5);
    let pl = sim.poll(&mut sessions, "mid", &mut decider, None);
    // The break began at 4 (number 4: the spot), content fills from 2 s (5); the
    // window starts at content 5.
    assert_eq!(pl.media_sequence, 5);
    assert_eq!(uris(&pl)[0], "../../5.ts");
    assert!(pl.segments[0].discontinuity);
    assert_eq!(pl.segments.len(), 6);
    // The early session sees the same break substituted (it began after its join).
    let pl = sim.poll(&mut sessions, "late", &mut decider, None);
    assert_eq!(pl.media_sequence, 5);
    assert_eq!(uris(&pl)[0], "../../5.ts");
    assert_eq!(sessions.len(), 2);
}

#[test]
fn decisions_are_fixed_per_session_and_sessions_are_bounded() {
    struct Counting(Vec<String>, Arc<Creative>);
    impl AdDecider for Counting {
        fn decide(&mut self, brk: &AdBreak, session: &str) -> Vec<Arc<Creative>> {
            self.0.push(format!("{session}@{}", brk.first_sequence));
            if session == "none" {
                Vec::new()
            } else {
                vec![Arc::clone(&self.1)]
            }
        }
    }
    let mut sim = Sim::new(6, 2);
    let mut decider = Counting(Vec::new(), creative("spot", &[2000]));
    let mut sessions = AdSessions::new(SsaiOptions {
        max_sessions: 2,
        ..SsaiOptions::default()
    });
    sim.push(2000, &[], false);
    let out = sim.out(1, None);
    sim.push(2000, &[out], false);
    for _ in 0..3 {
        for s in ["a", "none"] {
            let pl = sim.poll(&mut sessions, s, &mut decider, None);
            let has_ad = uris(&pl).contains(&"/ads/spot/0.ts");
            assert_eq!(has_ad, s == "a");
        }
        sim.push(2000, &[], false);
    }
    assert_eq!(decider.0, ["a@1", "none@1"]);
    // A third session evicts the least recently served ("a").
    sim.poll(&mut sessions, "b", &mut decider, None);
    sim.poll(&mut sessions, "none", &mut decider, None);
    assert_eq!(sessions.len(), 2);
    sim.poll(&mut sessions, "a", &mut decider, None);
    assert_eq!(decider.0.iter().filter(|d| d.starts_with("a@")).count(), 2);
}

#[test]
fn creatives_are_checked_against_the_content() {
    let h264 =
        H264Config::from_parameter_sets(Bytes::from_static(SPS_720P), Bytes::from_static(PPS_720P))
            .unwrap();
    let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
    let v = TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(h264.clone()));
    let a = TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(aac));
    let content = vec![v.clone(), a.clone()];
    assert!(check_compatible(&content, &content).is_ok());
    // Track ids and timescales do not matter.
    let mut v2 = v.clone();
    v2.id = 7;
    v2.timescale = Timescale::MPEG;
    assert!(check_compatible(&[v2, a.clone()], &content).is_ok());
    let msg = |tracks: &[TrackInfo]| {
        let e = check_compatible(tracks, &content).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        e.to_string()
    };
    let mut small = h264.clone();
    small.width = 640;
    small.height = 360;
    let s = msg(&[
        TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(small)),
        a.clone(),
    ]);
    assert!(
        s.contains("resolution 640x360") && s.contains("1280x720"),
        "{s}"
    );
    let mut level = h264.clone();
    level.level_idc = h264.level_idc + 1;
    let s = msg(&[
        TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(level)),
        a.clone(),
    ]);
    let want = format!(
        "level_idc {} differs from the content's {}",
        h264.level_idc + 1,
        h264.level_idc
    );
    assert!(s.contains(&want), "{s}");
    let hz44 = AacConfig::from_asc(build_asc(2, 4, 2)).unwrap();
    let s = msg(&[
        v.clone(),
        TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(hz44)),
    ]);
    assert!(
        s.contains("sample rate 44100") && s.contains("48000"),
        "{s}"
    );
    let mono = AacConfig::from_asc(build_asc(2, 3, 1)).unwrap();
    let s = msg(&[
        v.clone(),
        TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(mono)),
    ]);
    assert!(s.contains("channel configuration 1"), "{s}");
    let s = msg(std::slice::from_ref(&a));
    assert!(s.contains("0 Video tracks, the content has 1"), "{s}");
    let s = same_config(&a.config, &v.config).unwrap_err().to_string();
    assert!(
        s.contains("codec mp4a.40.2 differs from the content's avc1."),
        "{s}"
    );
    assert!(check_compatible(&[], &content).is_err());

    // A mismatched creative is skipped by the planner: the break stays content.
    let mut sim = Sim::new(6, 2);
    let ad = Arc::new(
        Creative::from_segments(
            "mono",
            vec![CreativeSegment::new(ms(2000), Bytes::from(vec![0x47; 188]))],
            vec![v.clone()],
        )
        .unwrap(),
    );
    let mut decider = StaticDecider(vec![ad]);
    sim.push(2000, &[], false);
    let out = sim.out(1, None);
    sim.push(2000, &[out], false);
    sim.timeline.observe(&sim.window);
    let breaks = sim.breaks();
    let view = LiveView::new(&sim.window, &breaks, &sim.timeline, &content);
    let mut sessions = AdSessions::default();
    let pl = sessions
        .session_playlist("v", &view, &mut decider, None)
        .unwrap();
    assert_eq!(uris(&pl), ["../../0.ts", "../../1.ts"]);
    assert!(
        pl.segments[1].cue.is_some(),
        "markers kept when not substituted"
    );
}

#[test]
fn creative_validation() {
    let seg = |d, data: Vec<u8>| CreativeSegment::new(ms(d), Bytes::from(data));
    let err = |r: Result<Creative>| r.unwrap_err().kind();
    assert_eq!(
        err(Creative::from_segments(
            "a b",
            vec![seg(1000, vec![0x47; 188])],
            vec![]
        )),
        ErrorKind::Usage
    );
    assert_eq!(
        err(Creative::from_segments("a", vec![], vec![])),
        ErrorKind::Usage
    );
    assert_eq!(
        err(Creative::from_segments(
            "a",
            vec![seg(0, vec![0x47; 188])],
            vec![]
        )),
        ErrorKind::Usage
    );
    assert_eq!(
        err(Creative::from_segments(
            "a",
            vec![seg(1000, vec![0x47; 187])],
            vec![]
        )),
        ErrorKind::Usage
    );
    assert_eq!(
        err(Creative::from_segments(
            "a",
            vec![seg(1000, vec![0x46; 188])],
            vec![]
        )),
        ErrorKind::Usage
    );
    let c = Creative::from_segments(
        "ok-1",
        vec![seg(1000, vec![0x47; 188]), seg(1500, vec![0x47; 376])],
        vec![],
    )
    .unwrap();
    assert_eq!(c.duration(), ms(2500));
    assert!(c.segment(1).is_some() && c.segment(2).is_none());
    // Not an MP4: a typed error.
    let e = Creative::from_mp4("x", Bytes::from_static(b"not an mp4 file"), ms(2000), &[]);
    assert!(e.is_err());
    assert_eq!(
        err(Creative::from_mp4("../x", Bytes::new(), ms(2000), &[])),
        ErrorKind::Usage
    );
}

#[test]
fn too_long_ad_segments_are_skipped_and_plans_are_bounded() {
    let mut sim = Sim::new(8, 2);
    // A 3 s segment would raise EXT-X-TARGETDURATION above 2.
    let mut decider = StaticDecider(vec![creative("long", &[3000]), creative("ok", &[2000])]);
    let mut sessions = AdSessions::new(SsaiOptions {
        max_plans_per_session: 2,
        ..SsaiOptions::default()
    });
    sim.push(2000, &[], false);
    sim.poll(&mut sessions, "v", &mut decider, None);
    // Three one-segment breaks in the window at once.
    for id in 1..=3 {
        let out = sim.out(id, Some(2000));
        sim.push(2000, &[out], false);
        let back = sim.back(id);
        sim.push(2000, &[back], false);
    }
    let pl = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(
        uris(&pl),
        [
            "../../0.ts",
            "/ads/ok/0.ts",
            "../../2.ts",
            "/ads/ok/0.ts",
            "../../4.ts",
            "../../5.ts",
            "../../6.ts"
        ]
    );
    assert_eq!(sessions.plans("v"), 2);
    let text = pl.write().unwrap();
    assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    // The third break keeps its markers (not substituted).
    assert_eq!(
        pl.segments[5].cue,
        Some(CueTag::Out {
            duration: Some(ms(2000))
        })
    );
}

#[test]
fn passthrough_keeps_everything_but_the_uris() {
    let mut sim = Sim::new(3, 2);
    sim.push(2000, &[], false);
    let out = sim.out(1, Some(2000));
    sim.push(2000, &[out], true);
    let pl = passthrough_playlist(&sim.window, "../../");
    assert_eq!(uris(&pl), ["../../0.ts", "../../1.ts"]);
    assert_eq!(pl.segments[1].cue, sim.window.segments[1].cue);
    assert!(pl.segments[1].discontinuity);
}

/// Random streams (segment lengths, breaks with and without planned durations, early
/// returns, publisher discontinuities, back-to-back breaks), random creatives and
/// slates, sessions joining at random and reloading irregularly: after every reload a
/// number keeps its URI, duration and discontinuity flag, the sequence numbers never go
/// back, EXT-X-DISCONTINUITY-SEQUENCE counts the flags that left the window, no session
/// lists more time than the content published, and every decision is made once.
#[test]
fn random_streams_keep_session_invariants() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    struct Recorder(Vec<(String, u64)>, Vec<Arc<Creative>>);
    impl AdDecider for Recorder {
        fn decide(&mut self, brk: &AdBreak, session: &str) -> Vec<Arc<Creative>> {
            self.0.push((session.to_string(), brk.first_sequence));
            self.1.clone()
        }
    }
    #[derive(Default)]
    struct Seen {
        items: HashMap<u64, (String, i64, bool)>,
        last: Option<(u64, u64)>,
        /// Content published (ms) at the session's join, and its first number.
        joined: Option<(i64, u64)>,
    }
    let (mut polls, mut ads_listed, mut breaks_seen) = (0u64, 0u64, 0u64);
    for run in 0..40 {
        let keep = 2 + (next() % 6) as usize;
        let mut sim = Sim::new(keep, 3);
        let pick = |r: u64| [500i64, 1000, 1500, 2000, 3000][(r % 5) as usize];
        let creatives: Vec<Arc<Creative>> = (0..1 + next() % 3)
            .map(|i| {
                let n = 1 + next() % 4;
                let d: Vec<i64> = (0..n).map(|_| pick(next())).collect();
                creative(&format!("c{i}"), &d)
            })
            .collect();
        let slate = (next() % 2 == 0).then(|| creative("slate", &[pick(next()), pick(next())]));
        let mut decider = Recorder(Vec::new(), creatives);
        let mut sessions = AdSessions::new(SsaiOptions {
            max_plans_per_session: 1 + (next() % 4) as usize,
            ..SsaiOptions::default()
        });
        let names = ["s0", "s1", "s2"];
        let mut seen: Vec<Seen> = names.iter().map(|_| Seen::default()).collect();
        let mut active: Option<u32> = None;
        let mut id = 0;
        for _step in 0..120 {
            let r = next();
            let mut events = Vec::new();
            match (active, r % 10) {
                (None, 0..=1) => {
                    id += 1;
                    let planned = (r >> 8) % 3 != 0;
                    events.push(sim.out(id, planned.then_some(1000 * (2 + (r >> 12) as i64 % 12))));
                    active = Some(id);
                    breaks_seen += 1;
                }
                (Some(b), 0..=2) => {
                    events.push(sim.back(b));
                    active = None;
                    if r % 10 == 0 {
                        // Back to back.
                        id += 1;
                        events.push(sim.out(id, Some(4000)));
                        active = Some(id);
                    }
                }
                _ => {}
            }
            let dur = 1000 + ((r >> 20) % 2001) as i64;
            sim.push(dur, &events, (r >> 32) % 23 == 0);
            let published: i64 = sim.all.iter().sum();
            for (k, name) in names.iter().enumerate() {
                // Session k joins after k * 10 steps and reloads 70% of the time.
                if sim.next < (k as u64) * 10 || (next() % 10) >= 7 {
                    continue;
                }
                let pl = sim.poll(&mut sessions, name, &mut decider, slate.as_ref());
                polls += 1;
                let s = &mut seen[k];
                if s.last.is_none() {
                    // Pacing is checked from a join at plain content (the first item is
                    // the window's first segment).
                    let w0 = sim.window.media_sequence;
                    if uris(&pl).first() == Some(&format!("../../{w0}.ts").as_str()) {
                        let before: i64 = sim.all.iter().take(w0 as usize).sum();
                        s.joined = Some((before, pl.media_sequence));
                    }
                }
                if let Some((msn, ds)) = s.last {
                    assert!(
                        pl.media_sequence >= msn,
                        "run {run}: {msn} -> {}",
                        pl.media_sequence
                    );
                    assert!(pl.discontinuity_sequence >= ds, "run {run}");
                    let gone: Option<u64> = (msn..pl.media_sequence)
                        .map(|n| s.items.get(&n).map(|i| u64::from(i.2)))
                        .sum();
                    if let Some(g) = gone {
                        assert_eq!(pl.discontinuity_sequence, ds + g, "run {run}");
                    }
                }
                s.last = Some((pl.media_sequence, pl.discontinuity_sequence));
                for (i, seg) in pl.segments.iter().enumerate() {
                    let n = pl.media_sequence + i as u64;
                    let item = (seg.uri.clone(), seg.duration.as_millis(), seg.discontinuity);
                    ads_listed += u64::from(seg.uri.starts_with("/ads/"));
                    match s.items.get(&n) {
                        Some(old) => assert_eq!(old, &item, "run {run}: number {n}"),
                        None => {
                            s.items.insert(n, item);
                        }
                    }
                }
                // Paced: from the join, the session lists no more time than published.
                let Some((at_join, first)) = s.joined else {
                    continue;
                };
                let last = pl.media_sequence + pl.segments.len() as u64;
                let listed: Option<i64> = (first..last).map(|n| s.items.get(&n).map(|i| i.1)).sum();
                if let Some(listed) = listed {
                    assert!(
                        listed <= published - at_join,
                        "run {run}: listed {listed} ms, published {} ms",
                        published - at_join
                    );
                }
            }
        }
        let mut decisions = decider.0.clone();
        decisions.sort();
        let unique: HashSet<_> = decisions.iter().collect();
        assert_eq!(unique.len(), decisions.len(), "run {run}: {decisions:?}");
    }
    assert!(
        polls > 5000 && ads_listed > 1000 && breaks_seen > 200,
        "{polls} {ads_listed} {breaks_seen}"
    );
}

#[test]
fn a_break_the_stream_forgot_is_walked_as_the_session_last_saw_it() {
    let mut sim = Sim::new(12, 2);
    // The stream remembers one ended break only.
    sim.tracker = BreakTracker::new(1);
    let mut decider = StaticDecider(vec![creative("spot", &[1000, 1000])]);
    let mut sessions = AdSessions::default();
    sim.push(2000, &[], false);
    sim.poll(&mut sessions, "v", &mut decider, None);
    let out = sim.out(1, None);
    sim.push(2000, &[out], false);
    let back = sim.back(1);
    sim.push(2000, &[back], false);
    let before = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(
        uris(&before),
        [
            "../../0.ts",
            "/ads/spot/0.ts",
            "/ads/spot/1.ts",
            "../../2.ts"
        ]
    );
    // Two more breaks; the stream forgets the first.
    for id in 2..=3 {
        let out = sim.out(id, None);
        sim.push(2000, &[out], false);
        let back = sim.back(id);
        sim.push(2000, &[back], false);
    }
    assert!(sim.breaks().iter().all(|b| b.id != 1));
    let after = sim.poll(&mut sessions, "v", &mut decider, None);
    assert_eq!(after.media_sequence, before.media_sequence);
    assert_eq!(
        uris(&after)[..4],
        [
            "../../0.ts",
            "/ads/spot/0.ts",
            "/ads/spot/1.ts",
            "../../2.ts"
        ]
    );
    // Break 2 went unseen and the stream forgot it: the session lists it as content;
    // break 3 is substituted.
    assert_eq!(uris(&after)[4..6], ["../../3.ts", "../../4.ts"]);
    assert_eq!(uris(&after)[6], "/ads/spot/0.ts");
    // The numbers after the first break moved by one (two ads for one segment).
    let number_of_3 = after.media_sequence + 4;
    assert_eq!(number_of_3, 3 + 1);
}
