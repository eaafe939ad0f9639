//! The player harness itself (`common::players`, `tests/browser/play.mjs --player`) against
//! ffmpeg's own DASH and HLS-fMP4 output: dash.js, Shaka Player and hls.js play it, switch the
//! audio language, report a live stream as live, and fail loudly on a missing segment.
//!
//! These prove the harness can tell good from bad before other tests trust it with strom's
//! output. Each playback is <= 8 s; `STROM_SKIP_BROWSER=1` skips them with SKIP lines.

mod common;

use common::players::{play, same_lang, PlayOpts, PlayOutcome, Player, Source};
use common::{
    avc_aac_25, avc_multi_audio, ffmpeg_dash_cmd, tool, Container, TempDir, MULTI_AUDIO_LANGS,
};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tests of this file take turns for their whole run (not only per playback), so the
/// live test's real-time ffmpeg starts when the browser is free and stays ahead of the player.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn ffmpeg_dash(input: &Path, out: &Path) {
    let st = ffmpeg_dash_cmd(input, out, &[], &[]).status().unwrap();
    assert!(st.success(), "ffmpeg -f dash failed: {st}");
}

/// The representation id of the AdaptationSet with `lang="<lang>"` in ffmpeg's MPD (ffmpeg
/// writes one AdaptationSet with one Representation per stream).
fn representation_of_lang(mpd: &str, lang: &str) -> String {
    let set = mpd
        .split("<AdaptationSet")
        .find(|s| s.contains(&format!("lang=\"{lang}\"")))
        .unwrap_or_else(|| panic!("no AdaptationSet lang={lang} in\n{mpd}"));
    let rep = set.split("<Representation id=\"").nth(1).unwrap();
    rep[..rep.find('"').unwrap()].to_string()
}

fn check_vod(o: &PlayOutcome, what: &str) {
    assert!(o.ok, "{what}: {}", o.raw);
    assert_eq!(
        (o.video_width, o.video_height),
        (640, 360),
        "{what}: {}",
        o.raw
    );
    assert!(o.fatal_errors.is_empty(), "{what}: {}", o.raw);
    assert!(o.http_errors.is_empty(), "{what}: {}", o.raw);
    assert!(!o.live && o.live_latency_s.is_none(), "{what}: {}", o.raw);
    assert!(
        (o.duration.unwrap() - 12.0).abs() < 0.3,
        "{what}: {}",
        o.raw
    );
    assert!(o.total_frames >= 60, "{what}: {}", o.raw);
}

/// Languages as the player lists them, compared loosely (`eng` / `en`).
fn check_three_langs(o: &PlayOutcome) {
    let langs: Vec<&str> = o
        .audio_tracks
        .iter()
        .filter_map(|t| t.lang.as_deref())
        .collect();
    assert_eq!(langs.len(), 3, "{}", o.raw);
    for ((want, _), got) in MULTI_AUDIO_LANGS.iter().zip(&langs) {
        assert!(same_lang(want, got), "{want} vs {got}: {}", o.raw);
    }
}

/// A switch eng -> fra that really happened: the player reported eng before and fra after,
/// kept playing, and fetched the French representation's segments (`fra_marker` is a
/// substring only the French audio segment paths contain).
fn check_switch(o: &PlayOutcome, fra_marker: &str) {
    assert!(o.ok, "{}", o.raw);
    let sw = o.switch.as_ref().expect("switch reported");
    assert_eq!(sw.requested, "fra");
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
    assert!(sw.advanced_after_switch_s.unwrap() >= 2.0, "{}", o.raw);
    assert!(sw.switched_at_s.unwrap() > 1.0, "{}", o.raw);
    assert!(
        !sw.requests_before.is_empty()
            && sw.requests_before.iter().all(|p| !p.contains(fra_marker)),
        "only the default (eng) audio before the switch: {}",
        o.raw
    );
    assert!(
        sw.requests_after.iter().any(|p| p.contains(fra_marker)),
        "French segments fetched after the switch: {}",
        o.raw
    );
}

#[test]
fn dash_js_and_shaka_play_ffmpeg_dash_and_switch_audio() {
    let _turn = serial();
    let tmp = TempDir::new("players-dash");
    ffmpeg_dash(&avc_multi_audio(12), tmp.path());
    let mpd = fs::read_to_string(tmp.join("manifest.mpd")).unwrap();
    let fra = format!("chunk-stream{}-", representation_of_lang(&mpd, "fra"));

    for (player, version) in [
        (Player::DashJs, "dash.js 5.2.1"),
        (Player::Shaka, "shaka-player v5.2.12"),
    ] {
        let opts =
            PlayOpts::dir(player, tmp.path(), "manifest.mpd", 6).switch_audio("fra", Some(3));
        let Some(o) = play(&opts) else {
            return; // STROM_SKIP_BROWSER=1
        };
        check_vod(&o, player.arg());
        assert!(o.player.starts_with(version), "{}", o.raw);
        check_three_langs(&o);
        check_switch(&o, &fra);
    }

    // Asking for a language the stream does not have is a failure that says so.
    let opts =
        PlayOpts::dir(Player::Shaka, tmp.path(), "manifest.mpd", 3).switch_audio("spa", Some(1));
    let o = play(&opts).unwrap();
    assert!(!o.ok, "{}", o.raw);
    assert!(
        o.reason.contains("no audio track with language spa"),
        "{}",
        o.raw
    );
}

#[test]
fn hls_js_and_shaka_play_ffmpeg_hls_fmp4_and_switch_audio() {
    let _turn = serial();
    let tmp = TempDir::new("players-hls");
    // video + three alternative audio renditions (EXT-X-MEDIA TYPE=AUDIO), fMP4 segments
    let st = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-y", "-v", "error", "-i"])
        .arg(avc_multi_audio(12))
        .args([
            "-map", "0:v", "-map", "0:a:0", "-map", "0:a:1", "-map", "0:a:2", "-c", "copy",
        ])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-master_pl_name",
            "master.m3u8",
        ])
        .args([
            "-var_stream_map",
            "v:0,agroup:aud a:0,agroup:aud,language:eng,default:yes \
             a:1,agroup:aud,language:fra a:2,agroup:aud,language:deu",
        ])
        .arg("-hls_segment_filename")
        .arg(tmp.join("s%v_%03d.m4s"))
        .arg(tmp.join("v%v.m3u8"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg -f hls failed: {st}");
    let master = fs::read_to_string(tmp.join("master.m3u8")).unwrap();
    assert!(
        master.contains("LANGUAGE=\"fra\",URI=\"v2.m3u8\""),
        "{master}"
    );

    for player in [Player::HlsJs, Player::Shaka] {
        let opts = PlayOpts::dir(player, tmp.path(), "master.m3u8", 6).switch_audio("fra", Some(3));
        let Some(o) = play(&opts) else { return };
        check_vod(&o, player.arg());
        check_three_langs(&o);
        check_switch(&o, "/s2_");
    }

    // hls.js, single-rendition fMP4 (audio muxed with video): plays, no audio track list.
    let single = TempDir::new("players-hls1");
    let st = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-y", "-v", "error", "-i"])
        .arg(avc_aac_25(12, Container::Mp4))
        .args(["-map", "0", "-c", "copy", "-f", "hls", "-hls_time", "2"])
        .args(["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"])
        .arg(single.join("index.m3u8"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let o = play(&PlayOpts::dir(
        Player::HlsJs,
        single.path(),
        "index.m3u8",
        4,
    ))
    .unwrap();
    check_vod(&o, "hls.js fMP4");
    assert!(o.player.starts_with("hls.js 1.7.4"), "{}", o.raw);
    assert!(
        o.audio_tracks.is_empty() && o.audio_lang.is_none(),
        "{}",
        o.raw
    );
}

#[test]
fn a_missing_dash_segment_fails_with_its_404() {
    let _turn = serial();
    let tmp = TempDir::new("players-missing");
    ffmpeg_dash(&avc_multi_audio(12), tmp.path());
    // the third video segment (4..6 s)
    let gone = "chunk-stream0-00003.m4s";
    fs::remove_file(tmp.join(gone)).unwrap();
    for player in [Player::DashJs, Player::Shaka] {
        let Some(o) = play(&PlayOpts::dir(player, tmp.path(), "manifest.mpd", 6)) else {
            return;
        };
        assert!(!o.ok, "{}: {}", player.arg(), o.raw);
        assert!(o.advanced_s < 4.8, "{}: {}", player.arg(), o.raw);
        assert!(!o.fatal_errors.is_empty(), "{}: {}", player.arg(), o.raw);
        let missing = o.http_status(404);
        assert!(
            !missing.is_empty() && missing.iter().all(|e| e.ends_with(&format!("/{gone}"))),
            "{}: {}",
            player.arg(),
            o.raw
        );
    }
}

/// A live report: live, no duration, a plausible live latency, and no request for a segment
/// before it was available (no HTTP error at all).
fn check_live(o: &PlayOutcome) {
    assert!(o.live && o.duration.is_none(), "{}", o.raw);
    let latency = o.live_latency_s.expect("live latency");
    assert!((0.0..15.0).contains(&latency), "{}", o.raw);
    assert!(o.http_errors.is_empty(), "segment not available: {}", o.raw);
    assert_eq!((o.video_width, o.video_height), (640, 360), "{}", o.raw);
}

/// ffmpeg writing a live DASH presentation in real time (`-re`), killed on drop.
struct LiveFfmpeg(Child);

impl Drop for LiveFfmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn live_dash_is_reported_live_and_followed() {
    let input = avc_aac_25(40, Container::Mp4);
    let _turn = serial();
    let tmp = TempDir::new("players-live");
    let child = ffmpeg_dash_cmd(
        &input,
        tmp.path(),
        &["-re"],
        &[
            "-window_size",
            "5",
            "-extra_window_size",
            "2",
            "-streaming",
            "0",
        ],
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut ffmpeg = LiveFfmpeg(child);
    // three complete segments (6 s) before a player joins; bounded wait
    let t0 = Instant::now();
    while !tmp.join("chunk-stream0-00003.m4s").is_file() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "ffmpeg wrote no live segments"
        );
        assert!(
            ffmpeg.0.try_wait().unwrap().is_none(),
            "ffmpeg exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mpd = fs::read_to_string(tmp.join("manifest.mpd")).unwrap();
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");

    // Shaka: the whole --live contract (ok = live, advanced >= 80 %, no fatal error).
    let Some(o) = play(&PlayOpts::dir(Player::Shaka, tmp.path(), "manifest.mpd", 5).live()) else {
        return;
    };
    assert!(o.ok && o.advanced_s >= 4.0, "{}", o.raw);
    check_live(&o);

    // dash.js joins ffmpeg's presentation suggestedPresentationDelay (2 s, one segment) behind
    // the edge, where the next segment is often not written yet: it stalls, and on a loaded
    // machine drifts to ~6 s latency, so 80 % is not guaranteed with ffmpeg as the source.
    // What the harness must get right is still checked: live, latency, progress, no 404.
    let o = play(&PlayOpts::dir(Player::DashJs, tmp.path(), "manifest.mpd", 8).live()).unwrap();
    assert!(
        o.fatal_errors.is_empty() && o.advanced_s >= 4.0,
        "{}",
        o.raw
    );
    assert!(
        o.ok || o.reason.starts_with("currentTime advanced"),
        "{}",
        o.raw
    );
    check_live(&o);
    assert!(ffmpeg.0.try_wait().unwrap().is_none(), "ffmpeg still live");

    // --live on a VOD presentation is a failure.
    let vod = TempDir::new("players-live-vod");
    ffmpeg_dash(&avc_multi_audio(12), vod.path());
    let o = play(&PlayOpts::dir(Player::Shaka, vod.path(), "manifest.mpd", 2).live()).unwrap();
    assert!(!o.ok && o.reason.contains("live"), "{}", o.raw);
    drop(ffmpeg);
}

#[test]
fn opts_and_reports() {
    let opts = PlayOpts::url(Player::DashJs, "http://127.0.0.1:9/live/a/manifest.mpd", 6)
        .live()
        .switch_audio("fra", Some(2));
    assert_eq!(
        opts.source,
        Source::Url("http://127.0.0.1:9/live/a/manifest.mpd".into())
    );
    let args: Vec<String> = opts
        .args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args,
        [
            "--player",
            "dash",
            "--url",
            "http://127.0.0.1:9/live/a/manifest.mpd",
            "--seconds",
            "6",
            "--live",
            "--switch-audio",
            "fra",
            "--switch-after",
            "2"
        ]
    );
    assert!(same_lang("eng", "en") && same_lang("fre", "fr-CA") && same_lang("DEU", "de"));
    assert!(!same_lang("eng", "fra") && !same_lang("", ""));

    let o = PlayOutcome::from_json(
        r#"{"ok":false,"reason":"x","player":"shaka-player v5.2.12","advanced_s":3.5,"required_s":4,
        "duration":null,"live":true,"live_latency_s":2.25,"video_width":640,"video_height":360,
        "audio_tracks":[{"lang":"en","label":null,"role":"main"},{"lang":"fr","label":"French","role":null}],
        "audio_lang":"fr","audio_requests":9,"switch_audio":"fra","audio_lang_before":"en",
        "switched_at_s":2.5,"advanced_after_switch_s":1,"audio_requests_before_switch":["/a1.m4s"],
        "audio_requests_after_switch":["/a2.m4s","/a3.m4s"],"fatal_errors":[{"code":1001}],
        "http_errors":["404 http://127.0.0.1:1/a2.m4s","FAILED net::ERR_X http://127.0.0.1:1/b"],
        "aborted_requests":["http://127.0.0.1:1/c"]}"#,
    )
    .unwrap();
    assert!(!o.ok && o.live);
    assert_eq!(o.live_latency_s, Some(2.25));
    assert_eq!(o.audio_tracks[0].role.as_deref(), Some("main"));
    assert_eq!(o.audio_tracks[1].label.as_deref(), Some("French"));
    let sw = o.switch.as_ref().unwrap();
    assert_eq!(
        (sw.before.as_deref(), sw.after.as_deref()),
        (Some("en"), Some("fr"))
    );
    assert_eq!(sw.requests_after, ["/a2.m4s", "/a3.m4s"]);
    assert_eq!(o.http_status(404), ["404 http://127.0.0.1:1/a2.m4s"]);
    assert_eq!(o.fatal_errors, [r#"{"code":1001}"#]);
    assert_eq!(o.aborted_requests.len(), 1);
    let line = o.summary();
    assert!(
        line.contains("shaka-player v5.2.12 FAILED") && line.contains(": x"),
        "{line}"
    );
    assert!(PlayOutcome::from_json("{}").is_err(), "no `ok`");
}
