//! fMP4/CMAF fragment writing, in memory, into one reused buffer.
//!
//! Input: synthetic 2 s fragments shaped like a 1080p25 ~6 Mbit/s H.264 stream (50
//! frames, IDR first at ~20x a P frame, B frames smaller, reordered so composition
//! offsets are positive and negative) and a 2 s AAC-LC 48 kHz 128 kbit/s stream (94
//! frames of 1024 samples). Payload contents do not matter to the writer, only sizes
//! and timing, so no capture is needed. Throughput is reported per payload byte written
//! (`fmp4/*/bytes`); `*/header` writes only `styp` + `moof` + the `mdat` header, as a
//! host that sends payloads by reference does, and is reported per fragment.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom::bitstream::aac::build_asc;
use strom::container::fmp4::Fmp4Writer;
use strom::media::{AacConfig, CodecConfig, Frame, FrameFlags, H264Config, TrackInfo};
use strom::time::{Timescale, Timestamp};

// x264 High@3.1 parameter sets (the writer only copies them into the init segment).
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x80,
    0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x07, 0x8c, 0x18, 0xcb,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// Fragments written per iteration, so a run covers a steady stream, not one call.
const FRAGMENTS: u32 = 10;

/// One 2 s video fragment of 25 fps H.264 at ~6 Mbit/s (~1.5 MB), 90 kHz, starting at
/// `start` ticks: an IDR, then mini-GOPs `P B B B` in decode order.
fn video_fragment(track: u32, start: i64) -> Vec<Frame> {
    let scale = Timescale::MPEG;
    let tick = 3600; // 90 kHz / 25 fps
    let mut frames = Vec::with_capacity(50);
    for i in 0..50i64 {
        // Presentation order index of decode index i with 3 B frames per P frame.
        let pts_index = match i {
            0 => 0,
            _ => match (i - 1) % 4 {
                0 => i + 3,
                _ => i - 1,
            },
        };
        let (size, flags) = match i {
            0 => (180_000, FrameFlags::KEYFRAME),
            _ if (i - 1) % 4 == 0 => (42_000, FrameFlags::NONE),
            _ => (22_000, FrameFlags::DISPOSABLE),
        };
        // Sizes vary a little, as an encoder's do.
        let size = size + (i as usize * 379) % 2048;
        // No decode delay: B frames get negative composition offsets (trun version 1).
        let dts = start + i * tick;
        let pts = start + pts_index * tick;
        frames.push(
            Frame::new(
                track,
                Timestamp::new(dts, scale),
                Timestamp::new(pts, scale),
                Bytes::from(vec![0x41u8; size]),
            )
            .with_flags(flags),
        );
    }
    frames
}

/// One 2 s audio fragment: 94 AAC-LC frames at 48 kHz, ~128 kbit/s (~340 bytes each).
fn audio_fragment(track: u32, start: i64) -> Vec<Frame> {
    let scale = Timescale::new(48_000).unwrap();
    (0..94i64)
        .map(|i| {
            let t = Timestamp::new(start + i * 1024, scale);
            let size = 320 + (i as usize * 37) % 48;
            Frame::new(track, t, t, Bytes::from(vec![0x21u8; size]))
                .with_flags(FrameFlags::KEYFRAME)
        })
        .collect()
}

fn video_writer() -> Fmp4Writer {
    let c =
        H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    Fmp4Writer::new(TrackInfo::new(1, Timescale::MPEG, CodecConfig::H264(c))).unwrap()
}

fn audio_writer() -> Fmp4Writer {
    let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
    let scale = Timescale::new(48_000).unwrap();
    Fmp4Writer::new(TrackInfo::new(2, scale, CodecConfig::Aac(aac))).unwrap()
}

/// `FRAGMENTS` consecutive fragments with their end times (next fragment's first DTS).
fn stream(make: fn(u32, i64) -> Vec<Frame>, track: u32, span: i64) -> Vec<(Vec<Frame>, Timestamp)> {
    (0..i64::from(FRAGMENTS))
        .map(|k| {
            let frames = make(track, k * span);
            let end = Timestamp::new((k + 1) * span, frames[0].dts.scale());
            (frames, end)
        })
        .collect()
}

/// Writes every fragment into `out` (cleared per fragment, capacity kept); returns bytes.
fn write(
    w: &mut Fmp4Writer,
    fragments: &[(Vec<Frame>, Timestamp)],
    out: &mut BytesMut,
    header_only: bool,
) -> usize {
    let mut n = 0;
    for (seq, (frames, end)) in fragments.iter().enumerate() {
        out.clear();
        let info = if header_only {
            w.media_segment_header(frames, seq as u32 + 1, Some(*end), out)
        } else {
            w.media_segment(frames, seq as u32 + 1, Some(*end), out)
        }
        .unwrap();
        n += info.len;
    }
    n
}

fn bench(c: &mut Criterion) {
    let video = stream(video_fragment, 1, 180_000);
    let audio = stream(audio_fragment, 2, 96_000);
    let payload = |s: &[(Vec<Frame>, Timestamp)]| -> u64 {
        s.iter()
            .flat_map(|(f, _)| f)
            .map(|f| f.data.len() as u64)
            .sum()
    };

    let mut g = c.benchmark_group("fmp4");
    g.sample_size(50);
    for (name, fragments, mut w) in [
        ("video", &video, video_writer()),
        ("audio", &audio, audio_writer()),
    ] {
        let mut out = BytesMut::new();
        g.throughput(Throughput::Bytes(payload(fragments)));
        g.bench_function(format!("{name}/bytes"), |b| {
            b.iter(|| write(&mut w, fragments, &mut out, false))
        });
        g.throughput(Throughput::Elements(u64::from(FRAGMENTS)));
        g.bench_function(format!("{name}/header"), |b| {
            b.iter(|| write(&mut w, fragments, &mut out, true))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
