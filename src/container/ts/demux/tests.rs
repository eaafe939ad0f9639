//! The demuxer against streams our muxer writes and against hand-made packets.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
use crate::container::ts::psi::{self, PmtStream};
use crate::container::ts::{TsMuxer, TsMuxerOptions};
use crate::media::{
    AacConfig, CodecConfig, CueKind, Frame, FrameFlags, H264Config, SpliceCue, TrackInfo,
};
use crate::scte35::{self, SpliceInfo};
use crate::time::Timescale;
use crate::ErrorKind;

const OFFSET: i64 = 126_000;
const VIDEO: u32 = 0x100;
const AUDIO: u32 = 0x101;

fn h264_track() -> TrackInfo {
    let cfg =
        H264Config::from_parameter_sets(Bytes::from_static(SPS_720P), Bytes::from_static(PPS_720P))
            .unwrap();
    TrackInfo::new(1, Timescale::MPEG, CodecConfig::H264(cfg))
}

fn aac_track() -> TrackInfo {
    let cfg = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
    TrackInfo::new(2, Timescale::MPEG, CodecConfig::Aac(cfg))
}

fn lp(units: &[&[u8]]) -> Bytes {
    let mut v = Vec::new();
    for u in units {
        v.extend_from_slice(&(u.len() as u32).to_be_bytes());
        v.extend_from_slice(u);
    }
    Bytes::from(v)
}

fn t(ticks: i64) -> Timestamp {
    Timestamp::new(ticks, Timescale::MPEG)
}

/// `n` video frames (40 ms, IDR every 10, B-frame style pts) and the audio between,
/// in decode order, starting at `start` (90 kHz).
fn frames(n: i64, start: i64) -> Vec<Frame> {
    let mut v = Vec::new();
    let mut audio = 0i64;
    for i in 0..n {
        let dts = start + i * 3600;
        let key = i % 10 == 0;
        let mut body = vec![if key { 0x65 } else { 0x41 }];
        body.extend((0..(300 + i as usize * 37 % 5000)).map(|k| (k as u8) | 0x10));
        let f = Frame::new(1, t(dts), t(dts + 7200), lp(&[&body]));
        v.push(if key {
            f.with_flags(FrameFlags::KEYFRAME)
        } else {
            f
        });
        while start + audio * 1920 < dts + 3600 {
            let at = t(start + audio * 1920);
            v.push(Frame::new(
                2,
                at,
                at,
                Bytes::from(vec![audio as u8 | 1; 200 + audio as usize % 50]),
            ));
            audio += 1;
        }
    }
    v
}

fn mux(frames: &[Frame], opts: TsMuxerOptions) -> Bytes {
    let mut m = TsMuxer::new(&[h264_track(), aac_track()], opts).unwrap();
    let mut out = BytesMut::new();
    m.write_tables(&mut out);
    for f in frames {
        m.write_frame(f, &mut out).unwrap();
    }
    m.flush(&mut out).unwrap();
    out.freeze()
}

/// Everything the demuxer outputs for `data` pushed in `chunk`-byte pieces.
fn run_with(d: &mut TsDemuxer, data: &[u8], chunk: usize) -> Vec<Result<Item>> {
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        d.push(Bytes::copy_from_slice(c)).unwrap();
        while let Some(i) = d.poll() {
            out.push(i);
        }
    }
    d.finish().unwrap();
    while let Some(i) = d.poll() {
        out.push(i);
    }
    assert!(d.poll().is_none());
    out
}

fn run(data: &[u8], chunk: usize) -> (Vec<Item>, TsDemuxerStats) {
    let mut d = TsDemuxer::new();
    let items = run_with(&mut d, data, chunk)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    (items, d.stats())
}

fn frames_of(items: &[Item], track: u32) -> Vec<Frame> {
    items
        .iter()
        .filter_map(Item::as_frame)
        .filter(|f| f.track == track)
        .cloned()
        .collect()
}

/// The frames we gave the muxer, as the demuxer should give them back.
fn expected(frames: &[Frame], track: u32, offset: i64) -> Vec<(i64, i64, bool, Bytes)> {
    frames
        .iter()
        .filter(|f| f.track == track)
        .map(|f| {
            (
                f.dts.ticks() + offset,
                f.pts.ticks() + offset,
                f.is_keyframe() || track == 2,
                f.data.clone(),
            )
        })
        .collect()
}

fn got(items: &[Item], track: u32) -> Vec<(i64, i64, bool, Bytes)> {
    frames_of(items, track)
        .into_iter()
        .map(|f| (f.dts.ticks(), f.pts.ticks(), f.is_keyframe(), f.data))
        .collect()
}

#[test]
fn round_trip_through_our_muxer_in_any_chunking() {
    let src = frames(40, 0);
    let ts = mux(&src, TsMuxerOptions::default());
    let (items, stats) = run(&ts, ts.len());
    let Item::Event(Event::TrackAdded(v)) = &items[0] else {
        panic!("{:?}", items[0])
    };
    assert_eq!((v.id, v.timescale), (VIDEO, Timescale::MPEG));
    assert!(matches!(&v.config, CodecConfig::H264(c) if c.sps[0][..] == *SPS_720P));
    assert!(items.iter().any(
        |i| matches!(i, Item::Event(Event::TrackAdded(a)) if a.id == AUDIO && matches!(&a.config, CodecConfig::Aac(c) if c.sample_rate == 48_000))
    ));
    assert_eq!(got(&items, VIDEO), expected(&src, 1, OFFSET));
    assert_eq!(got(&items, AUDIO), expected(&src, 2, OFFSET));
    assert!(frames_of(&items, AUDIO)
        .iter()
        .all(|f| f.duration == Some(t(1920))));
    assert_eq!(items.last(), Some(&Item::Event(Event::EndOfStream)));
    assert_eq!(stats.packets, ts.len() as u64 / 188);
    assert_eq!(
        (
            stats.cc_errors,
            stats.dropped_pes,
            stats.skipped_bytes,
            stats.discontinuities
        ),
        (0, 0, 0, 0)
    );
    for chunk in [1, 7, 187, 188, 189, 1000] {
        assert_eq!(run(&ts, chunk).0, items, "chunk {chunk}");
    }
}

#[test]
fn lost_packets_drop_their_pes_and_are_counted() {
    let src = frames(20, 0);
    let ts = mux(&src, TsMuxerOptions::default());
    // Drop the second packet of the 5th video PES.
    let pkts: Vec<&[u8]> = ts.chunks(188).collect();
    let starts: Vec<usize> = (0..pkts.len())
        .filter(|&i| {
            let p = pkts[i];
            u16::from_be_bytes([p[1] & 0x1f, p[2]]) == 0x100 && p[1] & 0x40 != 0
        })
        .collect();
    let victim = starts[4] + 1;
    let damaged: Vec<u8> = pkts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let (items, stats) = run(&damaged, 500);
    assert_eq!((stats.cc_errors, stats.dropped_pes), (1, 1));
    let mut want = expected(&src, 1, OFFSET);
    want.remove(4);
    assert_eq!(got(&items, VIDEO), want);
    assert_eq!(got(&items, AUDIO), expected(&src, 2, OFFSET));
    assert!(!items
        .iter()
        .any(|i| matches!(i, Item::Event(Event::Discontinuity { .. }))));

    // A duplicated packet is dropped, not counted as loss.
    let mut dup = ts[..10 * 188].to_vec();
    dup.extend_from_slice(&ts[9 * 188..]);
    let (items, stats) = run(&dup, 4096);
    assert_eq!((stats.duplicates, stats.cc_errors), (1, 0));
    assert_eq!(got(&items, VIDEO), expected(&src, 1, OFFSET));
}

#[test]
fn garbage_loses_and_regains_sync() {
    let src = frames(20, 0);
    let ts = mux(&src, TsMuxerOptions::default());
    let mut data = b"garbage before the first packet".to_vec();
    data.extend_from_slice(&ts[..7 * 188]);
    data.extend_from_slice(&[1, 0x47, 2, 3, 0x47, 0x47]); // sync-looking noise
    data.extend_from_slice(&ts[7 * 188..]);
    for chunk in [1, 100, 188, 5000] {
        let mut d = TsDemuxer::new();
        let out = run_with(&mut d, &data, chunk);
        let items: Vec<Item> = out.into_iter().map(|r| r.unwrap()).collect();
        let stats = d.stats();
        assert_eq!(stats.skipped_bytes, 31 + 6, "chunk {chunk}");
        assert_eq!((stats.sync_losses, stats.cc_errors), (2, 0));
        assert_eq!(stats.packets, ts.len() as u64 / 188);
        assert_eq!(
            got(&items, VIDEO),
            expected(&src, 1, OFFSET),
            "chunk {chunk}"
        );
        assert_eq!(
            got(&items, AUDIO),
            expected(&src, 2, OFFSET),
            "chunk {chunk}"
        );
        assert_eq!(d.position(), data.len() as u64);
    }
    // Noise that starts with a sync byte passes for a packet: the real one it
    // overlaps is lost (a counter gap), the stream goes on.
    let mut data = ts[..7 * 188].to_vec();
    data.extend_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
    data.extend_from_slice(&ts[7 * 188..]);
    let (items, stats) = run(&data, 1000);
    assert_eq!(stats.sync_losses, 1);
    assert!(stats.cc_errors <= 1 && stats.dropped_pes <= 1);
    assert!(got(&items, VIDEO).len() + 1 >= expected(&src, 1, OFFSET).len());
    // Not a transport stream: one error per long run without sync, then the end.
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x3f)
        .collect();
    let mut d = TsDemuxer::new();
    let out = run_with(&mut d, &noise, 10_000);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Malformed);
    assert_eq!(out[1].as_ref().unwrap(), &Item::Event(Event::EndOfStream));
    assert_eq!(d.stats().skipped_bytes, noise.len() as u64);
    assert!(d.buffered() < 4096);
}

#[test]
fn truncated_input_is_counted_and_short_pes_dropped() {
    let src = frames(12, 0);
    let ts = mux(&src, TsMuxerOptions::default());
    for cut in [0, 1, 100, 188, 189, 2000, ts.len() / 2, ts.len() - 1] {
        let mut d = TsDemuxer::new();
        let out = run_with(&mut d, &ts[..cut], 333);
        assert!(matches!(
            out.last(),
            Some(Ok(Item::Event(Event::EndOfStream)))
        ));
        let stats = d.stats();
        assert_eq!(stats.packets * 188 + stats.skipped_bytes, cut as u64);
        for r in &out {
            if let Ok(Item::Frame(f)) = r {
                assert!(!f.data.is_empty());
            }
        }
    }
}

#[test]
fn timestamps_unwrap_across_2_pow_33() {
    let start = (1i64 << 33) - OFFSET - 90_000; // wraps 1 s into the stream
    let src = frames(60, start);
    let ts = mux(&src, TsMuxerOptions::default());
    let (items, stats) = run(&ts, 4096);
    assert_eq!(stats.discontinuities, 0);
    let v = got(&items, VIDEO);
    assert_eq!(v, expected(&src, 1, OFFSET));
    assert!(v.last().unwrap().0 > 1 << 33);
    assert!(v.windows(2).all(|w| w[1].0 > w[0].0));
}

#[test]
fn jumps_are_discontinuities_and_the_indicator_too() {
    let mut src = frames(10, 0);
    // 20 s forward for everything after the 5th video frame.
    let cut = src
        .iter()
        .filter(|f| f.track == 1)
        .nth(5)
        .map(|f| f.dts)
        .unwrap();
    for f in &mut src {
        if f.dts >= cut {
            f.dts = f.dts.add_ticks(20 * 90_000);
            f.pts = f.pts.add_ticks(20 * 90_000);
        }
    }
    let ts = mux(&src, TsMuxerOptions::default());
    let (items, stats) = run(&ts, 4096);
    assert_eq!(stats.discontinuities, 1);
    let at = items
        .iter()
        .position(|i| matches!(i, Item::Event(Event::Discontinuity { track: None })))
        .unwrap();
    let next = items[at + 1..].iter().find_map(Item::as_frame).unwrap();
    assert!(next.dts.ticks() >= cut.ticks() + 20 * 90_000 + OFFSET);

    // discontinuity_indicator on the PCR PID: a discontinuity before the next frame.
    let ts = mux(&frames(10, 0), TsMuxerOptions::default());
    let mut data = ts.to_vec();
    let pkts = data.len() / 188;
    let mut marked = None;
    for i in (pkts / 2)..pkts {
        let p = &mut data[i * 188..(i + 1) * 188];
        if u16::from_be_bytes([p[1] & 0x1f, p[2]]) == 0x100 && p[3] & 0x20 != 0 && p[4] > 0 {
            p[5] |= 0x80;
            marked = Some(i);
            break;
        }
    }
    assert!(marked.is_some());
    let (_, stats) = run(&data, 4096);
    assert_eq!(stats.discontinuities, 1);
}

/// A transport packet of `pid` carrying `payload` (at most 184 bytes), stuffed in an
/// adaptation field when short.
fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 184);
    let mut p = vec![0x47, (u8::from(pusi) << 6) | (pid >> 8) as u8, pid as u8];
    if payload.len() == 184 {
        p.push(0x10 | cc);
    } else {
        p.push(0x30 | cc);
        let af = 183 - payload.len();
        p.push(af as u8);
        if af > 0 {
            p.push(0);
            p.extend(std::iter::repeat_n(0xff, af - 1));
        }
    }
    p.extend_from_slice(payload);
    assert_eq!(p.len(), 188);
    p
}

/// Sections back to back on `pid`: a packet in which a section starts has
/// `payload_unit_start_indicator` and a `pointer_field` to it (§2.4.4.1).
fn section_packets(pid: u16, sections: &[&[u8]], cc: &mut u8) -> Vec<u8> {
    let mut all = Vec::new();
    let mut starts = Vec::new();
    for s in sections {
        starts.push(all.len());
        all.extend_from_slice(s);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < all.len() {
        let next = starts.iter().copied().find(|&s| s >= pos);
        let payload = match next {
            Some(start) if start < pos + 183 => {
                let end = (pos + 183).min(all.len());
                let mut p = vec![(start - pos) as u8];
                p.extend_from_slice(&all[pos..end]);
                pos = end;
                (true, p)
            }
            _ => {
                let end = (pos + 184).min(all.len());
                let p = all[pos..end].to_vec();
                pos = end;
                (false, p)
            }
        };
        out.extend(packet(pid, payload.0, *cc, &payload.1));
        *cc = (*cc + 1) & 15;
    }
    out
}

/// PAT + PMT (H.264 on 0x100, SCTE 35 on 0x1f0) + a video PES at `pts`.
fn program_with_cue_pid(pts: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let pat = psi::pat_section(1, 0, 1, 0x1000);
    out.extend(psi::section_packet(0, &pat).unwrap());
    let streams = [
        PmtStream {
            stream_type: psi::STREAM_TYPE_H264,
            pid: 0x100,
            language: None,
            descriptors: &[],
        },
        PmtStream {
            stream_type: psi::STREAM_TYPE_SCTE35,
            pid: 0x1f0,
            language: None,
            descriptors: &[],
        },
    ];
    let pmt = psi::pmt_section(1, 0, 0x100, &streams).unwrap();
    out.extend(psi::section_packet(0x1000, &pmt).unwrap());
    out.extend(video_pes(pts, 0));
    out
}

fn video_pes(pts: u64, cc: u8) -> Vec<u8> {
    let (h, n) = crate::container::ts::pes::PesHeader {
        stream_id: 0xe0,
        pts,
        dts: None,
        payload_len: 0,
    }
    .encode();
    let mut pes = h[..n].to_vec();
    pes[4] = 0; // unbounded
    pes[5] = 0;
    for u in [SPS_720P, PPS_720P, &[0x65, 0x88, 0x80][..]] {
        pes.extend_from_slice(&[0, 0, 0, 1]);
        pes.extend_from_slice(u);
    }
    packet(0x100, true, cc, &pes)
}

fn cues(items: &[Item]) -> Vec<SpliceCue> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::Cue(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn scte35_sections_across_packets_and_back_to_back() {
    let base = 900_000u64;
    let mut data = program_with_cue_pid(base);
    let out_section =
        scte35::splice_insert_section(7, true, Some(base + 450_000), Some(2_700_000), true);
    let in_section = scte35::splice_insert_section(7, false, Some(base + 3_150_000), None, false);
    let now_section = scte35::splice_insert_section(8, true, None, None, false);
    // A segmentation descriptor heavy enough to span packets.
    let mut seg = scte35::SegmentationDescriptor::new(99, 0x34, Some(900_000));
    seg.upid_type = 0x0c;
    seg.upid = Bytes::from(vec![b'u'; 200]);
    let long = scte35::time_signal_section(Some(base + 900_000), &seg).unwrap();
    assert!(long.len() > 184);
    let null = SpliceInfo::new(scte35::SpliceCommand::Null)
        .encode()
        .unwrap();
    let mut bad = out_section.to_vec();
    bad[20] ^= 0xff;
    let mut cc = 0;
    data.extend(section_packets(
        0x1f0,
        &[&out_section, &null, &in_section],
        &mut cc,
    ));
    data.extend(section_packets(0x1f0, &[&long, &now_section], &mut cc));
    data.extend(section_packets(0x1f0, &[&bad], &mut cc));
    data.extend(video_pes(base + 3600, 1));
    for chunk in [1, 188, 10_000] {
        let mut d = TsDemuxer::new();
        let items: Vec<Item> = run_with(&mut d, &data, chunk)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let c = cues(&items);
        assert_eq!(c.len(), 4, "chunk {chunk}: {c:?} {:?}", d.stats());
        assert_eq!(
            (
                c[0].id,
                c[0].kind,
                c[0].at.ticks(),
                c[0].duration,
                &c[0].raw
            ),
            (
                7,
                CueKind::Out,
                (base + 450_000) as i64,
                Some(t(2_700_000)),
                &out_section
            )
        );
        assert_eq!(
            (c[1].kind, c[1].at.ticks()),
            (CueKind::In, (base + 3_150_000) as i64)
        );
        assert_eq!(
            (c[2].id, c[2].segmentation_type, c[2].at.ticks(), &c[2].raw),
            (99, Some(0x34), (base + 900_000) as i64, &long)
        );
        assert!(
            c[3].immediate && c[3].at.ticks() == base as i64,
            "{:?}",
            c[3]
        );
        let s = d.stats();
        assert_eq!((s.cue_sections, s.cues, s.cue_errors), (6, 4, 1));
        // Cues come where they arrived: the first (unbounded) video PES packet only ends
        // when the second starts, after the sections.
        let last_cue = items
            .iter()
            .rposition(|i| matches!(i, Item::Event(Event::Cue(_))))
            .unwrap();
        let first_frame = items.iter().position(|i| i.as_frame().is_some()).unwrap();
        assert!(last_cue < first_frame);
        assert_eq!(frames_of(&items, VIDEO).len(), 2);
    }
}

#[test]
fn scte35_time_unwraps_next_to_the_video_and_early_cues_wait() {
    // Video near the wrap; the splice time 2 s later is past 2^33 on the wire.
    let pts = (1u64 << 33) - 90_000;
    let section = scte35::splice_insert_section(
        1,
        true,
        Some((pts + 180_000) & ((1 << 33) - 1)),
        None,
        false,
    );
    let mut data = program_with_cue_pid(pts);
    let mut cc = 0;
    data.extend(section_packets(0x1f0, &[&section], &mut cc));
    let (items, _) = run(&data, 4096);
    assert_eq!(cues(&items)[0].at.ticks(), (pts + 180_000) as i64);

    // A cue before any PES waits for the first PTS.
    let mut data = Vec::new();
    let prog = program_with_cue_pid(pts);
    data.extend_from_slice(&prog[..2 * 188]);
    let now = scte35::splice_insert_section(2, true, None, None, false);
    data.extend(section_packets(0x1f0, &[&now], &mut 0));
    data.extend_from_slice(&prog[2 * 188..]);
    let (items, stats) = run(&data, 4096);
    let c = cues(&items);
    assert_eq!((c.len(), c[0].at.ticks(), stats.cues), (1, pts as i64, 1));
    // Without any PES it is dropped at the end, counted.
    let (items, stats) = run(&data[..3 * 188], 4096);
    assert!(cues(&items).is_empty());
    assert_eq!(stats.cue_errors, 1);
}

#[test]
fn muxer_cue_pid_round_trip() {
    let src = frames(30, 0);
    let opts = TsMuxerOptions {
        scte35_pid: Some(0x1f0),
        ..TsMuxerOptions::default()
    };
    let mut m = TsMuxer::new(&[h264_track(), aac_track()], opts).unwrap();
    let mut out = BytesMut::new();
    m.write_tables(&mut out);
    // The PMT carries the CUEI registration in its program loop and stream type 0x86.
    let pmt = &out[188 + 5..];
    let len = 3 + (usize::from(pmt[1] & 0x0f) << 8 | usize::from(pmt[2]));
    let p = super::tables::parse_pmt(&pmt[..len], 1).unwrap();
    assert!(p.cuei);
    assert!(p
        .streams
        .iter()
        .any(|s| s.stream_type == 0x86 && s.pid == 0x1f0));
    let section = scte35::splice_insert_section(5, true, Some(360_000), Some(900_000), true);
    let cue =
        SpliceCue::new(5, CueKind::Out, t(360_000), Some(t(900_000))).with_raw(section.clone());
    let operator = SpliceCue::new(6, CueKind::In, t(1_260_000), None);
    for (k, f) in src.iter().enumerate() {
        if k == 3 {
            m.write_cue(&cue, &mut out).unwrap();
            m.write_cue(&operator, &mut out).unwrap();
        }
        m.write_frame(f, &mut out).unwrap();
    }
    m.flush(&mut out).unwrap();
    let (items, stats) = run(&out, 4096);
    assert_eq!(got(&items, VIDEO), expected(&src, 1, OFFSET));
    let c = cues(&items);
    assert_eq!(c.len(), 2, "{stats:?}");
    // The splice time moved with the frames: 1.4 s in pts_adjustment.
    assert_eq!((c[0].id, c[0].at.ticks()), (5, 360_000 + OFFSET));
    let info = SpliceInfo::parse(c[0].raw.clone()).unwrap();
    assert_eq!(info.pts_adjustment, OFFSET as u64);
    assert_eq!(info.command, SpliceInfo::parse(section).unwrap().command);
    assert_eq!(
        (c[1].id, c[1].kind, c[1].at.ticks()),
        (6, CueKind::In, 1_260_000 + OFFSET)
    );

    // Without the option the muxer refuses cues; with a zero offset the section is
    // written as it came.
    let mut plain = TsMuxer::new(&[h264_track()], TsMuxerOptions::default()).unwrap();
    assert_eq!(
        plain.write_cue(&cue, &mut out).unwrap_err().kind(),
        ErrorKind::Usage
    );
    let opts = TsMuxerOptions {
        scte35_pid: Some(0x1f0),
        timestamp_offset: t(0),
        ..TsMuxerOptions::default()
    };
    let mut m = TsMuxer::new(&[h264_track()], opts).unwrap();
    let mut out = BytesMut::new();
    m.write_cue(&cue, &mut out).unwrap();
    let key = src.iter().find(|f| f.track == 1).unwrap();
    m.write_frame(key, &mut out).unwrap();
    let (items, _) = run(&out, 4096);
    assert_eq!(cues(&items)[0].raw, cue.raw);
    // Colliding PIDs are refused.
    let bad = TsMuxerOptions {
        scte35_pid: Some(0x100),
        ..TsMuxerOptions::default()
    };
    assert!(TsMuxer::new(&[h264_track()], bad).is_err());
}

#[test]
fn pmt_versions_programs_and_limits() {
    // Two programs: the second one is chosen by number.
    let mut data = Vec::new();
    let mut pat = psi::pat_section(1, 0, 1, 0x1000);
    // Add program 2 on PMT PID 0x1100 by rebuilding the section by hand.
    pat.truncate(pat.len() - 4);
    pat.extend_from_slice(&[0, 2, 0xe0 | 0x11, 0x00]);
    pat[2] += 4;
    let crc = psi::crc32_mpeg2(&pat);
    pat.extend_from_slice(&crc.to_be_bytes());
    data.extend(psi::section_packet(0, &pat).unwrap());
    let pmt_of = |number: u16, video_pid: u16| {
        let s = [PmtStream {
            stream_type: psi::STREAM_TYPE_H264,
            pid: video_pid,
            language: Some(*b"ENG"),
            descriptors: &[],
        }];
        psi::pmt_section(number, 0, video_pid, &s).unwrap()
    };
    data.extend(psi::section_packet(0x1000, &pmt_of(1, 0x100)).unwrap());
    data.extend(psi::section_packet(0x1100, &pmt_of(2, 0x200)).unwrap());
    let mut p2 = video_pes(1000, 0);
    p2[1] = 0x40 | 0x02; // PID 0x200
    p2[2] = 0x00;
    data.extend(video_pes(1000, 0));
    data.extend(p2);
    let opts = TsDemuxerOptions {
        program: Some(2),
        ..TsDemuxerOptions::default()
    };
    let mut d = TsDemuxer::with_options(opts);
    let items: Vec<Item> = run_with(&mut d, &data, 4096)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(d.program_number(), Some(2));
    assert_eq!(d.pcr_pid(), Some(0x200));
    let Item::Event(Event::TrackAdded(info)) = &items[0] else {
        panic!()
    };
    assert_eq!((info.id, info.language.as_deref()), (0x200, Some("eng")));
    assert_eq!(frames_of(&items, 0x200).len(), 1);
    assert!(frames_of(&items, 0x100).is_empty());
    let (items, _) = run(&data, 4096);
    assert_eq!(
        frames_of(&items, 0x100).len(),
        1,
        "first program by default"
    );

    // A PES over max_pes_size is an error for that packet only.
    let src: Vec<Frame> = frames(30, 0).into_iter().filter(|f| f.track == 1).collect();
    let mut m = TsMuxer::new(&[h264_track()], TsMuxerOptions::default()).unwrap();
    let mut ts = BytesMut::new();
    for f in &src {
        m.write_frame(f, &mut ts).unwrap();
    }
    const MAX: usize = 1000;
    // PES header 19, AUD 6, SPS and PPS with start codes before keyframes.
    let pes_len = |f: &Frame| {
        19 + 6
            + f.data.len()
            + if f.is_keyframe() {
                8 + SPS_720P.len() + PPS_720P.len()
            } else {
                0
            }
    };
    let opts = TsDemuxerOptions {
        max_pes_size: MAX,
        ..TsDemuxerOptions::default()
    };
    let mut d = TsDemuxer::with_options(opts);
    let out = run_with(&mut d, &ts, 4096);
    let limits = out
        .iter()
        .filter(|r| matches!(r, Err(e) if e.kind() == ErrorKind::Limit))
        .count();
    let big = src.iter().filter(|f| pes_len(f) > MAX).count();
    assert!(big > 0 && big < src.len());
    assert_eq!(limits, big);
    assert_eq!(d.stats().dropped_pes, big as u64);
    let items: Vec<Item> = out.into_iter().filter_map(|r| r.ok()).collect();
    let want: Vec<_> = src
        .iter()
        .filter(|f| pes_len(f) <= MAX)
        .map(|f| f.data.clone())
        .collect();
    let got: Vec<_> = frames_of(&items, VIDEO)
        .into_iter()
        .map(|f| f.data)
        .collect();
    assert_eq!(got, want);
    assert!(matches!(
        items.last(),
        Some(Item::Event(Event::EndOfStream))
    ));
}

#[test]
fn a_changed_sps_is_a_track_change() {
    let mut src = frames(20, 0);
    let ts1 = mux(&src[..src.len() / 2], TsMuxerOptions::default());
    // Second half from a muxer whose configuration carries another SPS.
    let sps2: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
    let cfg =
        H264Config::from_parameter_sets(Bytes::from_static(sps2), Bytes::from_static(PPS_720P))
            .unwrap();
    let tracks = [
        TrackInfo::new(1, Timescale::MPEG, CodecConfig::H264(cfg)),
        aac_track(),
    ];
    let mut m = TsMuxer::new(&tracks, TsMuxerOptions::default()).unwrap();
    let mut out = BytesMut::new();
    let rest = src.split_off(src.len() / 2);
    for f in &rest {
        m.write_frame(f, &mut out).unwrap();
    }
    m.flush(&mut out).unwrap();
    let mut data = ts1.to_vec();
    // Continue the counters of the first part: renumber the second part's packets.
    let mut cc = std::collections::HashMap::new();
    for p in ts1.chunks(188) {
        cc.insert(u16::from_be_bytes([p[1] & 0x1f, p[2]]), p[3] & 15);
    }
    for p in out.chunks(188) {
        let mut p = p.to_vec();
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        if p[3] & 0x10 != 0 {
            let c = cc.get(&pid).map_or(0, |c| (c + 1) & 15);
            p[3] = (p[3] & 0xf0) | c;
            cc.insert(pid, c);
        }
        data.extend_from_slice(&p);
    }
    let (items, stats) = run(&data, 4096);
    assert_eq!(stats.cc_errors, 0);
    let changed: Vec<&TrackInfo> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::TrackChanged(t)) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 1);
    assert!(matches!(&changed[0].config, CodecConfig::H264(c) if c.sps[0][..] == *sps2));
    assert_eq!(frames_of(&items, VIDEO).len(), 20);
}

#[test]
fn sync_lost_again_inside_a_search_window() {
    // Garbage, packets, garbage, packets, garbage: several losses within one 4 KiB
    // search step; the whole input and small chunks read the same packets.
    let ts = mux(&frames(6, 0), TsMuxerOptions::default());
    let pk: Vec<&[u8]> = ts.chunks(188).collect();
    let mut data = vec![0x11; 100];
    for (i, p) in pk.iter().enumerate() {
        if i == 4 || i == 9 {
            data.extend_from_slice(&[0x22; 50]);
        }
        data.extend_from_slice(p);
    }
    data.extend_from_slice(&[0x47, 0x33, 0x33]);
    let reference = {
        let mut d = TsDemuxer::new();
        let out = run_with(&mut d, &data, data.len());
        (out, d.stats())
    };
    assert_eq!(reference.1.packets, pk.len() as u64);
    assert_eq!(reference.1.skipped_bytes, 100 + 2 * 50 + 3);
    for chunk in [1, 97, 188, 1000] {
        let mut d = TsDemuxer::new();
        let out = run_with(&mut d, &data, chunk);
        assert_eq!(
            (&out, d.stats()),
            (&reference.0, reference.1),
            "chunk {chunk}"
        );
    }
}

#[test]
fn write_segment_carries_the_segment_cues() {
    use crate::package::Segment;
    let src = frames(10, 0);
    let section = scte35::splice_insert_section(9, true, Some(200_000), None, false);
    let cue = SpliceCue::new(9, CueKind::Out, t(200_000), None).with_raw(section);
    let seg = Segment {
        sequence: 0,
        start: t(0),
        duration: t(36_000),
        discontinuity: false,
        tracks: Vec::new(),
        frames: src.clone(),
        events: vec![Event::Cue(cue)],
    };
    let with = TsMuxerOptions {
        scte35_pid: Some(0x1f0),
        ..TsMuxerOptions::default()
    };
    let mut m = TsMuxer::new(&[h264_track(), aac_track()], with).unwrap();
    let mut out = BytesMut::new();
    m.write_segment(&seg, &mut out).unwrap();
    let (items, _) = run(&out, 4096);
    let c = cues(&items);
    assert_eq!(
        (c.len(), c[0].id, c[0].at.ticks()),
        (1, 9, 200_000 + OFFSET)
    );
    assert_eq!(got(&items, VIDEO), expected(&src, 1, OFFSET));
    // Without a cue PID the events are ignored: the bytes of a segment without them.
    let mut plain = TsMuxer::new(&[h264_track(), aac_track()], TsMuxerOptions::default()).unwrap();
    let mut a = BytesMut::new();
    plain.write_segment(&seg, &mut a).unwrap();
    let mut fresh = TsMuxer::new(&[h264_track(), aac_track()], TsMuxerOptions::default()).unwrap();
    let mut b = BytesMut::new();
    let mut bare = seg.clone();
    bare.events.clear();
    fresh.write_segment(&bare, &mut b).unwrap();
    assert_eq!(a, b);
}
