//! Live CMAF from the live origin (`examples/live_origin.rs`): ffmpeg publishes RTMP, the
//! origin serves the same stream as fMP4 HLS (`cmaf.m3u8`) and as a dynamic DASH MPD
//! (`manifest.mpd`, clock at `/time`), checked with independent readers (m3u8-rs,
//! dash-mpd-core, mp4-atom, ffprobe) and played live by hls.js, dash.js and Shaka.
//!
//! Every test starts its own origin on fresh loopback ports and kills it (and every ffmpeg)
//! by PID when it ends, also on panic. Heavy tests run one at a time.
//!
//! `STROM_SOAK_SECS` (default 60) sets how long [`dash_js_soak`] plays.
mod common;

use common::cmaf::expand;
use common::live::*;
use common::players::{self, PlayOpts, PlayOutcome, Player};
use common::*;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Heavy tests (live publish, browsers) run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The segmenter's target duration in the origin (ms): `@minimumUpdatePeriod`.
const TARGET_MS: i64 = 2000;
/// Most a player may sit behind the wall clock: the suggested presentation delay (3 target
/// durations) plus two more target durations.
const MAX_LATENCY_S: f64 = 10.0;

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Unix ms of an ISO 8601 UTC date `YYYY-MM-DDTHH:MM:SS[.mmm]Z`, `None` otherwise.
fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let ms = match &s[19..s.len() - 1] {
        "" => 0,
        f if f.len() == 4 && f.starts_with('.') => num(20..23)?,
        _ => return None,
    };
    // days_from_civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400_000 + ((hh * 60 + mm) * 60 + ss) * 1000 + ms)
}

/// A live stream under test: an origin and ffmpeg publishing a looped 10 s H.264 + AAC FLV.
struct Live {
    origin: Origin,
    dir: TempDir,
    name: &'static str,
    url: String,
    ff: Proc,
}

impl Live {
    fn start(tag: &str, name: &'static str, seconds: u32) -> Live {
        let input = avc_aac_25(10, Container::Flv);
        let origin = Origin::start();
        let dir = TempDir::new(tag);
        let url = origin.publish_url(name, &Origin::token_query(name));
        let ff = publish(&input, &url, seconds, &dir.join("ffmpeg.log"));
        Live {
            origin,
            dir,
            name,
            url,
            ff,
        }
    }

    /// `http://.../live/{name}/{file}`.
    fn url_of(&self, file: &str) -> String {
        self.origin.http_url(&format!("/live/{}/{file}", self.name))
    }

    /// GET `/live/{name}/{file}`: (status, body).
    fn get(&self, file: &str) -> (u16, Vec<u8>) {
        let path = format!("/live/{}/{file}", self.name);
        let r = self
            .origin
            .get(&path)
            .unwrap_or_else(|| panic!("GET {path}"));
        (r.status, r.body)
    }

    /// Waits (bounded) until `file` answers 200; returns its body.
    fn wait_for(&self, file: &str, limit: Duration) -> Vec<u8> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let (status, body) = self.get(file);
            if status == 200 {
                return body;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{file} not there within {limit:?}; origin log:\n{}\nffmpeg log:\n{}",
            self.origin.log(),
            std::fs::read_to_string(self.dir.join("ffmpeg.log")).unwrap_or_default()
        );
    }

    fn assert_publishing(&mut self) {
        assert!(
            self.ff.exited().is_none(),
            "ffmpeg stopped publishing: {}",
            std::fs::read_to_string(self.dir.join("ffmpeg.log")).unwrap_or_default()
        );
    }

    /// The origin's clock: `/time`, checked against this machine's clock (within 1 s).
    fn time(&self) -> i64 {
        let before = unix_ms();
        let r = self.origin.get("/time").expect("GET /time");
        let after = unix_ms();
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        let t = parse_iso(&text).unwrap_or_else(|| panic!("/time is not ISO 8601: {text:?}"));
        assert!(
            t >= before - 1000 && t <= after + 1000,
            "/time {text} vs system clock {before}..{after}"
        );
        t
    }
}

/// What the tests follow from one MPD to the next.
#[derive(Debug, Default, Clone)]
struct MpdState {
    /// `@availabilityStartTime`, Unix ms.
    ast: Option<i64>,
    /// `@publishTime`, Unix ms.
    publish: i64,
    /// Per Representation: (`@startNumber`, number of the newest listed segment).
    numbers: BTreeMap<String, (u64, u64)>,
    /// MPDs read.
    reads: u64,
    /// Per MPD read: how far the newest video segment's end is behind the wall clock
    /// (`/time` - availabilityStartTime - end), ms.
    lags: Vec<i64>,
}

impl MpdState {
    /// (min, max) of [`MpdState::lags`] over the reads `range`.
    fn lag_range(&self, range: std::ops::Range<usize>) -> (i64, i64) {
        let lags = &self.lags[range.start.min(self.lags.len())..range.end.min(self.lags.len())];
        (
            lags.iter().copied().min().unwrap_or(0),
            lags.iter().copied().max().unwrap_or(0),
        )
    }
}

/// Reads the MPD and `/time` right after it; checks it with an independent parser and the
/// live rules, against `state` (the previous MPD). With `fetch`, every listed segment of
/// the first and last two numbers per Representation is fetched (200).
fn check_mpd(live: &Live, state: &mut MpdState, fetch: bool) -> String {
    let (status, body) = live.get("manifest.mpd");
    assert_eq!(status, 200, "manifest.mpd");
    let now = live.time();
    let xml = String::from_utf8(body).unwrap();
    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let errors = dash_mpd_core::check_conformity(&mpd);
    assert!(errors.is_empty(), "conformity: {errors:?}\n{xml}");
    assert_eq!(mpd.mpdtype.as_deref(), Some("dynamic"), "{xml}");
    let ast = mpd.availabilityStartTime.expect("AST").timestamp_millis();
    if let Some(prev) = state.ast {
        assert_eq!(ast, prev, "availabilityStartTime changed\n{xml}");
    }
    state.ast = Some(ast);
    let publish = mpd.publishTime.expect("publishTime").timestamp_millis();
    assert!(publish >= state.publish, "publishTime went back\n{xml}");
    assert!(publish <= now, "publishTime in the future\n{xml}");
    state.publish = publish;
    assert_eq!(
        mpd.minimumUpdatePeriod.expect("MUP").as_millis() as i64,
        TARGET_MS
    );
    let tsbd = mpd.timeShiftBufferDepth.expect("TSBD").as_millis();
    assert!(tsbd >= 2000, "timeShiftBufferDepth {tsbd} ms\n{xml}");
    let spd = mpd.suggestedPresentationDelay.expect("SPD").as_millis() as i64;
    assert_eq!(spd, 3 * TARGET_MS);
    assert_eq!(mpd.UTCTiming.len(), 1, "{xml}");
    assert_eq!(
        mpd.UTCTiming[0].schemeIdUri,
        "urn:mpeg:dash:utc:http-iso:2014"
    );
    assert_eq!(mpd.UTCTiming[0].value.as_deref(), Some("/time"));
    assert_eq!(mpd.periods.len(), 1);
    let mut kinds = Vec::new();
    for set in &mpd.periods[0].adaptations {
        kinds.push(set.contentType.clone().unwrap_or_default());
        for rep in &set.representations {
            let id = rep.id.clone().expect("Representation@id");
            let tpl = rep.SegmentTemplate.as_ref().expect("SegmentTemplate");
            assert_eq!(
                tpl.media.as_deref(),
                Some("$RepresentationID$/$Number$.m4s")
            );
            let scale = tpl.timescale.expect("timescale");
            let start = tpl.startNumber.expect("startNumber");
            let listed = expand(tpl.SegmentTimeline.as_ref().expect("timeline"));
            assert!(!listed.is_empty(), "{id}: empty timeline");
            for w in listed.windows(2) {
                assert_eq!(w[0].0 + w[0].1, w[1].0, "{id}: timeline not contiguous");
            }
            // Honest availability: every listed segment ended before `now`.
            let (t, d) = *listed.last().unwrap();
            let end_ms = ((t + d) * 1000).div_ceil(scale) as i64;
            assert!(
                ast + end_ms <= now,
                "{id}: newest segment available at {} > now {now} (by {} ms)\n{xml}",
                ast + end_ms,
                ast + end_ms - now
            );
            if set.contentType.as_deref() == Some("video") {
                state.lags.push(now - ast - end_ms);
            }
            let newest = start + listed.len() as u64 - 1;
            if let Some(&(prev_start, prev_newest)) = state.numbers.get(&id) {
                assert!(start >= prev_start, "{id}: startNumber went back\n{xml}");
                assert!(newest >= prev_newest, "{id}: newest went back\n{xml}");
            }
            state.numbers.insert(id.clone(), (start, newest));
            if fetch {
                let mut numbers = vec![start, newest];
                if newest > start {
                    numbers.push(newest - 1);
                }
                for n in numbers {
                    let (status, body) = live.get(&format!("{id}/{n}.m4s"));
                    assert_eq!(status, 200, "{id}/{n}.m4s listed but not served\n{xml}");
                    assert_eq!(&body[4..8], b"styp", "{id}/{n}.m4s");
                }
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"], "{xml}");
    state.reads += 1;
    xml
}

/// Parses a CMAF media segment with mp4-atom: `styp`, `moof` (one `traf` with `tfdt`, one
/// `trun` whose samples fill the `mdat`), `mdat`. Returns the `tfdt`.
fn check_fragment(data: &[u8], what: &str) -> u64 {
    use mp4_atom::{Any, Decode};
    let mut rest = data;
    let mut boxes = Vec::new();
    while !rest.is_empty() {
        boxes.push(Any::decode(&mut rest).unwrap_or_else(|e| panic!("{what}: {e}")));
    }
    assert_eq!(boxes.len(), 3, "{what}: styp, moof, mdat");
    assert!(matches!(boxes[0], Any::Styp(_)), "{what}: styp first");
    let Any::Moof(moof) = &boxes[1] else {
        panic!("{what}: moof second")
    };
    let Any::Mdat(mdat) = &boxes[2] else {
        panic!("{what}: mdat third")
    };
    assert_eq!(moof.traf.len(), 1, "{what}: one track");
    let traf = &moof.traf[0];
    let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
    let sizes: u64 = traf.trun[0]
        .samples
        .iter()
        .map(|s| u64::from(s.size.unwrap_or(0)))
        .sum();
    assert_eq!(
        sizes,
        mdat.data.len() as u64,
        "{what}: samples fill the mdat"
    );
    tfdt
}

/// Fetches `{rendition}/init.mp4` and `{rendition}/{uri}`; the pair decodes cleanly with
/// ffmpeg, video starts with a keyframe; the init parses with mp4-atom.
fn check_init_and_segment(live: &Live, rendition: &str, uri: &str, video: bool) -> u64 {
    use mp4_atom::{Any, Decode};
    let (status, init) = live.get(&format!("{rendition}/init.mp4"));
    assert_eq!(status, 200, "{rendition}/init.mp4");
    let mut rest = &init[..];
    assert!(matches!(Any::decode(&mut rest), Ok(Any::Ftyp(_))));
    assert!(matches!(Any::decode(&mut rest), Ok(Any::Moov(_))));
    assert!(rest.is_empty(), "{rendition}/init.mp4: ftyp + moov only");
    let (status, seg) = live.get(&format!("{rendition}/{uri}"));
    assert_eq!(status, 200, "{rendition}/{uri}");
    let tfdt = check_fragment(&seg, &format!("{rendition}/{uri}"));
    let file = live
        .dir
        .join(&format!("{rendition}-{}.mp4", uri.replace('/', "_")));
    std::fs::write(&file, [init, seg].concat()).unwrap();
    let errors = decode_errors(&file);
    assert!(
        errors.is_empty(),
        "{rendition}/{uri} does not decode:\n{errors}"
    );
    let p = packets(&file, if video { "v:0" } else { "a:0" });
    assert!(!p.packets.is_empty(), "{rendition}/{uri}: no packets");
    if video {
        assert!(p.packets[0].key, "{rendition}/{uri}: no keyframe first");
    }
    let _ = std::fs::remove_file(&file);
    tfdt
}

/// fMP4 HLS polled with m3u8-rs, fragments decoded by ffmpeg and parsed by mp4-atom, the MPD
/// read by dash-mpd-core and by ffprobe's DASH demuxer, `/time` against the system clock,
/// `@startNumber` moving with the window.
#[test]
fn fmp4_hls_and_dynamic_mpd_follow_the_live_edge() {
    let _serial = serial();
    let mut live = Live::start("live-cmaf", "cmaf_live", 90);
    let t0 = Instant::now();
    let master = live.wait_for("cmaf.m3u8", Duration::from_secs(20));
    println!("cmaf.m3u8 after {} ms", t0.elapsed().as_millis());
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("multivariant playlist");
    assert_eq!(master.variants.len(), 2, "{master:?}");
    assert_eq!(master.variants[0].uri, "v1/media.m3u8");
    assert_eq!(master.variants[0].audio.as_deref(), Some("audio"));
    assert!(master.variants[0]
        .codecs
        .as_deref()
        .is_some_and(|c| c.contains("avc1.") && c.contains("mp4a.40.2")));
    assert_eq!(master.alternatives.len(), 1);
    assert_eq!(master.alternatives[0].uri.as_deref(), Some("a2/media.m3u8"));

    let mut state = MpdState::default();
    let first_mpd = {
        live.wait_for("manifest.mpd", Duration::from_secs(10));
        check_mpd(&live, &mut state, true)
    };
    let first_numbers = state.numbers.clone();
    let mut last_seq: BTreeMap<&str, u64> = BTreeMap::new();
    let mut checked = 0;
    let poll = Instant::now();
    while poll.elapsed() < Duration::from_secs(24) {
        live.assert_publishing();
        for (rendition, video) in [("v1", true), ("a2", false)] {
            let (status, body) = live.get(&format!("{rendition}/media.m3u8"));
            assert_eq!(status, 200);
            let pl = m3u8_rs::parse_media_playlist_res(&body).expect("media playlist");
            let text = String::from_utf8_lossy(&body);
            assert!(!pl.end_list, "{text}");
            assert_eq!(pl.version, Some(7), "{text}");
            assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{text}");
            assert!(pl.segments.len() <= 6, "{text}");
            let prev = last_seq.insert(rendition, pl.media_sequence);
            assert!(prev.is_none_or(|p| pl.media_sequence >= p), "{text}");
            for (i, s) in pl.segments.iter().enumerate() {
                assert_eq!(s.uri, format!("{}.m4s", pl.media_sequence + i as u64));
                assert!(s.program_date_time.is_some(), "{text}");
            }
            let newest = &pl.segments.last().expect("a segment").uri;
            check_init_and_segment(&live, rendition, newest, video);
            checked += 1;
        }
        check_mpd(&live, &mut state, true);
        std::thread::sleep(Duration::from_millis(1500));
    }
    // The window moved: startNumber and MEDIA-SEQUENCE went up by about one per 2 s.
    for (id, (start, newest)) in &state.numbers {
        let (start0, newest0) = first_numbers[id];
        println!("{id}: startNumber {start0} -> {start}, newest {newest0} -> {newest}");
        assert!(newest - newest0 >= 8, "{id}: {newest0} -> {newest}");
        assert!(start - start0 >= 6, "{id}: startNumber {start0} -> {start}");
    }
    println!(
        "{checked} fMP4 segments decoded, {} MPDs checked; first MPD:\n{first_mpd}",
        state.reads
    );

    // ffprobe's DASH demuxer reads the live MPD (bounded).
    let out = std::process::Command::new(tool("timeout"))
        .args(["30", tool("ffprobe").to_str().unwrap()])
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(live.url_of("manifest.mpd"))
        .output()
        .expect("ffprobe");
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "ffprobe on the live MPD: {codecs} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    live.assert_publishing();
}

/// One live playback of `file` by `player` for `seconds`: live, not far behind the edge, no
/// HTTP error at all. `None` when browsers are skipped.
fn play_live(live: &Live, player: Player, file: &str, seconds: u32) -> Option<PlayOutcome> {
    let opts = PlayOpts::url(player, &live.url_of(file), seconds).live();
    let o = players::play(&opts)?;
    assert!(o.ok, "{}: {}\n{}", player.arg(), o.summary(), o.raw);
    assert!(o.live, "{}: not live: {}", player.arg(), o.summary());
    assert!(
        o.http_errors.is_empty(),
        "{}: HTTP errors {:?}\n{}",
        player.arg(),
        o.http_errors,
        o.summary()
    );
    let latency = o
        .live_latency_s
        .unwrap_or_else(|| panic!("{}: no latency: {}", player.arg(), o.summary()));
    assert!(
        (0.0..=MAX_LATENCY_S).contains(&latency),
        "{}: live latency {latency} s: {}",
        player.arg(),
        o.summary()
    );
    assert!(o.video_width > 0, "{}: no picture", player.arg());
    Some(o)
}

/// hls.js plays `cmaf.m3u8`, dash.js and Shaka play `manifest.mpd`, live, ~20 s each.
#[test]
fn players_play_live_cmaf() {
    let _serial = serial();
    let mut live = Live::start("live-cmaf-players", "cmaf_players", 150);
    live.wait_for("manifest.mpd", Duration::from_secs(20));
    // A few segments in the window first, as a viewer arriving on a running stream.
    std::thread::sleep(Duration::from_secs(6));
    let mut state = MpdState::default();
    for (player, file) in [
        (Player::HlsJs, "cmaf.m3u8"),
        (Player::DashJs, "manifest.mpd"),
        (Player::Shaka, "manifest.mpd"),
    ] {
        live.assert_publishing();
        check_mpd(&live, &mut state, false);
        let Some(o) = play_live(&live, player, file, 20) else {
            return;
        };
        println!("{}: {}", player.arg(), o.summary());
    }
    check_mpd(&live, &mut state, true);
    live.assert_publishing();
}

/// dash.js plays the live MPD for `STROM_SOAK_SECS` (default 60): no 404 or other HTTP error,
/// playback advanced all along (stalls under 4 s in total), latency bounded at the end;
/// meanwhile the MPD is read every 2 s and stays honest and valid.
#[test]
fn dash_js_soak() {
    let secs: u32 = std::env::var("STROM_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let _serial = serial();
    let mut live = Live::start("live-cmaf-soak", "cmaf_soak", secs + 90);
    live.wait_for("manifest.mpd", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    let url = live.url_of("manifest.mpd");
    let player = std::thread::spawn(move || {
        players::play(&PlayOpts::url(Player::DashJs, &url, secs).live())
    });
    let mut state = MpdState::default();
    let t0 = Instant::now();
    let mut tsbd_checked = 0;
    while !player.is_finished() && t0.elapsed() < Duration::from_secs(u64::from(secs) + 60) {
        live.assert_publishing();
        check_mpd(&live, &mut state, tsbd_checked % 5 == 0);
        tsbd_checked += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    let outcome = player.join().expect("player thread");
    let Some(o) = outcome else { return };
    let first = state.numbers.values().next().copied().unwrap_or_default();
    println!(
        "soak {secs} s: {}; MPDs read {}, segments per representation up to #{} (window from #{})",
        o.summary(),
        state.reads,
        first.1,
        first.0
    );
    let n = state.lags.len();
    let (first_min, first_max) = state.lag_range(0..n / 5);
    let (last_min, last_max) = state.lag_range(n - n / 5..n);
    println!(
        "newest video segment end behind the wall clock: {first_min}..{first_max} ms over the \
         first fifth of the reads, {last_min}..{last_max} ms over the last fifth"
    );
    assert!(o.ok, "{}\n{}", o.summary(), o.raw);
    assert!(o.live);
    assert!(
        o.http_errors.is_empty(),
        "HTTP errors: {:?}\n{}",
        o.http_errors,
        o.summary()
    );
    assert!(
        o.advanced_s >= f64::from(secs) - 4.0,
        "playback stalled: advanced {} s in {secs} s",
        o.advanced_s
    );
    let latency = o.live_latency_s.expect("latency");
    assert!(
        (0.0..=MAX_LATENCY_S).contains(&latency),
        "latency {latency} s at the end"
    );
    assert!(
        !o.raw.contains("not available"),
        "segment not available: {}",
        o.raw
    );
}

/// The publisher leaves and a new one comes back 3 s later while dash.js plays: the MPD stays
/// valid (same availabilityStartTime, contiguous timelines, honest availability), the fMP4
/// HLS playlists mark the discontinuity, dash.js keeps playing.
#[test]
fn publisher_reconnect_keeps_the_mpd_valid_and_dash_js_playing() {
    let _serial = serial();
    let mut live = Live::start("live-cmaf-reconnect", "cmaf_rejoin", 16);
    live.wait_for("manifest.mpd", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(6));
    let url = live.url_of("manifest.mpd");
    let player =
        std::thread::spawn(move || players::play(&PlayOpts::url(Player::DashJs, &url, 30).live()));
    let mut state = MpdState::default();
    // The first publisher stops after its 16 s.
    let _ = wait_exit(&mut live.ff, Duration::from_secs(40), "first publisher");
    check_mpd(&live, &mut state, true);
    std::thread::sleep(Duration::from_secs(3));
    let input = avc_aac_25(10, Container::Flv);
    live.ff = publish(&input, &live.url, 60, &live.dir.join("ffmpeg2.log"));
    let t0 = Instant::now();
    let mut seen_discontinuity = false;
    while !player.is_finished() && t0.elapsed() < Duration::from_secs(90) {
        check_mpd(&live, &mut state, true);
        let (_, body) = live.get("v1/media.m3u8");
        seen_discontinuity |= String::from_utf8_lossy(&body).contains("#EXT-X-DISCONTINUITY");
        std::thread::sleep(Duration::from_secs(1));
    }
    let outcome = player.join().expect("player thread");
    assert!(
        seen_discontinuity,
        "no EXT-X-DISCONTINUITY after the reconnect"
    );
    let Some(o) = outcome else { return };
    println!("dash.js across a reconnect: {}", o.summary());
    assert!(o.ok, "{}\n{}", o.summary(), o.raw);
    assert!(
        o.http_errors.is_empty(),
        "HTTP errors: {:?}\n{}",
        o.http_errors,
        o.summary()
    );
    live.assert_publishing();
}

#[test]
fn iso_dates_parse() {
    assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_iso("2023-11-14T22:13:20.123Z"),
        Some(1_700_000_000_123)
    );
    assert_eq!(parse_iso("2000-02-29T00:00:00.000Z"), Some(951_782_400_000));
    assert_eq!(parse_iso("2023-11-14 22:13:20Z"), None);
    assert_eq!(parse_iso("2023-11-14T22:13:20.12Z"), None);
}
