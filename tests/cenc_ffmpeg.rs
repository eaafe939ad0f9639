//! External decryption: a current FFmpeg (`imageio-ffmpeg`'s static build, see
//! `common::ffmpeg_current`) decrypts strom's `cenc` and `cbcs` fMP4 with
//! `-decryption_key` and decodes frames identical (framemd5) to the clear fMP4 strom wrote
//! from the same samples, without a decoder complaint; with a wrong key it does not.
//! Tracks: H.264 (x264 High, B-frames) and AAC-LC from one encode, and H.265 (x265).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::BytesMut;
use common::cmaf::{cut, demux, shift_to_zero};
use common::{avc_aac_25, ffmpeg_current, media, Container, TempDir};
use strom::container::fmp4::{protect_fragment, Fmp4Writer, ProtectionInfo, PsshBox};
use strom::crypto::{ContentKey, KeyId};
use strom::media::{Frame, MediaKind, TrackInfo};

const KID: KeyId = KeyId([0xa1; 16]);
const KEY: ContentKey = ContentKey([
    0x3b, 0xda, 0x33, 0x29, 0x15, 0x8a, 0x47, 0x89, 0x88, 0x08, 0x16, 0xa7, 0x0e, 0x7e, 0x43, 0x6d,
]);
const KEY_HEX: &str = "3bda3329158a4789880816a70e7e436d";

/// (clear file, cenc file, cbcs file) of one track: init + every fragment.
fn files(track: &TrackInfo, mut frames: Vec<Frame>, dir: &TempDir) -> [std::path::PathBuf; 3] {
    shift_to_zero(&mut frames);
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let every = i64::from(track.timescale.get()) * 2;
    let runs = cut(&frames, every, track.kind == MediaKind::Video);
    let mut clear = BytesMut::new();
    w.init_segment(&mut clear).unwrap();
    let mut outs = Vec::new();
    let schemes = [
        ProtectionInfo::cenc(KID).with_pssh(PsshBox::clearkey(vec![KID])),
        ProtectionInfo::cbcs(KID, [0x42; 16]).with_pssh(PsshBox::clearkey(vec![KID])),
    ];
    for p in &schemes {
        let mut init = BytesMut::new();
        w.protected_init_segment(p, &mut init).unwrap();
        outs.push(init);
    }
    for (n, r) in runs.iter().enumerate() {
        let end = frames.get(r.end).map(|f| f.dts);
        let mut frag = BytesMut::new();
        let info = w
            .media_segment(&frames[r.clone()], n as u32 + 1, end, &mut frag)
            .unwrap();
        for (p, out) in schemes.iter().zip(outs.iter_mut()) {
            protect_fragment(&frag, &info, track, p, &KEY, out).unwrap();
        }
        clear.extend_from_slice(&frag);
    }
    let name = format!("track{}", track.id);
    let paths = [
        dir.join(&format!("{name}-clear.mp4")),
        dir.join(&format!("{name}-cenc.mp4")),
        dir.join(&format!("{name}-cbcs.mp4")),
    ];
    std::fs::write(&paths[0], &clear).unwrap();
    std::fs::write(&paths[1], &outs[0]).unwrap();
    std::fs::write(&paths[2], &outs[1]).unwrap();
    paths
}

/// (framemd5 lines' md5 column, stderr) of the current FFmpeg decoding `path`.
fn decode(path: &Path, key: Option<&str>) -> (Vec<String>, String) {
    let mut cmd = Command::new(ffmpeg_current());
    cmd.args(["-nostdin", "-nostats", "-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let out = cmd
        .arg("-i")
        .arg(path)
        .args(["-map", "0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    let md5 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_string()))
        .collect();
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        err.push_str(&format!("\nexit {}", out.status));
    }
    (md5, err)
}

fn check_track(track: &TrackInfo, frames: Vec<Frame>, dir: &TempDir) {
    let n = frames.len();
    let [clear, cenc, cbcs] = files(track, frames, dir);
    let (reference, err) = decode(&clear, None);
    assert!(err.is_empty(), "clear: {err}");
    assert!(
        reference.len() + 2 >= n,
        "{} of {n} frames decoded",
        reference.len()
    );
    for (name, file) in [("cenc", &cenc), ("cbcs", &cbcs)] {
        let (got, err) = decode(file, Some(KEY_HEX));
        assert!(
            err.is_empty(),
            "{name}, track {}: ffmpeg says {err}",
            track.id
        );
        assert_eq!(got.len(), reference.len(), "{name}: frame count");
        let differ = got.iter().zip(&reference).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ, 0,
            "{name}, track {}: {differ} frames differ",
            track.id
        );
        // The test can fail: a wrong key gives other frames (or errors).
        let (bad, bad_err) = decode(file, Some("00112233445566778899aabbccddeeff"));
        assert!(
            bad != reference || !bad_err.is_empty(),
            "{name}: a wrong key decoded the same frames"
        );
        eprintln!(
            "{name} track {} ({:?}): {} frames identical to the clear fMP4",
            track.id,
            track.kind,
            got.len()
        );
    }
}

#[test]
fn ffmpeg_decrypts_h264_and_aac() {
    let (tracks, mut frames): (Vec<TrackInfo>, BTreeMap<u32, Vec<Frame>>) =
        demux(&avc_aac_25(6, Container::Mp4));
    let dir = TempDir::new("cenc-ffmpeg");
    for t in &tracks {
        check_track(t, frames.remove(&t.id).unwrap(), &dir);
    }
}

#[test]
fn ffmpeg_decrypts_h265() {
    let file = media(
        "hevc_cenc_ffmpeg_4s.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=4",
            "-c:v",
            "libx265",
            "-preset",
            "fast",
            "-x265-params",
            "log-level=error:keyint=50:min-keyint=50:open-gop=0:bframes=3:weightp=1:wpp=1:pools=1:frame-threads=1",
            "-tag:v",
            "hvc1",
        ],
    );
    let (tracks, mut frames) = demux(&file);
    let dir = TempDir::new("cenc-ffmpeg-hevc");
    let t = &tracks[0];
    check_track(t, frames.remove(&t.id).unwrap(), &dir);
}
