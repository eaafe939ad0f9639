//! SCTE 35 `splice_info_section`s read and made by an independent implementation:
//! `threefive` 3.1.5 from PyPI (the version the harness pins), run as `python3 -c`.
//!
//! * [`decode`], [`decode_text`]: sections as bytes, or as text (hex with `0x`, as
//!   `EXT-X-DATERANGE` carries them, or base64, as MPD `scte35:Binary` and `onCuePoint`
//!   carry them), to [`Section`]s: command type, event id, splice time (with
//!   `pts_adjustment` applied, 90 kHz), break duration, out-of-network flag, and the
//!   bytes threefive read.
//! * [`decode_ts`]: every section on the SCTE 35 PIDs of an MPEG-TS file
//!   (`threefive.Stream`), with its PID.
//! * [`splice_insert`]: a `splice_insert` made by threefive's `mk_splice_insert`.
//!
//! python3 or threefive missing is a panic with the install command: the tests that use
//! this must not pass silently (`scripts/test.sh` installs threefive).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// The pinned threefive release.
pub const THREEFIVE: &str = "threefive==3.1.5";

/// What threefive read from one section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// `splice_command_type`: 5 `splice_insert`, 6 `time_signal`, 0 `splice_null`...
    pub command_type: u8,
    /// `splice_event_id` of a `splice_insert`, else the `segmentation_event_id` of the
    /// first segmentation descriptor; `None` when there is neither.
    pub event_id: Option<u32>,
    /// `pts_time + pts_adjustment` modulo 2^33, 90 kHz ticks; `None` when no time is
    /// specified (an immediate splice, a `splice_null`).
    pub pts_ticks: Option<u64>,
    /// `break_duration` (or the segmentation duration), 90 kHz ticks.
    pub duration_ticks: Option<u64>,
    /// `out_of_network_indicator` of a `splice_insert`.
    pub out_of_network: Option<bool>,
    /// `splice_immediate_flag` of a `splice_insert`.
    pub immediate: bool,
    /// The section as threefive read it (`Cue.bites`).
    pub bytes: Vec<u8>,
}

/// One section found in an MPEG-TS file by [`decode_ts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsSection {
    /// The PID it travelled on.
    pub pid: Option<u16>,
    /// What it says.
    pub section: Section,
}

const SCRIPT: &str = r#"
import sys
try:
    import threefive
    from threefive import Cue
    from threefive.encode import mk_splice_insert
except ImportError as e:
    print("NO-THREEFIVE", e)
    sys.exit(3)
import base64

M = 1 << 33

def ticks(s):
    return None if s is None else round(float(s) * 90000)

def opt(v):
    return "-" if v is None else str(v)

def describe(c):
    d = c.get()
    cmd = d["command"]
    t = cmd["command_type"]
    if t == 5:
        ev, dur = cmd.get("splice_event_id"), cmd.get("break_duration")
    else:
        seg = [x for x in d.get("descriptors", []) if x.get("tag") == 2]
        ev = int(seg[0]["segmentation_event_id"], 16) if seg else None
        dur = seg[0].get("segmentation_duration") if seg else None
    pts = ticks(cmd.get("pts_time"))
    if pts is not None:
        pts = (pts + ticks(d["info_section"].get("pts_adjustment") or 0)) % M
    oon = cmd.get("out_of_network_indicator")
    oon = None if oon is None else int(bool(oon))
    imm = int(bool(cmd.get("splice_immediate_flag")))
    return " ".join([str(t), opt(ev), opt(pts), opt(ticks(dur)), opt(oon), str(imm), bytes(c.bites).hex()])

def section(text):
    if text.startswith(("0x", "0X")):
        return bytes.fromhex(text[2:])
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)

mode = sys.argv[1]
if mode == "sections":
    for text in sys.argv[2:]:
        try:
            c = Cue(section(text))
            ok = c.decode()
        except Exception as e:
            print("FAIL", type(e).__name__, e)
            continue
        print("OK", describe(c)) if ok else print("FAIL decode")
elif mode == "ts":
    def got(c):
        pd = c.get().get("packet_data") or {}
        pid = pd.get("pid")
        pid = None if pid is None else int(str(pid), 0)
        print("CUE", opt(pid), describe(c))
    threefive.Stream(sys.argv[2]).decode(func=got)
elif mode == "make":
    ev, pts, dur, out = sys.argv[2:6]
    pts = None if pts == "-" else int(pts) / 90000
    dur = None if dur == "-" else int(dur) / 90000
    c = mk_splice_insert(int(ev), pts=pts, duration=dur, out=out == "1")
    print("MADE", bytes(c.bites).hex())
"#;

fn hex_bytes(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex from threefive: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from threefive"))
        .collect()
}

/// Runs the script with `args`; its stdout lines. Panics with the install command when
/// python3 or threefive is missing, and with threefive's output when it fails.
fn run(args: &[String]) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "python3 is not runnable ({e}): install it (`apt-get install python3 python3-pip`), \
                 then `python3 -m pip install --user {THREEFIVE}` (scripts/test.sh does both)"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.starts_with("NO-THREEFIVE"),
        "threefive is not installed: `python3 -m pip install --user {THREEFIVE}` \
         (scripts/test.sh installs it)\n{stdout}"
    );
    assert!(
        out.status.success(),
        "threefive failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout.lines().map(str::to_string).collect()
}

/// Parses the fields `describe` prints.
fn parse_fields(fields: &[&str]) -> Section {
    assert_eq!(fields.len(), 7, "threefive line {fields:?}");
    let opt = |s: &str| (s != "-").then(|| s.parse::<u64>().expect("a number from threefive"));
    Section {
        command_type: fields[0].parse().expect("command type"),
        event_id: opt(fields[1]).map(|v| u32::try_from(v).expect("32-bit event id")),
        pts_ticks: opt(fields[2]),
        duration_ticks: opt(fields[3]),
        out_of_network: opt(fields[4]).map(|v| v == 1),
        immediate: fields[5] == "1",
        bytes: hex_bytes(fields[6]),
    }
}

/// Decodes sections given as text: `0x`-prefixed hex or base64 (standard alphabet,
/// padding optional). One result per input, in order; `Err` with threefive's reason
/// for a section it cannot decode.
pub fn decode_text(texts: &[&str]) -> Vec<Result<Section, String>> {
    let mut args = vec!["sections".to_string()];
    args.extend(texts.iter().map(|t| t.trim().to_string()));
    let lines = run(&args);
    assert_eq!(lines.len(), texts.len(), "threefive output: {lines:#?}");
    lines
        .iter()
        .map(|l| match l.strip_prefix("OK ") {
            Some(rest) => Ok(parse_fields(&rest.split(' ').collect::<Vec<_>>())),
            None => Err(l.clone()),
        })
        .collect()
}

/// Decodes section bytes; panics when threefive cannot decode one.
pub fn decode(sections: &[&[u8]]) -> Vec<Section> {
    let texts: Vec<String> = sections
        .iter()
        .map(|s| {
            let mut t = String::from("0x");
            for b in s.iter() {
                t.push_str(&format!("{b:02x}"));
            }
            t
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    decode_text(&refs)
        .into_iter()
        .zip(&texts)
        .map(|(r, t)| r.unwrap_or_else(|e| panic!("threefive cannot decode {t}: {e}")))
        .collect()
}

/// Decodes one section; panics when threefive cannot.
pub fn decode_one(section: &[u8]) -> Section {
    decode(&[section]).remove(0)
}

/// Every SCTE 35 section threefive finds in the MPEG-TS file at `path`, in file order.
pub fn decode_ts(path: &Path) -> Vec<TsSection> {
    let lines = run(&["ts".to_string(), path.to_string_lossy().into_owned()]);
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("CUE "))
        .map(|rest| {
            let fields: Vec<&str> = rest.split(' ').collect();
            assert_eq!(fields.len(), 8, "threefive line {rest}");
            TsSection {
                pid: (fields[0] != "-").then(|| fields[0].parse().expect("PID")),
                section: parse_fields(&fields[1..]),
            }
        })
        .collect()
}

/// A `splice_insert` made by threefive's `mk_splice_insert`: program splice of
/// `event_id` at `pts_ticks` (immediate when `None`), out of network when `out` (or when
/// a `duration_ticks` is given, with `break_auto_return`). Times are passed to threefive
/// as seconds: pick ticks whose seconds are exact binary fractions (multiples of 5625
/// ticks, 1/16 s) for the section to hold exactly them; read it back with [`decode`].
pub fn splice_insert(
    event_id: u32,
    pts_ticks: Option<u64>,
    duration_ticks: Option<u64>,
    out: bool,
) -> Vec<u8> {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |t| t.to_string());
    let lines = run(&[
        "make".to_string(),
        event_id.to_string(),
        opt(pts_ticks),
        opt(duration_ticks),
        if out { "1" } else { "0" }.to_string(),
    ]);
    let made = lines
        .iter()
        .find_map(|l| l.strip_prefix("MADE "))
        .unwrap_or_else(|| panic!("threefive made nothing: {lines:#?}"));
    hex_bytes(made)
}
