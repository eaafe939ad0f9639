//! VOD packager: an FLV or MP4 file in, HLS (MPEG-TS or CMAF segments) and/or DASH out.
//!
//! ```sh
//! cargo run --release --example package -- INPUT --out DIR [--segment-duration SECS] \
//!     [--format hls-ts|hls-fmp4|dash|all[,...]] \
//!     [--encrypt aes128|sample-aes|cenc|cbcs --key HEX [--kid HEX] [--iv HEX] \
//!      [--key-uri URI] [--licence-url URL]]
//! ```
//!
//! `hls-ts` (the default) writes `DIR/index.m3u8` (multivariant), `DIR/media.m3u8` and
//! `DIR/segmentNNNNN.ts`. `hls-fmp4` and `dash` share one CMAF rendition per track,
//! `DIR/{v1,a2,...}/init.mp4` and `DIR/{rendition}/{n}.m4s`; `hls-fmp4` adds
//! `DIR/{rendition}/media.m3u8` and `DIR/cmaf.m3u8`, `dash` adds `DIR/manifest.mpd`.
//! Segments are written as they are cut (memory stays at about one segment of input;
//! CMAF fragments go out with vectored writes straight from the input buffers); the
//! playlists and manifests are written last, each to a temporary name then renamed, so
//! a failed run leaves no playlist that looks complete. Exits non-zero with a message
//! on error.
//!
//! `--encrypt` protects the package with one key (`--key`, 32 hex digits); see
//! `strom::package::VodEncryption`:
//!
//! * `aes128` and `sample-aes` (`--format hls-ts` only): segments encrypted whole
//!   (AES-128-CBC, IV the media sequence number unless `--iv`) or muxed SAMPLE-AES
//!   (IV `--iv`, else the key id's bytes, written in the playlist). `--kid` is optional
//!   for these (HLS identity keys carry no key id; it defaults to zero and only fills
//!   `{kid}` in `--key-uri`).
//! * `cenc` and `cbcs` (`--format hls-fmp4` and/or `dash`): protected init segments and
//!   fragments; the MPD carries the mp4protection and Clear Key `ContentProtection`
//!   (`--licence-url` adds `dashif:Laurl`), the fMP4 playlists an identity key
//!   (`METHOD=SAMPLE-AES-CTR` or `SAMPLE-AES`). `--kid` is required. `--iv`: the `cbcs`
//!   constant IV (32 hex digits; default the key id) or the `cenc` IV seed (16 hex digits).
//!
//! HLS playlists point at `--key-uri` (`{kid}` is replaced by the key id), or by default
//! at `DIR/key.bin`, which then holds the 16 key bytes: the package plays on its own, and
//! whoever can read it can decrypt it (a real origin serves the key behind
//! authorisation).

mod common;

use std::fs;
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::input::{read_file_with, Input, InputError};
use strom::crypto::{ContentKey, Iv, KeyId, Scheme};
use strom::package::{VodEncryption, VodFormats, VodOutput, VodPackager, VodPackagerOptions};
use strom::pipeline::Stage;
use strom::time::Timestamp;

struct Args {
    input: PathBuf,
    out: PathBuf,
    segment_ms: i64,
    formats: VodFormats,
    encryption: Option<VodEncryption>,
}

const USAGE: &str = "usage: package INPUT --out DIR [--segment-duration SECS] \
                     [--format hls-ts|hls-fmp4|dash|all[,...]] \
                     [--encrypt aes128|sample-aes|cenc|cbcs --key HEX [--kid HEX] [--iv HEX] \
                     [--key-uri URI] [--licence-url URL]]";

/// The protection flags as given.
#[derive(Default)]
struct EncryptArgs {
    scheme: Option<String>,
    key: Option<String>,
    kid: Option<String>,
    iv: Option<String>,
    key_uri: Option<String>,
    licence_url: Option<String>,
}

impl EncryptArgs {
    /// The [`VodEncryption`] the flags ask for; `None` without `--encrypt`.
    fn build(self) -> Result<Option<VodEncryption>, String> {
        let Some(name) = self.scheme else {
            if self.key.is_some()
                || self.kid.is_some()
                || self.iv.is_some()
                || self.key_uri.is_some()
                || self.licence_url.is_some()
            {
                return Err(
                    "--key, --kid, --iv, --key-uri and --licence-url need --encrypt".into(),
                );
            }
            return Ok(None);
        };
        let scheme = Scheme::parse(&name)
            .ok_or_else(|| format!("bad --encrypt {name:?} (aes128, sample-aes, cenc, cbcs)"))?;
        let key = self.key.ok_or("--encrypt needs --key (32 hex digits)")?;
        let key = ContentKey::from_hex(&key).map_err(|e| format!("bad --key: {e}"))?;
        let kid = match self.kid {
            Some(k) => KeyId::from_hex(&k).map_err(|e| format!("bad --kid: {e}"))?,
            None if matches!(scheme, Scheme::Cenc | Scheme::Cbcs) => {
                return Err(format!("--encrypt {name} needs --kid (32 hex digits)"));
            }
            None => {
                if self.key_uri.as_deref().is_some_and(|u| u.contains("{kid}")) {
                    return Err("--key-uri has {kid} but no --kid is given".into());
                }
                KeyId([0; 16])
            }
        };
        let mut e = VodEncryption::new(scheme, kid, key);
        if let Some(iv) = self.iv {
            e = e.with_iv(Iv::from_hex(&iv).map_err(|err| format!("bad --iv: {err}"))?);
        }
        if let Some(uri) = self.key_uri {
            e = e.with_key_uri(uri);
        }
        if let Some(url) = self.licence_url {
            e = e.with_licence_url(url);
        }
        Ok(Some(e))
    }
}

fn parse_args() -> Result<Args, String> {
    let mut input = None;
    let mut out = None;
    let mut segment_ms = 6000;
    let mut formats = VodFormats::default();
    let mut enc = EncryptArgs::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--encrypt" => enc.scheme = Some(value()?),
            "--key" => enc.key = Some(value()?),
            "--kid" => enc.kid = Some(value()?),
            "--iv" => enc.iv = Some(value()?),
            "--key-uri" => enc.key_uri = Some(value()?),
            "--licence-url" | "--license-url" => enc.licence_url = Some(value()?),
            "--out" | "-o" => out = Some(PathBuf::from(it.next().ok_or(USAGE)?)),
            "--segment-duration" => {
                let v = it.next().ok_or(USAGE)?;
                segment_ms = parse_millis(&v).ok_or(format!("bad --segment-duration {v:?}"))?;
            }
            "--format" | "-f" => {
                let v = it.next().ok_or(USAGE)?;
                formats = VodFormats::parse(&v).map_err(|e| format!("bad --format: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ if input.is_none() && !a.starts_with('-') => input = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    let encryption = enc.build()?;
    if let Some(e) = &encryption {
        // The library's check, up front: a clear message before any file is touched.
        e.check(formats)
            .map_err(|err| format!("bad --encrypt: {err}"))?;
    }
    Ok(Args {
        input: input.ok_or(USAGE)?,
        out: out.ok_or(USAGE)?,
        segment_ms,
        formats,
        encryption,
    })
}

/// "6", "2.5", "0.040" -> milliseconds, without floating point.
fn parse_millis(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    let ms = w.checked_mul(1000)?.checked_add(f)?;
    (ms > 0).then_some(ms)
}

/// Writes `name` (a relative path, `/` between folders) under `dir` through a
/// temporary file beside it, renamed when complete.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let path = dir.join(name);
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{file}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Writes all of `parts`, in order, with as few `write` calls as the OS allows.
fn write_all_vectored<'a>(
    f: &mut fs::File,
    parts: impl Iterator<Item = &'a [u8]>,
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'a>> = parts.filter(|p| !p.is_empty()).map(IoSlice::new).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        // Linux takes at most IOV_MAX (1024) slices per call.
        let n = rest.len().min(1024);
        match f.write_vectored(&rest[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(k) => IoSlice::advance_slices(&mut rest, k),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `name` is a CMAF rendition folder (`v1`, `a2`).
fn is_rendition_dir(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some('v' | 'a'))
        && !c.as_str().is_empty()
        && c.as_str().bytes().all(|b| b.is_ascii_digit())
}

fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut opts = VodPackagerOptions::default();
    opts.formats = args.formats;
    opts.encryption = args.encryption.clone();
    // Playlists (and a key) of an earlier run would describe segments we are about to
    // replace.
    for p in [
        &opts.multivariant_playlist,
        &opts.media_playlist,
        &opts.cmaf_playlist,
        &opts.dash_manifest,
        &strom::package::KEY_FILE.to_string(),
    ] {
        let _ = fs::remove_file(args.out.join(p));
    }
    if let Ok(entries) = fs::read_dir(&args.out) {
        for e in entries.flatten() {
            if is_rendition_dir(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path().join("media.m3u8"));
            }
        }
    }
    opts.segmenter.target_duration = Timestamp::from_millis(args.segment_ms);
    let mut packager = VodPackager::new(opts).map_err(|e| e.to_string())?;
    let total = fs::metadata(&args.input)
        .map_err(|e| format!("{}: {e}", args.input.display()))?
        .len();
    let mut last_report = Instant::now();
    let mut io_err: Option<String> = None;
    // The segment file being written: pieces are appended as they come.
    let mut current: Option<fs::File> = None;
    // Rendition folders created so far.
    let mut dirs: Vec<String> = Vec::new();
    let mut store = |out: VodOutput, dir: &Path| -> Result<(), strom::Error> {
        let r = match &out {
            VodOutput::SegmentData {
                name,
                first,
                last,
                data,
                ..
            } => (|| {
                if *first {
                    current = Some(fs::File::create(dir.join(name))?);
                }
                let f = current.as_mut().ok_or(std::io::ErrorKind::NotFound)?;
                f.write_all(data)?;
                if *last {
                    current = None;
                }
                Ok(())
            })(),
            VodOutput::InitSegment {
                name, rendition, ..
            }
            | VodOutput::Fragment {
                name, rendition, ..
            } => (|| {
                if !dirs.contains(rendition) {
                    fs::create_dir_all(dir.join(rendition))?;
                    dirs.push(rendition.clone());
                }
                let mut f = fs::File::create(dir.join(name))?;
                write_all_vectored(&mut f, out.parts())
            })(),
            VodOutput::Playlist { name, text } => write_atomic(dir, name, text.as_bytes()),
            VodOutput::Key { name, key } => write_atomic(dir, name, key.as_bytes()),
            _ => Ok(()),
        };
        r.map_err(|e: std::io::Error| {
            io_err = Some(format!("{}: {e}", dir.join(out.name()).display()));
            strom::Error::usage("output write failed")
        })
    };
    // With CENC, each sample is encrypted in the buffer just read, while it is in cache;
    // the packager then only writes the protection boxes.
    let in_place = args.encryption.is_some();
    let res = read_file_with(&args.input, in_place, |input| {
        let (item, read) = match input {
            Input::Sample(s, bytes) => return packager.encrypt_in_place(s.track, bytes),
            Input::Item(item, read) => (item, read),
        };
        packager.push(item)?;
        while let Some(out) = packager.poll() {
            store(out?, &args.out)?;
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            let s = packager.summary();
            eprintln!(
                "progress: {:>3}% of input, {} segments, {:.1} s of media",
                read * 100 / total.max(1),
                s.segments,
                s.duration_ms as f64 / 1000.0
            );
        }
        Ok(false)
    })
    .and_then(|_| {
        packager.finish()?;
        while let Some(out) = packager.poll() {
            store(out?, &args.out)?;
        }
        Ok(())
    });
    if let Err(e) = res {
        return Err(match (e, io_err) {
            (_, Some(io)) => io,
            (InputError::Media(e), None) => format!("{}: {e}", args.input.display()),
            (e, None) => format!("{}: {e}", args.input.display()),
        });
    }
    let s = packager.summary();
    let wall = started.elapsed().as_secs_f64();
    // One TS variant (all tracks muxed) plus the CMAF renditions.
    let renditions = s.renditions + u64::from(args.formats.contains(VodFormats::HLS_TS));
    let top = [
        (VodFormats::HLS_TS, "index.m3u8"),
        (VodFormats::HLS_FMP4, "cmaf.m3u8"),
        (VodFormats::DASH, "manifest.mpd"),
    ]
    .iter()
    .filter(|(f, _)| args.formats.contains(*f))
    .map(|(_, n)| args.out.join(n).display().to_string())
    .collect::<Vec<_>>()
    .join(" ");
    let protection = args
        .encryption
        .as_ref()
        .map_or(String::new(), |e| format!(", {}", e.scheme.as_str()));
    println!(
        "packaged {} segments, {:.3} s of media, {} renditions ({}{}), {:.1} MB in {:.2} s ({:.0}x realtime, {:.0} MB/s) -> {}",
        s.segments,
        s.duration_ms as f64 / 1000.0,
        renditions,
        args.formats,
        protection,
        s.bytes as f64 / 1e6,
        wall,
        s.duration_ms as f64 / 1000.0 / wall.max(1e-9),
        total as f64 / 1e6 / wall.max(1e-9),
        top
    );
    Ok(())
}

/// Input buffers (the MP4 demuxer's reads, ~0.1-1 MB each) live until their frames
/// are written. glibc's default dynamic thresholds hand each one fresh pages, either a
/// new mapping or heap grown again after a trim: one page fault (and a zeroed page) per
/// 4 KiB read. Keeping freed buffers in the heap (no trim below 64 MiB, blocks up to
/// 32 MiB from the heap) lets the next read reuse them: about 3.4x fewer page faults and
/// ~15 % less CPU on a 1080p MP4 (scripts/bench_dash_vs_ffmpeg.sh), for ~3 MB more RSS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt only sets allocator parameters; it is called once, first thing in
    // main, before any other thread exists, with documented parameters and values
    // (32 MiB is glibc's largest M_MMAP_THRESHOLD on 64-bit targets).
    let ok = unsafe {
        mallopt(M_TRIM_THRESHOLD, 64 << 20) == 1 && mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
    };
    if !ok {
        eprintln!("package: mallopt failed; reading may cost more page faults");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("package: error: {e}");
            ExitCode::FAILURE
        }
    }
}
