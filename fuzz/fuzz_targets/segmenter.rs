//! Drives the `Segmenter` with random sequences of frames and events decoded from the
//! input, and checks its invariants after every call:
//! * segment sequence numbers increase by one from 0;
//! * every segment is non-empty and starts with a sync frame of its reference track
//!   (first video track of its tracks, else first audio track);
//! * durations are never negative;
//! * no frame is lost or duplicated: emitted + dropped + buffered == pushed, and
//!   nothing stays buffered after `finish`;
//! * the only errors are limit errors.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::bitstream::aac::build_asc;
use strom::media::{
    AacConfig, CodecConfig, CueKind, Event, Frame, FrameFlags, H264Config, Item, MediaKind,
    SpliceCue, TrackInfo,
};
use strom::package::{Segment, Segmenter, SegmenterOptions};
use strom::pipeline::Stage;
use strom::time::{Timescale, Timestamp};
use strom::ErrorKind;

// x264 High@3.1 1280x720 25 fps parameter sets.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x80,
    0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x07, 0x8c, 0x18, 0xcb,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
const PAYLOAD: &[u8] = &[0u8; 256];

#[path = "shared/input.rs"]
mod input;
use input::Input;

struct Tracks {
    video: TrackInfo,
    audio: TrackInfo,
}

impl Tracks {
    fn new() -> Self {
        let h264 =
            H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                .expect("constant SPS/PPS parse");
        let aac = AacConfig::from_asc(build_asc(2, 3, 2)).expect("constant ASC parses");
        Tracks {
            video: TrackInfo::new(1, Timescale::MPEG, CodecConfig::H264(h264)),
            audio: TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(aac)),
        }
    }
}

struct Checker {
    next_sequence: u64,
    pushed: u64,
    emitted: u64,
}

impl Checker {
    fn segment(&mut self, s: &Segment) {
        assert_eq!(
            s.sequence, self.next_sequence,
            "sequence numbers increase by one"
        );
        self.next_sequence += 1;
        assert!(
            s.duration.ticks() >= 0,
            "negative duration {:?}",
            s.duration
        );
        let first = s.frames.first().expect("segments are never empty");
        let reference = s
            .tracks
            .iter()
            .find(|t| t.kind == MediaKind::Video)
            .or_else(|| s.tracks.iter().find(|t| t.kind == MediaKind::Audio))
            .expect("a segment has a reference track");
        assert_eq!(
            first.track, reference.id,
            "segment starts on the reference track"
        );
        assert!(
            reference.kind == MediaKind::Audio || first.is_keyframe(),
            "video segment starts on a keyframe"
        );
        assert_eq!(s.start, first.pts, "start is the first frame's pts");
        self.emitted += s.frames.len() as u64;
    }

    fn drain(&mut self, seg: &mut Segmenter) {
        // Bounded: the segmenter queues at most a few segments.
        for _ in 0..64 {
            match seg.poll() {
                Some(Ok(s)) => self.segment(&s),
                Some(Err(e)) => panic!("poll error {e}"),
                None => break,
            }
        }
        assert!(seg.poll().is_none(), "output queue drained");
        assert_eq!(
            self.emitted + seg.dropped_frames() + seg.buffered_frames() as u64,
            self.pushed,
            "every frame is emitted once, buffered or counted as dropped"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut opts = SegmenterOptions::default();
    opts.target_duration = Timestamp::from_millis(1 + input.u16() as i64 % 4000);
    opts.max_frames = 1 + input.u8() as usize % 64;
    opts.max_bytes = 1 + input.u16() as usize * 4;
    opts.max_tracks = 1 + input.u8() as usize % 4;
    opts.max_events = 1 + input.u8() as usize % 8;
    let mut seg = Segmenter::new(opts).expect("valid options");
    let tracks = Tracks::new();
    let scales = [
        Timescale::MPEG,
        Timescale::new(48_000).unwrap(),
        Timescale::MILLIS,
    ];
    let mut check = Checker {
        next_sequence: 0,
        pushed: 0,
        emitted: 0,
    };
    let mut clock: i64 = 0;
    // Bounded by the input length: every item consumes at least one byte.
    while !input.0.is_empty() {
        let op = input.u8();
        let item: Item = match op % 16 {
            0 => Event::TrackAdded(tracks.video.clone()).into(),
            1 => Event::TrackAdded(tracks.audio.clone()).into(),
            2 => {
                let lang = if input.u8() % 2 == 0 { "eng" } else { "fra" };
                Event::TrackChanged(tracks.video.clone().with_language(lang)).into()
            }
            3 => {
                let mut audio = tracks.audio.clone();
                audio.id = input.u8() as u32 % 4;
                Event::TrackChanged(audio).into()
            }
            4 => {
                let track = (input.u8() % 2 == 0).then_some(1);
                Event::Discontinuity { track }.into()
            }
            5 => {
                let at = Timestamp::new(clock, Timescale::MPEG);
                Event::Cue(SpliceCue::new(input.u8() as u32, CueKind::Out, at, None)).into()
            }
            6 => Event::EndOfStream.into(),
            _ => {
                let track = input.u8() as u32 % 4;
                let flags = input.u8();
                // Mostly forward, sometimes backward, occasionally a big jump.
                let step = input.u16() as i16 as i64;
                clock = clock.saturating_add(if flags & 0x80 != 0 { step * 1000 } else { step });
                let scale = scales[(flags as usize >> 4) % 3];
                let dts = Timestamp::new(clock, scale);
                let pts = dts.add_ticks(input.u8() as i64 * 100);
                let len = input.u8() as usize;
                let mut f = Frame::new(track, dts, pts, Bytes::from_static(&PAYLOAD[..len]));
                if flags & 1 != 0 {
                    f = f.with_flags(FrameFlags::KEYFRAME);
                }
                if flags & 2 != 0 {
                    f = f.with_duration(Timestamp::new(input.u16() as i16 as i64, scale));
                }
                check.pushed += 1;
                f.into()
            }
        };
        if let Err(e) = seg.push(item) {
            assert_eq!(e.kind(), ErrorKind::Limit, "unexpected error {e}");
        }
        check.drain(&mut seg);
    }
    seg.finish().expect("finish never fails");
    check.drain(&mut seg);
    assert_eq!(seg.buffered_frames(), 0, "finish flushes the open segment");
    // Pushing after finish is a usage error and the frame is counted as dropped.
    let f = Frame::new(
        1,
        Timestamp::zero(Timescale::MPEG),
        Timestamp::zero(Timescale::MPEG),
        Bytes::new(),
    );
    check.pushed += 1;
    assert_eq!(seg.push(f.into()).unwrap_err().kind(), ErrorKind::Usage);
    check.drain(&mut seg);
});
