//! CMAF VOD packaging through the `package` example (`--format hls-fmp4|dash|all`),
//! judged by tools nobody on this project wrote: every init and media segment parsed box
//! by box with mp4-atom and probed by ffprobe, each rendition decoded by ffmpeg and
//! compared frame by frame with the source, the playlists parsed with m3u8-rs, the MPD
//! read by ffmpeg's DASH demuxer, and the presentation played by hls.js, dash.js and
//! Shaka Player (with an audio switch) in headless Chromium.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::players::{play, same_lang, PlayOpts, PlayOutcome, Player};
use common::*;
use m3u8_rs::{AlternativeMediaType, MasterPlaylist, MediaPlaylist};
use mp4_atom::{Any, Decode};

/// The example binary (cargo builds examples before running integration tests).
fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("package");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// `package INPUT --out OUT --format FORMATS --segment-duration 4`; returns stdout.
fn cli(input: &Path, out: &Path, formats: &str) -> String {
    let r = Command::new(example_bin())
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--format", formats, "--segment-duration", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(
        r.status.success(),
        "package --format {formats}: {stdout} {}",
        String::from_utf8_lossy(&r.stderr)
    );
    stdout
}

/// The rendition folders (`v1`, `a2`, ...), video first, then audio by track id.
fn renditions(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.len() > 1
                && (n.starts_with('v') || n.starts_with('a'))
                && n[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    names.sort_by_key(|n| (!n.starts_with('v'), n[1..].parse::<u32>().unwrap()));
    names
}

/// The media segments of a rendition folder, by number.
fn segment_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<(u64, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| Some((n.strip_suffix(".m4s")?.parse().ok()?, n)))
        .collect();
    files.sort();
    let names: Vec<String> = files.iter().map(|(_, n)| n.clone()).collect();
    let numbers: Vec<u64> = files.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        numbers,
        (1..=files.len() as u64).collect::<Vec<_>>(),
        "{}: numbered from 1 without a hole",
        dir.display()
    );
    names
}

/// Decodes every box of `data` with mp4-atom, recursing into the containers we write:
/// nothing unknown, nothing left over. Returns the top-level boxes.
fn strict_boxes(data: &[u8], what: &str) -> Vec<Any> {
    fn walk(data: &[u8], what: &str) {
        const CONTAINERS: [&[u8; 4]; 9] = [
            b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf",
        ];
        let mut at = 0;
        while at < data.len() {
            assert!(data.len() - at >= 8, "{what}: box header cut at {at}");
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && at + size <= data.len(),
                "{what}: box size {size} at {at}"
            );
            let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
            let whole = &data[at..at + size];
            let mut view = whole;
            let any = Any::decode(&mut view).unwrap_or_else(|e| {
                panic!("{what}: {} at {at}: {e}", String::from_utf8_lossy(&kind))
            });
            assert!(view.is_empty(), "{what}: bytes left in {:?}", any.kind());
            assert!(
                !matches!(any, Any::Unknown(..)),
                "{what}: unknown box {:?}",
                any.kind()
            );
            if let Any::Stsd(stsd) = &any {
                assert!(
                    !format!("{:?}", stsd.codecs).contains("Unknown"),
                    "{what}: {stsd:?}"
                );
            }
            if CONTAINERS.contains(&&kind) {
                walk(&whole[8..], what);
            }
            at += size;
        }
    }
    walk(data, what);
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let at = data.len() - rest.len();
        out.push(Any::decode(&mut rest).unwrap_or_else(|e| panic!("{what}: box at {at}: {e}")));
    }
    out
}

/// One fragment as mp4-atom reads it: (tfdt, sum of sample durations, sample sizes).
struct Parsed {
    tfdt: u64,
    duration: u64,
    sizes: Vec<u32>,
}

/// `(t, d)` of every segment of Representation `id` in an MPD's SegmentTimeline.
fn mpd_timeline(mpd: &str, id: &str) -> Vec<(u64, u64)> {
    let rep = mpd
        .split("<Representation ")
        .find(|r| r.starts_with(&format!("id=\"{id}\"")))
        .unwrap_or_else(|| panic!("no Representation {id} in\n{mpd}"));
    let rep = &rep[..rep.find("</Representation>").unwrap()];
    let attr = |s: &str, name: &str| -> Option<u64> {
        let at = s.find(&format!(" {name}=\""))? + name.len() + 3;
        s[at..at + s[at..].find('"')?].parse().ok()
    };
    let mut out = Vec::new();
    let mut t = 0;
    for s in rep.split("<S ").skip(1) {
        let s = &format!(" {}", &s[..s.find("/>").unwrap()]);
        t = attr(s, "t").unwrap_or(t);
        let d = attr(s, "d").unwrap();
        for _ in 0..=attr(s, "r").unwrap_or(0) {
            out.push((t, d));
            t += d;
        }
    }
    out
}

/// What a rendition folder must hold.
struct Expect<'a> {
    /// The source file and its stream (`v:0`, `a:1`) the rendition comes from.
    source: &'a Path,
    spec: String,
    /// `mdhd` language (ISO 639-2).
    lang: &'a str,
    /// A `media.m3u8` lists the segments.
    hls: bool,
    /// The MPD whose timeline describes the segments.
    mpd: Option<&'a str>,
    /// How far (ticks) a fragment may start from the previous one's end: 0 for MP4,
    /// 1 for FLV, whose millisecond clock makes AAC frames last 21 or 22 ticks and so
    /// leaves the last frame of a fragment a tick short or long.
    slack: u64,
}

/// Checks one rendition folder: init and every segment strictly with mp4-atom and with
/// ffprobe, the segments in the media playlist and the MPD timeline are the files, and
/// init + segments decode frame-identical to the source stream.
fn check_rendition(dir: &Path, name: &str, x: &Expect) {
    let (source, lang, hls, mpd) = (x.source, x.lang, x.hls, x.mpd);
    let spec = x.spec.as_str();
    let rdir = dir.join(name);
    let video = name.starts_with('v');
    let init = fs::read(rdir.join("init.mp4")).unwrap();
    let boxes = strict_boxes(&init, &format!("{name}/init.mp4"));
    assert_eq!(boxes.len(), 2, "{name}: init is ftyp + moov");
    let Any::Ftyp(ftyp) = &boxes[0] else {
        panic!("{name}: ftyp first")
    };
    assert_eq!(ftyp.major_brand, b"iso6".into());
    let Any::Moov(moov) = &boxes[1] else {
        panic!("{name}: moov second")
    };
    assert_eq!(moov.trak.len(), 1, "{name}: one track per CMAF file");
    let trak = &moov.trak[0];
    let track_id = trak.tkhd.track_id;
    assert_eq!(name[1..].parse::<u32>().unwrap(), track_id);
    assert_eq!(trak.mdia.mdhd.language, lang, "{name}: mdhd language");
    let codec = format!("{:?}", trak.mdia.minf.stbl.stsd.codecs[0]);
    assert!(
        codec.starts_with(if video { "Avc1" } else { "Mp4a" }),
        "{name}: {codec}"
    );

    let files = segment_files(&rdir);
    assert!(files.len() >= 3, "{name}: {files:?}");
    let mut parsed = Vec::new();
    let mut whole = init.clone();
    let probe = dir.join(format!("probe-{name}.mp4"));
    for (n, file) in files.iter().enumerate() {
        let what = format!("{name}/{file}");
        let data = fs::read(rdir.join(file)).unwrap();
        let boxes = strict_boxes(&data, &what);
        assert_eq!(boxes.len(), 3, "{what}: styp + moof + mdat");
        assert!(matches!(boxes[0], Any::Styp(_)), "{what}: styp first");
        let (Any::Moof(moof), Any::Mdat(mdat)) = (&boxes[1], &boxes[2]) else {
            panic!("{what}: moof then mdat")
        };
        assert_eq!(moof.mfhd.sequence_number, n as u32 + 1, "{what}");
        assert_eq!(moof.traf.len(), 1);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, track_id, "{what}");
        let mut p = Parsed {
            tfdt: traf.tfdt.as_ref().unwrap().base_media_decode_time,
            duration: 0,
            sizes: Vec::new(),
        };
        for trun in &traf.trun {
            for e in trun.samples.iter() {
                p.duration += u64::from(e.duration.unwrap());
                p.sizes.push(e.size.unwrap());
            }
        }
        let payload: u64 = p.sizes.iter().map(|s| u64::from(*s)).sum();
        assert_eq!(
            payload,
            mdat.data.len() as u64,
            "{what}: mdat holds the samples"
        );
        if video {
            let first = traf.trun[0].samples.get(0).unwrap();
            assert_eq!(
                first.flags.unwrap() & 0x0001_0000,
                0,
                "{what}: starts at a sync sample"
            );
        }
        // ffprobe on init + this segment alone: one stream, the same samples.
        let mut alone = init.clone();
        alone.extend_from_slice(&data);
        fs::write(&probe, &alone).unwrap();
        let s = streams(&probe);
        assert_eq!(s.len(), 1, "{what}: {s:?}");
        assert_eq!(s[0].codec_name, if video { "h264" } else { "aac" });
        let pk = packets(&probe, "0");
        let sizes: Vec<u32> = pk.packets.iter().map(|p| p.size as u32).collect();
        assert_eq!(sizes, p.sizes, "{what}: ffprobe sees the trun's samples");
        whole.extend_from_slice(&data);
        parsed.push(p);
    }
    // A contiguous timeline: each fragment starts where the previous one ended.
    for w in parsed.windows(2) {
        let gap = (w[0].tfdt + w[0].duration).abs_diff(w[1].tfdt);
        assert!(
            gap <= x.slack,
            "{name}: tfdt continuity: {} + {} vs {}",
            w[0].tfdt,
            w[0].duration,
            w[1].tfdt
        );
    }

    if hls {
        let text = fs::read(rdir.join("media.m3u8")).unwrap();
        let pl: MediaPlaylist = m3u8_rs::parse_media_playlist_res(&text)
            .unwrap_or_else(|e| panic!("{name}/media.m3u8: {e:?}"));
        assert!(pl.end_list, "{name}: VOD playlist ends");
        let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, files, "{name}: media playlist lists the files");
        let map = pl.segments[0].map.as_ref().expect("EXT-X-MAP");
        assert_eq!(map.uri, "init.mp4");
        for (s, p) in pl.segments.iter().zip(&parsed) {
            let real = p.duration as f64 / f64::from(trak.mdia.mdhd.timescale);
            assert!(
                (f64::from(s.duration) - real).abs() < 0.0015,
                "{name}: EXTINF {} vs {real}",
                s.duration
            );
            assert!(s.duration.round() as u64 <= pl.target_duration);
        }
    }
    if let Some(mpd) = mpd {
        let timeline = mpd_timeline(mpd, name);
        let real: Vec<(u64, u64)> = parsed.iter().map(|p| (p.tfdt, p.duration)).collect();
        assert_eq!(
            timeline, real,
            "{name}: the MPD timeline is the fragments' tfdt/duration"
        );
    }

    let all = dir.join(format!("whole-{name}.mp4"));
    fs::write(&all, &whole).unwrap();
    assert_eq!(decode_errors(&all), "", "{name} decodes cleanly");
    let a = framemd5(source, spec);
    let b = framemd5(&all, "0");
    if video {
        assert_eq!(a.len(), b.len(), "{name}: decoded frame count");
        assert!(a == b, "{name}: decoded video differs from the source");
    } else {
        assert_same_audio(&a, &b, name);
    }
    let _ = fs::remove_file(all);
    let _ = fs::remove_file(probe);
}

/// The fMP4 multivariant playlist: `langs` (RFC 5646) in one audio group, exactly one
/// DEFAULT, all AUTOSELECT, referenced by the video variant; an audio-only variant.
fn check_multivariant(dir: &Path, langs: &[&str]) -> MasterPlaylist {
    let text = fs::read(dir.join("cmaf.m3u8")).unwrap();
    let mv =
        m3u8_rs::parse_master_playlist_res(&text).unwrap_or_else(|e| panic!("cmaf.m3u8: {e:?}"));
    let audio: Vec<_> = mv
        .alternatives
        .iter()
        .filter(|a| a.media_type == AlternativeMediaType::Audio)
        .collect();
    let got: Vec<&str> = audio
        .iter()
        .map(|a| a.language.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(got, langs, "EXT-X-MEDIA LANGUAGE");
    assert_eq!(audio.iter().filter(|a| a.default).count(), 1, "one DEFAULT");
    assert!(audio[0].default);
    assert!(audio.iter().all(|a| a.autoselect), "AUTOSELECT");
    let group = &audio[0].group_id;
    assert!(audio.iter().all(|a| a.group_id == *group));
    for a in &audio {
        let uri = a.uri.as_deref().expect("rendition URI");
        assert!(dir.join(uri).is_file(), "{uri}");
    }
    let video: Vec<_> = mv
        .variants
        .iter()
        .filter(|v| v.resolution.is_some())
        .collect();
    assert_eq!(video.len(), 1);
    assert_eq!(video[0].audio.as_deref(), Some(group.as_str()));
    let codecs = video[0].codecs.as_deref().unwrap();
    assert!(
        codecs.contains("avc1.") && codecs.contains("mp4a.40.2"),
        "{codecs}"
    );
    let audio_only: Vec<_> = mv
        .variants
        .iter()
        .filter(|v| v.resolution.is_none())
        .collect();
    assert_eq!(audio_only.len(), 1, "audio-only variant");
    assert_eq!(audio_only[0].codecs.as_deref(), Some("mp4a.40.2"));
    assert!(audio_only[0].bandwidth < video[0].bandwidth);
    for v in &mv.variants {
        assert!(dir.join(&v.uri).is_file(), "{}", v.uri);
    }
    mv
}

#[test]
fn multi_audio_mp4_as_all_formats() {
    let source = avc_multi_audio(12);
    let tmp = TempDir::new("cmaf-all");
    let dir = tmp.join("all");
    let stdout = cli(&source, &dir, "all");
    assert!(
        stdout.starts_with(
            "packaged 3 segments, 12.000 s of media, 5 renditions (hls-ts+hls-fmp4+dash)"
        ),
        "{stdout}"
    );
    let names = renditions(&dir);
    assert_eq!(names, ["v1", "a2", "a3", "a4"]);
    let mpd = fs::read_to_string(dir.join("manifest.mpd")).unwrap();
    let expect = |spec: String, lang| Expect {
        source: &source,
        spec,
        lang,
        hls: true,
        mpd: Some(&mpd),
        slack: 0,
    };
    check_rendition(&dir, "v1", &expect("v:0".into(), "und"));
    for (n, (lang, _)) in MULTI_AUDIO_LANGS.iter().enumerate() {
        check_rendition(&dir, &names[n + 1], &expect(format!("a:{n}"), lang));
    }
    check_multivariant(&dir, &["en", "fr", "de"]);
    // No temporary file is left beside the manifests.
    for e in fs::read_dir(&dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".tmp"), "{n} left behind");
    }

    // ffmpeg's DASH demuxer: four streams with their languages, the video and the
    // French audio identical to the source.
    let manifest = dir.join("manifest.mpd");
    let flat = ffprobe_flat(
        &manifest,
        &["-show_entries", "stream=codec_type:stream_tags=language"],
    );
    let kinds: Vec<&str> = (0..4)
        .map(|i| flat.str(&format!("streams.stream.{i}.codec_type")))
        .collect();
    assert_eq!(kinds, ["video", "audio", "audio", "audio"], "{flat:?}");
    assert!(
        flat.get("streams.stream.4.codec_type").is_none(),
        "{flat:?}"
    );
    let langs: Vec<&str> = (1..4)
        .map(|i| flat.str(&format!("streams.stream.{i}.tags.language")))
        .collect();
    assert_eq!(langs, ["en", "fr", "de"], "{flat:?}");
    assert!(
        framemd5(&manifest, "v:0") == framemd5(&source, "v:0"),
        "DASH video"
    );
    assert_same_audio(
        &framemd5(&source, "a:1"),
        &framemd5(&manifest, "a:1"),
        "DASH fra",
    );
    // And ffmpeg's HLS demuxer on the fMP4 playlists.
    assert!(
        framemd5(&dir.join("cmaf.m3u8"), "v:0") == framemd5(&source, "v:0"),
        "HLS fMP4 video"
    );

    // The TS output is what `--format hls-ts` (the default) writes, byte for byte, and
    // decodes to the source's frames.
    let ts_dir = tmp.join("ts");
    let stdout = cli(&source, &ts_dir, "hls-ts");
    assert!(
        stdout.starts_with("packaged 3 segments, 12.000 s of media, 1 renditions (hls-ts)"),
        "{stdout}"
    );
    let mut ts_files: Vec<String> = fs::read_dir(&ts_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ts_files.sort();
    assert_eq!(
        ts_files,
        [
            "index.m3u8",
            "media.m3u8",
            "segment00000.ts",
            "segment00001.ts",
            "segment00002.ts"
        ]
    );
    let mut concat = Vec::new();
    for f in &ts_files {
        let a = fs::read(ts_dir.join(f)).unwrap();
        assert!(a == fs::read(dir.join(f)).unwrap(), "{f} differs");
        if f.ends_with(".ts") {
            concat.extend(a);
        }
    }
    let all_ts = tmp.join("all.ts");
    fs::write(&all_ts, concat).unwrap();
    assert!(
        framemd5(&all_ts, "v:0") == framemd5(&source, "v:0"),
        "TS video"
    );
    assert_eq!(streams(&all_ts).len(), 4, "TS keeps all four tracks");
}

#[test]
fn flv_as_hls_fmp4() {
    let source = avc_aac_25(12, Container::Flv);
    let tmp = TempDir::new("cmaf-flv");
    let dir = tmp.path();
    let stdout = cli(&source, dir, "hls-fmp4");
    assert!(
        stdout.starts_with("packaged 3 segments, 12.000 s of media, 2 renditions (hls-fmp4)"),
        "{stdout}"
    );
    let names = renditions(dir);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with('v') && names[1].starts_with('a'));
    // FLV states no language.
    let expect = |spec: &str| Expect {
        source: &source,
        spec: spec.into(),
        lang: "und",
        hls: true,
        mpd: None,
        slack: 1,
    };
    check_rendition(dir, &names[0], &expect("v:0"));
    check_rendition(dir, &names[1], &expect("a:0"));
    let text = fs::read(dir.join("cmaf.m3u8")).unwrap();
    let mv = m3u8_rs::parse_master_playlist_res(&text).unwrap();
    assert_eq!(mv.alternatives.len(), 1);
    assert!(mv.alternatives[0].default && mv.alternatives[0].language.is_none());
    assert_eq!(mv.variants.len(), 2);
    for absent in [
        "manifest.mpd",
        "index.m3u8",
        "media.m3u8",
        "segment00000.ts",
    ] {
        assert!(
            !dir.join(absent).exists(),
            "{absent} written without its format"
        );
    }
}

#[test]
fn cli_refuses_an_unknown_format_and_leaves_no_manifest_on_failure() {
    let tmp = TempDir::new("cmaf-cli");
    let r = Command::new(example_bin())
        .arg(avc_aac_25(8, Container::Mp4))
        .arg("--out")
        .arg(tmp.path())
        .args(["--format", "hls-ts,smooth"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("bad --format") && err.contains("smooth"),
        "{err}"
    );

    // A truncated input fails; manifests of an earlier run are gone.
    let flv = fs::read(avc_aac_25(8, Container::Flv)).unwrap();
    let cut = tmp.join("cut.flv");
    fs::write(&cut, &flv[..flv.len() / 2 + 7]).unwrap();
    let out = tmp.join("out");
    fs::create_dir_all(out.join("v1")).unwrap();
    for old in ["cmaf.m3u8", "manifest.mpd", "v1/media.m3u8"] {
        fs::write(out.join(old), "#EXTM3U\n").unwrap();
    }
    let r = Command::new(example_bin())
        .arg(&cut)
        .arg("--out")
        .arg(&out)
        .args(["--format", "all"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("package: error:") && err.contains("truncated"),
        "{err}"
    );
    for old in ["cmaf.m3u8", "manifest.mpd", "v1/media.m3u8", "index.m3u8"] {
        assert!(!out.join(old).exists(), "{old} left behind");
    }
}

// ---------------------------------------------------------------- players

/// The three-language presentation, packaged once per test.
fn multi_audio_package(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    cli(&avc_multi_audio(12), tmp.path(), "all");
    tmp
}

fn check_played(o: &PlayOutcome, what: &str) {
    assert!(o.ok, "{what}: {}", o.raw);
    assert_eq!(
        (o.video_width, o.video_height),
        (640, 360),
        "{what}: {}",
        o.raw
    );
    assert!(o.fatal_errors.is_empty(), "{what}: {}", o.raw);
    assert!(o.http_errors.is_empty(), "{what}: {}", o.raw);
    assert!(!o.live, "{what}: VOD: {}", o.raw);
    let d = o.duration.expect("duration");
    assert!((d - 12.0).abs() < 0.3, "{what}: duration {d}: {}", o.raw);
    assert!(o.total_frames >= 100, "{what}: {}", o.raw);
}

fn check_three_langs(o: &PlayOutcome, what: &str) {
    let langs: Vec<&str> = o
        .audio_tracks
        .iter()
        .filter_map(|t| t.lang.as_deref())
        .collect();
    assert_eq!(langs.len(), 3, "{what}: {}", o.raw);
    for ((want, _), got) in MULTI_AUDIO_LANGS.iter().zip(&langs) {
        assert!(same_lang(want, got), "{what}: {want} vs {got}: {}", o.raw);
    }
}

#[test]
fn hls_js_plays_cmaf_m3u8() {
    let tmp = multi_audio_package("cmaf-hlsjs");
    let Some(o) = play(&PlayOpts::dir(Player::HlsJs, tmp.path(), "cmaf.m3u8", 9)) else {
        return; // STROM_SKIP_BROWSER=1
    };
    check_played(&o, "hls.js");
    check_three_langs(&o, "hls.js");
    assert!(o.audio_requests >= 2, "{}", o.raw);
}

#[test]
fn dash_js_plays_manifest_mpd() {
    let tmp = multi_audio_package("cmaf-dashjs");
    let Some(o) = play(&PlayOpts::dir(
        Player::DashJs,
        tmp.path(),
        "manifest.mpd",
        9,
    )) else {
        return;
    };
    check_played(&o, "dash.js");
    check_three_langs(&o, "dash.js");
    assert!(
        same_lang(o.audio_lang.as_deref().unwrap_or(""), "eng"),
        "{}",
        o.raw
    );
    assert!(o.audio_requests >= 2, "{}", o.raw);
}

#[test]
fn shaka_plays_mpd_switching_eng_to_fra_and_plays_cmaf_m3u8() {
    let tmp = multi_audio_package("cmaf-shaka");
    let mpd = fs::read_to_string(tmp.join("manifest.mpd")).unwrap();
    // The French Representation's folder, from the MPD.
    let set = mpd
        .split("<AdaptationSet")
        .find(|s| s.contains("lang=\"fr\""))
        .expect("a French AdaptationSet");
    let id = set.split("<Representation id=\"").nth(1).unwrap();
    let fra = format!("/{}/", &id[..id.find('"').unwrap()]);
    assert_eq!(fra, "/a3/");

    let opts =
        PlayOpts::dir(Player::Shaka, tmp.path(), "manifest.mpd", 9).switch_audio("fra", Some(3));
    let Some(o) = play(&opts) else {
        return;
    };
    check_played(&o, "Shaka DASH");
    check_three_langs(&o, "Shaka DASH");
    let sw = o.switch.as_ref().expect("switch reported");
    assert!(
        same_lang(sw.before.as_deref().unwrap_or(""), "eng"),
        "{}",
        o.raw
    );
    assert!(
        same_lang(sw.after.as_deref().unwrap_or(""), "fra"),
        "{}",
        o.raw
    );
    assert!(
        sw.advanced_after_switch_s.unwrap_or(0.0) >= 2.0,
        "{}",
        o.raw
    );
    assert!(
        !sw.requests_before.is_empty() && sw.requests_before.iter().all(|p| !p.contains(&fra)),
        "only English audio before the switch: {}",
        o.raw
    );
    assert!(
        sw.requests_after.iter().any(|p| p.contains(&fra)),
        "French segments fetched after the switch: {}",
        o.raw
    );

    let o = play(&PlayOpts::dir(Player::Shaka, tmp.path(), "cmaf.m3u8", 9)).unwrap();
    check_played(&o, "Shaka HLS");
    check_three_langs(&o, "Shaka HLS");
}
