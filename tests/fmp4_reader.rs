//! fMP4/CMAF reader against real files: what FFmpeg fragments (`-movflags
//! frag_keyframe+empty_moov`, with and without `default_base_moof`) and its DASH muxer
//! writes must read to the same frames and track configs as strom's progressive reader
//! gives for the source and as ffprobe counts; `Fmp4Writer` output reads back to the
//! frames written; damaged real fragments are typed errors.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::cmaf::{cut, demux, shift_to_zero};
use common::{avc_aac_25, avc_multi_audio, ffmpeg_dash_cmd, media, packets, Container, TempDir};
use strom::container::fmp4::{Fmp4Reader, Fmp4Writer};
use strom::media::{Frame, FrameFlags, MediaKind, TrackInfo};
use strom::ErrorKind;

/// The frames of each track, in the order read.
fn by_track(frames: &[Frame]) -> BTreeMap<u32, Vec<Frame>> {
    let mut m: BTreeMap<u32, Vec<Frame>> = BTreeMap::new();
    for f in frames {
        m.entry(f.track).or_default().push(f.clone());
    }
    m
}

fn assert_same_tracks(ours: &[TrackInfo], source: &[TrackInfo]) {
    assert_eq!(ours.len(), source.len());
    for (o, s) in ours.iter().zip(source) {
        assert_eq!(
            (o.id, o.kind, o.timescale, &o.config, &o.language),
            (s.id, s.kind, s.timescale, &s.config, &s.language),
            "track {}",
            s.id
        );
    }
}

/// Every frame of the fragmented file equals the source's, per track: payload, key flag,
/// composition offset (`pts - dts`), and decode time and duration up to what FFmpeg's
/// remux changes. An MP4 source's edit lists become a constant shift of decode times, and
/// FFmpeg's fragmenter (which writes none) folds the tracks' start offset into the first
/// sample's duration (AAC priming: 3840 instead of 1024 ticks); the last sample's
/// duration may be stated differently too. So decode times are compared relative to
/// the second frame's and durations except the first and last.
fn assert_same_frames(
    ours: &BTreeMap<u32, Vec<Frame>>,
    source: &BTreeMap<u32, Vec<Frame>>,
    what: &str,
) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>()
    );
    for (id, want) in source {
        let got = &ours[id];
        assert_eq!(got.len(), want.len(), "{what}: track {id} frame count");
        assert!(got.len() > 2);
        let (g1, w1) = (got[1].dts.ticks(), want[1].dts.ticks());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ctx = format!("{what}: track {id} frame {i}");
            assert!(g.data == w.data, "{ctx}: payload differs");
            assert_eq!(g.is_keyframe(), w.is_keyframe(), "{ctx}: key");
            assert_eq!(
                g.composition_offset(),
                w.composition_offset(),
                "{ctx}: pts - dts"
            );
            if i >= 1 {
                assert_eq!(g.dts.ticks() - g1, w.dts.ticks() - w1, "{ctx}: dts");
            }
            if i >= 1 && i + 1 < want.len() {
                assert_eq!(g.duration, w.duration, "{ctx}: duration");
            }
        }
    }
}

/// Checks the frames of `path` against ffprobe's packets of the same file: per stream
/// (in track order) the same count, sizes, key flags and decode-time steps.
fn assert_matches_ffprobe(path: &Path, tracks: &[TrackInfo], frames: &BTreeMap<u32, Vec<Frame>>) {
    for (i, t) in tracks.iter().enumerate() {
        let p = packets(path, &i.to_string());
        let ours = &frames[&t.id];
        assert_eq!(p.packets.len(), ours.len(), "stream {i}: packet count");
        assert_eq!(p.time_base, (1, i64::from(t.timescale.get())), "stream {i}");
        let first = p.packets[0].dts.unwrap();
        for (n, (pk, f)) in p.packets.iter().zip(ours).enumerate() {
            assert_eq!(pk.size, f.data.len(), "stream {i} packet {n}: size");
            assert_eq!(pk.key, f.is_keyframe(), "stream {i} packet {n}: key");
            assert_eq!(
                pk.dts.unwrap() - first,
                f.dts.ticks() - ours[0].dts.ticks(),
                "stream {i} packet {n}: dts"
            );
        }
    }
}

#[test]
fn ffmpeg_fragmented_file_reads_like_its_source() {
    let src = avc_aac_25(6, Container::Mp4);
    let (src_tracks, src_frames) = demux(&src);
    let s = src.to_string_lossy().into_owned();
    for movflags in [
        "frag_keyframe+empty_moov+default_base_moof",
        // Explicit tfhd base_data_offset (absolute file offsets) on every traf.
        "frag_keyframe+empty_moov",
    ] {
        let frag = media(
            "avc_aac_25_6s_frag.mp4",
            &["-i", &s, "-map", "0", "-c", "copy", "-movflags", movflags],
        );
        let file = Bytes::from(fs::read(&frag).unwrap());
        let (reader, frames) = Fmp4Reader::read_file(file.clone()).unwrap();
        assert_same_tracks(reader.tracks(), &src_tracks);
        // Both tracks come back, interleaved fragment by fragment.
        let switches = frames
            .windows(2)
            .filter(|w| w[0].track != w[1].track)
            .count();
        assert!(switches >= 4, "{movflags}: {switches} track switches");
        let ours = by_track(&frames);
        assert_same_frames(&ours, &src_frames, movflags);
        assert_matches_ffprobe(&frag, reader.tracks(), &ours);
        // Zero copy: every payload points into the file.
        let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
        assert!(frames
            .iter()
            .all(|f| range.contains(&(f.data.as_ptr() as usize))));
    }
}

#[test]
fn ffmpeg_dash_representations_read() {
    let src = avc_multi_audio(6);
    let (src_tracks, src_frames) = demux(&src);
    let dir = TempDir::new("fmp4-reader-dash");
    let out = ffmpeg_dash_cmd(&src, dir.path(), &[], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut langs = Vec::new();
    for (i, st) in src_tracks.iter().enumerate() {
        let init = Bytes::from(fs::read(dir.join(&format!("init-stream{i}.m4s"))).unwrap());
        let mut reader = Fmp4Reader::new(init).unwrap();
        assert_eq!(reader.tracks().len(), 1, "representation {i}");
        let t = reader.tracks()[0].clone();
        assert_eq!(
            (t.kind, t.timescale, &t.config),
            (st.kind, st.timescale, &st.config),
            "representation {i}"
        );
        let mut frames = Vec::new();
        let mut chunks = 0;
        for n in 1.. {
            let p = dir.join(&format!("chunk-stream{i}-{n:05}.m4s"));
            let Ok(data) = fs::read(&p) else { break };
            let got = reader.read_segment(Bytes::from(data)).unwrap();
            assert!(!got.is_empty(), "{}", p.display());
            if t.kind == MediaKind::Video {
                assert!(
                    got[0].is_keyframe(),
                    "{} starts with a keyframe",
                    p.display()
                );
            }
            frames.extend(got);
            chunks += 1;
        }
        assert!(chunks >= 3, "representation {i}: {chunks} chunks");
        // Frame count as ffprobe counts the source stream's packets.
        let count = packets(&src, &i.to_string()).packets.len();
        assert_eq!(frames.len(), count, "representation {i}");
        // Decode times never go back across segments.
        assert!(frames.windows(2).all(|w| w[0].dts < w[1].dts));
        let mut one = BTreeMap::new();
        one.insert(st.id, src_frames[&st.id].clone());
        let mut ours = BTreeMap::new();
        ours.insert(st.id, frames);
        assert_same_frames(&ours, &one, &format!("representation {i}"));
        // FFmpeg 5.1's DASH muxer writes `und` in every init segment's mdhd (the
        // languages go to the MPD only): the language is what ffprobe reads there.
        let probed = common::ffprobe_flat(
            &dir.join(&format!("init-stream{i}.m4s")),
            &["-show_streams"],
        );
        let tag = probed
            .get("streams.stream.0.tags.language")
            .filter(|l| *l != "und")
            .map(str::to_string);
        assert_eq!(t.language, tag, "representation {i}");
        langs.push(t.language.clone());
    }
    assert_eq!(langs.len(), 4);
    let mpd = fs::read_to_string(dir.join("manifest.mpd")).unwrap();
    for (lang, _) in common::MULTI_AUDIO_LANGS {
        assert!(mpd.contains(&format!("lang=\"{lang}\"")), "{mpd}");
    }
}

/// Four tracks in one fragmented file (four trafs per moof): languages come back from
/// each mdhd, frames equal the source's.
#[test]
fn ffmpeg_fragmented_multi_audio_keeps_languages() {
    let src = avc_multi_audio(6);
    let (src_tracks, src_frames) = demux(&src);
    let s = src.to_string_lossy().into_owned();
    let frag = media(
        "avc_multi_audio_6s_frag.mp4",
        &[
            "-i",
            &s,
            "-map",
            "0",
            "-c",
            "copy",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    );
    let (reader, frames) = Fmp4Reader::read_file(Bytes::from(fs::read(&frag).unwrap())).unwrap();
    assert_same_tracks(reader.tracks(), &src_tracks);
    let langs: Vec<Option<&str>> = reader
        .tracks()
        .iter()
        .map(|t| t.language.as_deref())
        .collect();
    assert_eq!(langs, [None, Some("eng"), Some("fra"), Some("deu")]);
    let ours = by_track(&frames);
    assert_same_frames(&ours, &src_frames, "multi audio");
    assert_matches_ffprobe(&frag, reader.tracks(), &ours);
}

#[test]
fn fmp4_writer_output_reads_back() {
    let src = avc_aac_25(6, Container::Mp4);
    let (tracks, mut frames) = demux(&src);
    for track in &tracks {
        let input = frames.get_mut(&track.id).unwrap();
        shift_to_zero(input);
        let mut w = Fmp4Writer::new(track.clone()).unwrap();
        let mut init = BytesMut::new();
        w.init_segment(&mut init).unwrap();
        let init = init.freeze();
        let mut reader = Fmp4Reader::new(init.clone()).unwrap();
        let t = &reader.tracks()[0];
        assert_eq!(
            (t.id, t.timescale, &t.config, &t.language),
            (track.id, track.timescale, &track.config, &track.language)
        );
        let video = track.kind == MediaKind::Video;
        let runs = cut(input, i64::from(track.timescale.get()) * 2, video);
        assert!(runs.len() >= 3);
        let mut file = init.to_vec();
        let mut read = Vec::new();
        for (n, r) in runs.iter().enumerate() {
            let end = input.get(r.end).map(|f| f.dts);
            let mut seg = BytesMut::new();
            let info = w
                .media_segment(&input[r.clone()], n as u32 + 1, end, &mut seg)
                .unwrap();
            file.extend_from_slice(&seg);
            let got = reader.read_segment(seg.freeze()).unwrap();
            assert_eq!(got.len(), info.samples.len());
            read.extend(got);
        }
        let (_, whole) = Fmp4Reader::read_file(Bytes::from(file)).unwrap();
        assert_eq!(whole, read, "read_file equals the segments read one by one");
        assert_eq!(read.len(), input.len());
        for (i, (g, f)) in read.iter().zip(input.iter()).enumerate() {
            assert_eq!(
                (g.track, g.dts, g.pts, g.is_keyframe()),
                (f.track, f.dts, f.pts, f.is_keyframe()),
                "track {} frame {i}",
                track.id
            );
            assert!(!g.flags.contains(FrameFlags::DISPOSABLE));
            assert!(g.data == f.data, "track {} frame {i} payload", track.id);
            // The writer states each duration as the step to the next frame.
            if let Some(next) = input.get(i + 1) {
                assert_eq!(g.duration, Some(next.dts.sub(f.dts)));
            }
        }
    }
}

/// Position of the first `kind` box header's type field in `data`.
fn find(data: &[u8], kind: &[u8; 4]) -> usize {
    data.windows(4).position(|w| w == kind).unwrap()
}

#[test]
fn damaged_real_fragments_are_typed_errors() {
    let src = avc_aac_25(6, Container::Mp4);
    let s = src.to_string_lossy().into_owned();
    let frag = media(
        "avc_aac_25_6s_frag.mp4",
        &[
            "-i",
            &s,
            "-map",
            "0",
            "-c",
            "copy",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    );
    let file = fs::read(&frag).unwrap();
    let moof = find(&file, b"moof") - 4;
    let init = Bytes::copy_from_slice(&file[..moof]);
    let body = &file[moof..];
    let reader = Fmp4Reader::new(init).unwrap();
    assert!(!reader
        .clone()
        .read_segment(Bytes::copy_from_slice(body))
        .unwrap()
        .is_empty());
    let err = |data: Vec<u8>| {
        let mut r = reader.clone();
        let e = r.read_segment(Bytes::from(data)).unwrap_err();
        // A failed read changes nothing.
        assert_eq!(r.next_decode_time(1), None);
        e
    };

    // Truncated in the moof.
    let e = err(body[..200].to_vec());
    assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    assert!(e.to_string().contains("past the end"), "{e}");
    // data_offset past the mdat.
    let trun = find(body, b"trun");
    let mut d = body.to_vec();
    d[trun + 12..trun + 16].copy_from_slice(&0x7fff_0000i32.to_be_bytes());
    let e = err(d);
    assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    assert!(e.to_string().contains("outside the mdat"), "{e}");
    // A huge sample count: over the limit, then over the trun's bytes.
    let mut d = body.to_vec();
    d[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(err(d).kind(), ErrorKind::Limit);
    let mut d = body.to_vec();
    d[trun + 8..trun + 12].copy_from_slice(&500_000u32.to_be_bytes());
    let e = err(d);
    assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    assert!(e.to_string().contains("exceeds its box"), "{e}");
    // A traf of a track the init segment does not have.
    let tfhd = find(body, b"tfhd");
    let mut d = body.to_vec();
    d[tfhd + 8..tfhd + 12].copy_from_slice(&77u32.to_be_bytes());
    let e = err(d);
    assert!(e.to_string().contains("without trex"), "{e}");
    // No tfdt and no earlier fragment to continue from.
    let tfdt = find(body, b"tfdt");
    let mut d = body.to_vec();
    d[tfdt..tfdt + 4].copy_from_slice(b"free");
    let e = err(d);
    assert!(e.to_string().contains("without tfdt"), "{e}");
}
