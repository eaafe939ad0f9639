//! Proves the test harness itself (tests/common, tests/browser/play.mjs) on ffmpeg-made outputs,
//! so a broken helper cannot make strom's own tests pass or fail for the wrong reason.

mod common;

use common::*;
use std::fs;
use std::process::Command;

#[test]
fn media_is_cached_and_keyed_by_args() {
    let a = media(
        "selftest_tone.m4a",
        &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"],
    );
    let modified = fs::metadata(&a).unwrap().modified().unwrap();
    let again = media(
        "selftest_tone.m4a",
        &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"],
    );
    assert_eq!(a, again);
    assert_eq!(
        modified,
        fs::metadata(&again).unwrap().modified().unwrap(),
        "the second call must not regenerate"
    );
    let b = media(
        "selftest_tone.m4a",
        &["-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac"],
    );
    assert_ne!(a, b, "different args must give a different file");
    assert!(a.starts_with(target_dir().join("test-media")));
    let da = streams(&a)[0].duration_s.unwrap();
    let db = streams(&b)[0].duration_s.unwrap();
    assert!(
        (da - 1.0).abs() < 0.1 && (db - 2.0).abs() < 0.1,
        "{da} {db}"
    );
    // no temporary files left behind
    let leftovers: Vec<_> = fs::read_dir(target_dir().join("test-media"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".selftest_tone")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn avc_aac_25_matches_the_acceptance_matrix() {
    for container in [Container::Mp4, Container::Flv] {
        let p = avc_aac_25(4, container);
        let s = streams(&p);
        assert_eq!(s.len(), 2, "{container:?}: {s:?}");
        let v = s.iter().find(|s| s.codec_type == "video").unwrap();
        let a = s.iter().find(|s| s.codec_type == "audio").unwrap();
        assert_eq!(
            (v.codec_name.as_str(), v.profile.as_str(), v.width, v.height),
            ("h264", "High", 640, 360)
        );
        assert_eq!(v.avg_frame_rate, "25/1");
        assert_eq!((a.codec_name.as_str(), a.profile.as_str()), ("aac", "LC"));
        assert_eq!((a.sample_rate, a.channels), (48000, 2));
        match container {
            Container::Mp4 => assert!(v.format_name.contains("mp4"), "{}", v.format_name),
            Container::Flv => {
                assert_eq!(v.format_name, "flv");
                assert_eq!(v.time_base, (1, 1000));
            }
        }

        let pk = packets(&p, "v:0");
        assert_eq!(pk.packets.len(), 100, "4 s at 25 fps");
        assert_eq!(pk.key_indices(), vec![0, 50], "GOP 2 s, no scene cuts");
        assert!(
            pk.packets.iter().any(|p| p.pts != p.dts),
            "B-frames reorder: some pts != dts"
        );
        let dts: Vec<i64> = pk.packets.iter().map(|p| p.dts.unwrap()).collect();
        assert!(dts.windows(2).all(|w| w[0] < w[1]), "dts strictly increase");
        let span = pk.seconds(dts[99] - dts[0]);
        assert!((span - 3.96).abs() < 0.002, "{span}");
        assert!(pk.packets.iter().all(|p| p.size > 0));

        let audio = packets(&p, "a:0");
        // 4 s at 48 kHz = 187.5 AAC frames of 1024 samples
        assert!(
            (187..=190).contains(&audio.packets.len()),
            "{}",
            audio.packets.len()
        );
        assert!(audio.packets.iter().all(|p| p.key));
        assert_eq!(decode_errors(&p), "", "{container:?} decodes cleanly");
    }
}

#[test]
fn other_generators() {
    let p = avc_aac_2997(3, Container::Mp4);
    let v = streams(&p)
        .into_iter()
        .find(|s| s.codec_type == "video")
        .unwrap();
    assert_eq!(v.avg_frame_rate, "30000/1001");
    assert_eq!(packets(&p, "v:0").key_indices(), vec![0, 60]);

    for c in [Container::Mp4, Container::Flv] {
        let a = streams(&audio_only(2, c));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(
            (a[0].codec_type.as_str(), a[0].codec_name.as_str()),
            ("audio", "aac")
        );
        let v = streams(&video_only(2, c));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].codec_type.as_str(), v[0].codec_name.as_str()),
            ("video", "h264")
        );
    }
}

#[test]
fn ffprobe_flat_reads_values() {
    let p = avc_aac_25(4, Container::Mp4);
    let f = ffprobe_flat(&p, &["-show_format"]);
    assert_eq!(f.i64("format.nb_streams"), 2);
    assert!((f.f64("format.duration") - 4.0).abs() < 0.1);
    assert_eq!(f.str("format.format_name"), "mov,mp4,m4a,3gp,3g2,mj2");
    assert_eq!(f.str("format.tags.major_brand"), "isom");
    assert_eq!(f.get("format.no_such_key"), None);
}

#[test]
fn framemd5_tells_identical_and_different_frames_apart() {
    let mp4 = framemd5(&avc_aac_25(4, Container::Mp4), "v:0");
    assert_eq!(mp4.len(), 100);
    assert!(mp4
        .iter()
        .all(|m| m.len() == 32 && m.chars().all(|c| c.is_ascii_hexdigit())));
    // the FLV is a remux: same frames
    assert_eq!(mp4, framemd5(&avc_aac_25(4, Container::Flv), "v:0"));
    // video_only uses the same single-threaded x264 settings: bit-exact, same frames
    assert_eq!(mp4, framemd5(&video_only(4, Container::Mp4), "v:0"));
    // a different source differs
    let other = framemd5(&avc_aac_2997(4, Container::Mp4), "v:0");
    assert_ne!(mp4[..10], other[..10]);
    // testsrc2 moves: consecutive frames differ
    assert_ne!(mp4[0], mp4[1]);
    let audio = framemd5(&avc_aac_25(4, Container::Mp4), "a:0");
    assert!(!audio.is_empty());
}

#[test]
fn generation_is_bit_exact() {
    // Encode the same 2 s twice outside the cache: identical bytes (x264 -threads 1).
    let tmp = TempDir::new("bitexact");
    let cached = avc_aac_25(2, Container::Mp4);
    let again = tmp.join("again.mp4");
    let status = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-y", "-v", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=2",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=2",
        ])
        .args([
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
        ])
        .args(["-pix_fmt", "yuv420p", "-bf", "3", "-b:v", "600k"])
        .args(["-g", "50", "-keyint_min", "50", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "128k"])
        .arg(&again)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(framemd5(&cached, "v:0"), framemd5(&again, "v:0"));
    assert!(
        fs::read(&cached).unwrap() == fs::read(&again).unwrap(),
        "same args must give the same bytes"
    );
}

#[test]
fn decode_errors_sees_corruption() {
    let tmp = TempDir::new("corrupt");
    let playlist = ffmpeg_hls(&avc_aac_25(4, Container::Mp4), tmp.path(), 2);
    assert_eq!(
        decode_errors(&playlist),
        "",
        "ffmpeg's own HLS decodes cleanly"
    );
    let seg = tmp.join("index0.ts");
    assert_eq!(decode_errors(&seg), "");
    // overwrite the middle of the first segment with a pattern (keep the 0x47 sync bytes so the
    // demuxer keeps going and the decoders see the damage)
    let mut ts = fs::read(&seg).unwrap();
    let packets = ts.len() / 188;
    for p in packets / 4..packets / 2 {
        for b in &mut ts[p * 188 + 4..(p + 1) * 188] {
            *b = 0x5a;
        }
    }
    let broken = tmp.join("broken.ts");
    fs::write(&broken, &ts).unwrap();
    let errors = decode_errors(&broken);
    assert!(!errors.is_empty(), "corruption must be reported");
    assert!(!decode_errors(&tmp.join("missing.ts")).is_empty());
}

#[test]
fn ffmpeg_hls_reference_is_probeable() {
    let tmp = TempDir::new("ref");
    let playlist = ffmpeg_hls(&avc_aac_25(6, Container::Flv), tmp.path(), 2);
    let text = fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let seg = tmp.join("index0.ts");
    let s = streams(&seg);
    assert_eq!(s[0].format_name, "mpegts");
    let pk = packets(&seg, "v:0");
    assert_eq!(pk.time_base, (1, 90000));
    assert!(pk.packets[0].key);
    assert_eq!(pk.packets.len(), 50, "2 s segments at 25 fps");
}

#[test]
fn json_parser() {
    let j = Json::parse(r#" {"a":[1,-2.5e1,true,null],"s":"x\"\u00e9\ud83d\ude00\n","o":{}} "#)
        .unwrap();
    assert_eq!(
        j.get("a").unwrap().as_array().unwrap(),
        &[
            Json::Num(1.0),
            Json::Num(-25.0),
            Json::Bool(true),
            Json::Null
        ]
    );
    assert_eq!(j.get("s").unwrap().as_str(), Some("x\"é😀\n"));
    assert_eq!(j.get("o"), Some(&Json::Obj(vec![])));
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "\"abc",
        "tru",
        "1 2",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ] {
        assert!(Json::parse(bad).is_err(), "{bad:?}");
    }
    let r = PlayResult::from_json(
        r#"{"ok":false,"reason":"fatal error: {\"type\":\"networkError\"}","advanced_s":1.5,"duration":null,"ended":false,"video_width":640,"video_height":360,"fatal_errors":[{"type":"networkError"}],"nonfatal_errors":[],"http_errors":["404 http://127.0.0.1:1/x.ts"]}"#,
    )
    .unwrap();
    assert!(!r.ok);
    assert_eq!(r.advanced_s, 1.5);
    assert_eq!(r.duration, None);
    assert_eq!(
        r.fatal_errors,
        vec![r#"{"type":"networkError"}"#.to_string()]
    );
    assert_eq!(r.http_errors.len(), 1);
    assert_eq!((r.video_width, r.video_height), (640, 360));
}

#[test]
fn browser_plays_ffmpeg_hls_and_rejects_a_missing_playlist() {
    let tmp = TempDir::new("browser");
    ffmpeg_hls(&avc_aac_25(8, Container::Mp4), tmp.path(), 2);
    let shot = tmp.join("shot.png");
    let Some(r) = play_in_browser_with(tmp.path(), "index.m3u8", 5, Some(&shot)) else {
        return; // STROM_SKIP_BROWSER=1
    };
    assert!(r.ok, "{}", r.raw);
    assert!(r.advanced_s >= 4.0, "{}", r.raw);
    assert_eq!((r.video_width, r.video_height), (640, 360), "{}", r.raw);
    assert!(
        r.fatal_errors.is_empty() && r.http_errors.is_empty(),
        "{}",
        r.raw
    );
    assert!((r.duration.unwrap() - 8.0).abs() < 0.3, "{}", r.raw);
    assert!(r.total_frames >= 100, "{}", r.raw);
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );

    let r = play_in_browser(tmp.path(), "missing.m3u8", 3).unwrap();
    assert!(!r.ok, "{}", r.raw);
    assert!(!r.fatal_errors.is_empty(), "{}", r.raw);
    assert!(
        r.http_errors.iter().any(|e| e.starts_with("404")),
        "{}",
        r.raw
    );
}

#[test]
fn browser_fails_when_segments_are_missing() {
    let tmp = TempDir::new("browser-broken");
    ffmpeg_hls(&avc_aac_25(12, Container::Mp4), tmp.path(), 2);
    for i in 1..6 {
        fs::remove_file(tmp.join(&format!("index{i}.ts"))).unwrap();
    }
    let Some(r) = play_in_browser(tmp.path(), "index.m3u8", 8) else {
        return;
    };
    assert!(!r.ok, "{}", r.raw);
    assert!(r.advanced_s < 4.0, "{}", r.raw);
    assert!(
        r.http_errors.iter().any(|e| e.starts_with("404")),
        "{}",
        r.raw
    );
}
