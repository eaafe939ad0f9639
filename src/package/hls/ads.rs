//! Ad markers in media playlists: `EXT-X-DATERANGE` with SCTE-35 attributes (RFC 8216bis
//! §4.4.5.1, §4.4.5.1.4 "Mapping SCTE-35 into EXT-X-DATERANGE") and the
//! `EXT-X-CUE-OUT` / `EXT-X-CUE-OUT-CONT` / `EXT-X-CUE-IN` convention most ad servers and
//! players of the cable world read.

use bytes::Bytes;

use super::tags;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Which ad-marker dialects a media playlist carries. Plain data with [`Default`]
/// (both on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HlsAdMarkers {
    /// `EXT-X-DATERANGE` with `SCTE35-OUT` / `SCTE35-IN` (RFC 8216bis). Default: on.
    pub daterange: bool,
    /// `EXT-X-CUE-OUT:DURATION=` / `EXT-X-CUE-OUT-CONT:ElapsedTime=,Duration=` /
    /// `EXT-X-CUE-IN`. Default: on.
    pub cue_out: bool,
}

impl Default for HlsAdMarkers {
    fn default() -> Self {
        HlsAdMarkers {
            daterange: true,
            cue_out: true,
        }
    }
}

impl HlsAdMarkers {
    /// No ad markers at all.
    pub const NONE: HlsAdMarkers = HlsAdMarkers {
        daterange: false,
        cue_out: false,
    };
}

/// One `EXT-X-DATERANGE` tag (RFC 8216bis §4.4.5.1).
///
/// ```
/// use bytes::Bytes;
/// use strom::package::hls::DateRange;
/// use strom::time::Timestamp;
///
/// let mut d = DateRange::new("splice-7", 1_700_000_000_000);
/// d.planned_duration = Some(Timestamp::from_millis(30_000));
/// d.scte35_out = Some(Bytes::from_static(&[0xFC, 0x30]));
/// let mut line = String::new();
/// d.write(&mut line).unwrap();
/// assert_eq!(line, "#EXT-X-DATERANGE:ID=\"splice-7\",START-DATE=\"2023-11-14T22:13:20.000Z\",\
///                   PLANNED-DURATION=30.000,SCTE35-OUT=0xFC30\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DateRange {
    /// `ID`: unique in the playlist for one range; a later tag with the same id adds
    /// attributes (its `START-DATE` must be the same).
    pub id: String,
    /// `CLASS`, if any.
    pub class: Option<String>,
    /// `START-DATE`, Unix milliseconds.
    pub start_date: i64,
    /// `END-DATE`, Unix milliseconds.
    pub end_date: Option<i64>,
    /// `DURATION`: the actual duration, once known.
    pub duration: Option<Timestamp>,
    /// `PLANNED-DURATION`: the expected duration.
    pub planned_duration: Option<Timestamp>,
    /// `SCTE35-CMD`: a splice_info_section that is neither an out nor an in.
    pub scte35_cmd: Option<Bytes>,
    /// `SCTE35-OUT`: the splice_info_section that starts the range.
    pub scte35_out: Option<Bytes>,
    /// `SCTE35-IN`: the splice_info_section that ends it.
    pub scte35_in: Option<Bytes>,
}

impl DateRange {
    /// A range `id` starting at `start_date` (Unix ms), with nothing else.
    pub fn new(id: impl Into<String>, start_date: i64) -> Self {
        DateRange {
            id: id.into(),
            class: None,
            start_date,
            end_date: None,
            duration: None,
            planned_duration: None,
            scte35_cmd: None,
            scte35_out: None,
            scte35_in: None,
        }
    }

    /// Appends the tag line (with its line feed) to `out`.
    ///
    /// Errors: [`Error::usage`] for an id or class that is not a valid quoted string,
    /// a date outside years 0000..=9999, a negative duration or an end before the start.
    pub fn write(&self, out: &mut String) -> Result<()> {
        if self.id.is_empty() {
            return Err(Error::usage("EXT-X-DATERANGE needs an ID"));
        }
        if self.end_date.is_some_and(|e| e < self.start_date) {
            return Err(Error::usage("EXT-X-DATERANGE END-DATE before START-DATE"));
        }
        out.push_str("#EXT-X-DATERANGE:ID=");
        tags::quoted(out, &self.id)?;
        if let Some(class) = &self.class {
            out.push_str(",CLASS=");
            tags::quoted(out, class)?;
        }
        out.push_str(",START-DATE=\"");
        tags::iso8601_millis(out, self.start_date)?;
        out.push('"');
        if let Some(end) = self.end_date {
            out.push_str(",END-DATE=\"");
            tags::iso8601_millis(out, end)?;
            out.push('"');
        }
        if let Some(d) = self.duration {
            out.push_str(",DURATION=");
            tags::secs_3(out, tags::duration_millis(d)? as u64);
        }
        if let Some(d) = self.planned_duration {
            out.push_str(",PLANNED-DURATION=");
            tags::secs_3(out, tags::duration_millis(d)? as u64);
        }
        for (name, bytes) in [
            ("SCTE35-CMD", &self.scte35_cmd),
            ("SCTE35-OUT", &self.scte35_out),
            ("SCTE35-IN", &self.scte35_in),
        ] {
            if let Some(b) = bytes.as_ref().filter(|b| !b.is_empty()) {
                out.push(',');
                out.push_str(name);
                out.push_str("=0x");
                hex_upper(out, b);
            }
        }
        out.push('\n');
        Ok(())
    }
}

/// The `EXT-X-CUE-*` tag written before a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CueTag {
    /// `EXT-X-CUE-OUT:DURATION=d`: the break starts with this segment.
    Out {
        /// Planned break duration (`DURATION=0.000` when unknown).
        duration: Option<Timestamp>,
    },
    /// `EXT-X-CUE-OUT-CONT:ElapsedTime=e,Duration=d`: this segment is inside the break.
    Cont {
        /// Time from the break start to this segment's start.
        elapsed: Timestamp,
        /// Planned break duration.
        duration: Option<Timestamp>,
    },
    /// `EXT-X-CUE-IN`: the break ended; this segment is back to the programme.
    In,
}

impl CueTag {
    /// Appends the tag line (with its line feed) to `out`.
    ///
    /// Errors: [`Error::usage`] for a negative duration.
    pub fn write(&self, out: &mut String) -> Result<()> {
        let dur = |d: Option<Timestamp>| -> Result<u64> {
            d.map_or(Ok(0), |d| tags::duration_millis(d).map(|ms| ms as u64))
        };
        match *self {
            CueTag::Out { duration } => {
                out.push_str("#EXT-X-CUE-OUT:DURATION=");
                tags::secs_3(out, dur(duration)?);
            }
            CueTag::Cont { elapsed, duration } => {
                out.push_str("#EXT-X-CUE-OUT-CONT:ElapsedTime=");
                tags::secs_3(out, tags::duration_millis(elapsed)? as u64);
                out.push_str(",Duration=");
                tags::secs_3(out, dur(duration)?);
            }
            CueTag::In => out.push_str("#EXT-X-CUE-IN"),
        }
        out.push('\n');
        Ok(())
    }
}

/// Upper-case hexadecimal digits of `bytes`.
fn hex_upper(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daterange_attributes_in_order() {
        let mut d = DateRange::new("b1", 1_000);
        d.class = Some("com.example.ad".into());
        d.end_date = Some(31_000);
        d.duration = Some(Timestamp::from_millis(30_000));
        d.scte35_in = Some(Bytes::from_static(&[0x0a, 0xff]));
        let mut s = String::new();
        d.write(&mut s).unwrap();
        assert_eq!(
            s,
            "#EXT-X-DATERANGE:ID=\"b1\",CLASS=\"com.example.ad\",START-DATE=\"1970-01-01T00:00:01.000Z\",\
             END-DATE=\"1970-01-01T00:00:31.000Z\",DURATION=30.000,SCTE35-IN=0x0AFF\n"
        );
        d.end_date = Some(0);
        assert!(d.write(&mut String::new()).is_err());
        assert!(DateRange::new("a\"b", 0).write(&mut String::new()).is_err());
        assert!(DateRange::new("", 0).write(&mut String::new()).is_err());
    }

    #[test]
    fn cue_tags() {
        let w = |t: CueTag| {
            let mut s = String::new();
            t.write(&mut s).unwrap();
            s
        };
        let d = Some(Timestamp::from_millis(30_000));
        assert_eq!(
            w(CueTag::Out { duration: d }),
            "#EXT-X-CUE-OUT:DURATION=30.000\n"
        );
        assert_eq!(
            w(CueTag::Cont {
                elapsed: Timestamp::from_millis(4_004),
                duration: d
            }),
            "#EXT-X-CUE-OUT-CONT:ElapsedTime=4.004,Duration=30.000\n"
        );
        assert_eq!(w(CueTag::In), "#EXT-X-CUE-IN\n");
    }
}
