//! Protected VOD packaging through the `package` example (`--encrypt aes128|sample-aes|
//! cenc|cbcs`), judged by tools nobody on this project wrote. Every test packages the same
//! input twice, in the clear and protected, and compares:
//!
//! * `aes128`: `openssl enc -d -aes-128-cbc` turns every encrypted segment into the clear
//!   package's segment byte for byte (IV = media sequence number, and an explicit `--iv`);
//!   Debian's ffmpeg 5.1 plays the encrypted HLS (`-allowed_extensions ALL`) to the same
//!   frames (framemd5) as the clear HLS; with a wrong key file it does not.
//! * `sample-aes`: ffmpeg's HLS demuxer decrypts the SAMPLE-AES package to the clear
//!   package's frames, every audio frame and every video frame but one: ffmpeg 5.1 never
//!   decrypts the last access unit of the last segment (its H.264 parser hands that
//!   picture over only after the demuxer has left the segment, as tests/sample_aes.rs and
//!   tests/live_protect.rs found); the test names that frame and allows only it.
//! * `cenc` and `cbcs`: a current FFmpeg (`common::ffmpeg_current`) with `-decryption_key`
//!   decodes the init segment and fragments of every rendition to the clear rendition's
//!   frames, a wrong key does not; mp4-atom decodes every protected init (`encv`/`enca`,
//!   `sinf`) and fragment (`senc`, `saiz`, `saio`) strictly; dash-mpd-core parses the MPD
//!   (conformity checks included) with its `ContentProtection`; m3u8-rs parses the
//!   playlists and their keys.
//! * Shaka Player in headless Chromium plays the `cenc` DASH package with W3C Clear Key,
//!   fetching the licence from a test server on 127.0.0.1 (`LicenceServer`: the files
//!   plus `POST /licence` answered by `strom::origin::clearkey`), and the `cbcs` HLS fMP4
//!   package with its identity key.

mod common;
#[path = "../examples/common/input.rs"]
mod input;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::players::{play, PlayOpts, Player};
use common::protect::{package, package_ok, strict_fragment, strict_init, LicenceServer};
use common::*;
use strom::crypto::{ContentKey, KeyId, Scheme, CLEARKEY_SYSTEM_ID};
use strom::media::{FrameFlags, Item};
use strom::package::{VodEncryption, VodFormats, VodPackager, VodPackagerOptions};
use strom::pipeline::Stage;
use strom::time::Timestamp;

const KEY_HEX: &str = "3bda3329158a4789880816a70e7e436d";
const KID_HEX: &str = "eb676abbcb345e96bbcf616630f1a3da";
const WRONG_KEY_HEX: &str = "00112233445566778899aabbccddeeff";

fn key() -> ContentKey {
    ContentKey::from_hex(KEY_HEX).unwrap()
}
fn kid() -> KeyId {
    KeyId::from_hex(KID_HEX).unwrap()
}

/// 12 s of 640x360 H.264 (B-frames, keyframe every 2 s) + AAC, cut every 4 s.
fn input() -> PathBuf {
    avc_aac_25(12, Container::Mp4)
}

/// `package INPUT --out DIR --segment-duration 4 --format FORMAT [EXTRA...]`.
fn pack(dir: &Path, format: &str, extra: &[&str]) -> String {
    let mut args = vec!["--segment-duration", "4", "--format", format];
    args.extend_from_slice(extra);
    package_ok(&input(), dir, &args)
}

/// The TS segments of a package directory, by name.
fn ts_segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("segment") && n.ends_with(".ts"))
        .collect();
    names.sort();
    names
}

/// The media segments of a CMAF rendition folder, by number.
fn fragments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let n = p
                .file_name()?
                .to_str()?
                .strip_suffix(".m4s")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// `openssl enc -d -aes-128-cbc -K KEY -iv IV` of `file` (PKCS#7 padding removed).
fn openssl_decrypt(file: &Path, key_hex: &str, iv_hex: &str) -> Vec<u8> {
    let out = Command::new(tool("openssl"))
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            key_hex,
            "-iv",
            iv_hex,
            "-in",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl enc -d on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (md5 column, stderr) of the current FFmpeg decoding every stream of `file`, with
/// `-decryption_key` when `key` is given.
fn current_md5(file: &Path, key: Option<&str>) -> (Vec<String>, String) {
    let mut cmd = Command::new(ffmpeg_current());
    cmd.args(["-nostdin", "-nostats", "-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let out = cmd
        .arg("-i")
        .arg(file)
        .args(["-map", "0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("the current ffmpeg runs");
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        err.push_str(&format!("\nexit {}", out.status));
    }
    (md5_column(&out.stdout), err)
}

/// The media playlist `path` as m3u8-rs reads it.
fn media_playlist(path: &Path) -> m3u8_rs::MediaPlaylist {
    let text = fs::read(path).unwrap();
    m3u8_rs::parse_media_playlist_res(&text)
        .unwrap_or_else(|e| panic!("m3u8-rs: {}: {e:?}", path.display()))
}

#[test]
fn aes128_segments_are_the_clear_segments_encrypted() {
    let clear = TempDir::new("enc-aes-clear");
    let enc = TempDir::new("enc-aes");
    pack(clear.path(), "hls-ts", &[]);
    let out = pack(
        enc.path(),
        "hls-ts",
        &["--encrypt", "aes128", "--key", KEY_HEX],
    );
    assert!(out.contains("aes128"), "{out}");

    // The key file and the playlist (m3u8-rs): one AES-128 key, no IV attribute.
    assert_eq!(fs::read(enc.join("key.bin")).unwrap(), key().as_bytes());
    let pl = media_playlist(&enc.join("media.m3u8"));
    let k = pl.segments[0]
        .key
        .as_ref()
        .expect("EXT-X-KEY before the first segment");
    assert_eq!(k.method, m3u8_rs::KeyMethod::AES128);
    assert_eq!(k.uri.as_deref(), Some("key.bin"));
    assert_eq!(k.iv, None);
    assert!(pl.segments[1..].iter().all(|s| s.key.is_none()));
    assert_eq!(pl.media_sequence, 0);

    // openssl: each segment decrypts (IV = its media sequence number) to the clear one.
    let names = ts_segments(enc.path());
    assert_eq!(names, ts_segments(clear.path()));
    assert!(names.len() >= 3, "{names:?}");
    for (seq, name) in names.iter().enumerate() {
        let c = fs::read(clear.join(name)).unwrap();
        let e = fs::read(enc.join(name)).unwrap();
        assert_eq!(e.len(), (c.len() / 16 + 1) * 16, "{name}: PKCS#7 length");
        assert_ne!(&e[..188], &c[..188], "{name} is encrypted");
        let iv = format!("{seq:032x}");
        let d = openssl_decrypt(&enc.join(name), KEY_HEX, &iv);
        assert!(
            d == c,
            "{name}: openssl's decryption differs from the clear segment"
        );
    }
    println!(
        "aes128: {} segments decrypted by openssl to the clear segments",
        names.len()
    );

    // ffmpeg 5.1 plays it to the clear package's frames.
    let ff = tool("ffmpeg");
    for stream in ["v:0", "a:0"] {
        let reference = hls_framemd5(&ff, &clear.join("index.m3u8"), stream);
        assert!(
            reference.len() > 100,
            "{stream}: {} frames",
            reference.len()
        );
        let got = hls_framemd5(&ff, &enc.join("index.m3u8"), stream);
        assert!(
            got == reference,
            "{stream}: the encrypted HLS decodes differently"
        );
        println!("aes128: {} {stream} frames identical", got.len());
    }
    // The check can fail: a wrong key gives other pictures (or errors).
    fs::write(enc.join("key.bin"), [0u8; 16]).unwrap();
    let wrong = Command::new(&ff)
        .args([
            "-nostdin",
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
        ])
        .arg(enc.join("index.m3u8"))
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let reference = hls_framemd5(&ff, &clear.join("index.m3u8"), "v:0");
    assert_ne!(md5_column(&wrong.stdout), reference, "a wrong key decoded");

    // An explicit IV and key URI (with the key id) are written and used.
    let explicit = TempDir::new("enc-aes-iv");
    let iv = "0x000102030405060708090a0b0c0d0e0f";
    pack(
        explicit.path(),
        "hls-ts",
        &[
            "--encrypt",
            "aes128",
            "--key",
            KEY_HEX,
            "--kid",
            KID_HEX,
            "--iv",
            iv,
            "--key-uri",
            "https://keys.example/{kid}.key",
        ],
    );
    assert!(
        !explicit.join("key.bin").exists(),
        "no key file with --key-uri"
    );
    let pl = media_playlist(&explicit.join("media.m3u8"));
    let k = pl.segments[0].key.as_ref().unwrap();
    assert_eq!(
        k.uri.as_deref(),
        Some(format!("https://keys.example/{KID_HEX}.key").as_str())
    );
    assert_eq!(k.iv.as_deref(), Some(iv));
    for name in &names {
        let d = openssl_decrypt(&explicit.join(name), KEY_HEX, &iv[2..]);
        assert!(d == fs::read(clear.join(name)).unwrap(), "{name} with --iv");
    }
}

#[test]
fn sample_aes_decodes_to_the_clear_frames() {
    let clear = TempDir::new("enc-saes-clear");
    let enc = TempDir::new("enc-saes");
    pack(clear.path(), "hls-ts", &[]);
    pack(
        enc.path(),
        "hls-ts",
        &[
            "--encrypt",
            "sample-aes",
            "--key",
            KEY_HEX,
            "--kid",
            KID_HEX,
        ],
    );
    // One key with an explicit IV (default: the key id's bytes).
    let pl = media_playlist(&enc.join("media.m3u8"));
    let k = pl.segments[0].key.as_ref().unwrap();
    assert_eq!(k.method, m3u8_rs::KeyMethod::SampleAES);
    assert_eq!(k.uri.as_deref(), Some("key.bin"));
    assert_eq!(k.iv.as_deref(), Some(format!("0x{KID_HEX}").as_str()));
    assert!(pl.segments[1..].iter().all(|s| s.key.is_none()));
    assert_eq!(fs::read(enc.join("key.bin")).unwrap(), key().as_bytes());
    // The PMT announces SAMPLE-AES (stream types 0xdb and 0xcf, private data `zavc`).
    let names = ts_segments(enc.path());
    for name in &names {
        let seg = fs::read(enc.join(name)).unwrap();
        let pmt = &seg[188..376];
        assert!(
            pmt.windows(4).any(|w| w == b"zavc") && pmt.windows(4).any(|w| w == b"apad"),
            "{name}: PMT without SAMPLE-AES descriptors"
        );
        assert_ne!(seg, fs::read(clear.join(name)).unwrap());
    }

    // The frame ffmpeg 5.1 cannot decrypt: the last video access unit in decode order,
    // by its presentation index.
    let pk = packets(&clear.join("index.m3u8"), "v:0");
    let mut pts: Vec<i64> = pk.packets.iter().filter_map(|p| p.pts).collect();
    let last_pts = pk.packets.last().and_then(|p| p.pts).unwrap();
    pts.sort_unstable();
    let excused = pts.binary_search(&last_pts).unwrap();

    let ff = tool("ffmpeg");
    let reference = hls_framemd5(&ff, &clear.join("index.m3u8"), "v:0");
    let got = hls_framemd5(&ff, &enc.join("index.m3u8"), "v:0");
    assert_eq!(got.len(), reference.len(), "video frame count");
    let differ: Vec<usize> = (0..got.len()).filter(|&i| got[i] != reference[i]).collect();
    assert!(
        differ.iter().all(|&i| i == excused),
        "video frames {differ:?} differ (only {excused}, the last access unit, may)"
    );
    println!(
        "sample-aes: {} of {} video frames identical (differing: {differ:?}, excused {excused})",
        got.len() - differ.len(),
        got.len()
    );
    let a_ref = hls_framemd5(&ff, &clear.join("index.m3u8"), "a:0");
    let a_got = hls_framemd5(&ff, &enc.join("index.m3u8"), "a:0");
    assert!(a_ref.len() > 100);
    assert!(a_got == a_ref, "audio differs");
    println!("sample-aes: {} audio frames identical", a_got.len());

    // The check can fail: a wrong key file gives wrong pictures.
    fs::write(enc.join("key.bin"), [0u8; 16]).unwrap();
    let wrong = hls_framemd5(&ff, &enc.join("index.m3u8"), "v:0");
    let bad = wrong.iter().zip(&reference).filter(|(a, b)| a != b).count();
    assert!(
        bad > wrong.len() / 2,
        "{bad} of {} frames differ with a wrong key",
        wrong.len()
    );
}

/// One `cenc`/`cbcs` package checked against the clear one.
fn check_cmaf_scheme(scheme: &str) {
    let clear = TempDir::new(&format!("enc-{scheme}-clear"));
    let enc = TempDir::new(&format!("enc-{scheme}"));
    pack(clear.path(), "hls-fmp4,dash", &[]);
    let laurl = "http://127.0.0.1:9/licence?kid={kid}";
    let out = pack(
        enc.path(),
        "hls-fmp4,dash",
        &[
            "--encrypt",
            scheme,
            "--key",
            KEY_HEX,
            "--kid",
            KID_HEX,
            "--licence-url",
            laurl,
        ],
    );
    assert!(out.contains(scheme), "{out}");
    let cenc = scheme == "cenc";
    for rendition in ["v1", "a2"] {
        let video = rendition == "v1";
        let what = format!("{scheme} {rendition}");
        // mp4-atom: the protected init segment.
        let init = fs::read(enc.join(&format!("{rendition}/init.mp4"))).unwrap();
        let p = strict_init(&init, &what);
        assert_eq!(p.entry, if video { "encv" } else { "enca" }, "{what}");
        assert_eq!(p.original, if video { "avc1" } else { "mp4a" }, "{what}");
        assert_eq!(p.scheme, (scheme.to_string(), 0x0001_0000), "{what}");
        assert!(p.protected);
        assert_eq!(p.kid, kid().0, "{what}: default_KID");
        if cenc {
            assert_eq!((p.tenc_version, p.iv_size), (0, 8), "{what}");
            assert!(p.constant_iv.is_empty());
        } else {
            assert_eq!((p.tenc_version, p.iv_size), (1, 0), "{what}");
            assert_eq!(p.pattern, if video { (1, 9) } else { (0, 0) }, "{what}");
            assert_eq!(p.constant_iv, kid().0, "{what}: constant IV = key id");
        }
        assert_eq!(
            p.pssh,
            vec![(CLEARKEY_SYSTEM_ID, vec![kid().0])],
            "{what}: one Clear Key pssh with the key id"
        );
        // mp4-atom: every fragment, with senc (and saiz/saio but for cbcs audio).
        let frags = fragments(&enc.join(rendition));
        assert_eq!(frags.len(), fragments(&clear.join(rendition)).len());
        assert!(frags.len() >= 3, "{what}: {} fragments", frags.len());
        let mut protected = init.clone();
        for f in &frags {
            let data = fs::read(f).unwrap();
            let fp = strict_fragment(&data, &format!("{what} {}", f.display()));
            assert!(fp.samples > 0);
            assert_eq!(fp.senc, Some(video), "{what}: senc, subsamples for video");
            if !cenc && !video {
                assert_eq!(
                    (fp.saiz, fp.saio),
                    (0, 0),
                    "{what}: cbcs audio has no aux info"
                );
            } else {
                assert_eq!((fp.saiz, fp.saio), (1, 1), "{what}");
                assert!(fp.saio_hits_senc, "{what}: saio points at the senc entries");
            }
            protected.extend_from_slice(&data);
        }
        let mut plain = fs::read(clear.join(&format!("{rendition}/init.mp4"))).unwrap();
        for f in fragments(&clear.join(rendition)) {
            plain.extend_from_slice(&fs::read(f).unwrap());
        }
        let (pf, cf) = (
            enc.join(&format!("{rendition}.mp4")),
            clear.join(&format!("{rendition}.mp4")),
        );
        fs::write(&pf, &protected).unwrap();
        fs::write(&cf, &plain).unwrap();
        // The current FFmpeg decrypts it to the clear rendition's frames.
        let (reference, err) = current_md5(&cf, None);
        assert!(err.is_empty(), "{what} clear: {err}");
        assert!(reference.len() > 100, "{what}: {} frames", reference.len());
        let (got, err) = current_md5(&pf, Some(KEY_HEX));
        assert!(err.is_empty(), "{what}: ffmpeg says {err}");
        assert!(got == reference, "{what}: decrypted frames differ");
        let (bad, bad_err) = current_md5(&pf, Some(WRONG_KEY_HEX));
        assert!(
            bad != reference || !bad_err.is_empty(),
            "{what}: a wrong key decoded the same frames"
        );
        println!(
            "{what}: {} fragments strict in mp4-atom, {} frames decrypted identical",
            frags.len(),
            got.len()
        );
    }

    // dash-mpd-core: the MPD with its ContentProtection, every AdaptationSet.
    let xml = fs::read_to_string(enc.join("manifest.mpd")).unwrap();
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let errors = dash_mpd_core::check_conformity(&mpd);
    assert!(errors.is_empty(), "conformity: {errors:?}\n{xml}");
    let sets = &mpd.periods[0].adaptations;
    assert_eq!(sets.len(), 2);
    let laurl_expanded = laurl.replace("{kid}", KID_HEX);
    for set in sets {
        let cps = &set.ContentProtection;
        assert_eq!(cps.len(), 2, "{xml}");
        assert_eq!(cps[0].schemeIdUri, "urn:mpeg:dash:mp4protection:2011");
        assert_eq!(cps[0].value.as_deref(), Some(scheme));
        assert_eq!(cps[0].default_KID.as_deref(), Some(kid().uuid().as_str()));
        assert_eq!(
            cps[1].schemeIdUri,
            "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
        );
        assert_eq!(cps[1].cenc_pssh.len(), 1);
        let url = cps[1]
            .laurl
            .as_ref()
            .or(cps[1].clearkey_laurl.as_ref())
            .and_then(|l| l.content.as_deref());
        assert_eq!(url, Some(laurl_expanded.as_str()), "{xml}");
    }
    // The clear MPD has none.
    let clear_xml = fs::read_to_string(clear.join("manifest.mpd")).unwrap();
    assert!(!clear_xml.contains("ContentProtection"));

    // m3u8-rs: the playlists and their identity keys.
    let master = fs::read(enc.join("cmaf.m3u8")).unwrap();
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("m3u8-rs: cmaf.m3u8");
    assert!(!master.variants.is_empty());
    let method = if cenc {
        m3u8_rs::KeyMethod::Other("SAMPLE-AES-CTR".into())
    } else {
        m3u8_rs::KeyMethod::SampleAES
    };
    for rendition in ["v1", "a2"] {
        let pl = media_playlist(&enc.join(&format!("{rendition}/media.m3u8")));
        let k = pl.segments[0].key.as_ref().expect("EXT-X-KEY");
        assert_eq!(k.method, method, "{rendition}");
        assert_eq!(k.uri.as_deref(), Some("../key.bin"));
        assert_eq!(k.keyformat.as_deref(), Some("identity"));
        assert_eq!(k.iv, None);
        assert!(pl.segments[1..].iter().all(|s| s.key.is_none()));
        let clear_pl = media_playlist(&clear.join(&format!("{rendition}/media.m3u8")));
        assert!(clear_pl.segments[0].key.is_none());
        assert_eq!(pl.segments.len(), clear_pl.segments.len());
    }
    assert_eq!(fs::read(enc.join("key.bin")).unwrap(), key().as_bytes());
}

#[test]
fn cenc_decrypts_to_the_clear_renditions() {
    check_cmaf_scheme("cenc");
}

#[test]
fn cbcs_decrypts_to_the_clear_renditions() {
    check_cmaf_scheme("cbcs");
}

#[test]
fn explicit_ivs_reach_the_init_segment() {
    let dir = TempDir::new("enc-iv");
    let iv = "00112233445566778899aabbccddeeff";
    pack(
        dir.path(),
        "dash",
        &[
            "--encrypt",
            "cbcs",
            "--key",
            KEY_HEX,
            "--kid",
            KID_HEX,
            "--iv",
            iv,
        ],
    );
    let p = strict_init(&fs::read(dir.join("v1/init.mp4")).unwrap(), "cbcs --iv");
    assert_eq!(hex(&p.constant_iv), iv);
    // DASH alone: no key file, no playlist.
    assert!(!dir.join("key.bin").exists());
    assert!(!dir.join("cmaf.m3u8").exists());
    // cenc takes an 8-byte seed: the files differ from the default seed's, and both
    // decrypt.
    let seeded = TempDir::new("enc-iv-cenc");
    let plain = TempDir::new("enc-iv-cenc0");
    let args = ["--encrypt", "cenc", "--key", KEY_HEX, "--kid", KID_HEX];
    let mut with_iv = args.to_vec();
    with_iv.extend(["--iv", "0x0102030405060708"]);
    pack(seeded.path(), "dash", &with_iv);
    pack(plain.path(), "dash", &args);
    let a = fs::read(seeded.join("v1/1.m4s")).unwrap();
    let b = fs::read(plain.join("v1/1.m4s")).unwrap();
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "the IV seed changes the ciphertext");
    for d in [&seeded, &plain] {
        let mut file = fs::read(d.join("v1/init.mp4")).unwrap();
        for f in fragments(&d.join("v1")) {
            file.extend_from_slice(&fs::read(f).unwrap());
        }
        let path = d.join("v1.mp4");
        fs::write(&path, &file).unwrap();
        let (md5, err) = current_md5(&path, Some(KEY_HEX));
        assert!(err.is_empty() && md5.len() > 100, "{err}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn impossible_combinations_fail_before_writing() {
    let dir = TempDir::new("enc-bad");
    let cases: [(&[&str], &str); 8] = [
        (
            &[
                "--format",
                "all",
                "--encrypt",
                "cenc",
                "--key",
                KEY_HEX,
                "--kid",
                KID_HEX,
            ],
            "hls-ts",
        ),
        (
            &["--format", "dash", "--encrypt", "aes128", "--key", KEY_HEX],
            "hls-ts",
        ),
        (
            &[
                "--format",
                "hls-fmp4",
                "--encrypt",
                "sample-aes",
                "--key",
                KEY_HEX,
            ],
            "hls-ts",
        ),
        (
            &["--format", "dash", "--encrypt", "cbcs", "--key", KEY_HEX],
            "--kid",
        ),
        (
            &["--format", "dash", "--encrypt", "cenc", "--kid", KID_HEX],
            "--key",
        ),
        (
            &[
                "--format",
                "hls-ts",
                "--encrypt",
                "aes128",
                "--key",
                KEY_HEX,
                "--iv",
                "0x0102030405060708",
            ],
            "16-byte IV",
        ),
        (
            &[
                "--format",
                "hls-fmp4",
                "--encrypt",
                "cenc",
                "--key",
                KEY_HEX,
                "--kid",
                KID_HEX,
                "--licence-url",
                "http://x/",
            ],
            "DASH",
        ),
        (
            &["--format", "hls-ts", "--encrypt", "rot13", "--key", KEY_HEX],
            "aes128, sample-aes, cenc, cbcs",
        ),
    ];
    for (args, says) in cases {
        let r = package(&input(), dir.path(), args);
        assert_ne!(r.code, Some(0), "{args:?} succeeded");
        assert!(r.code.is_some(), "{args:?} crashed: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        println!("{args:?} -> {}", r.stderr.trim());
    }
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files written: {left:?}");
}

#[test]
fn shaka_plays_cenc_dash_with_a_clear_key_licence() {
    let dir = TempDir::new("enc-shaka-cenc");
    // The licence URL is the server's; its port is known once it runs, so the package
    // is written after the server starts (it serves files as they are on disk).
    let server = LicenceServer::start(dir.path(), vec![(kid(), key())]);
    let laurl = server.url("licence");
    pack(
        dir.path(),
        "dash",
        &[
            "--encrypt",
            "cenc",
            "--key",
            KEY_HEX,
            "--kid",
            KID_HEX,
            "--licence-url",
            &laurl,
        ],
    );
    let opts = PlayOpts::url(Player::Shaka, &server.url("manifest.mpd"), 8)
        .expect_key_system("org.w3.clearkey");
    let Some(p) = play(&opts) else {
        return;
    };
    let log = server.requests();
    assert!(p.ok, "{}\nserver: {log:?}\n{}", p.summary(), p.raw);
    assert_eq!(p.key_system.as_deref(), Some("org.w3.clearkey"));
    assert!(
        p.key_requests.iter().any(|r| r.starts_with("/licence")),
        "{:?}",
        p.key_requests
    );
    assert!(log.iter().any(|l| l == "POST /licence 200"), "{log:?}");
    assert!(
        p.video_width == 640 && p.video_height == 360,
        "{}",
        p.summary()
    );
    assert!(p.http_errors.is_empty(), "{:?}", p.http_errors);

    // The check can fail: a licence server that knows another key answers 404, and
    // Shaka cannot play.
    drop(server);
    let wrong_dir = TempDir::new("enc-shaka-cenc-wrong");
    let wrong = LicenceServer::start(wrong_dir.path(), vec![(KeyId([7; 16]), key())]);
    let laurl = wrong.url("licence");
    pack(
        wrong_dir.path(),
        "dash",
        &[
            "--encrypt",
            "cenc",
            "--key",
            KEY_HEX,
            "--kid",
            KID_HEX,
            "--licence-url",
            &laurl,
        ],
    );
    let opts = PlayOpts::url(Player::Shaka, &wrong.url("manifest.mpd"), 4)
        .expect_key_system("org.w3.clearkey");
    if let Some(bad) = play(&opts) {
        let log = wrong.requests();
        println!("without the key: {} / {log:?}", bad.summary());
        assert!(!bad.ok, "played without a licence for its key");
        assert!(log.iter().any(|l| l == "POST /licence 404"), "{log:?}");
    }
}

#[test]
fn shaka_plays_cbcs_hls_fmp4_with_the_identity_key() {
    let dir = TempDir::new("enc-shaka-cbcs");
    pack(
        dir.path(),
        "hls-fmp4",
        &["--encrypt", "cbcs", "--key", KEY_HEX, "--kid", KID_HEX],
    );
    let server = LicenceServer::start(dir.path(), vec![(kid(), key())]);
    let opts = PlayOpts::url(Player::Shaka, &server.url("cmaf.m3u8"), 8)
        .expect_key_system("org.w3.clearkey");
    let Some(p) = play(&opts) else {
        return;
    };
    let log = server.requests();
    println!("server: {log:?}");
    assert!(p.ok, "{}\n{}", p.summary(), p.raw);
    assert_eq!(p.key_system.as_deref(), Some("org.w3.clearkey"));
    assert!(log.iter().any(|l| l == "GET /key.bin 200"), "{log:?}");
}

/// Packages `input()` with the library as HLS fMP4 + DASH protected with `scheme`, the
/// samples encrypted in the read buffer (`in_place`, as the example does) or as frames
/// arrive; returns every output by name and how many frames came flagged
/// `TRANSFORMED` (of how many frames).
fn package_lib(scheme: Scheme, in_place: bool) -> (BTreeMap<String, Vec<u8>>, usize, usize) {
    let mut opts = VodPackagerOptions::default();
    opts.formats = VodFormats::HLS_FMP4 | VodFormats::DASH;
    opts.segmenter.target_duration = Timestamp::from_millis(4000);
    opts.encryption = Some(VodEncryption::new(scheme, kid(), key()));
    let mut p = VodPackager::new(opts).unwrap();
    let mut files = BTreeMap::new();
    let (mut flagged, mut frames) = (0, 0);
    let mut store = |p: &mut VodPackager| -> Result<(), strom::Error> {
        while let Some(o) = p.poll() {
            let o = o?;
            let e: &mut Vec<u8> = files.entry(o.name().to_string()).or_default();
            e.extend_from_slice(&o.data());
        }
        Ok(())
    };
    input::read_file_with(&input(), in_place, |i| match i {
        input::Input::Sample(s, bytes) => p.encrypt_in_place(s.track, bytes),
        input::Input::Item(item, _) => {
            if let Item::Frame(f) = &item {
                frames += 1;
                flagged += usize::from(f.flags.contains(FrameFlags::TRANSFORMED));
            }
            p.push(item)?;
            store(&mut p).map(|()| false)
        }
    })
    .unwrap();
    p.finish().unwrap();
    store(&mut p).unwrap();
    (files, flagged, frames)
}

#[test]
fn encrypting_in_the_read_buffer_writes_what_encrypting_on_arrival_writes() {
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let (arrival, none, frames) = package_lib(scheme, false);
        let (in_place, flagged, same) = package_lib(scheme, true);
        assert_eq!((none, same), (0, frames));
        // Every frame of the ffmpeg-made MP4 (4-byte NAL lengths, interleaved chunks)
        // was encrypted where it was read.
        assert_eq!(flagged, frames, "{scheme:?}");
        assert!(
            arrival.keys().any(|n| n.ends_with(".m4s")),
            "{:?}",
            arrival.keys()
        );
        assert_eq!(
            arrival.keys().collect::<Vec<_>>(),
            in_place.keys().collect::<Vec<_>>()
        );
        // Per track, samples take their IVs in the same order either way: byte for byte
        // the same package (the ffmpeg checks above judge the example's, in place).
        for (name, data) in &arrival {
            assert!(in_place[name] == *data, "{scheme:?}: {name} differs");
        }
        println!(
            "{scheme:?}: {frames} frames encrypted in place, {} files identical",
            arrival.len()
        );
    }
}
