//! `onCuePoint` script data as SCTE 35 cues: [`CuePointReader`] (FLV v10.1 E.4.4,
//! SCTE 35 §9.6) and [`cue_point_body`], its writer.

use bytes::Bytes;
use tracing::debug;

use crate::error::{Error, Result};
use crate::ingest::amf0::{self, Value};
use crate::media::{CueKind, SpliceCue};
use crate::scte35::{self, SpliceInfo, PTS_MAX, PTS_MODULUS};
use crate::time::{Timescale, Timestamp};

/// A section's splice time more than this far (90 kHz ticks, 10 s) from its tag's
/// time is taken as being on another clock; the cue is placed at the tag time.
pub const MAX_SECTION_CLOCK_GAP_90K: i64 = 10 * 90_000;

/// Longest base64 text accepted for a section: a section is at most 4096 bytes
/// (SCTE 35 §9.6.1), 5464 characters in base64; hex takes 8194.
const MAX_SECTION_TEXT: usize = 8194;

/// `parameters` keys that may hold the section, in the order they are tried.
const SECTION_KEYS: [&str; 3] = ["cue", "scte35", "data"];

/// Counters of a [`CuePointReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CuePointStats {
    /// `onCuePoint` tags turned into cues.
    pub cues: u64,
    /// `onCuePoint` tags with a malformed marker (they stay data events).
    pub malformed: u64,
    /// Cues whose time (section splice time or marker `time`) was on another clock
    /// and that were placed at their tag's time.
    pub unrelated_clock: u64,
}

/// Turns `onCuePoint` script tag bodies (Adobe FLV v10.1 E.4.4, as broadcast
/// encoders and RTMP publishers send ad markers) into [`SpliceCue`]s; the
/// [`FlvDemuxer`] runs one on every `onCuePoint` it reads.
///
/// Two forms are understood:
///
/// 1. **A SCTE 35 section** (the broadcast-encoder form): an object with `name`
///    (`scte35`...), `time` (seconds), `type` (`event`) and a `parameters` object
///    holding a `splice_info_section` (SCTE 35 §9.6) in base64 (RFC 4648 §4; the URL
///    alphabet, missing padding and `0x`-prefixed hex are accepted too) under `cue`,
///    `scte35` or `data`. The section is parsed with
///    [`SpliceInfo::parse`](crate::scte35::SpliceInfo::parse) and
///    [`signal`](crate::scte35::SpliceInfo::signal); one without an ad signal
///    (`splice_null` heartbeats...) is not a cue.
/// 2. **A simple marker** without a section: `name` and `type` (`cue-out`, `cue-in`,
///    `event`...), `duration` (seconds) and an optional `id` / `event_id`, at the top
///    level or inside `parameters` (numbers or numeric strings). A `type` (else a
///    `name`) whose words include `out` or `start` is [`CueKind::Out`]; `in`, `end` or
///    `return` is [`CueKind::In`]; `cueout` / `cuein` count as `out` / `in`. The cue's
///    `raw` is a `splice_insert` built with
///    [`splice_insert_section`](crate::scte35::splice_insert_section) (program splice
///    at the cue time, `break_duration` with `auto_return` when a duration is given),
///    so every downstream dialect has bytes to carry.
///
/// **Time.** Cues are placed on the FLV timeline in 90 kHz ticks
/// ([`Timescale::MPEG`]): a tag at `t` ms is at `t * 90`. A section's splice time
/// (`pts_time + pts_adjustment`, 33 bits) is unwrapped next to the tag's time with
/// [`unwrap_pts`](crate::scte35::unwrap_pts). If it then lies more than
/// [`MAX_SECTION_CLOCK_GAP_90K`] (10 s) from the tag (or before 0 while the tag is
/// not), the section's clock is taken as unrelated to the RTMP/FLV clock (an encoder
/// that forwards the SCTE 35 of its MPEG-TS source keeps that source's PTS) and the
/// cue is placed at the tag time instead (counted in
/// [`CuePointStats::unrelated_clock`]). An immediate section is at the tag time. A
/// simple marker is at its `time` when present, else at the tag time; the same
/// 10 s rule applies to its `time`.
///
/// **Ids.** A simple marker without `id` / `event_id` gets one in arrival order,
/// from 1: an `Out` takes the next, the `In` that follows takes the `Out`'s.
///
/// Anything else stays [`Event::Data`](crate::media::Event::Data). A malformed
/// marker (bad AMF0 after the name, base64 or section, a time that is not a finite
/// number) is counted in [`CuePointStats::malformed`], logged at debug level and also
/// stays `Event::Data`: it is never fatal to the stream.
///
/// [`FlvDemuxer`]: super::FlvDemuxer
///
/// ```
/// use bytes::BytesMut;
/// use strom::ingest::amf0::{encode_all, Value};
/// use strom::ingest::flv::CuePointReader;
/// use strom::media::CueKind;
/// use strom::time::Timestamp;
///
/// let mut body = BytesMut::new();
/// encode_all(&[
///     Value::from("onCuePoint"),
///     Value::object([
///         ("name", Value::from("ad")),
///         ("type", Value::from("cue-out")),
///         ("duration", Value::Number(30.0)),
///         ("id", Value::Number(7.0)),
///     ]),
/// ], &mut body);
/// let mut reader = CuePointReader::new();
/// let cue = reader.read(&body, 12_000).unwrap();
/// assert_eq!((cue.id, cue.kind), (7, CueKind::Out));
/// assert_eq!((cue.at, cue.duration), (Timestamp::from_secs(12), Some(Timestamp::from_secs(30))));
/// assert!(!cue.raw.is_empty()); // a splice_insert section
/// ```
#[derive(Debug, Clone, Default)]
pub struct CuePointReader {
    stats: CuePointStats,
    /// The id the next simple marker without one gets.
    next_id: u32,
    /// The id of the last `Out` without an `In` yet (simple markers without ids).
    open_id: Option<u32>,
}

impl CuePointReader {
    /// A reader with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was read so far.
    pub fn stats(&self) -> CuePointStats {
        self.stats
    }

    /// The cue an `onCuePoint` script tag body carries (`body` starts with the AMF0
    /// string `onCuePoint`), placed with the tag's unwrapped time `tag_time_ms`
    /// (milliseconds on the FLV timeline). `None` when it carries none, or when it is
    /// malformed (counted and logged at debug level).
    pub fn read(&mut self, body: &[u8], tag_time_ms: i64) -> Option<SpliceCue> {
        match self.convert(body, tag_time_ms) {
            Ok(Some(cue)) => {
                self.stats.cues += 1;
                Some(cue)
            }
            Ok(None) => None,
            Err(e) => {
                self.stats.malformed += 1;
                debug!(tag_time_ms, error = %e, "flv onCuePoint: malformed marker kept as data");
                None
            }
        }
    }

    fn convert(&mut self, body: &[u8], tag_time_ms: i64) -> Result<Option<SpliceCue>> {
        let mut rest = body;
        match amf0::decode(&mut rest)? {
            Value::String(s) | Value::LongString(s) if s == "onCuePoint" => {}
            _ => return Ok(None),
        }
        if rest.is_empty() {
            return Ok(None);
        }
        let obj = amf0::decode(&mut rest)?;
        if obj.as_properties().is_none() {
            return Ok(None);
        }
        let params = obj.get("parameters");
        let tag_90k = tag_time_ms.saturating_mul(90);
        let section = params
            .into_iter()
            .flat_map(|p| SECTION_KEYS.iter().filter_map(move |k| p.get(k)))
            .find_map(Value::as_str);
        if let Some(text) = section {
            let bytes = decode_section_text(text)?;
            let info = SpliceInfo::parse(Bytes::from(bytes))?;
            let Some(signal) = info.signal() else {
                return Ok(None);
            };
            let at = match signal.pts {
                None => tag_90k,
                Some(pts) => self.place(scte35::unwrap_pts(pts, tag_90k), tag_90k),
            };
            return Ok(Some(signal.to_cue(mpeg(at), info.raw)));
        }
        self.simple(&obj, params, tag_90k)
    }

    /// The simple form: kind from `type` / `name`, `time`, `duration`, `id`.
    fn simple(
        &mut self,
        obj: &Value,
        params: Option<&Value>,
        tag_90k: i64,
    ) -> Result<Option<SpliceCue>> {
        let word = |k: &str| obj.get(k).and_then(Value::as_str).and_then(kind_of);
        let Some(kind) = word("type").or_else(|| word("name")) else {
            return Ok(None);
        };
        let field = |k: &str| obj.get(k).or_else(|| params.and_then(|p| p.get(k)));
        let at = match field("time") {
            Some(v) => {
                let t = secs_to_90k(v)?;
                self.place(t, tag_90k)
            }
            None => tag_90k,
        };
        let duration = match field("duration") {
            Some(v) if kind == CueKind::Out => Some(secs_to_90k(v)?).filter(|d| *d >= 0),
            _ => None,
        };
        if duration.is_some_and(|d| d > PTS_MAX as i64) {
            // break_duration is a 33-bit field (SCTE 35 §10.3.2).
            return Err(Error::malformed(
                "onCuePoint duration longer than 2^33 ticks",
            ));
        }
        let id = match field("id").or_else(|| field("event_id")) {
            Some(v) => Some(
                number(v)
                    .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                    .ok_or_else(|| Error::malformed("onCuePoint id is not a 32-bit number"))?
                    as u32,
            ),
            None => None,
        };
        let id = match (id, kind) {
            (Some(id), CueKind::Out) => {
                self.open_id = Some(id);
                id
            }
            (Some(id), _) => {
                self.open_id = None;
                id
            }
            (None, CueKind::In) => match self.open_id.take() {
                Some(id) => id,
                None => self.take_id(),
            },
            (None, _) => {
                let id = self.take_id();
                self.open_id = Some(id);
                id
            }
        };
        let pts = at.rem_euclid(PTS_MODULUS as i64) as u64;
        let raw = scte35::splice_insert_section(
            id,
            kind == CueKind::Out,
            Some(pts),
            duration.map(|d| d as u64),
            duration.is_some(),
        );
        Ok(Some(
            SpliceCue::new(id, kind, mpeg(at), duration.map(mpeg)).with_raw(raw),
        ))
    }

    /// `t` (90 kHz), or the tag time when `t` is on another clock.
    fn place(&mut self, t: i64, tag_90k: i64) -> i64 {
        if t.abs_diff(tag_90k) > MAX_SECTION_CLOCK_GAP_90K as u64 || (t < 0 && tag_90k >= 0) {
            self.stats.unrelated_clock += 1;
            debug!(
                cue_90k = t,
                tag_90k, "flv onCuePoint: cue time on another clock; tag time used"
            );
            tag_90k
        } else {
            t
        }
    }

    fn take_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }
}

/// The `onCuePoint` script tag body that carries `cue` (the broadcast-encoder form:
/// `name` `scte35`, `time` in seconds, `type` `event`, `parameters.cue` the section
/// in base64), as the [`FlvMuxer`](super::FlvMuxer) writes cues. The section is the
/// cue's `raw`; a cue without one gets a `splice_insert` built from its id, kind, time
/// and duration. `None` for a cue without `raw` whose kind is neither `Out` nor `In`
/// (it has no section to carry).
///
/// Written at the cue's time (in ms), the body reads back with [`CuePointReader`] as
/// the same cue.
pub fn cue_point_body(cue: &SpliceCue) -> Option<Bytes> {
    let at = cue.at.ticks_in(Timescale::MPEG);
    let raw = if cue.raw.is_empty() {
        if cue.kind == CueKind::Other {
            return None;
        }
        let duration = cue
            .duration
            .map(|d| d.ticks_in(Timescale::MPEG))
            .filter(|d| *d >= 0)
            .map(|d| d as u64);
        scte35::splice_insert_section(
            cue.id,
            cue.kind == CueKind::Out,
            (!cue.immediate).then(|| at.rem_euclid(PTS_MODULUS as i64) as u64),
            duration,
            duration.is_some(),
        )
    } else {
        cue.raw.clone()
    };
    let mut out = bytes::BytesMut::new();
    amf0::encode_all(
        &[
            Value::from("onCuePoint"),
            Value::object([
                ("name", Value::from("scte35")),
                // Informational: readers place the cue by the section (f64 seconds
                // appear only in output text and wire fields that demand them).
                ("time", Value::Number(at as f64 / 90_000.0)),
                ("type", Value::from("event")),
                (
                    "parameters",
                    Value::object([("cue", Value::from(crate::crypto::base64::standard(&raw)))]),
                ),
            ]),
        ],
        &mut out,
    );
    Some(out.freeze())
}

fn mpeg(t: i64) -> Timestamp {
    Timestamp::new(t, Timescale::MPEG)
}

/// Out / In from a marker word: `cue-out`, `CUE_OUT`, `cueout`, `ad start`, `in`,
/// `end`, `return`...
fn kind_of(s: &str) -> Option<CueKind> {
    let lower = s.to_ascii_lowercase();
    let mut out = false;
    let mut back = false;
    for w in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
        let w = w.strip_prefix("cue").unwrap_or(w);
        match w {
            "out" | "start" => out = true,
            "in" | "end" | "return" => back = true,
            _ => {}
        }
    }
    match (out, back) {
        (true, false) => Some(CueKind::Out),
        (false, true) => Some(CueKind::In),
        _ => None,
    }
}

/// A number, or a string holding one.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        _ => v.as_str()?.trim().parse().ok(),
    }
}

/// Seconds on the wire (an AMF0 double, or a numeric string) to 90 kHz ticks,
/// rounded to the nearest tick.
fn secs_to_90k(v: &Value) -> Result<i64> {
    let s = number(v).ok_or_else(|| Error::malformed("onCuePoint time is not a number"))?;
    let t = (s * 90_000.0).round();
    // Beyond 2^53 ticks (3 000 years) a double no longer holds whole ticks.
    if !t.is_finite() || t.abs() > 9_007_199_254_740_992.0 {
        return Err(Error::malformed("onCuePoint time out of range"));
    }
    Ok(t as i64)
}

/// The section bytes of a base64 (standard or URL alphabet, padding optional,
/// whitespace ignored) or `0x`-prefixed hex text.
fn decode_section_text(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    if text.len() > MAX_SECTION_TEXT {
        return Err(Error::limit(
            "onCuePoint section text longer than a section",
        ));
    }
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return decode_hex(hex).ok_or_else(|| Error::malformed("onCuePoint section: bad hex"));
    }
    decode_base64(text).ok_or_else(|| Error::malformed("onCuePoint section: bad base64"))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            let hi = char::from(p[0]).to_digit(16)?;
            let lo = char::from(p[1]).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// RFC 4648 §4 (and §5) decoding; `None` for a character outside the alphabets, data
/// after padding, or a length no encoder produces.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut n = 0u32;
    let mut pad = 0usize;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        0 => {}
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => return None,
    }
    if pad > 0 && (n == 0 || n as usize + pad != 4) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::base64;
    use bytes::BytesMut;

    fn body(obj: Value) -> Vec<u8> {
        let mut b = BytesMut::new();
        amf0::encode_all(&[Value::from("onCuePoint"), obj], &mut b);
        b.to_vec()
    }

    fn encoder_form(key: &str, section: &str, time: f64) -> Vec<u8> {
        body(Value::object([
            ("name", Value::from("scte35")),
            ("time", Value::Number(time)),
            ("type", Value::from("event")),
            ("parameters", Value::object([(key, Value::from(section))])),
        ]))
    }

    #[test]
    fn base64_decoding() {
        for clear in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let std = base64::standard(clear.as_bytes());
            assert_eq!(decode_base64(&std).unwrap(), clear.as_bytes());
            let url = base64::url(clear.as_bytes());
            assert_eq!(decode_base64(&url).unwrap(), clear.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_base64(&base64::standard(&all)).unwrap(), all);
        assert_eq!(decode_base64("Zm9v\nYmFy").unwrap(), b"foobar");
        for bad in [
            "Z", "Zm9vY", "Zm=9", "Zm9v!", "Zg===", "=Zg", "Zm9v=", "Zm8==",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
        assert_eq!(decode_hex("fC0a").unwrap(), [0xfc, 0x0a]);
        assert_eq!(decode_hex("fC0"), None);
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn section_form_with_each_key() {
        let s = scte35::splice_insert_section(1001, true, Some(900_000), Some(2_700_000), true);
        for key in SECTION_KEYS {
            let mut r = CuePointReader::new();
            let cue = r
                .read(&encoder_form(key, &base64::standard(&s), 10.0), 10_000)
                .unwrap();
            assert_eq!((cue.id, cue.kind), (1001, CueKind::Out));
            assert_eq!(cue.at, Timestamp::from_secs(10));
            assert_eq!(cue.at.scale(), Timescale::MPEG);
            assert_eq!(cue.duration, Some(Timestamp::from_secs(30)));
            assert_eq!(cue.raw, s);
            assert!(!cue.immediate);
            assert_eq!(r.stats().cues, 1);
        }
        // Hex is accepted too.
        let hex: String = s.iter().map(|b| format!("{b:02X}")).collect();
        let mut r = CuePointReader::new();
        assert!(r
            .read(&encoder_form("cue", &format!("0x{hex}"), 10.0), 10_000)
            .is_some());
    }

    #[test]
    fn section_times_immediate_wrap_and_other_clock() {
        let mut r = CuePointReader::new();
        // Splice 4 s after the tag: kept.
        let s = scte35::splice_insert_section(1, true, Some(14 * 90_000), None, false);
        let cue = r
            .read(&encoder_form("cue", &base64::standard(&s), 0.0), 10_000)
            .unwrap();
        assert_eq!(cue.at.ticks(), 14 * 90_000);
        // Immediate: the tag time, flagged.
        let s = scte35::splice_insert_section(2, false, None, None, false);
        let cue = r
            .read(&encoder_form("cue", &base64::standard(&s), 0.0), 10_000)
            .unwrap();
        assert_eq!(
            (cue.at.ticks(), cue.immediate, cue.kind),
            (900_000, true, CueKind::In)
        );
        // Just past a 33-bit wrap of the tag clock: unwrapped to after it.
        let tag_ms = (PTS_MODULUS as i64 - 90_000) / 90; // 1 s before the wrap
        let s = scte35::splice_insert_section(3, true, Some(90_000), None, false);
        let cue = r
            .read(&encoder_form("cue", &base64::standard(&s), 0.0), tag_ms)
            .unwrap();
        assert_eq!(cue.at.ticks(), PTS_MODULUS as i64 + 90_000);
        // A section on the source's clock (hours away): the tag time.
        let s = scte35::splice_insert_section(4, true, Some(5 * 3600 * 90_000), None, false);
        let cue = r
            .read(&encoder_form("cue", &base64::standard(&s), 0.0), 10_000)
            .unwrap();
        assert_eq!(cue.at, Timestamp::from_secs(10));
        // 10 s away is still the same clock; 10 s and a tick is not.
        let s = scte35::splice_insert_section(5, true, Some(20 * 90_000), None, false);
        let cue = r
            .read(&encoder_form("cue", &base64::standard(&s), 0.0), 10_000)
            .unwrap();
        assert_eq!(cue.at, Timestamp::from_secs(20));
        let s = scte35::splice_insert_section(6, true, Some(20 * 90_000 + 1), None, false);
        let cue = r
            .read(&encoder_form("cue", &base64::standard(&s), 0.0), 10_000)
            .unwrap();
        assert_eq!(cue.at, Timestamp::from_secs(10));
        assert_eq!(r.stats().unrelated_clock, 2);
        assert_eq!(r.stats().cues, 6);
    }

    #[test]
    fn no_signal_and_malformed_stay_data() {
        let mut r = CuePointReader::new();
        // splice_null heartbeat (threefive's mk_splice_null()).
        assert!(r
            .read(
                &encoder_form("cue", "/DARAAAAAAAAAP/wAAAAAHpPv/8=", 0.04),
                40
            )
            .is_none());
        assert_eq!(r.stats(), CuePointStats::default());
        // Bad base64, bad CRC, not a section.
        let mut s = scte35::splice_insert_section(1, true, Some(0), None, false).to_vec();
        let last = s.len() - 1;
        s[last] ^= 1;
        for bad in ["@@@", &base64::standard(&s), "AAAA"] {
            assert!(r.read(&encoder_form("cue", bad, 0.0), 0).is_none());
        }
        assert_eq!(r.stats().malformed, 3);
        // Truncated AMF0 after the name.
        let b = encoder_form("cue", "AAAA", 0.0);
        assert!(r.read(&b[..b.len() - 5], 0).is_none());
        assert_eq!(r.stats().malformed, 4);
        // Other handlers, no object, no marker word: not cues, not malformed.
        let mut b = BytesMut::new();
        amf0::encode_all(
            &[
                Value::from("onTextData"),
                Value::object([("type", Value::from("out"))]),
            ],
            &mut b,
        );
        assert!(r.read(&b, 0).is_none());
        assert!(r.read(&body(Value::Null), 0).is_none());
        assert!(r
            .read(
                &body(Value::object([
                    ("name", Value::from("chapter")),
                    ("type", Value::from("navigation"))
                ])),
                0
            )
            .is_none());
        assert_eq!(r.stats().malformed, 4);
        assert_eq!(r.stats().cues, 0);
    }

    #[test]
    fn written_cues_read_back_the_same() {
        let mut r = CuePointReader::new();
        let s = scte35::splice_insert_section(1001, true, Some(180_001), Some(2_700_000), true);
        let section = r
            .read(&encoder_form("scte35", &base64::standard(&s), 2.0), 2_000)
            .unwrap();
        let immediate = r
            .read(
                &encoder_form(
                    "cue",
                    &base64::standard(&scte35::splice_insert_section(3, false, None, None, false)),
                    0.0,
                ),
                5_000,
            )
            .unwrap();
        let simple = r
            .read(
                &body(Value::object([
                    ("type", Value::from("cue-out")),
                    ("duration", Value::Number(4.0)),
                ])),
                7_000,
            )
            .unwrap();
        let bare = SpliceCue::new(9, CueKind::In, Timestamp::from_millis(9_000), None);
        for cue in [section, immediate, simple, bare] {
            let b = cue_point_body(&cue).unwrap();
            let back = CuePointReader::new().read(&b, cue.at.as_millis()).unwrap();
            if cue.raw.is_empty() {
                assert_eq!((back.id, back.kind, back.at), (cue.id, cue.kind, cue.at));
            } else {
                assert_eq!(back, cue);
            }
        }
        let other = SpliceCue::new(9, CueKind::Other, Timestamp::from_millis(0), None);
        assert_eq!(cue_point_body(&other), None);
    }

    #[test]
    fn simple_form() {
        let mut r = CuePointReader::new();
        let out = body(Value::object([
            ("name", Value::from("ad")),
            ("type", Value::from("cue-out")),
            ("duration", Value::Number(15.5)),
            ("time", Value::Number(12.25)),
        ]));
        let cue = r.read(&out, 11_000).unwrap();
        assert_eq!((cue.id, cue.kind), (1, CueKind::Out));
        assert_eq!(cue.at, Timestamp::from_millis(12_250));
        assert_eq!(cue.duration, Some(Timestamp::from_millis(15_500)));
        let sig = SpliceInfo::parse(cue.raw.clone())
            .unwrap()
            .signal()
            .unwrap();
        assert_eq!((sig.id, sig.kind), (1, CueKind::Out));
        assert_eq!(
            (sig.pts, sig.duration),
            (Some(12_250 * 90), Some(15_500 * 90))
        );
        // The In that follows: same id, tag time.
        let back = body(Value::object([("name", Value::from("CUE_IN"))]));
        let cue = r.read(&back, 27_750).unwrap();
        assert_eq!((cue.id, cue.kind, cue.duration), (1, CueKind::In, None));
        assert_eq!(cue.at, Timestamp::from_millis(27_750));
        let sig = SpliceInfo::parse(cue.raw.clone())
            .unwrap()
            .signal()
            .unwrap();
        assert_eq!(
            (sig.id, sig.kind, sig.pts),
            (1, CueKind::In, Some(27_750 * 90))
        );
        // Ids and durations from parameters, as strings; name words.
        let out = body(Value::object([
            ("name", Value::from("ad start")),
            ("type", Value::from("event")),
            (
                "parameters",
                Value::object([
                    ("event_id", Value::from("42")),
                    ("duration", Value::from("8")),
                ]),
            ),
        ]));
        let cue = r.read(&out, 1_000).unwrap();
        assert_eq!((cue.id, cue.kind), (42, CueKind::Out));
        assert_eq!(cue.duration, Some(Timestamp::from_secs(8)));
        for (word, kind) in [
            ("return", CueKind::In),
            ("cueout", CueKind::Out),
            ("END", CueKind::In),
        ] {
            let cue = r
                .read(&body(Value::object([("type", Value::from(word))])), 0)
                .unwrap();
            assert_eq!(cue.kind, kind, "{word}");
        }
        // A time on another clock: the tag time.
        let far = body(Value::object([
            ("type", Value::from("out")),
            ("time", Value::Number(100.0)),
        ]));
        assert_eq!(r.read(&far, 5_000).unwrap().at, Timestamp::from_secs(5));
        let before = body(Value::object([
            ("type", Value::from("out")),
            ("time", Value::Number(-0.5)),
        ]));
        assert_eq!(r.read(&before, 1_000).unwrap().at, Timestamp::from_secs(1));
        assert_eq!(r.stats().unrelated_clock, 2);
        // Bad id or time: malformed.
        for obj in [
            Value::object([("type", Value::from("out")), ("id", Value::Number(-1.0))]),
            Value::object([("type", Value::from("out")), ("id", Value::from("x"))]),
            Value::object([
                ("type", Value::from("out")),
                ("time", Value::Number(f64::NAN)),
            ]),
            Value::object([("type", Value::from("out")), ("time", Value::Number(1e300))]),
        ] {
            assert!(r.read(&body(obj), 0).is_none());
        }
        assert_eq!(r.stats().malformed, 4);
    }
}
