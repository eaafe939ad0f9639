//! Shared helpers for integration tests: `mod common;` at the top of a file in `tests/`.
//!
//! Everything here checks strom's output with tools nobody on this project wrote:
//! ffmpeg/ffprobe (generation, probing, decoding) and hls.js in headless Chromium
//! (`tests/browser/play.mjs`). Missing tools are a loud panic that says how to install them
//! (`scripts/test.sh` installs everything), never a silent pass.
//!
//! * [`tool`]: locate ffmpeg / ffprobe / node.
//! * [`media`]: generate a test input with ffmpeg once, cached in `target/test-media/`, keyed
//!   by a hash of the arguments; [`avc_aac_25`], [`avc_aac_2997`], [`audio_only`],
//!   [`video_only`] are the acceptance matrix (bit-exact: x264 runs single-threaded).
//! * [`ffprobe_flat`], [`streams`], [`packets`]: ffprobe output parsed by hand (no serde).
//! * [`framemd5`], [`decode_errors`]: what a decoder makes of a file.
//! * [`ffmpeg_current`]: a current FFmpeg (PyPI `imageio-ffmpeg`) for what Debian's 5.1
//!   cannot do, such as decrypting CENC `cbcs`.
//! * [`ffmpeg_hls`], [`ffmpeg_dash_cmd`]: the reference packagers (ffmpeg's own HLS and DASH
//!   muxers) for comparisons.
//! * [`play_in_browser`]: hls.js in Chromium; `STROM_SKIP_BROWSER=1` skips it with a SKIP line.
//! * [`TempDir`]: a unique scratch directory removed on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub mod cmaf;
pub mod l2v;
pub mod live;
pub mod players;
pub mod protect;
pub mod scte35;
pub mod store_suite;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        }
        _ => repo_root().join("target"),
    }
}

/// Full path of an external tool (`ffmpeg`, `ffprobe`, `node`, ...) found on `PATH`.
///
/// Panics with an install hint when it is missing: these tests must not pass silently.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    let package = match name {
        "ffmpeg" | "ffprobe" => "ffmpeg",
        "node" => "nodejs",
        "npm" => "npm",
        "chromium" => "chromium",
        other => other,
    };
    panic!(
        "`{name}` is not installed (not found on PATH). Install everything the tests need with \
         scripts/test.sh (it runs `apt-get install {package}` when missing)."
    );
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    out
}

fn run_ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A unique scratch directory under `std::env::temp_dir()`, removed (with its content) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/strom-<tag>-<pid>-<n>-<nanos>`.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "strom-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// FNV-1a 64: a stable hash (unlike `DefaultHasher`) so cached media names survive toolchain updates.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Generates a test input with ffmpeg once and returns its path in `target/test-media/`.
///
/// `name` gives the stem and the extension (the extension picks the container unless `args`
/// has `-f`); `args` are everything between `ffmpeg -y -v error` and the output path. The file
/// is named `<stem>-<hash of args>.<ext>`, so changing the arguments regenerates it. ffmpeg writes
/// to a temporary name that is renamed into place, so tests running in parallel are safe.
pub fn media(name: &str, args: &[&str]) -> PathBuf {
    let dir = target_dir().join("test-media");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "bin"));
    let mut key: Vec<&str> = vec![name];
    key.extend_from_slice(args);
    let out = dir.join(format!("{stem}-{:016x}.{ext}", fnv1a(&key)));
    if out.is_file() {
        return out;
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{stem}.tmp-{}-{}.{ext}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let result = run(Command::new(tool("ffmpeg"))
        .args(["-y", "-nostdin", "-v", "error"])
        .args(args)
        .arg(&tmp));
    if !result.status.success() {
        let _ = fs::remove_file(&tmp);
        panic!(
            "ffmpeg could not generate {name} with {args:?}:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", out.display()));
    out
}

/// Container of a generated input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// ISO BMFF (`.mp4`, moov after mdat as ffmpeg writes it by default).
    Mp4,
    /// FLV (`.flv`), remuxed (`-c copy`) from the MP4 variant: same bitstream, same frames.
    Flv,
}

impl Container {
    fn ext(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Flv => "flv",
        }
    }
}

/// H.264 High, x264 single-threaded (bit-exact), B-frames, fixed GOP without scene cuts.
fn x264(gop: u32) -> Vec<String> {
    x264_at(gop, "600k")
}

/// [`x264`] at `bitrate` (`-b:v`).
fn x264_at(gop: u32, bitrate: &str) -> Vec<String> {
    [
        "-c:v",
        "libx264",
        "-threads",
        "1",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "3",
        "-b:v",
        bitrate,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-g".into(),
        gop.to_string(),
        "-keyint_min".into(),
        gop.to_string(),
        "-sc_threshold".into(),
        "0".into(),
    ])
    .collect()
}

/// AAC-LC 48 kHz stereo, 128 kbit/s.
fn aac() -> Vec<String> {
    aac_at("128k")
}

/// AAC-LC 48 kHz stereo at `bitrate` (`-b:a`).
fn aac_at(bitrate: &str) -> Vec<String> {
    ["-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", bitrate]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn testsrc(rate: &str, duration_s: u32) -> Vec<String> {
    testsrc_sized("640x360", rate, duration_s)
}

fn testsrc_sized(size: &str, rate: &str, duration_s: u32) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate={rate}:duration={duration_s}"),
    ]
}

fn sine(duration_s: u32) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=440:sample_rate=48000:duration={duration_s}"),
    ]
}

/// Encodes to MP4 with `args`, then for [`Container::Flv`] remuxes that MP4 (`-c copy`).
fn generate(stem: &str, args: Vec<String>, container: Container) -> PathBuf {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mp4 = media(&format!("{stem}.mp4"), &refs);
    match container {
        Container::Mp4 => mp4,
        Container::Flv => {
            let src = mp4.to_string_lossy().into_owned();
            media(
                &format!("{stem}.{}", container.ext()),
                &["-i", &src, "-map", "0", "-c", "copy", "-f", "flv"],
            )
        }
    }
}

/// A small 320x180 25 fps H.264 (200 kbit/s, GOP 2 s) + AAC (64 kbit/s) clip: cheap to push
/// many minutes of it in a few seconds.
pub fn avc_aac_small_25(duration_s: u32, container: Container) -> PathBuf {
    let mut args = testsrc_sized("320x180", "25", duration_s);
    args.extend(sine(duration_s));
    args.extend(x264_at(50, "200k"));
    args.extend(aac_at("64k"));
    generate(&format!("avc_aac_small_25_{duration_s}s"), args, container)
}

/// An MP4 with the codec parameters of [`avc_aac_small_25`] (320x180 25 fps H.264 High,
/// GOP 2 s, 200 kbit/s; AAC-LC at `rate` Hz, `channels` channels, 64 kbit/s) but its own
/// picture (`pattern`, a lavfi source: `smptebars`, `rgbtestsrc`, ...) and tone (`tone`
/// Hz), `seconds` long, cached as `name`: ad creatives and slates.
pub fn small_clip_mp4(
    name: &str,
    pattern: &str,
    tone: u32,
    rate: u32,
    channels: u32,
    seconds: u32,
) -> PathBuf {
    let mut args = vec![
        "-f".to_string(),
        "lavfi".into(),
        "-i".into(),
        format!("{pattern}=size=320x180:rate=25:duration={seconds}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency={tone}:sample_rate={rate}:duration={seconds}"),
    ];
    args.extend(x264_at(50, "200k"));
    args.extend(
        [
            "-c:a",
            "aac",
            "-ar",
            &rate.to_string(),
            "-ac",
            &channels.to_string(),
            "-b:a",
            "64k",
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    media(name, &refs)
}

/// 640x360 25 fps H.264 High (B-frames, keyframe every 2 s) + AAC-LC 48 kHz stereo, `duration_s` long.
pub fn avc_aac_25(duration_s: u32, container: Container) -> PathBuf {
    let mut args = testsrc("25", duration_s);
    args.extend(sine(duration_s));
    args.extend(x264(50));
    args.extend(aac());
    generate(&format!("avc_aac_25_{duration_s}s"), args, container)
}

/// Like [`avc_aac_25`] at 30000/1001 fps (keyframe every 60 frames, ~2 s).
pub fn avc_aac_2997(duration_s: u32, container: Container) -> PathBuf {
    let mut args = testsrc("30000/1001", duration_s);
    args.extend(sine(duration_s));
    args.extend(x264(60));
    args.extend(aac());
    generate(&format!("avc_aac_2997_{duration_s}s"), args, container)
}

/// AAC-LC 48 kHz stereo only (a 440 Hz sine), no video track.
pub fn audio_only(duration_s: u32, container: Container) -> PathBuf {
    let mut args = sine(duration_s);
    args.extend(aac());
    generate(&format!("audio_only_{duration_s}s"), args, container)
}

/// The video of [`avc_aac_25`] (same encoder settings, same frames) without an audio track.
pub fn video_only(duration_s: u32, container: Container) -> PathBuf {
    let mut args = testsrc("25", duration_s);
    args.extend(x264(50));
    generate(&format!("video_only_{duration_s}s"), args, container)
}

/// Languages of [`avc_multi_audio`]'s audio tracks, in track order, with their sine
/// frequencies: the original (`eng`, 440 Hz) and two interpretations.
pub const MULTI_AUDIO_LANGS: [(&str, u32); 3] = [("eng", 440), ("fra", 660), ("deu", 880)];

/// The video of [`avc_aac_25`] plus three AAC-LC 48 kHz stereo tracks tagged with the
/// languages of [`MULTI_AUDIO_LANGS`] (a different sine per language, so a decoder can
/// tell them apart), `duration_s` long, MP4.
pub fn avc_multi_audio(duration_s: u32) -> PathBuf {
    let mut args = testsrc("25", duration_s);
    for (_, freq) in MULTI_AUDIO_LANGS {
        args.extend([
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("sine=frequency={freq}:sample_rate=48000:duration={duration_s}"),
        ]);
    }
    args.extend(["-map".into(), "0:v".into()]);
    for i in 0..MULTI_AUDIO_LANGS.len() {
        args.extend(["-map".into(), format!("{}:a", i + 1)]);
    }
    args.extend(x264(50));
    args.extend(aac());
    for (i, (lang, _)) in MULTI_AUDIO_LANGS.iter().enumerate() {
        args.extend([format!("-metadata:s:a:{i}"), format!("language={lang}")]);
    }
    generate(
        &format!("avc_multi_audio_{duration_s}s"),
        args,
        Container::Mp4,
    )
}

/// ffprobe's `flat` output as a key -> value map (values unquoted and unescaped).
#[derive(Clone, Debug, Default)]
pub struct Flat(pub BTreeMap<String, String>);

impl Flat {
    /// The value for `key` (`streams.stream.0.codec_name`), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value for `key`; panics naming the key when absent.
    pub fn str(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("ffprobe output has no `{key}`; keys: {:?}", self.0.keys()))
    }

    /// The value for `key` as an integer; panics when absent or not an integer.
    pub fn i64(&self, key: &str) -> i64 {
        let v = self.str(key);
        v.parse()
            .unwrap_or_else(|_| panic!("`{key}` = {v:?} is not an integer"))
    }

    /// The value for `key` as a number; panics when absent or not a number.
    pub fn f64(&self, key: &str) -> f64 {
        let v = self.str(key);
        v.parse()
            .unwrap_or_else(|_| panic!("`{key}` = {v:?} is not a number"))
    }
}

/// Runs `ffprobe -v error -of flat <args> <path>` and parses its `key=value` lines.
///
/// Example: `ffprobe_flat(p, &["-show_streams"]).str("streams.stream.0.codec_name")`.
pub fn ffprobe_flat(path: &Path, args: &[&str]) -> Flat {
    let out = run_ok(
        Command::new(tool("ffprobe"))
            .args(["-v", "error", "-of", "flat"])
            .args(args)
            .arg(path),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        let mut value = String::with_capacity(v.len());
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    value.push(n);
                }
            } else {
                value.push(c);
            }
        }
        map.insert(k.to_string(), value);
    }
    Flat(map)
}

/// One stream as ffprobe sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Stream index in the file.
    pub index: u32,
    /// `video`, `audio`, `data`...
    pub codec_type: String,
    /// `h264`, `aac`...
    pub codec_name: String,
    /// `High`, `LC`... (empty when ffprobe reports none).
    pub profile: String,
    /// Video width in pixels (0 for audio).
    pub width: u32,
    /// Video height in pixels (0 for audio).
    pub height: u32,
    /// `25/1`, `30000/1001`... (`0/0` for audio).
    pub avg_frame_rate: String,
    /// Audio sample rate in Hz (0 for video).
    pub sample_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u32,
    /// Stream time base as (numerator, denominator).
    pub time_base: (i64, i64),
    /// Stream duration in seconds, when known.
    pub duration_s: Option<f64>,
    /// Container format as ffprobe names it (`mov,mp4,m4a,3gp,3g2,mj2`, `flv`, `mpegts`, `hls`).
    pub format_name: String,
}

fn ratio(v: &str) -> (i64, i64) {
    v.split_once('/')
        .and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)))
        .unwrap_or_else(|| panic!("{v:?} is not a ratio"))
}

/// Every stream of `path` (ffprobe `-show_streams -show_format`).
pub fn streams(path: &Path) -> Vec<Stream> {
    let f = ffprobe_flat(path, &["-show_streams", "-show_format"]);
    let format_name = f.get("format.format_name").unwrap_or("").to_string();
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    let mut out = Vec::new();
    for i in 0.. {
        let p = format!("streams.stream.{i}.");
        let Some(codec_type) = f.get(&format!("{p}codec_type")) else {
            break;
        };
        out.push(Stream {
            index: num(&format!("{p}index")),
            codec_type: codec_type.to_string(),
            codec_name: f.get(&format!("{p}codec_name")).unwrap_or("").to_string(),
            profile: f.get(&format!("{p}profile")).unwrap_or("").to_string(),
            width: num(&format!("{p}width")),
            height: num(&format!("{p}height")),
            avg_frame_rate: f
                .get(&format!("{p}avg_frame_rate"))
                .unwrap_or("")
                .to_string(),
            sample_rate: num(&format!("{p}sample_rate")),
            channels: num(&format!("{p}channels")),
            time_base: ratio(f.str(&format!("{p}time_base"))),
            duration_s: f.get(&format!("{p}duration")).and_then(|v| v.parse().ok()),
            format_name: format_name.clone(),
        });
    }
    out
}

/// One packet as ffprobe reports it, in the stream time base ([`Packets::time_base`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// Presentation timestamp (`None` when the container has none).
    pub pts: Option<i64>,
    /// Decode timestamp.
    pub dts: Option<i64>,
    /// Duration (`None` when unknown).
    pub duration: Option<i64>,
    /// Keyframe flag (`K` in ffprobe's flags).
    pub key: bool,
    /// Payload size in bytes.
    pub size: usize,
}

/// The packets of one stream and the time base their timestamps are in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packets {
    /// (numerator, denominator) of the stream time base, e.g. (1, 90000) for MPEG-TS.
    pub time_base: (i64, i64),
    /// Packets in file order.
    pub packets: Vec<Packet>,
}

impl Packets {
    /// A timestamp of this stream in seconds (for messages and tolerances only).
    pub fn seconds(&self, ticks: i64) -> f64 {
        ticks as f64 * self.time_base.0 as f64 / self.time_base.1 as f64
    }

    /// Indices of keyframe packets.
    pub fn key_indices(&self) -> Vec<usize> {
        self.packets
            .iter()
            .enumerate()
            .filter(|(_, p)| p.key)
            .map(|(i, _)| i)
            .collect()
    }
}

/// Packets of `stream` (an ffprobe stream specifier: `v:0`, `a:0`, `0`) of `path`.
pub fn packets(path: &Path, stream: &str) -> Packets {
    let out = run_ok(
        Command::new(tool("ffprobe"))
            .args(["-v", "error", "-select_streams", stream])
            .args([
                "-show_entries",
                "stream=time_base:packet=pts,dts,duration,size,flags",
            ])
            .args(["-of", "compact"])
            .arg(path),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = Packets::default();
    let mut time_base = None;
    for line in text.lines() {
        let mut fields = line.split('|');
        let section = fields.next().unwrap_or("");
        let kv: BTreeMap<&str, &str> = fields.filter_map(|f| f.split_once('=')).collect();
        let int = |k: &str| kv.get(k).and_then(|v| v.parse::<i64>().ok());
        match section {
            "packet" => result.packets.push(Packet {
                pts: int("pts"),
                dts: int("dts"),
                duration: int("duration"),
                key: kv.get("flags").is_some_and(|f| f.contains('K')),
                size: int("size").unwrap_or(0) as usize,
            }),
            "stream" => {
                if let Some(tb) = kv.get("time_base") {
                    time_base.get_or_insert(ratio(tb));
                }
            }
            _ => {}
        }
    }
    result.time_base =
        time_base.unwrap_or_else(|| panic!("no stream {stream} in {}", path.display()));
    result
}

/// Asserts that the decoded audio `ours` (framemd5 lines) equals `source`'s, allowing
/// one extra leading frame in `ours`: an MP4 source hides the AAC encoder priming frame
/// with an edit list, while a TS or fragmented output carries it.
pub fn assert_same_audio(source: &[String], ours: &[String], what: &str) {
    let trimmed = if ours.len() == source.len() + 1 {
        &ours[1..]
    } else {
        ours
    };
    assert!(
        source == trimmed,
        "{what}: decoded audio differs ({} vs {} frames)",
        source.len(),
        ours.len()
    );
}

/// MD5 of every decoded frame of `stream_spec` (`v:0`, `a:0`), in output order
/// (`ffmpeg -i X -map 0:<spec> -f framemd5 -`, md5 column only).
pub fn framemd5(path: &Path, stream_spec: &str) -> Vec<String> {
    let out = run_ok(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", &format!("0:{stream_spec}"), "-f", "framemd5", "-"]),
    );
    md5_column(&out.stdout)
}

/// The md5 column of `ffmpeg -f framemd5` output: one checksum per frame, in order.
pub fn md5_column(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_string()))
        .collect()
}

/// `framemd5` of `stream_spec` of an HLS playlist read by the `ffmpeg` binary given
/// (`tool("ffmpeg")` or [`ffmpeg_current`]) with key files allowed
/// (`-allowed_extensions ALL`). Panics with ffmpeg's errors when it fails.
pub fn hls_framemd5(ffmpeg: &Path, playlist: &Path, stream_spec: &str) -> Vec<String> {
    let out = Command::new(ffmpeg)
        .args([
            "-nostdin",
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
        ])
        .arg(playlist)
        .args(["-map", &format!("0:{stream_spec}"), "-f", "framemd5", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg on {}: {}",
        playlist.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    md5_column(&out.stdout)
}

/// The PyPI package that ships a current static FFmpeg, and the version `scripts/test.sh`
/// installs (Debian's FFmpeg 5.1 cannot decrypt CENC `cbcs`).
pub const IMAGEIO_FFMPEG: &str = "imageio-ffmpeg==0.8.1";

/// A current FFmpeg (the static binary of the `imageio-ffmpeg` PyPI package, FFmpeg 9.x):
/// for what Debian's FFmpeg 5.1 cannot do, such as decrypting CENC `cbcs`
/// (`-decryption_key`). Found with
/// `python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())'`, once per
/// process.
///
/// Panics with the install command when it is missing: these tests must not pass silently.
pub fn ffmpeg_current() -> PathBuf {
    static FOUND: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = found.as_ref() {
        return p.clone();
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .stdin(Stdio::null())
        .output();
    let path = match out {
        Ok(o) if o.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string())
        }
        Ok(o) => panic!(
            "a current FFmpeg is not installed: `python3 -c 'import imageio_ffmpeg'` failed ({}). \
             Install it with scripts/test.sh (it runs `pip install {IMAGEIO_FFMPEG}`).\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "cannot run python3 to find the current FFmpeg ({e}); install python3 and \
             `pip install {IMAGEIO_FFMPEG}` (scripts/test.sh does)"
        ),
    };
    assert!(
        path.is_file(),
        "imageio_ffmpeg names {} but it is not a file; reinstall with `pip install --force-reinstall {IMAGEIO_FFMPEG}`",
        path.display()
    );
    *found = Some(path.clone());
    path
}

/// Everything ffmpeg complains about while decoding all of `path` (`ffmpeg -v error -i X -f null -`);
/// empty means a clean decode.
pub fn decode_errors(path: &Path) -> String {
    let out = run(Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]));
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && s.is_empty() {
        s = format!("ffmpeg exited with {}", out.status);
    }
    s
}

/// ffmpeg's DASH muxer (`-c copy`, 2 s segments, SegmentTemplate + SegmentTimeline) of every
/// stream of `input` into `out/manifest.mpd`; `input_opts` go before `-i` (`-re`),
/// `output_opts` before the output (live window options).
pub fn ffmpeg_dash_cmd(
    input: &Path,
    out: &Path,
    input_opts: &[&str],
    output_opts: &[&str],
) -> Command {
    let mut cmd = Command::new(tool("ffmpeg"));
    cmd.args(["-nostdin", "-y", "-v", "error"])
        .args(input_opts)
        .arg("-i")
        .arg(input)
        .args([
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "dash",
            "-seg_duration",
            "2",
        ])
        .args(["-use_template", "1", "-use_timeline", "1"])
        .args(output_opts)
        .arg(out.join("manifest.mpd"))
        .stdin(Stdio::null());
    cmd
}

/// The reference: ffmpeg's own HLS muxer (`-c copy -f hls -hls_time N -hls_playlist_type vod`)
/// writes `out_dir/index.m3u8` + `index<N>.ts`; returns the playlist path.
pub fn ffmpeg_hls(input: &Path, out_dir: &Path, hls_time: u32) -> PathBuf {
    fs::create_dir_all(out_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let playlist = out_dir.join("index.m3u8");
    run_ok(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-y", "-v", "error", "-i"])
            .arg(input)
            .args([
                "-map",
                "0",
                "-c",
                "copy",
                "-f",
                "hls",
                "-hls_playlist_type",
                "vod",
            ])
            .args(["-hls_time", &hls_time.to_string()])
            .arg(&playlist),
    );
    playlist
}

/// A minimal JSON value, enough to read `play.mjs` reports without serde.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Any number.
    Num(f64),
    /// A string (escapes decoded).
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in document order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses one JSON document; `Err` says where it stopped.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("bad literal")
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'n') => self.lit("null", Json::Null),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[' | b'{') => {
                self.depth += 1;
                if self.depth > 64 {
                    return self.err("nesting too deep");
                }
                let v = if self.s[self.i] == b'[' {
                    self.array()
                } else {
                    self.object()
                };
                self.depth -= 1;
                v
            }
            Some(_) => self.number(),
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut out = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Arr(out));
        }
        loop {
            out.push(self.value()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Arr(out));
                }
                _ => return self.err("expected , or ]"),
            }
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut out = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Obj(out));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("expected a key");
            }
            let k = self.string()?;
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return self.err("expected :");
            }
            self.i += 1;
            out.push((k, self.value()?));
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Obj(out));
                }
                _ => return self.err("expected , or }"),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => self.err("bad \\u escape"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        while matches!(
            self.s.get(self.i),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Json::Num)
            .map_or_else(|| self.err("bad number"), Ok)
    }
}

/// What hls.js in headless Chromium made of a stream (one `play.mjs` report).
#[derive(Clone, Debug)]
pub struct PlayResult {
    /// Playback advanced far enough without a fatal error.
    pub ok: bool,
    /// Why not (empty when `ok`).
    pub reason: String,
    /// How far `currentTime` advanced after playback started, in seconds.
    pub advanced_s: f64,
    /// Media duration as the player saw it (`None` for live / unknown).
    pub duration: Option<f64>,
    /// `ended` fired (VOD played to the end).
    pub ended: bool,
    /// Decoded picture size.
    pub video_width: u32,
    /// Decoded picture size.
    pub video_height: u32,
    /// `getVideoPlaybackQuality().droppedVideoFrames`.
    pub dropped_frames: u64,
    /// `getVideoPlaybackQuality().totalVideoFrames`.
    pub total_frames: u64,
    /// Fatal hls.js / media errors, each as compact JSON.
    pub fatal_errors: Vec<String>,
    /// Recovered (non-fatal) hls.js errors, each as compact JSON.
    pub nonfatal_errors: Vec<String>,
    /// HTTP responses >= 400 and failed requests.
    pub http_errors: Vec<String>,
    /// The whole report line, for assertion messages.
    pub raw: String,
}

impl PlayResult {
    /// Builds a result from one `play.mjs` JSON line.
    pub fn from_json(line: &str) -> Result<PlayResult, String> {
        let j = Json::parse(line.trim())?;
        let num = |k: &str| j.get(k).and_then(Json::as_f64);
        let list = |k: &str| -> Vec<String> {
            j.get(k)
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| match v {
                            Json::Str(s) => s.clone(),
                            other => json_text(other),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(PlayResult {
            ok: j
                .get("ok")
                .and_then(Json::as_bool)
                .ok_or("report has no boolean `ok`")?,
            reason: j
                .get("reason")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
            advanced_s: num("advanced_s").unwrap_or(0.0),
            duration: num("duration"),
            ended: j.get("ended").and_then(Json::as_bool).unwrap_or(false),
            video_width: num("video_width").unwrap_or(0.0) as u32,
            video_height: num("video_height").unwrap_or(0.0) as u32,
            dropped_frames: num("dropped_frames").unwrap_or(0.0) as u64,
            total_frames: num("total_frames").unwrap_or(0.0) as u64,
            fatal_errors: list("fatal_errors"),
            nonfatal_errors: list("nonfatal_errors"),
            http_errors: list("http_errors"),
            raw: line.trim().to_string(),
        })
    }
}

/// Compact JSON text of a value (for messages).
pub fn json_text(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Num(n) => n.to_string(),
        Json::Str(s) => format!("{s:?}"),
        Json::Arr(a) => format!(
            "[{}]",
            a.iter().map(json_text).collect::<Vec<_>>().join(",")
        ),
        Json::Obj(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k:?}:{}", json_text(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// One browser at a time per test binary: two cores cannot decode two streams in real time.
static BROWSER: Mutex<()> = Mutex::new(());

/// Plays `dir/path` (an HLS playlist) with hls.js in headless Chromium for up to `seconds`.
///
/// Returns `None` (after printing a SKIP line) when `STROM_SKIP_BROWSER=1`. Panics when node or
/// `tests/browser/node_modules` is missing (run scripts/test.sh) or when play.mjs crashes;
/// a stream that does not play is `Some(PlayResult { ok: false, .. })`.
pub fn play_in_browser(dir: &Path, path: &str, seconds: u32) -> Option<PlayResult> {
    play_in_browser_with(dir, path, seconds, None)
}

/// [`play_in_browser`], also saving a screenshot of the video element at the end.
pub fn play_in_browser_with(
    dir: &Path,
    path: &str,
    seconds: u32,
    screenshot: Option<&Path>,
) -> Option<PlayResult> {
    if std::env::var("STROM_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        println!(
            "SKIP browser playback of {}/{path} (STROM_SKIP_BROWSER=1)",
            dir.display()
        );
        return None;
    }
    let mut args: Vec<std::ffi::OsString> = vec!["--dir".into(), dir.into()];
    args.extend(["--path", path, "--seconds", &seconds.to_string()].map(Into::into));
    if let Some(shot) = screenshot {
        args.push("--screenshot".into());
        args.push(shot.into());
    }
    Some(run_play_mjs(&args))
}

/// Plays `url` (a live or VOD HLS playlist on 127.0.0.1, served with CORS headers, e.g. by the
/// live origin) with hls.js in headless Chromium for up to `seconds` (`play.mjs --url`).
///
/// Same contract as [`play_in_browser`]: `None` with a SKIP line when `STROM_SKIP_BROWSER=1`,
/// a panic when the tools are missing, `Some(PlayResult { ok: false, .. })` when it does not play.
pub fn play_url_in_browser(url: &str, seconds: u32) -> Option<PlayResult> {
    if std::env::var("STROM_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        println!("SKIP browser playback of {url} (STROM_SKIP_BROWSER=1)");
        return None;
    }
    let args: Vec<std::ffi::OsString> = ["--url", url, "--seconds", &seconds.to_string()]
        .map(Into::into)
        .to_vec();
    Some(run_play_mjs(&args))
}

/// Runs `node tests/browser/play.mjs <args>` (one browser at a time) and parses its report.
fn run_play_mjs(args: &[std::ffi::OsString]) -> PlayResult {
    let browser = repo_root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir()
            && browser.join("node_modules/hls.js").is_dir(),
        "{}/node_modules is missing: run scripts/test.sh (it runs `npm ci` there), \
         or set STROM_SKIP_BROWSER=1 to skip browser playback",
        browser.display()
    );
    let node = tool("node");
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let mut cmd = Command::new(node);
    cmd.arg(browser.join("play.mjs")).args(args);
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let code = out.status.code();
    match (code, line) {
        (Some(0 | 1), Some(line)) => match PlayResult::from_json(line) {
            Ok(r) => r,
            Err(e) => panic!("cannot parse the play.mjs report ({e}): {line}"),
        },
        _ => panic!(
            "play.mjs failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
