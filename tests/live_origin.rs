//! End-to-end acceptance for the live origin (`examples/live_origin.rs`, issue 3):
//! ffmpeg publishes RTMP, the origin packages it live, HTTP clients (ffprobe, hls.js) watch it.
//!
//! Every test starts its own origin on fresh loopback ports and kills it (and every ffmpeg it
//! started) by PID when it ends, also on panic. The heavy tests take a lock so that two cores
//! are not asked to run two live streams plus a browser at once.
mod common;

use common::live::*;
use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Heavy tests (live publish) run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// One live stream under test: a fresh origin ([`Origin::start`]), a scratch directory and
/// ffmpeg publishing an input to it with a valid token.
struct Live {
    origin: Origin,
    dir: TempDir,
    /// The publish URL (with its token).
    url: String,
    /// The publisher.
    ff: Proc,
    /// Just before the publisher was started.
    started: Instant,
}

/// Starts an origin, a scratch directory `TempDir::new(tag)` and ffmpeg publishing `input` as
/// `name` for `seconds`, its stderr in `dir/log`.
fn start_live(input: &Path, tag: &str, name: &str, seconds: u32, log: &str) -> Live {
    let origin = Origin::start();
    let dir = TempDir::new(tag);
    let url = origin.publish_url(name, &Origin::token_query(name));
    let started = Instant::now();
    let ff = publish(input, &url, seconds, &dir.join(log));
    Live {
        origin,
        dir,
        url,
        ff,
        started,
    }
}

#[test]
fn publish_then_live_hls_polls_and_plays_in_browser() {
    let _serial = serial();
    let input = avc_aac_25(10, Container::Flv);
    let name = "e2e_live";
    let Live {
        origin,
        dir,
        mut ff,
        started: t0,
        ..
    } = start_live(&input, "live-e2e", name, 60, "ffmpeg.log");
    let (first, took, accepted) = wait_first_playlist(&origin, name, Duration::from_secs(15));
    let startup = accepted.unwrap_or(took);
    println!(
        "ffmpeg start -> first playlist with a segment: {} ms (ffmpeg start-up until the publish \
         was accepted: {} ms; after it: {} ms); MEDIA-SEQUENCE {}",
        took.as_millis(),
        startup.as_millis(),
        (took - startup).as_millis(),
        first.media_sequence
    );
    // One segment (2 s) + 1 s after ffmpeg's start-up (polled every 10 ms).
    assert!(
        took - startup <= Duration::from_millis(3000),
        "first playlist {:?} after the publish was accepted",
        took - startup
    );
    assert!(
        took <= Duration::from_secs(6),
        "first playlist after {took:?}"
    );

    let streams = origin.streams_json();
    assert!(streams.contains(name), "{streams}");
    assert!(
        streams.contains("avc1.") && streams.contains("mp4a.40.2"),
        "codecs missing from /streams.json: {streams}"
    );

    // Browser playback in parallel with the playlist polling.
    let play_url = origin.http_url(&format!("/live/{name}/index.m3u8"));
    let player = std::thread::spawn(move || play_url_in_browser(&play_url, 20));

    let mut last_seq = first.media_sequence;
    let first_newest = first.newest();
    let mut last_newest = first_newest;
    let mut seq_log = vec![(t0.elapsed().as_secs_f64(), first.media_sequence)];
    let mut checked = std::collections::BTreeSet::new();
    for (msn, uri, _) in &first.segments {
        check_segment(&origin, name, uri, &dir);
        checked.insert(*msn);
    }
    let poll_start = Instant::now();
    let mut polls = 0;
    while poll_start.elapsed() < Duration::from_secs(30) && polls < 60 {
        polls += 1;
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            ff.exited().is_none(),
            "ffmpeg stopped publishing: {}",
            std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default()
        );
        let text = origin.playlist(name).expect("media playlist while live");
        let p = Playlist::parse(&text);
        assert!(
            p.media_sequence >= last_seq,
            "MEDIA-SEQUENCE went back {last_seq} -> {}:\n{}",
            p.media_sequence,
            p.text
        );
        assert!(!p.text.contains("#EXT-X-ENDLIST"), "{}", p.text);
        assert!(
            p.newest() >= last_newest,
            "newest segment went back:\n{}",
            p.text
        );
        // Sliding window (6 segments by default): never more than a few extra.
        assert!(p.segments.len() <= 8, "window grows:\n{}", p.text);
        if p.media_sequence != last_seq {
            seq_log.push((t0.elapsed().as_secs_f64(), p.media_sequence));
        }
        last_seq = p.media_sequence;
        last_newest = p.newest();
        for (msn, uri, _) in &p.segments {
            if checked.insert(*msn) {
                check_segment(&origin, name, uri, &dir);
            }
        }
    }
    let rise = last_seq - first.media_sequence;
    let new_segments = last_newest - first_newest;
    println!(
        "MEDIA-SEQUENCE (t s, value): {seq_log:?}; newest segment {first_newest} -> \
         {last_newest}; {} segments checked",
        checked.len()
    );
    // ~30 s of 2 s segments: about 15 new ones (one per segment, not bursts).
    assert!(
        (11..=19).contains(&new_segments),
        "{new_segments} new segments in 30 s: {seq_log:?}"
    );
    // MEDIA-SEQUENCE starts sliding once the window (6 x 2 s) is full, then one per segment.
    assert!(
        (6..=new_segments).contains(&rise),
        "MEDIA-SEQUENCE rose by {rise} in 30 s: {seq_log:?}"
    );
    assert!(checked.len() >= 12, "only {} segments seen", checked.len());

    let played = player.join().expect("browser thread");
    if let Some(r) = played {
        println!("hls.js: {}", r.raw);
        assert!(r.ok, "hls.js did not play the live stream: {}", r.raw);
        assert!(r.advanced_s >= 16.0, "{}", r.raw);
        assert!(r.fatal_errors.is_empty(), "{}", r.raw);
    }
    ff.kill();
}

#[test]
fn wrong_or_missing_token_is_refused() {
    let input = avc_aac_25(10, Container::Flv);
    let origin = Origin::start();
    let dir = TempDir::new("live-auth");
    let name = "e2e_auth";
    let wrong = Origin::token_query("another_name");
    for (what, query) in [("wrong token", wrong.as_str()), ("no token", "")] {
        let url = origin.publish_url(name, query);
        let log = dir.join("ffmpeg.log");
        let mut ff = publish(&input, &url, 20, &log);
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = ff.exited() {
                break Some(s);
            }
            if t0.elapsed() > Duration::from_secs(8) {
                break None;
            }
            assert_eq!(
                origin.playlist(name),
                None,
                "{what}: a playlist appeared for a refused publisher"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let status = status.unwrap_or_else(|| {
            panic!(
                "{what}: ffmpeg still publishing after 8 s; origin log:\n{}",
                origin.log()
            )
        });
        assert!(!status.success(), "{what}: ffmpeg exited with {status}");
        println!("{what}: ffmpeg exited {status} after {:?}", t0.elapsed());
        let streams = origin.streams_json();
        assert!(!streams.contains(name), "{what}: {streams}");
        assert!(
            streams.replace(char::is_whitespace, "") == r#"{"streams":[]}"#,
            "{what}: /streams.json is not empty: {streams}"
        );
        assert_eq!(origin.playlist(name), None, "{what}");
    }
    // A viewer of the refused stream gets nothing playable (and the --url player says so).
    let _serial = serial();
    let url = origin.http_url(&format!("/live/{name}/index.m3u8"));
    if let Some(r) = play_url_in_browser(&url, 3) {
        assert!(!r.ok, "a refused stream played: {}", r.raw);
        assert!(
            r.http_errors.iter().any(|e| e.starts_with("404 ")) || !r.fatal_errors.is_empty(),
            "{}",
            r.raw
        );
    }
}

#[test]
fn publisher_reconnect_marks_a_discontinuity_and_keeps_counting() {
    let _serial = serial();
    let input = avc_aac_25(10, Container::Flv);
    let name = "e2e_reconnect";
    let Live {
        origin,
        dir,
        url,
        mut ff,
        started,
    } = start_live(&input, "live-reconnect", name, 60, "ffmpeg1.log");
    let _ = wait_first_playlist(&origin, name, Duration::from_secs(15));
    // A viewer watches across the join (~6 s behind live, so it reaches the join ~15 s in).
    let play_url = origin.http_url(&format!("/live/{name}/index.m3u8"));
    let player = std::thread::spawn(move || play_url_in_browser(&play_url, 24));
    std::thread::sleep(Duration::from_secs(7));
    let before = Playlist::parse(&origin.playlist(name).expect("playlist before the kill"));
    assert!(!before.segments.is_empty(), "{}", before.text);
    let last_before = before.newest();
    ff.kill();
    // `-re`: the first publisher sent at most this much media.
    let before_join_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let mut ff2 = publish(&input, &url, 60, &dir.join("ffmpeg2.log"));

    // Wait for segments after the join, up to ~14 s.
    let t0 = Instant::now();
    let mut after = None;
    let mut last_seq = before.media_sequence;
    while t0.elapsed() < Duration::from_secs(14) {
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            ff2.exited().is_none(),
            "second publisher stopped (refused?): {}; origin log:\n{}",
            std::fs::read_to_string(dir.join("ffmpeg2.log")).unwrap_or_default(),
            origin.log()
        );
        let p = Playlist::parse(&origin.playlist(name).expect("playlist across the join"));
        assert!(
            p.media_sequence >= last_seq,
            "MEDIA-SEQUENCE went back:\n{}",
            p.text
        );
        last_seq = p.media_sequence;
        let join = p.segments.iter().position(|s| s.2);
        if join.is_some_and(|j| p.segments.len() - j >= 3) {
            after = Some(p);
            break;
        }
    }
    let p = after.unwrap_or_else(|| {
        panic!(
            "no discontinuity followed by 3 segments within 14 s; origin log:\n{}",
            origin.log()
        )
    });
    println!(
        "before the kill: MEDIA-SEQUENCE {} last segment {last_before}; after:\n{}",
        before.media_sequence, p.text
    );
    // EXT-X-DISCONTINUITY-SEQUENCE may be absent while it is 0 (RFC 8216 §4.3.3.3): the
    // discontinuity is still inside the window here.
    let join = p.segments.iter().position(|s| s.2).unwrap();
    assert!(
        p.segments[join].0 > last_before,
        "first segment after the join ({}) does not follow the last before it ({last_before})",
        p.segments[join].0
    );
    for (_, uri, _) in &p.segments[join..] {
        check_segment(&origin, name, uri, &dir);
    }
    let played = player.join().expect("browser thread");
    assert!(ff2.exited().is_none(), "second publisher stopped early");
    if let Some(r) = played {
        println!("hls.js across the join: {}", r.raw);
        assert!(r.ok, "hls.js did not play across the join: {}", r.raw);
        assert!(r.advanced_s >= 19.0, "{}", r.raw);
        assert!(
            r.advanced_s > before_join_s + 2.0,
            "the playhead did not get past the join ({before_join_s:.1} s of media before it): {}",
            r.raw
        );
        assert!(r.fatal_errors.is_empty(), "{}", r.raw);
    }
    ff2.kill();
}

#[test]
fn rtmp_players_start_at_a_keyframe_and_decode_the_live_stream() {
    let _serial = serial();
    let input = avc_aac_25(10, Container::Flv);
    let name = "e2e_relay";
    let Live {
        origin,
        dir,
        url,
        mut ff,
        ..
    } = start_live(&input, "rtmp-play", name, 60, "publish.log");
    wait_first_playlist(&origin, name, Duration::from_secs(15));
    // Two players at once, 6 s each; they share the serialised messages.
    let t0 = Instant::now();
    let mut players: Vec<(Proc, PathBuf, PathBuf)> = (0..2)
        .map(|i| {
            let out = dir.join(&format!("pull{i}.flv"));
            let log = dir.join(&format!("pull{i}.log"));
            (rtmp_pull(&origin, name, 6, &out, &log), out, log)
        })
        .collect();
    // While they play, /streams.json counts them as viewers (with this test's own HLS
    // playlist polling from 127.0.0.1 above: 3).
    let viewers = |json: &str| -> Option<u64> {
        let v = json.split("\"viewers\":").nth(1)?;
        v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let mut seen = None;
    while t0.elapsed() < Duration::from_secs(5) && seen != Some(3) {
        seen = viewers(&origin.streams_json());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(seen, Some(3), "{}", origin.streams_json());
    for (i, (p, out, log)) in players.iter_mut().enumerate() {
        let status = wait_exit(p, Duration::from_secs(30), "RTMP player");
        let took = t0.elapsed();
        let errors = std::fs::read_to_string(&*log).unwrap_or_default();
        assert!(status.success(), "player {i}: ffmpeg {status}: {errors}");
        assert!(errors.trim().is_empty(), "player {i}: {errors}");
        // Starting at the cached GOP, 6 s of media arrive in less than 6 s + start-up.
        assert!(took < Duration::from_secs(12), "player {i} took {took:?}");
        let errors = decode_errors(out);
        assert!(errors.is_empty(), "player {i}: decode errors:\n{errors}");
        let v = packets(out, "v:0");
        let a = packets(out, "a:0");
        assert!(
            v.packets.first().is_some_and(|p| p.key),
            "player {i}: first video packet is not a keyframe"
        );
        assert!(
            v.packets.len() >= 140,
            "player {i}: {} video packets",
            v.packets.len()
        );
        assert!(
            a.packets.len() >= 250,
            "player {i}: {} audio packets",
            a.packets.len()
        );
        println!(
            "RTMP player {i}: {} video + {} audio packets in {took:?}, first video packet key",
            v.packets.len(),
            a.packets.len()
        );
    }
    let log = origin.log();
    assert_eq!(log.matches(&format!("play {name} by ")).count(), 4, "{log}");
    // An unknown stream is refused: ffmpeg fails fast.
    let mut p = rtmp_pull(&origin, "nobody", 2, &dir.join("x.flv"), &dir.join("x.log"));
    let status = wait_exit(
        &mut p,
        Duration::from_secs(10),
        "player of an unknown stream",
    );
    assert!(!status.success());
    assert!(
        origin.log().contains("refused play nobody"),
        "{}",
        origin.log()
    );
    // A second publisher on the live name, even with a valid token, is refused.
    let mut second = publish(&input, &url, 20, &dir.join("second.log"));
    let status = wait_exit(&mut second, Duration::from_secs(10), "second publisher");
    assert!(!status.success(), "second publisher: {status}");
    assert!(
        origin.log().contains(&format!("refused publish {name} ")),
        "{}",
        origin.log()
    );
    assert!(ff.exited().is_none(), "the publisher stopped");
    ff.kill();
}

#[test]
fn a_stalled_rtmp_player_is_cut_off_and_the_stream_goes_on() {
    let _serial = serial();
    // 8 Mbit/s CBR so the stalled player's socket buffers fill within seconds.
    let input = media(
        "cbr8m_20s.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=20",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=20",
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "8M",
            "-minrate",
            "8M",
            "-maxrate",
            "8M",
            "-bufsize",
            "2M",
            "-x264-params",
            "nal-hrd=cbr",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "flv",
        ],
    );
    let name = "e2e_stall";
    let Live {
        origin,
        dir: _dir,
        mut ff,
        ..
    } = start_live(&input, "rtmp-stall", name, 90, "publish.log");
    let pid = origin.pid();
    wait_first_playlist(&origin, name, Duration::from_secs(15));
    let rss_before = rss_kib(pid);
    // A player that never reads what ffmpeg writes to its stdout: ffmpeg blocks, stops
    // reading its socket, and the origin's writes to it stall.
    let mut stalled = Proc(Some(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(origin.publish_url(name, ""))
            .args(["-c", "copy", "-f", "flv", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start ffmpeg"),
    ));
    // The origin cuts it off (write timeout or dropped for lagging) in bounded time, while
    // the HLS stream keeps producing a segment every ~2 s.
    let t0 = Instant::now();
    let mut last_segment = 0u64;
    let mut segments_during = 0u64;
    let mut rss_peak = rss_before;
    let cut = loop {
        let log = origin.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("dropped") || l.contains("write timed out"))
        {
            break Some((t0.elapsed(), line.to_string()));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            break None;
        }
        if let Some(text) = origin.playlist(name) {
            let p = Playlist::parse(&text);
            let newest = p.newest();
            if newest > last_segment {
                segments_during += newest - last_segment;
                last_segment = newest;
            }
        }
        rss_peak = rss_peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(500));
    };
    let (after, line) = cut.unwrap_or_else(|| {
        panic!(
            "the stalled player was never cut off; log:\n{}",
            origin.log()
        )
    });
    println!(
        "stalled player cut after {after:?} ({line}); {segments_during} segments meanwhile; \
         origin RSS {rss_before} KiB before, peak {rss_peak} KiB"
    );
    // The publisher was never held back: one segment per ~2 s all along.
    let expected = after.as_secs() / 2;
    assert!(
        segments_during + 2 >= expected,
        "{segments_during} segments in {after:?}"
    );
    // Beyond the TS segments it keeps (9 x 2 s at 8 Mbit/s), what the origin buffered for
    // the stalled player stayed bounded: the relay holds at most 16 MiB.
    let json = origin.streams_json();
    let stored_kib: u64 = json
        .split("\"stored_bytes\":")
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no stored_bytes: {json}"))
        / 1024;
    println!("segments kept: {stored_kib} KiB");
    assert!(
        rss_peak < rss_before + stored_kib + 24 * 1024,
        "RSS grew from {rss_before} to {rss_peak} KiB with {stored_kib} KiB of segments"
    );
    assert!(ff.exited().is_none(), "the publisher stopped");
    // The cut-off player's ffmpeg sees the end of its stream once it reads again.
    if let Some(mut out) = stalled.0.as_mut().and_then(|c| c.stdout.take()) {
        let mut sink = Vec::new();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.extend_from_slice(&buf[..n.min(16)]),
                }
            }
        });
        wait_exit(&mut stalled, Duration::from_secs(20), "cut-off player");
        let _ = reader.join();
    }
    ff.kill();
}
