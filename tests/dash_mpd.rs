//! DASH MPD writer against real tools: demux an MP4 with strom, write each track as CMAF
//! (init + ~2 s segments, one file each) with the fMP4 writer, describe them with a static
//! MPD, then let ffprobe and ffmpeg's own DASH demuxer read the presentation back: the
//! streams are found with the right codecs and picture size, and the decoded video is
//! frame-identical to the source.
//!
//! Set `STROM_DASH_OUT=/some/dir` to keep a copy of the presentation (for manual checks
//! with a DASH validator or player).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::cmaf::{cut, demux, expand, shift_to_zero};
use common::{avc_aac_25, decode_errors, framemd5, streams, Container, TempDir};
use strom::container::fmp4::Fmp4Writer;
use strom::container::mp4::Mp4Demuxer;
use strom::media::{Frame, MediaKind, TrackInfo};
use strom::package::cmaf::{CmafOptions, CmafPresentation};
use strom::package::dash::{
    AdaptationSet, Mpd, MpdType, Representation, Role, SegmentTemplate, SegmentTimeline,
};
use strom::package::hls::{BandwidthMeter, PlaylistType};
use strom::package::{Segmenter, SegmenterOptions};
use strom::pipeline::{drain, Stage};
use strom::time::Timestamp;

/// Writes `<dir>/<id>/init.mp4` and `<dir>/<id>/<n>.m4s` (n from 1); returns the
/// Representation describing them and the track's end time.
fn write_track(
    dir: &Path,
    id: &str,
    track: &TrackInfo,
    frames: &[Frame],
) -> (Representation, Timestamp) {
    let sub = dir.join(id);
    fs::create_dir_all(&sub).unwrap();
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut init = BytesMut::new();
    w.init_segment(&mut init).unwrap();
    fs::write(sub.join("init.mp4"), &init).unwrap();

    let every = 2 * i64::from(track.timescale.get());
    let runs = cut(frames, every, track.kind == MediaKind::Video);
    assert!(runs.len() >= 3, "{} segments", runs.len());
    let mut template = SegmentTemplate::new(track.timescale);
    let mut meter = BandwidthMeter::new();
    let mut end = 0u64;
    for (n, r) in runs.iter().enumerate() {
        let next = frames.get(r.end).map(|f| f.dts);
        let mut seg = BytesMut::new();
        let info = w
            .media_segment(&frames[r.clone()], n as u32 + 1, next, &mut seg)
            .unwrap();
        fs::write(sub.join(format!("{}.m4s", n + 1)), &seg).unwrap();
        template
            .timeline
            .push(info.base_decode_time, info.duration)
            .unwrap();
        meter.record(
            seg.len() as u64,
            Timestamp::new(info.duration as i64, track.timescale),
        );
        end = info.base_decode_time + info.duration;
    }
    assert_eq!(template.timeline.segments(), runs.len() as u64);
    assert_eq!(template.timeline.end(), Some(end));
    let rep = Representation::for_track(id, track, meter.peak(), template);
    (rep, Timestamp::new(end as i64, track.timescale))
}

/// Writes the whole presentation into `dir` as `manifest.mpd`; `live` (availability
/// start and publish time, Unix ms) makes a dynamic MPD. Returns the manifest's text.
fn package(source: &Path, dir: &Path, live: Option<(i64, i64)>) -> String {
    let (tracks, mut frames) = demux(source);
    assert_eq!(tracks.len(), 2);
    let mut sets = Vec::new();
    let mut duration = Timestamp::from_millis(0);
    for (n, track) in tracks.iter().enumerate() {
        let frames = frames.get_mut(&track.id).unwrap();
        shift_to_zero(frames);
        let id = match track.kind {
            MediaKind::Video => "video",
            _ => "audio",
        };
        let (rep, end) = write_track(dir, id, track, frames);
        duration = duration.max(end);
        let set = AdaptationSet::for_track(n as u32, track, rep)
            .unwrap()
            .with_role(Role::Main);
        sets.push(set);
    }
    let mut mpd = Mpd::new(match live {
        None => MpdType::Static {
            media_presentation_duration: duration,
        },
        Some((availability_start_time, publish_time)) => MpdType::Dynamic {
            availability_start_time,
            publish_time,
            minimum_update_period: Some(Timestamp::from_secs(2)),
            media_presentation_duration: None,
            time_shift_buffer_depth: Some(Timestamp::from_secs(30)),
            suggested_presentation_delay: Some(Timestamp::from_secs(4)),
        },
    });
    mpd.period_mut().adaptation_sets = sets;
    if live.is_some() {
        mpd.utc_timing = Some("/time".to_string());
    }
    let text = mpd.write().unwrap();
    fs::write(dir.join("manifest.mpd"), &text).unwrap();
    text
}

#[test]
fn static_mpd_reads_back_in_ffmpeg() {
    let source = avc_aac_25(8, Container::Mp4);
    let dir = TempDir::new("dash-mpd");
    let text = package(&source, dir.path(), None);
    let manifest = dir.join("manifest.mpd");

    // What we wrote, in short (the unit tests check the exact XML).
    assert!(
        text.contains(r#"type="static" mediaPresentationDuration="PT8"#),
        "{text}"
    );
    assert!(
        text.contains(r#"codecs="avc1.64001e" width="640" height="360" frameRate="25""#),
        "{text}"
    );
    assert!(
        text.contains(r#"codecs="mp4a.40.2" audioSamplingRate="48000""#),
        "{text}"
    );
    assert!(text.contains(r#"<S t="0" d="25600" r="3"/>"#), "{text}");

    // ffprobe (libavformat's DASH demuxer) finds both streams with the right properties.
    let s = streams(&manifest);
    assert_eq!(s.len(), 2, "{s:?}");
    let video = s
        .iter()
        .find(|s| s.codec_type == "video")
        .expect("video stream");
    assert_eq!(video.codec_name, "h264");
    assert_eq!((video.width, video.height), (640, 360));
    let audio = s
        .iter()
        .find(|s| s.codec_type == "audio")
        .expect("audio stream");
    assert_eq!(audio.codec_name, "aac");
    assert_eq!((audio.sample_rate, audio.channels), (48_000, 2));
    assert!(s[0].format_name.contains("dash"), "{}", s[0].format_name);

    // Every segment is fetched and decodes cleanly; the video is frame-identical.
    assert_eq!(decode_errors(&manifest), "");
    let a = framemd5(&source, "v:0");
    let b = framemd5(&manifest, "v:0");
    assert_eq!(a.len(), 200, "source frames");
    assert_eq!(a.len(), b.len(), "decoded frame count");
    assert!(a == b, "decoded video differs from the source");

    if let Some(out) = std::env::var_os("STROM_DASH_OUT") {
        copy_dir(dir.path(), Path::new(&out));
    }
}

/// A dynamic MPD whose availability started 9 s ago (the 8 s of media are all
/// available): ffprobe's DASH demuxer takes it as live and finds both streams.
#[test]
fn dynamic_mpd_probes_as_live() {
    let source = avc_aac_25(8, Container::Mp4);
    let dir = TempDir::new("dash-mpd-live");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let text = package(&source, dir.path(), Some((now_ms - 9_000, now_ms)));
    assert!(
        text.contains(r#"type="dynamic" availabilityStartTime=""#),
        "{text}"
    );
    assert!(text.contains(r#"minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT30S" suggestedPresentationDelay="PT4S""#), "{text}");
    assert!(
        text.contains(
            r#"<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/>"#
        ),
        "{text}"
    );

    // ffprobe on a live MPD could poll for ever if it found no segment: bounded wait.
    let mut child = Command::new(common::tool("ffprobe"))
        .args(["-v", "error", "-show_streams", "-of", "flat"])
        .arg(dir.join("manifest.mpd"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    for _ in 0..600 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("ffprobe did not finish within 60 s on the dynamic MPD");
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("codec_name=\"h264\""), "{stdout}");
    assert!(stdout.contains("codec_name=\"aac\""), "{stdout}");
    assert!(stdout.contains(".width=640\n"), "{stdout}");
    assert!(stdout.contains(".height=360\n"), "{stdout}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A timeline the writer refuses: segments that do not follow on.
#[test]
fn timeline_rejects_gaps_from_real_fragments() {
    let source = avc_aac_25(8, Container::Mp4);
    let (tracks, mut frames) = demux(&source);
    let track = tracks.iter().find(|t| t.kind == MediaKind::Video).unwrap();
    let frames = frames.get_mut(&track.id).unwrap();
    shift_to_zero(frames);
    let runs = cut(frames, 2 * i64::from(track.timescale.get()), true);
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut infos = Vec::new();
    for (n, r) in runs.iter().enumerate() {
        let next = frames.get(r.end).map(|f| f.dts);
        infos.push(
            w.media_segment(&frames[r.clone()], n as u32 + 1, next, &mut BytesMut::new())
                .unwrap(),
        );
    }
    // All fragments: contiguous. Skipping one leaves a gap, which is an error.
    let all =
        SegmentTimeline::from_segments(infos.iter().map(|i| (i.base_decode_time, i.duration)));
    assert!(all.is_ok());
    let skipped = SegmentTimeline::from_segments(
        infos
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != 1)
            .map(|(_, i)| (i.base_decode_time, i.duration)),
    );
    assert_eq!(skipped.unwrap_err().kind(), strom::ErrorKind::Usage);
}

/// Fragments of one rendition as written: (number, tfdt, duration) in track ticks.
type Written = std::collections::BTreeMap<String, Vec<(u64, u64, u64)>>;

/// Packages `source` through the segmenter and a [`CmafPresentation`] (2 s target), the
/// path the VOD packager and the live origin share; returns it and what it wrote.
fn present(source: &Path, opts: CmafOptions) -> (CmafPresentation, Written) {
    let items = Mp4Demuxer::read_all(bytes::Bytes::from(fs::read(source).unwrap())).unwrap();
    let mut seg_opts = SegmenterOptions::default();
    seg_opts.target_duration = Timestamp::from_secs(2);
    let mut segmenter = Segmenter::new(seg_opts).unwrap();
    let mut cmaf = CmafPresentation::new(opts);
    let mut written = Written::new();
    let mut take = |cmaf: &mut CmafPresentation, segs: Vec<strom::package::Segment>| {
        for s in segs {
            for f in cmaf.write_segment(&s, Some(1_700_000_000_000)).unwrap() {
                written.entry(f.rendition.clone()).or_default().push((
                    f.number,
                    f.info.base_decode_time,
                    f.info.duration,
                ));
            }
        }
    };
    for item in items {
        segmenter.push(item).unwrap();
        let segs = drain(&mut segmenter).unwrap();
        take(&mut cmaf, segs);
    }
    segmenter.finish().unwrap();
    let segs = drain(&mut segmenter).unwrap();
    take(&mut cmaf, segs);
    (cmaf, written)
}

/// The MPDs of a three-language presentation, static and dynamic, read by an
/// independent parser (`dash-mpd-core`): no conformity error, one video and three
/// audio AdaptationSets with the right languages and roles, and every
/// Representation's timeline matches the fragments written (contiguous, starting at
/// the first `tfdt`, one entry per fragment, numbers from `@startNumber`).
#[test]
fn cmaf_mpds_parse_independently_and_match_the_fragments() {
    let source = common::avc_multi_audio(12);
    let (mut cmaf, written) = present(&source, CmafOptions::default());
    cmaf.set_ended();
    let xml = cmaf.static_mpd().unwrap().write().unwrap();
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let errors = dash_mpd_core::check_conformity(&mpd);
    assert!(errors.is_empty(), "conformity: {errors:?}\n{xml}");
    assert_eq!(mpd.mpdtype.as_deref(), Some("static"));
    let duration = mpd.mediaPresentationDuration.expect("duration");
    assert!(
        (11_900..=12_100).contains(&duration.as_millis()),
        "{duration:?}"
    );
    assert_eq!(mpd.periods.len(), 1);
    let sets = &mpd.periods[0].adaptations;
    let described: Vec<String> = sets
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}",
                a.contentType.as_deref().unwrap_or("-"),
                a.lang.as_deref().unwrap_or("-"),
                a.Role
                    .first()
                    .and_then(|r| r.value.as_deref())
                    .unwrap_or("-"),
                a.representations[0].id.as_deref().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            "video - main v1",
            "audio en main a2",
            "audio fr dub a3",
            "audio de dub a4"
        ]
    );
    for set in sets {
        let rep = &set.representations[0];
        let id = rep.id.clone().unwrap();
        let tpl = rep.SegmentTemplate.as_ref().expect("SegmentTemplate");
        assert_eq!(
            tpl.media.as_deref(),
            Some("$RepresentationID$/$Number$.m4s")
        );
        assert_eq!(tpl.startNumber, Some(1));
        let listed = expand(tpl.SegmentTimeline.as_ref().expect("timeline"));
        let frags = &written[&id];
        assert_eq!(listed.len(), frags.len(), "{id}: one S per fragment");
        assert_eq!(listed[0].0, frags[0].1, "{id}: starts at the first tfdt");
        for (i, ((t, d), (n, tfdt, dur))) in listed.iter().zip(frags).enumerate() {
            assert_eq!(*n, i as u64 + 1, "{id}: numbers from 1");
            // Contiguous timeline; each entry within one tick of its fragment.
            assert!(t.abs_diff(*tfdt) <= 1, "{id} #{n}: S@t {t} vs tfdt {tfdt}");
            assert!((t + d).abs_diff(tfdt + dur) <= 1, "{id} #{n}: end");
        }
        assert!(rep.bandwidth.unwrap_or(0) > 0);
    }

    // Live: a window of 3 fragments, dates and update period as the origin sets them.
    let mut live = CmafOptions::default();
    live.window = Some(3);
    live.first_number = 40;
    live.playlist_type = PlaylistType::Live;
    live.target_duration = Some(2);
    let (cmaf, written) = present(&source, live);
    let mut model = cmaf
        .mpd(MpdType::Dynamic {
            availability_start_time: 1_700_000_000_000,
            publish_time: 1_700_000_012_345,
            minimum_update_period: Some(Timestamp::from_secs(2)),
            media_presentation_duration: None,
            time_shift_buffer_depth: Some(Timestamp::from_secs(6)),
            suggested_presentation_delay: Some(Timestamp::from_secs(6)),
        })
        .unwrap();
    model.utc_timing = Some("/time".into());
    let xml = model.write().unwrap();
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(dash_mpd_core::check_conformity(&mpd).is_empty());
    assert_eq!(mpd.mpdtype.as_deref(), Some("dynamic"));
    assert_eq!(
        mpd.availabilityStartTime.unwrap().timestamp_millis(),
        1_700_000_000_000
    );
    assert_eq!(
        mpd.publishTime.unwrap().timestamp_millis(),
        1_700_000_012_345
    );
    assert_eq!(mpd.minimumUpdatePeriod.unwrap().as_millis(), 2000);
    assert_eq!(mpd.timeShiftBufferDepth.unwrap().as_millis(), 6000);
    assert_eq!(mpd.UTCTiming[0].value.as_deref(), Some("/time"));
    for set in &mpd.periods[0].adaptations {
        let rep = &set.representations[0];
        let id = rep.id.clone().unwrap();
        let tpl = rep.SegmentTemplate.as_ref().unwrap();
        let frags = &written[&id];
        let window = &frags[frags.len() - 3..];
        assert_eq!(
            tpl.startNumber,
            Some(window[0].0),
            "{id}: startNumber moves"
        );
        let listed = expand(tpl.SegmentTimeline.as_ref().unwrap());
        assert_eq!(listed.len(), 3);
        assert!(listed[0].0.abs_diff(window[0].1) <= 1);
    }
}

/// Standard base64 back to bytes (test side, independent of the writer's encoder).
fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// `ContentProtection` read by `dash-mpd-core`: every AdaptationSet of a protected
/// presentation carries the mp4protection descriptor (value `cenc`, the default KID in
/// UUID form) and the Clear Key one (its `pssh` box in base64, byte for byte the box the
/// init segments carry, and the licence URL); the MPD stays conformant.
#[test]
fn content_protection_parses_independently() {
    use strom::container::fmp4::PsshBox;
    use strom::crypto::{KeyId, Scheme};
    use strom::package::dash::ContentProtection;

    let source = common::avc_multi_audio(4);
    let (mut cmaf, _) = present(&source, CmafOptions::default());
    cmaf.set_ended();
    let mut model = cmaf.static_mpd().unwrap();
    let kid = KeyId::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    let pssh = PsshBox::clearkey(vec![kid]);
    let laurl = "https://origin.example/licence/cam1?token=1800000000-ab&x=<1>";
    for set in &mut model.period_mut().adaptation_sets {
        set.content_protection = vec![
            ContentProtection::mp4_protection(Scheme::Cenc, kid).unwrap(),
            ContentProtection::for_system(&pssh)
                .unwrap()
                .with_license_url(laurl),
        ];
    }
    let xml = model.write().unwrap();
    assert!(xml.contains("xmlns:cenc=\"urn:mpeg:cenc:2013\""), "{xml}");
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let errors = dash_mpd_core::check_conformity(&mpd);
    assert!(errors.is_empty(), "conformity: {errors:?}\n{xml}");
    let mut box_bytes = BytesMut::new();
    pssh.write(&mut box_bytes).unwrap();
    let sets = &mpd.periods[0].adaptations;
    assert_eq!(sets.len(), 4);
    for set in sets {
        let cps = &set.ContentProtection;
        assert_eq!(cps.len(), 2, "{xml}");
        assert_eq!(cps[0].schemeIdUri, "urn:mpeg:dash:mp4protection:2011");
        assert_eq!(cps[0].value.as_deref(), Some("cenc"));
        assert_eq!(
            cps[0].default_KID.as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(
            cps[1].schemeIdUri,
            "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
        );
        let b64 = cps[1].cenc_pssh[0].content.as_deref().unwrap();
        assert_eq!(unbase64(b64), box_bytes.to_vec());
        let url = cps[1]
            .laurl
            .as_ref()
            .or(cps[1].clearkey_laurl.as_ref())
            .and_then(|l| l.content.as_deref());
        assert_eq!(url, Some(laurl), "{xml}");
    }
}
