//! Published CENC test vectors (`tests/data/cenc/`, Shaka Packager output shipped by the
//! `vsd-mp4` crate; see the README there for source, licence and keys): strom reads the
//! protected init segments (`encv`/`enca`, `tenc`, the Clear Key `pssh`) and decrypts the
//! `cenc` and `cbcs` fragments (H.264 1080p with subsamples, AAC whole-sample; `saiz`/
//! `saio`/`senc`, 8-byte IVs, constant IVs, the 1:9 pattern) to
//! * samples byte-identical to what a current FFmpeg decrypts from the same files
//!   (`-decryption_key`, remuxed with `-c copy` and read back with strom's MP4 reader);
//! * the same samples from the `cenc` and the `cbcs` files (one source, one packager);
//! * a clear fMP4 that FFmpeg decodes without a complaint;
//!
//! and refuses `cens` with a typed error.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::{Bytes, BytesMut};
use common::cmaf::demux;
use common::{decode_errors, ffmpeg_current, repo_root, TempDir};
use sha2::{Digest, Sha256};
use strom::container::fmp4::{decrypt_fragment, Fmp4Reader, Fmp4Writer};
use strom::crypto::{ContentKey, KeyId, CLEARKEY_SYSTEM_ID};
use strom::media::{Frame, MediaKind};
use strom::time::Timestamp;
use strom::ErrorKind;

const VIDEO_KID: &str = "eb676abbcb345e96bbcf616630f1a3da";
const VIDEO_KEY: &str = "100b6c20940f779a4589152b57d2dacb";
const AUDIO_KID: &str = "63cb5f7184dd4b689a5c5ff11ee6a328";
const AUDIO_KEY: &str = "3bda3329158a4789880816a70e7e436d";

const SHA256: [(&str, &str); 10] = [
    (
        "cbcs/video_init.mp4",
        "fb44e5c6f5215a89d500b5e0baf98e29992703cf42e310b6b0213974ac109468",
    ),
    (
        "cbcs/video_1.m4s",
        "a888bc6c3e7503db3cd8b17dc492de6e7427a8d95f24899c6bad367b1d2532fe",
    ),
    (
        "cbcs/audio_init.mp4",
        "b5f17c162e8ebe5896c54932cc95dfb215ea0eda0c952e26fb5236586a2e0617",
    ),
    (
        "cbcs/audio_1.m4s",
        "d6338d8ad8d1c5fc48d0bc45b2126d3992864a43ce80d011deaebd2f0cf72023",
    ),
    (
        "cenc/video_init.mp4",
        "14b9c367837b14f98263cddc5b9d27795cd1fa684e4557835fcbcbe82aae4858",
    ),
    (
        "cenc/video_1.m4s",
        "48a750a3b9330cc9bcf6be70eac941a05ee53d7eafdb61e22b2a4813faab3bc1",
    ),
    (
        "cenc/audio_init.mp4",
        "fe51d6e9345e967513eee5aed87162315f363c2edd78227b708e947afbb8b43e",
    ),
    (
        "cenc/audio_1.m4s",
        "b8da7fd61c4aca97c59a0cdeaef516eaa44e847a47bce2614727ee2db01c3050",
    ),
    (
        "cens/video_init.mp4",
        "d2a01e67e4f7e03558b94cc31028eb81cc3307fba8536c1374b0423e9ec96214",
    ),
    (
        "cens/video_1.m4s",
        "7f4fdf8e519df9968178dcb7d89a5b38331a8d7161c7f705c87eddaa992f1a5b",
    ),
];

fn dir() -> PathBuf {
    repo_root().join("tests/data/cenc")
}

fn read(name: &str) -> Bytes {
    let path = dir().join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want = SHA256.iter().find(|(n, _)| *n == name).expect("listed").1;
    let got: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, want, "{name} changed");
    Bytes::from(data)
}

fn keys() -> Vec<(KeyId, ContentKey)> {
    vec![
        (
            KeyId::from_hex(VIDEO_KID).unwrap(),
            ContentKey::from_hex(VIDEO_KEY).unwrap(),
        ),
        (
            KeyId::from_hex(AUDIO_KID).unwrap(),
            ContentKey::from_hex(AUDIO_KEY).unwrap(),
        ),
    ]
}

/// strom's decryption of `<scheme>/<track>_init.mp4` + `<scheme>/<track>_1.m4s`.
fn ours(scheme: &str, track: &str) -> (strom::media::TrackInfo, Vec<Frame>) {
    let init = read(&format!("{scheme}/{track}_init.mp4"));
    let seg = read(&format!("{scheme}/{track}_1.m4s"));
    let (tracks, frames) = decrypt_fragment(init, seg, &keys()).unwrap();
    (tracks[0].clone(), frames)
}

/// A current FFmpeg's decryption of the same files, remuxed clear and read back.
fn ffmpeg(scheme: &str, track: &str, key: &str, tmp: &TempDir) -> Vec<Frame> {
    let mut joined = read(&format!("{scheme}/{track}_init.mp4")).to_vec();
    joined.extend_from_slice(&read(&format!("{scheme}/{track}_1.m4s")));
    let input = tmp.join(&format!("{scheme}-{track}.mp4"));
    std::fs::write(&input, &joined).unwrap();
    let output = tmp.join(&format!("{scheme}-{track}-clear.mp4"));
    let out = Command::new(ffmpeg_current())
        .args(["-nostdin", "-v", "error", "-decryption_key", key, "-i"])
        .arg(&input)
        .args(["-map", "0", "-c", "copy", "-f", "mp4", "-y"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, mut frames) = demux(&output);
    frames.pop_first().unwrap().1
}

/// Writes `frames` as a clear fMP4 (one fragment) and returns its path.
fn clear_fmp4(track: &strom::media::TrackInfo, frames: &[Frame], path: &Path) {
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut out = BytesMut::new();
    w.init_segment(&mut out).unwrap();
    let last = frames.last().unwrap();
    let end = Timestamp::new(
        last.dts.ticks() + last.duration.map_or(0, |d| d.ticks()),
        last.dts.scale(),
    );
    w.media_segment(frames, 1, Some(end), &mut out).unwrap();
    std::fs::write(path, &out).unwrap();
}

#[test]
fn init_segments_describe_the_protection() {
    for scheme in ["cenc", "cbcs"] {
        for (track, kid) in [("video", VIDEO_KID), ("audio", AUDIO_KID)] {
            let r = Fmp4Reader::new(read(&format!("{scheme}/{track}_init.mp4"))).unwrap();
            let t = &r.tracks()[0];
            let e = r.encryption(t.id).expect("encrypted track");
            assert_eq!(&e.scheme, scheme.as_bytes());
            assert_eq!(e.key_id, KeyId::from_hex(kid).unwrap());
            assert!(e.protected);
            let video = t.kind == MediaKind::Video;
            assert_eq!(&e.original_format, if video { b"avc1" } else { b"mp4a" });
            match scheme {
                "cenc" => {
                    assert_eq!(e.per_sample_iv_size, 8);
                    assert!(e.constant_iv.is_none());
                }
                _ => {
                    assert_eq!(e.per_sample_iv_size, 0);
                    assert_eq!(e.constant_iv.map(|iv| iv.as_bytes().len()), Some(16));
                    let (crypt, skip) = if video { (1, 9) } else { (0, 0) };
                    assert_eq!((e.pattern.crypt, e.pattern.skip), (crypt, skip));
                }
            }
            assert_eq!(r.pssh().len(), 1);
            assert_eq!(r.pssh()[0].system_id, CLEARKEY_SYSTEM_ID);
            assert_eq!(r.pssh()[0].key_ids.len(), 2);
        }
    }
}

#[test]
fn strom_decrypts_as_ffmpeg_does() {
    let tmp = TempDir::new("cenc-vectors");
    for (track, key, count) in [("video", VIDEO_KEY, 120), ("audio", AUDIO_KEY, 217)] {
        let mut by_scheme = Vec::new();
        for scheme in ["cenc", "cbcs"] {
            let (info, frames) = ours(scheme, track);
            assert_eq!(frames.len(), count, "{scheme} {track}");
            let reference = ffmpeg(scheme, track, key, &tmp);
            assert_eq!(reference.len(), frames.len(), "{scheme} {track}");
            for (i, (a, b)) in frames.iter().zip(&reference).enumerate() {
                assert!(
                    a.data == b.data,
                    "{scheme} {track}: sample {i} differs from FFmpeg's"
                );
            }
            // The decrypted samples decode cleanly.
            let path = tmp.join(&format!("{scheme}-{track}-strom.mp4"));
            clear_fmp4(&info, &frames, &path);
            let errors = decode_errors(&path);
            assert!(errors.is_empty(), "{scheme} {track}: {errors}");
            by_scheme.push(frames);
            eprintln!("{scheme} {track}: {count} samples identical to FFmpeg's decryption");
        }
        // One source, one packager: cenc and cbcs decrypt to the same samples.
        assert!(by_scheme[0]
            .iter()
            .zip(&by_scheme[1])
            .all(|(a, b)| a.data == b.data));
        // The encrypted samples differ from them (the test can fail).
        let mut r = Fmp4Reader::new(read(&format!("cenc/{track}_init.mp4"))).unwrap();
        let stored = r
            .read_segment(read(&format!("cenc/{track}_1.m4s")))
            .unwrap();
        assert!(stored
            .iter()
            .zip(&by_scheme[0])
            .any(|(a, b)| a.data != b.data));
    }
}

#[test]
fn wrong_keys_and_other_schemes_fail() {
    // Swapped keys: no clear frames (CTR decrypts to garbage without an error).
    let swapped = vec![
        (
            KeyId::from_hex(VIDEO_KID).unwrap(),
            ContentKey::from_hex(AUDIO_KEY).unwrap(),
        ),
        (
            KeyId::from_hex(AUDIO_KID).unwrap(),
            ContentKey::from_hex(VIDEO_KEY).unwrap(),
        ),
    ];
    let (_, good) = ours("cenc", "audio");
    let (_, bad) = decrypt_fragment(
        read("cenc/audio_init.mp4"),
        read("cenc/audio_1.m4s"),
        &swapped,
    )
    .unwrap();
    assert!(bad.iter().zip(&good).all(|(a, b)| a.data != b.data));
    // No key for the track: a crypto error.
    let e = decrypt_fragment(
        read("cbcs/video_init.mp4"),
        read("cbcs/video_1.m4s"),
        &keys()[1..],
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Crypto, "{e}");
    // cens (AES-CTR with a pattern) is read but not decrypted.
    let r = Fmp4Reader::new(read("cens/video_init.mp4")).unwrap();
    assert_eq!(&r.encryption(r.tracks()[0].id).unwrap().scheme, b"cens");
    let e = decrypt_fragment(
        read("cens/video_init.mp4"),
        read("cens/video_1.m4s"),
        &keys(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}
