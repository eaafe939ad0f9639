//! hls.js, dash.js and Shaka Player in headless Chromium (`tests/browser/play.mjs --player`).
//!
//! ```ignore
//! let opts = PlayOpts::dir(Player::Shaka, dir, "manifest.mpd", 8).switch_audio("fra", Some(4));
//! let Some(o) = players::play(&opts) else { return }; // STROM_SKIP_BROWSER=1
//! assert!(o.ok, "{}", o.raw);
//! let sw = o.switch.as_ref().unwrap();
//! assert!(same_lang(sw.before.as_deref().unwrap(), "eng"), "{}", o.summary());
//!
//! // DVR: play live, then seek 600 s back from the live edge and keep playing.
//! let o = players::play(&PlayOpts::url(Player::HlsJs, &url, 12).live().seek_back(600))?;
//! let seek = o.seek.as_ref().unwrap(); // target, landed, advanced, segments after the seek
//! ```
//!
//! Same contract as [`super::play_in_browser`]: `None` (after a SKIP line) when
//! `STROM_SKIP_BROWSER=1`; a panic when node, Chromium or `tests/browser/node_modules` is
//! missing (scripts/test.sh installs them) or when play.mjs crashes; a stream that does not
//! play is `Some(PlayOutcome { ok: false, .. })` whose `reason` says why.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{repo_root, run_play_mjs, Json, PlayResult};

/// Which player plays the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Player {
    /// hls.js 1.7.4 (HLS: TS or fMP4).
    HlsJs,
    /// dash.js 5.2.1 (DASH `.mpd`).
    DashJs,
    /// Shaka Player 5.2.12 (DASH `.mpd` or HLS `.m3u8`).
    Shaka,
}

impl Player {
    /// Every player, in a fixed order.
    pub const ALL: [Player; 3] = [Player::HlsJs, Player::DashJs, Player::Shaka];

    /// The `--player` argument of play.mjs (`hls`, `dash`, `shaka`).
    pub fn arg(self) -> &'static str {
        match self {
            Player::HlsJs => "hls",
            Player::DashJs => "dash",
            Player::Shaka => "shaka",
        }
    }

    /// The npm package play.mjs loads for this player (in `tests/browser/node_modules`).
    pub fn package(self) -> &'static str {
        match self {
            Player::HlsJs => "hls.js",
            Player::DashJs => "dashjs",
            Player::Shaka => "shaka-player",
        }
    }
}

/// Where the stream comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Files in `dir`, served by play.mjs itself (MIME types incl. `.mpd`
    /// `application/dash+xml`, `.m4s`, `.mp4`; CORS; byte ranges); the player loads `path`
    /// (relative to `dir`, e.g. `manifest.mpd`).
    Dir {
        /// The directory served at `/`.
        dir: PathBuf,
        /// The manifest or playlist inside it.
        path: String,
    },
    /// A URL on 127.0.0.1 (a live origin that sends CORS headers), loaded directly.
    Url(String),
}

/// One playback: which player, what, for how long, and what to do meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayOpts {
    /// The player.
    pub player: Player,
    /// The stream.
    pub source: Source,
    /// Wall-clock seconds of playback after it starts (play.mjs `--seconds`); keep it <= ~12.
    pub seconds: u32,
    /// `--live`: success also needs the player to report a live stream, and currentTime to
    /// advance >= 0.8 * `seconds` (default `false`).
    pub live: bool,
    /// `--switch-audio`: switch to this audio language (`fra` or `fr`) during playback
    /// (default `None`).
    pub switch_audio: Option<String>,
    /// `--switch-after`: seconds of playback before the switch (default `None`: `seconds / 2`).
    pub switch_after_s: Option<u32>,
    /// `--screenshot`: a PNG of the video element at the end (default `None`).
    pub screenshot: Option<PathBuf>,
    /// `--expect-key-system`: success also needs Shaka to have chosen this EME key
    /// system (`org.w3.clearkey`) and a licence request to have been made (default
    /// `None`).
    pub expect_key_system: Option<String>,
    /// `--seek-back`: once playback advanced a little, seek this many seconds back from
    /// the live edge (or the seekable end), then require playback from there (default
    /// `None`).
    pub seek_back_s: Option<u32>,
    /// `--seek-tolerance`: how far from the seek target the player may land, seconds
    /// (default `None`: play.mjs's 8 s).
    pub seek_tolerance_s: Option<u32>,
    /// `--start-at`: start playback at this media time, seconds (hls.js `startPosition`,
    /// Shaka `load(url, t)`; not dash.js) (default `None`: the player's own choice).
    pub start_at_s: Option<u32>,
}

impl PlayOpts {
    /// Plays `dir/path` (a served directory) for `seconds`.
    pub fn dir(player: Player, dir: &Path, path: &str, seconds: u32) -> PlayOpts {
        PlayOpts::new(
            player,
            Source::Dir {
                dir: dir.to_path_buf(),
                path: path.to_string(),
            },
            seconds,
        )
    }

    /// Plays `url` (on 127.0.0.1, with CORS) for `seconds`.
    pub fn url(player: Player, url: &str, seconds: u32) -> PlayOpts {
        PlayOpts::new(player, Source::Url(url.to_string()), seconds)
    }

    fn new(player: Player, source: Source, seconds: u32) -> PlayOpts {
        PlayOpts {
            player,
            source,
            seconds,
            live: false,
            switch_audio: None,
            switch_after_s: None,
            screenshot: None,
            expect_key_system: None,
            seek_back_s: None,
            seek_tolerance_s: None,
            start_at_s: None,
        }
    }

    /// Seeks `back_s` seconds back from the live edge once playback has started
    /// ([`PlayOpts::seek_back_s`]); the outcome's [`PlayOutcome::seek`] says what happened.
    pub fn seek_back(mut self, back_s: u32) -> PlayOpts {
        self.seek_back_s = Some(back_s);
        self
    }

    /// How far from the seek target the player may land ([`PlayOpts::seek_tolerance_s`]).
    pub fn seek_tolerance(mut self, s: u32) -> PlayOpts {
        self.seek_tolerance_s = Some(s);
        self
    }

    /// Starts playback at media time `t_s` ([`PlayOpts::start_at_s`]).
    pub fn start_at(mut self, t_s: u32) -> PlayOpts {
        self.start_at_s = Some(t_s);
        self
    }

    /// Requires a live stream ([`PlayOpts::live`]).
    pub fn live(mut self) -> PlayOpts {
        self.live = true;
        self
    }

    /// Switches the audio to `lang` after `after_s` seconds of playback (`None`: half of
    /// `seconds`).
    pub fn switch_audio(mut self, lang: &str, after_s: Option<u32>) -> PlayOpts {
        self.switch_audio = Some(lang.to_string());
        self.switch_after_s = after_s;
        self
    }

    /// Requires the EME key system `ks` ([`PlayOpts::expect_key_system`]).
    pub fn expect_key_system(mut self, ks: &str) -> PlayOpts {
        self.expect_key_system = Some(ks.to_string());
        self
    }

    /// Saves a screenshot of the video element at the end to `png`.
    pub fn screenshot(mut self, png: &Path) -> PlayOpts {
        self.screenshot = Some(png.to_path_buf());
        self
    }

    /// The play.mjs arguments.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--player".into(), self.player.arg().into()];
        match &self.source {
            Source::Dir { dir, path } => {
                args.extend(["--dir".into(), dir.into(), "--path".into(), path.into()]);
            }
            Source::Url(url) => args.extend(["--url".into(), url.into()]),
        }
        args.extend(["--seconds".into(), self.seconds.to_string().into()]);
        if self.live {
            args.push("--live".into());
        }
        if let Some(lang) = &self.switch_audio {
            args.extend(["--switch-audio".into(), lang.into()]);
            if let Some(after) = self.switch_after_s {
                args.extend(["--switch-after".into(), after.to_string().into()]);
            }
        }
        if let Some(png) = &self.screenshot {
            args.extend(["--screenshot".into(), png.into()]);
        }
        if let Some(ks) = &self.expect_key_system {
            args.extend(["--expect-key-system".into(), ks.into()]);
        }
        if let Some(back) = self.seek_back_s {
            args.extend(["--seek-back".into(), back.to_string().into()]);
            if let Some(t) = self.seek_tolerance_s {
                args.extend(["--seek-tolerance".into(), t.to_string().into()]);
            }
        }
        if let Some(t) = self.start_at_s {
            args.extend(["--start-at".into(), t.to_string().into()]);
        }
        args
    }

    fn shown(&self) -> String {
        match &self.source {
            Source::Dir { dir, path } => format!("{}/{path}", dir.display()),
            Source::Url(url) => url.clone(),
        }
    }
}

/// One audio track as the player lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AudioTrack {
    /// Language as the player reports it (dash.js / hls.js: as in the manifest, e.g. `eng`;
    /// Shaka normalises to `en`). Compare with [`same_lang`].
    pub lang: Option<String>,
    /// Label / name, when the manifest has one.
    pub label: Option<String>,
    /// First role (DASH `Role@value`, Shaka `roles[0]`, hls.js CHARACTERISTICS), when any.
    pub role: Option<String>,
}

/// What happened around `--switch-audio`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AudioSwitch {
    /// The language asked for.
    pub requested: String,
    /// Active audio language just before the switch (`None`: none reported, or no switch).
    pub before: Option<String>,
    /// Active audio language at the end.
    pub after: Option<String>,
    /// Media time (currentTime, seconds) when the switch was made; `None` when it never was.
    pub switched_at_s: Option<f64>,
    /// How far currentTime advanced after the switch, in seconds.
    pub advanced_after_switch_s: Option<f64>,
    /// URL paths of the audio media segments requested before the switch.
    pub requests_before: Vec<String>,
    /// URL paths of the audio media segments requested after the switch.
    pub requests_after: Vec<String>,
}

/// What happened around `--seek-back` (media times in seconds, as the player counts them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeekBack {
    /// How far back was asked.
    pub back_s: f64,
    /// The live edge the seek was counted from (hls.js `liveSyncPosition`, Shaka
    /// `seekRange().end`, else the end of `video.seekable`); `None` when it never happened.
    pub edge_s: Option<f64>,
    /// The seekable range at the seek (`video.seekable`, Shaka `seekRange()`).
    pub range_s: Option<(f64, f64)>,
    /// currentTime just before the seek.
    pub from_s: Option<f64>,
    /// Where the seek went: `edge_s - back_s`, not before the range start.
    pub target_s: Option<f64>,
    /// currentTime at the first `seeked` event after the seek.
    pub landed_s: Option<f64>,
    /// Wall-clock seconds of playback before the seek.
    pub wall_s: Option<f64>,
    /// Milliseconds from the seek to `seeked`.
    pub seek_ms: Option<f64>,
    /// How far currentTime advanced before the seek.
    pub advanced_before_s: Option<f64>,
    /// How far currentTime advanced from the last position the player landed at (see
    /// `seeked_s`) to the end.
    pub advanced_after_s: Option<f64>,
    /// currentTime at every `seeked` event after the seek (the player may move again by
    /// itself, e.g. Shaka into its safe range).
    pub seeked_s: Vec<f64>,
    /// Media segments (path and query) requested before the seek.
    pub segments_before: Vec<String>,
    /// Media segments (path and query) requested after the seek.
    pub segments_after: Vec<String>,
}

/// What a player in headless Chromium made of a stream (one play.mjs report).
#[derive(Clone, Debug, PartialEq)]
pub struct PlayOutcome {
    /// Played far enough without a fatal error (and, when asked: live, audio switched).
    pub ok: bool,
    /// Why not (empty when `ok`).
    pub reason: String,
    /// Player name and version, e.g. `dash.js 5.2.1` (empty when the library did not load).
    pub player: String,
    /// How far currentTime advanced after playback started, in seconds.
    pub advanced_s: f64,
    /// What play.mjs required of `advanced_s`.
    pub required_s: f64,
    /// Media duration as the player saw it (`None` for live / unknown).
    pub duration: Option<f64>,
    /// `ended` fired (VOD played to the end).
    pub ended: bool,
    /// The player reports a live (dynamic) stream.
    pub live: bool,
    /// Distance from the live edge at the end, seconds (dash.js `getCurrentLiveLatency()`,
    /// Shaka `seekRange().end - currentTime`, hls.js `latency`); `None` for VOD.
    pub live_latency_s: Option<f64>,
    /// Decoded picture size.
    pub video_width: u32,
    /// Decoded picture size.
    pub video_height: u32,
    /// `getVideoPlaybackQuality().droppedVideoFrames`.
    pub dropped_frames: u64,
    /// `getVideoPlaybackQuality().totalVideoFrames`.
    pub total_frames: u64,
    /// Audio tracks the player offers.
    pub audio_tracks: Vec<AudioTrack>,
    /// Active audio language at the end (`None` when the player has no audio track list,
    /// e.g. hls.js with audio muxed into the video).
    pub audio_lang: Option<String>,
    /// Number of audio media segments the player requested.
    pub audio_requests: u64,
    /// Present when `--switch-audio` was asked.
    pub switch: Option<AudioSwitch>,
    /// Present when `--seek-back` was asked.
    pub seek: Option<SeekBack>,
    /// currentTime when playback first started (`playing`), seconds.
    pub start_time_s: Option<f64>,
    /// Every media segment (not init segments) the player requested, in order: URL path
    /// and query.
    pub segment_requests: Vec<String>,
    /// Fatal player / media errors, each as compact JSON.
    pub fatal_errors: Vec<String>,
    /// Recovered (non-fatal) player errors, each as compact JSON.
    pub nonfatal_errors: Vec<String>,
    /// Every HTTP response >= 400 (`404 http://...`) and failed request (`FAILED net::... url`).
    pub http_errors: Vec<String>,
    /// Requests the player cancelled itself (`net::ERR_ABORTED`: an audio switch, a seek).
    pub aborted_requests: Vec<String>,
    /// The EME key system Shaka chose for protected content (`None` for clear content
    /// and other players).
    pub key_system: Option<String>,
    /// Key and licence requests (hls.js key URIs, Shaka licence POSTs): path and query.
    pub key_requests: Vec<String>,
    /// The whole report line, for assertion messages.
    pub raw: String,
}

impl PlayOutcome {
    /// Builds an outcome from one play.mjs JSON line.
    pub fn from_json(line: &str) -> Result<PlayOutcome, String> {
        let base = PlayResult::from_json(line)?;
        let j = Json::parse(line.trim())?;
        let opt_str = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_string);
        let num = |k: &str| j.get(k).and_then(Json::as_f64);
        let strings = |v: Option<&Json>| -> Vec<String> {
            v.and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let audio_tracks = j
            .get("audio_tracks")
            .and_then(Json::as_array)
            .unwrap_or(&[])
            .iter()
            .map(|t| AudioTrack {
                lang: opt_str(t.get("lang")),
                label: opt_str(t.get("label")),
                role: opt_str(t.get("role")),
            })
            .collect();
        let audio_lang = opt_str(j.get("audio_lang"));
        let switch = opt_str(j.get("switch_audio")).map(|requested| AudioSwitch {
            requested,
            before: opt_str(j.get("audio_lang_before")),
            after: audio_lang.clone(),
            switched_at_s: num("switched_at_s"),
            advanced_after_switch_s: num("advanced_after_switch_s"),
            requests_before: strings(j.get("audio_requests_before_switch")),
            requests_after: strings(j.get("audio_requests_after_switch")),
        });
        let seek = num("seek_back_s").map(|back_s| {
            let range = j.get("seek_range_s").and_then(Json::as_array);
            let at = |i: usize| range.and_then(|r| r.get(i)).and_then(Json::as_f64);
            SeekBack {
                back_s,
                edge_s: num("seek_edge_s"),
                range_s: at(0).zip(at(1)),
                from_s: num("seek_from_s"),
                target_s: num("seek_target_s"),
                landed_s: num("seek_landed_s"),
                wall_s: num("seek_wall_s"),
                seek_ms: num("seek_ms"),
                advanced_before_s: num("advanced_before_seek_s"),
                advanced_after_s: num("advanced_after_seek_s"),
                seeked_s: j
                    .get("seeked_positions_s")
                    .and_then(Json::as_array)
                    .map(|a| a.iter().filter_map(Json::as_f64).collect())
                    .unwrap_or_default(),
                segments_before: strings(j.get("segments_before_seek")),
                segments_after: strings(j.get("segments_after_seek")),
            }
        });
        Ok(PlayOutcome {
            ok: base.ok,
            reason: base.reason,
            player: opt_str(j.get("player")).unwrap_or_default(),
            advanced_s: base.advanced_s,
            required_s: num("required_s").unwrap_or(0.0),
            duration: base.duration,
            ended: base.ended,
            live: j.get("live").and_then(Json::as_bool).unwrap_or(false),
            live_latency_s: num("live_latency_s"),
            video_width: base.video_width,
            video_height: base.video_height,
            dropped_frames: base.dropped_frames,
            total_frames: base.total_frames,
            audio_tracks,
            audio_lang,
            audio_requests: num("audio_requests").unwrap_or(0.0) as u64,
            switch,
            seek,
            start_time_s: num("start_time_s"),
            segment_requests: strings(j.get("segment_requests")),
            fatal_errors: base.fatal_errors,
            nonfatal_errors: base.nonfatal_errors,
            http_errors: base.http_errors,
            aborted_requests: strings(j.get("aborted_requests")),
            key_system: opt_str(j.get("key_system")),
            key_requests: strings(j.get("key_requests")),
            raw: base.raw,
        })
    }

    /// HTTP errors with this status (`404`), as `STATUS URL` strings.
    pub fn http_status(&self, status: u16) -> Vec<&str> {
        let prefix = format!("{status} ");
        self.http_errors
            .iter()
            .map(String::as_str)
            .filter(|e| e.starts_with(&prefix))
            .collect()
    }

    /// One line for test logs: player, verdict, progress, picture, audio, live, errors.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {}: advanced {:.2}/{:.2} s, {}x{}, {} frames ({} dropped)",
            if self.player.is_empty() {
                "player?"
            } else {
                &self.player
            },
            if self.ok { "OK" } else { "FAILED" },
            self.advanced_s,
            self.required_s,
            self.video_width,
            self.video_height,
            self.total_frames,
            self.dropped_frames,
        );
        if self.live {
            s += &format!(", live latency {:?} s", self.live_latency_s);
        }
        if !self.audio_tracks.is_empty() {
            let langs: Vec<&str> = self
                .audio_tracks
                .iter()
                .map(|t| t.lang.as_deref().unwrap_or("?"))
                .collect();
            s += &format!(
                ", audio {} of [{}]",
                self.audio_lang.as_deref().unwrap_or("?"),
                langs.join(",")
            );
        }
        if let Some(sw) = &self.switch {
            s += &format!(
                ", switch {:?}->{} at {:?} s (+{:?} s, {} audio requests after)",
                sw.before,
                sw.requested,
                sw.switched_at_s,
                sw.advanced_after_switch_s,
                sw.requests_after.len()
            );
        }
        if let Some(k) = &self.seek {
            s += &format!(
                ", seek back {} s from {:?}: target {:?} landed {:?} (+{:?} s after, {} segments after)",
                k.back_s,
                k.edge_s,
                k.target_s,
                k.landed_s,
                k.advanced_after_s,
                k.segments_after.len()
            );
        }
        if self.key_system.is_some() || !self.key_requests.is_empty() {
            s += &format!(
                ", key system {}, {} key/licence requests",
                self.key_system.as_deref().unwrap_or("none"),
                self.key_requests.len()
            );
        }
        s += &format!(
            ", {} fatal, {} non-fatal, {} http errors",
            self.fatal_errors.len(),
            self.nonfatal_errors.len(),
            self.http_errors.len()
        );
        if !self.ok {
            s += &format!(": {}", self.reason);
        }
        s
    }
}

impl fmt::Display for PlayOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// `true` when two language codes name the same language: ISO 639-2/T, 639-2/B and 639-1
/// forms (`fra`, `fre`, `fr`), case and region (`fr-CA`) aside, as players report them
/// differently. The same table as page.html's `sameLang`.
pub fn same_lang(a: &str, b: &str) -> bool {
    fn key(l: &str) -> String {
        let primary = l
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let two = match primary.as_str() {
            "eng" => "en",
            "fra" | "fre" => "fr",
            "deu" | "ger" => "de",
            "spa" => "es",
            "ita" => "it",
            "por" => "pt",
            "nld" | "dut" => "nl",
            "jpn" => "ja",
            "zho" | "chi" => "zh",
            "rus" => "ru",
            "pol" => "pl",
            "swe" => "sv",
            "ara" => "ar",
            other => other,
        };
        two.to_string()
    }
    !a.is_empty() && !b.is_empty() && key(a) == key(b)
}

/// Plays `opts` in headless Chromium and returns the report.
///
/// `None` (after printing a SKIP line) when `STROM_SKIP_BROWSER=1`. Panics when the player
/// package is not installed in `tests/browser/node_modules` (run scripts/test.sh) or when
/// play.mjs crashes. One browser at a time per test binary (shared with
/// [`super::play_in_browser`]).
pub fn play(opts: &PlayOpts) -> Option<PlayOutcome> {
    if std::env::var("STROM_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        println!(
            "SKIP {} playback of {} (STROM_SKIP_BROWSER=1)",
            opts.player.arg(),
            opts.shown()
        );
        return None;
    }
    let modules = repo_root().join("tests/browser/node_modules");
    assert!(
        modules.join(opts.player.package()).is_dir(),
        "{}/{} is missing: run scripts/test.sh (it runs `npm ci` in tests/browser), \
         or set STROM_SKIP_BROWSER=1 to skip browser playback",
        modules.display(),
        opts.player.package()
    );
    let r = run_play_mjs(&opts.args());
    let outcome = PlayOutcome::from_json(&r.raw)
        .unwrap_or_else(|e| panic!("cannot parse the play.mjs report ({e}): {}", r.raw));
    println!(
        "{} {}: {}",
        opts.player.arg(),
        opts.shown(),
        outcome.summary()
    );
    Some(outcome)
}
