//! fMP4/CMAF writer against real encodes: demux an MP4 with strom, write one init + fragments
//! per track, then check the result with an independent parser (`mp4-atom`) and with
//! ffmpeg/ffprobe (clean decode, identical decoded frames, same timestamps and key flags).

mod common;

use std::fs;
use std::path::Path;

use bytes::BytesMut;
use common::cmaf::{cut, demux, shift_to_zero};
use common::{
    assert_same_audio, avc_aac_25, decode_errors, framemd5, media, packets, Container, TempDir,
};
use mp4_atom::{Any, Decode};
use strom::container::fmp4::{Fmp4Writer, FragmentInfo};
use strom::media::{CodecConfig, Frame, MediaKind, TrackInfo};

/// Writes init + fragments; returns the file and, per fragment, its offset and info.
fn write(track: &TrackInfo, frames: &[Frame], every: i64) -> (Vec<u8>, Vec<(usize, FragmentInfo)>) {
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut out = BytesMut::new();
    w.init_segment(&mut out).unwrap();
    let runs = cut(frames, every, track.kind == MediaKind::Video);
    assert!(runs.len() >= 3, "{} fragments", runs.len());
    let mut infos = Vec::new();
    for (n, r) in runs.iter().enumerate() {
        let end = frames.get(r.end).map(|f| f.dts);
        let at = out.len();
        let info = w
            .media_segment(&frames[r.clone()], n as u32 + 1, end, &mut out)
            .unwrap();
        assert_eq!(info.len, out.len() - at);
        infos.push((at, info));
    }
    (out.to_vec(), infos)
}

/// Decodes every leaf box under the containers we write with mp4-atom: none may be unknown.
fn walk(data: &[u8], depth: usize) {
    const CONTAINERS: [&[u8; 4]; 9] = [
        b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf",
    ];
    let mut at = 0;
    while at < data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        let whole = &data[at..at + size];
        let mut view = whole;
        let any = Any::decode(&mut view)
            .unwrap_or_else(|e| panic!("{} at depth {depth}: {e}", String::from_utf8_lossy(&kind)));
        assert!(view.is_empty());
        assert!(
            !matches!(any, Any::Unknown(..)),
            "unknown box {:?}",
            any.kind()
        );
        if let Any::Stsd(stsd) = &any {
            assert!(
                !format!("{:?}", stsd.codecs).contains("Unknown"),
                "{stsd:?}"
            );
        }
        if CONTAINERS.contains(&&kind) {
            walk(&whole[8..], depth + 1);
        }
        at += size;
    }
}

/// Parses the whole file with mp4-atom and checks every box against what was written.
fn check_with_mp4_atom(
    file: &[u8],
    track: &TrackInfo,
    frames: &[Frame],
    infos: &[(usize, FragmentInfo)],
) {
    let mut rest = file;
    let mut boxes = Vec::new();
    while !rest.is_empty() {
        let at = file.len() - rest.len();
        let any = Any::decode(&mut rest).unwrap_or_else(|e| panic!("box at {at}: {e}"));
        boxes.push((at, any));
    }
    assert_eq!(boxes.len(), 2 + 3 * infos.len());
    let Any::Ftyp(ftyp) = &boxes[0].1 else {
        panic!("ftyp first")
    };
    assert_eq!(ftyp.major_brand, b"iso6".into());
    let Any::Moov(moov) = &boxes[1].1 else {
        panic!("moov second")
    };
    // Strict: every box of the file is one mp4-atom knows and decodes on its own.
    walk(file, 0);
    assert_eq!(moov.mvhd.timescale, track.timescale.get());
    assert_eq!(moov.trak.len(), 1);
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.track_id, track.id);
    assert_eq!(trak.mdia.mdhd.timescale, track.timescale.get());
    let codec = &trak.mdia.minf.stbl.stsd.codecs[0];
    let name = format!("{codec:?}");
    let expected = match &track.config {
        CodecConfig::H264(_) => "Avc1",
        CodecConfig::H265(_) => "Hvc1",
        CodecConfig::Aac(_) => "Mp4a",
        CodecConfig::Opus(_) => "Opus",
        _ => unreachable!(),
    };
    assert!(name.starts_with(expected), "{name}");
    let trex = &moov.mvex.as_ref().unwrap().trex[0];
    assert_eq!(trex.track_id, track.id);

    let mut sample = 0usize;
    for (k, (at, info)) in infos.iter().enumerate() {
        let (styp_at, styp) = &boxes[2 + 3 * k];
        assert_eq!(styp_at, at);
        assert!(matches!(styp, Any::Styp(_)), "{:?}", styp.kind());
        let (moof_at, moof) = &boxes[3 + 3 * k];
        let Any::Moof(moof) = moof else {
            panic!("moof")
        };
        assert_eq!(*moof_at, at + info.moof_offset);
        assert_eq!(moof.mfhd.sequence_number, k as u32 + 1);
        assert_eq!(moof.traf.len(), 1);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, track.id);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
        assert_eq!(tfdt, info.base_decode_time);
        assert_eq!(tfdt as i64, frames[sample].dts.ticks());
        assert_eq!(traf.trun.len(), 1);
        let trun = &traf.trun[0];
        assert_eq!(trun.samples.len(), info.samples.len());
        // data_offset (from the moof) lands on the first byte of the mdat body.
        let (mdat_at, mdat) = &boxes[4 + 3 * k];
        let Any::Mdat(mdat) = mdat else {
            panic!("mdat")
        };
        let data_offset = trun.data_offset.unwrap() as usize;
        assert_eq!(moof_at + data_offset, mdat_at + 8);
        assert_eq!(moof_at + data_offset, at + info.data_offset);
        let mut pos = 0;
        for (e, s) in trun.samples.iter().zip(&info.samples) {
            let f = &frames[sample];
            assert_eq!(e.size, Some(f.data.len() as u32));
            assert_eq!(s.size as usize, f.data.len());
            assert_eq!(e.duration, Some(s.duration));
            let key = e.flags.unwrap() & 0x0001_0000 == 0;
            assert_eq!(key, f.is_keyframe() || track.kind == MediaKind::Audio);
            assert_eq!(s.keyframe, key);
            if track.kind == MediaKind::Video {
                assert_eq!(e.cts, Some(f.pts.ticks() - f.dts.ticks()));
            }
            assert_eq!(&mdat.data[pos..pos + f.data.len()], &f.data[..]);
            assert_eq!(
                &file[at + s.offset..at + s.offset + f.data.len()],
                &f.data[..]
            );
            pos += f.data.len();
            sample += 1;
        }
        assert_eq!(pos, mdat.data.len());
    }
    assert_eq!(sample, frames.len());
}

/// What ffmpeg/ffprobe make of `out` against the source's stream `spec`.
fn check_with_ffmpeg(source: &Path, out: &Path, spec: &str, video: bool) {
    assert_eq!(decode_errors(out), "", "{} decodes cleanly", out.display());
    let a = framemd5(source, spec);
    let b = framemd5(out, "0");
    if video {
        assert_eq!(a.len(), b.len(), "decoded frame count");
        assert!(a == b, "decoded video differs from the source");
    } else {
        assert_same_audio(&a, &b, &out.display().to_string());
    }
    let s = packets(source, spec);
    let o = packets(out, "0");
    assert_eq!(s.time_base, o.time_base);
    assert_eq!(s.packets.len(), o.packets.len());
    let shift = o.packets[0].dts.unwrap() - s.packets[0].dts.unwrap();
    for (p, q) in s.packets.iter().zip(&o.packets) {
        assert_eq!(q.dts.unwrap() - p.dts.unwrap(), shift, "dts");
        assert_eq!(q.pts.unwrap() - p.pts.unwrap(), shift, "pts");
        assert_eq!(p.key, q.key, "key flag");
        assert_eq!(p.size, q.size);
    }
}

fn package(source: &Path, tag: &str, seconds: i64, expect: &[&str]) {
    let dir = TempDir::new(tag);
    let (tracks, mut frames) = demux(source);
    assert_eq!(tracks.len(), expect.len());
    for (track, codec) in tracks.iter().zip(expect) {
        assert!(
            track.config.codecs_string().starts_with(codec),
            "{}",
            track.config.codecs_string()
        );
        let video = track.kind == MediaKind::Video;
        let frames = frames.get_mut(&track.id).unwrap();
        shift_to_zero(frames);
        let every = seconds * i64::from(track.timescale.get());
        let (file, infos) = write(track, frames, every);
        check_with_mp4_atom(&file, track, frames, &infos);
        let path = dir.join(if video { "video.mp4" } else { "audio.mp4" });
        fs::write(&path, &file).unwrap();
        check_with_ffmpeg(source, &path, if video { "v:0" } else { "a:0" }, video);
    }
}

#[test]
fn h264_and_aac() {
    package(
        &avc_aac_25(6, Container::Mp4),
        "fmp4-avc",
        2,
        &["avc1", "mp4a.40.2"],
    );
}

#[test]
fn h265_and_opus() {
    let source = media(
        "hevc_opus_4s.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=4",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=4",
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "log-level=error:pools=1:frame-threads=1:keyint=25:min-keyint=25:scenecut=0:open-gop=0",
            "-c:a",
            "libopus",
        ],
    );
    package(&source, "fmp4-hevc", 1, &["hvc1", "opus"]);
}
