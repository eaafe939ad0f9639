//! Whole-pipeline acceptance: FLV/MP4 made by ffmpeg -> strom -> HLS VOD with TS
//! segments, judged by ffprobe/ffmpeg (decode, timestamps, framemd5) and by hls.js in
//! headless Chromium.

mod common;
#[path = "../examples/common/input.rs"]
mod input;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use strom::package::{VodOutput, VodPackager, VodPackagerOptions};
use strom::pipeline::Stage;
use strom::time::Timestamp;

/// Packages `input` into `dir` with the library, as the example does; returns the
/// playlist entries (uri, EXTINF in ms).
fn package(input: &Path, dir: &Path, segment_ms: i64) -> Vec<(String, i64)> {
    let mut opts = VodPackagerOptions::default();
    opts.segmenter.target_duration = Timestamp::from_millis(segment_ms);
    let mut p = VodPackager::new(opts).unwrap();
    let store = |o: VodOutput| {
        use std::io::Write;
        let first = !matches!(o, VodOutput::SegmentData { first: false, .. });
        let mut f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(!first)
            .truncate(first)
            .open(dir.join(o.name()))
            .unwrap();
        f.write_all(&o.data()).unwrap();
    };
    input::read_file(input, |item, _| {
        p.push(item)?;
        while let Some(o) = p.poll() {
            store(o?);
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    p.finish().unwrap();
    while let Some(o) = p.poll() {
        store(o.unwrap());
    }
    media_entries(&fs::read_to_string(dir.join("media.m3u8")).unwrap())
}

/// (uri, EXTINF in integer ms) of a media playlist.
fn media_entries(text: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut dur = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            let v = v.trim_end_matches(',');
            let (s, ms) = v.split_once('.').unwrap();
            assert_eq!(ms.len(), 3, "EXTINF has millisecond precision: {line}");
            dur = Some(s.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_string(), dur.take().expect("EXTINF before URI")));
        }
    }
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    out
}

fn concat(dir: &Path, entries: &[(String, i64)]) -> PathBuf {
    let mut all = Vec::new();
    for (uri, _) in entries {
        all.extend(fs::read(dir.join(uri)).unwrap());
    }
    let p = dir.join("all.ts");
    fs::write(&p, all).unwrap();
    p
}

/// Exact rescale of `ticks` in `tb` to 90 kHz (panics if not exact).
fn to_90k(ticks: i64, tb: (i64, i64)) -> i64 {
    let num = ticks as i128 * tb.0 as i128 * 90_000;
    assert_eq!(
        num % tb.1 as i128,
        0,
        "{ticks} in {tb:?} is not exact in 90 kHz"
    );
    (num / tb.1 as i128) as i64
}

struct Case {
    name: &'static str,
    input: PathBuf,
    video: bool,
    audio: bool,
    /// Frame duration in ms (one-frame tolerance for the total duration).
    frame_ms: f64,
    frame_rate: &'static str,
}

fn check_package(c: &Case) {
    let dir = TempDir::new(c.name);
    let entries = package(&c.input, dir.path(), 6000);
    assert!(entries.len() >= 2, "{}: {entries:?}", c.name);
    let src = streams(&c.input);

    // 1. Every segment decodes alone, with no error, and starts with PAT then PMT.
    for (uri, _) in &entries {
        let seg = dir.join(uri);
        let errors = decode_errors(&seg);
        assert!(errors.is_empty(), "{}: {uri}: {errors}", c.name);
        let b = fs::read(&seg).unwrap();
        assert_eq!(b.len() % 188, 0);
        assert_eq!(
            (b[0], b[1] & 0x1f, b[2]),
            (0x47, 0, 0),
            "{uri} starts with PAT"
        );
        assert_eq!(b[188], 0x47);
        if c.video {
            let v = packets(&seg, "v:0");
            assert!(v.packets[0].key, "{}: {uri} starts with a keyframe", c.name);
        }
    }

    // 2. Total duration matches the input within one frame.
    let total_ms: i64 = entries.iter().map(|e| e.1).sum();
    // Input media duration from its packets: last PTS + one frame - first PTS (FLV
    // states no stream duration).
    let sp = packets(&c.input, if c.video { "v:0" } else { "a:0" });
    let pts = sp.packets.iter().filter_map(|p| p.pts);
    let (lo, hi) = (pts.clone().min().unwrap(), pts.max().unwrap());
    let src_dur = sp.seconds(hi - lo) + c.frame_ms / 1000.0;
    let diff = (total_ms as f64 - src_dur * 1000.0).abs();
    assert!(
        diff <= c.frame_ms + 0.5,
        "{}: playlist {total_ms} ms vs input {src_dur} s",
        c.name
    );

    // 3. Timestamps: video PTS identical to the input's (shifted by a constant), and
    //    continuous across segment boundaries for every stream.
    let all = concat(dir.path(), &entries);
    if c.video {
        let s = packets(&c.input, "v:0");
        let o = packets(&all, "v:0");
        assert_eq!(
            s.packets.len(),
            o.packets.len(),
            "{}: video packet count",
            c.name
        );
        let mut sp: Vec<i64> = s
            .packets
            .iter()
            .map(|p| to_90k(p.pts.unwrap(), s.time_base))
            .collect();
        let mut op: Vec<i64> = o
            .packets
            .iter()
            .map(|p| to_90k(p.pts.unwrap(), o.time_base))
            .collect();
        sp.sort_unstable();
        op.sort_unstable();
        let shift = op[0] - sp[0];
        for (a, b) in sp.iter().zip(&op) {
            assert_eq!(b - a, shift, "{}: video PTS continuous and exact", c.name);
        }
        let sk: Vec<bool> = s.packets.iter().map(|p| p.key).collect();
        let ok: Vec<bool> = o.packets.iter().map(|p| p.key).collect();
        assert_eq!(sk, ok, "{}: keyframe flags", c.name);
        // 4. Decoded frames are identical to the input's.
        let a = framemd5(&c.input, "v:0");
        let b = framemd5(&all, "v:0");
        assert_eq!(a.len(), b.len(), "{}: decoded frame count", c.name);
        assert!(a == b, "{}: decoded video differs from the input", c.name);
    }
    if c.audio {
        let o = packets(&all, "a:0");
        let s = packets(&c.input, "a:0");
        // ADTS frames may be grouped in one PES: compare the frame count via decoding.
        let a = framemd5(&c.input, "a:0");
        let b = framemd5(&all, "a:0");
        assert_same_audio(&a, &b, c.name);
        let mut op: Vec<i64> = o.packets.iter().map(|p| p.pts.unwrap()).collect();
        op.sort_unstable();
        assert!(s.packets.len() >= o.packets.len());
        // No gap between PES packets larger than their duration: continuous audio.
        for w in o.packets.windows(2) {
            let gap = w[1].pts.unwrap() - w[0].pts.unwrap();
            let d = w[0].duration.unwrap_or(0);
            assert!(
                gap > 0 && (d == 0 || (gap - d).abs() <= 90),
                "{}: audio gap {gap} vs {d}",
                c.name
            );
        }
    }

    // 5. The multivariant playlist names the right codecs, size and rate.
    let mv = fs::read_to_string(dir.join("index.m3u8")).unwrap();
    let inf = mv
        .lines()
        .find(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .unwrap();
    if c.video {
        let v = src.iter().find(|s| s.codec_type == "video").unwrap();
        assert!(
            inf.contains(&format!("RESOLUTION={}x{}", v.width, v.height)),
            "{inf}"
        );
        assert!(
            inf.contains(&format!("FRAME-RATE={}", c.frame_rate)),
            "{inf}"
        );
        assert!(inf.contains("avc1.6400"), "{inf}");
    }
    if c.audio {
        assert!(inf.contains("mp4a.40.2"), "{inf}");
    }
    assert!(
        inf.contains("BANDWIDTH=") && inf.contains("AVERAGE-BANDWIDTH="),
        "{inf}"
    );
}

fn case(
    name: &'static str,
    input: PathBuf,
    video: bool,
    audio: bool,
    frame_ms: f64,
    rate: &'static str,
) -> Case {
    Case {
        name,
        input,
        video,
        audio,
        frame_ms,
        frame_rate: rate,
    }
}

#[test]
fn avc_aac_25fps_mp4_and_flv() {
    check_package(&case(
        "avc25_mp4",
        avc_aac_25(16, Container::Mp4),
        true,
        true,
        40.0,
        "25.000",
    ));
    check_package(&case(
        "avc25_flv",
        avc_aac_25(16, Container::Flv),
        true,
        true,
        40.0,
        "25.000",
    ));
}

#[test]
fn avc_aac_2997fps_mp4_and_flv() {
    check_package(&case(
        "avc2997_mp4",
        avc_aac_2997(16, Container::Mp4),
        true,
        true,
        33.4,
        "29.970",
    ));
    check_package(&case(
        "avc2997_flv",
        avc_aac_2997(16, Container::Flv),
        true,
        true,
        33.4,
        "29.970",
    ));
}

#[test]
fn audio_only_mp4_and_flv() {
    check_package(&case(
        "audio_mp4",
        audio_only(14, Container::Mp4),
        false,
        true,
        21.4,
        "",
    ));
    check_package(&case(
        "audio_flv",
        audio_only(14, Container::Flv),
        false,
        true,
        21.4,
        "",
    ));
}

#[test]
fn video_only_mp4_and_flv() {
    check_package(&case(
        "video_mp4",
        video_only(14, Container::Mp4),
        true,
        false,
        40.0,
        "25.000",
    ));
    check_package(&case(
        "video_flv",
        video_only(14, Container::Flv),
        true,
        false,
        40.0,
        "25.000",
    ));
}

#[test]
fn hlsjs_plays_the_package_in_chromium() {
    let dir = TempDir::new("browser_pkg");
    let entries = package(&avc_aac_25(20, Container::Flv), dir.path(), 4000);
    assert!(entries.len() >= 4);
    let Some(r) = play_in_browser(dir.path(), "index.m3u8", 16) else {
        return;
    };
    println!("hls.js: {}", r.raw);
    assert!(r.ok, "hls.js did not play: {}", r.raw);
    assert!(r.advanced_s >= 14.0, "{}", r.raw);
    assert!(r.fatal_errors.is_empty(), "{}", r.raw);
    assert_eq!((r.video_width, r.video_height), (640, 360), "{}", r.raw);
}

/// The example binary (cargo builds examples before running integration tests).
fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("package");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

#[test]
fn example_cli_packages_and_fails_cleanly_on_bad_input() {
    let dir = TempDir::new("cli");
    let out = dir.join("ok");
    let r = Command::new(example_bin())
        .arg(avc_aac_25(8, Container::Mp4))
        .arg("--out")
        .arg(&out)
        .args(["--segment-duration", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        stdout.starts_with("packaged 4 segments, 8.000 s of media"),
        "{stdout}"
    );
    assert!(out.join("index.m3u8").is_file() && out.join("segment00003.ts").is_file());

    // A truncated FLV and a file of garbage: non-zero exit, a message, no playlist.
    let flv = fs::read(avc_aac_25(8, Container::Flv)).unwrap();
    let cut = dir.join("cut.flv");
    fs::write(&cut, &flv[..flv.len() / 2 + 7]).unwrap();
    let junk = dir.join("junk.bin");
    fs::write(&junk, b"this is not a media file at all").unwrap();
    let mut hostile = flv[..13 + 11 + 200].to_vec();
    hostile[14..17].copy_from_slice(&[0xff, 0xff, 0xff]); // first tag claims 16 MiB
    let big = dir.join("hostile.flv");
    fs::write(&big, &hostile).unwrap();
    for (bad, expect) in [
        (&cut, "truncated"),
        (&junk, "neither FLV nor MP4"),
        (&big, ""),
    ] {
        let o = dir.join(&format!(
            "out_{}",
            bad.file_name().unwrap().to_string_lossy()
        ));
        // A playlist of an earlier run must not survive a failed run.
        fs::create_dir_all(&o).unwrap();
        fs::write(o.join("index.m3u8"), "#EXTM3U\n").unwrap();
        let r = Command::new(example_bin())
            .arg(bad)
            .arg("--out")
            .arg(&o)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{}: should fail", bad.display());
        assert!(
            err.contains("package: error:") && err.contains(expect),
            "{err}"
        );
        assert!(
            !o.join("index.m3u8").exists(),
            "{}: playlist left behind",
            bad.display()
        );
        assert!(!o.join("media.m3u8").exists());
    }
}
