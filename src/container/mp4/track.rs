//! `moov` parsing (ISO/IEC 14496-12 §8.2–§8.7): tracks, codec configuration and sample
//! tables. Container boxes are walked here; leaf boxes are decoded with `mp4-atom`,
//! after their entry counts have been checked against limits and box sizes.

use bytes::Bytes;
use mp4_atom::{
    Co64, Ctts, Decode, Elst, Hdlr, Mdhd, Mvhd, Stco, Stsc, Stss, Stsz, StszSamples, Stts, Tkhd,
};

use super::header::{children, Child};
use super::sample_table::{
    ChunkRun, OffsetRun, SampleTable, Sizes, TableLimits, TableParts, TimeRun,
};
use super::stsd::{self, Codec};
use crate::error::{Error, ErrorKind, Result};
use crate::media::TrackInfo;
use crate::time::{rescale, Rounding, Timescale};

/// Most `trak` boxes one `moov` may hold.
const MAX_TRAKS: usize = 1024;

/// A parsed, supported track.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub info: TrackInfo,
    pub table: SampleTable,
    /// NAL length field size for video tracks.
    pub nal_length_size: Option<u8>,
    /// Ticks added to every raw decode and presentation time (edit list, §8.6.6).
    pub shift: i64,
}

/// What the `moov` says.
#[derive(Debug, Clone)]
pub(crate) struct Movie {
    pub tracks: Vec<Track>,
}

/// Limits used while parsing the `moov`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoovLimits {
    pub max_samples: u32,
    pub max_sample_size: u32,
    pub file_size: u64,
}

fn atom_err(what: &'static str) -> impl Fn(mp4_atom::Error) -> Error {
    move |e| {
        let kind = match e {
            mp4_atom::Error::UnknownVersion(_)
            | mp4_atom::Error::Unsupported(_)
            | mp4_atom::Error::UnknownQuicktimeVersion(_) => ErrorKind::Unsupported,
            _ => ErrorKind::Malformed,
        };
        Error::new(kind, format!("{what}: {e}"))
    }
}

fn decode<T: Decode>(child: &Child, what: &'static str) -> Result<T> {
    T::decode(&mut &child.full[..])
        .map_err(atom_err(what))
        .map_err(|e| e.at_offset(child.offset))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Checks a full box's `entry_count` (at `count_at` in the body) against the limit and
/// against the bytes present, before `mp4-atom` reads the entries.
fn check_count(
    child: &Child,
    count_at: usize,
    entry_len: u64,
    max: u32,
    what: &'static str,
) -> Result<u32> {
    let count = be32(&child.body, count_at)
        .ok_or_else(|| Error::malformed("table box too short").context(what))?;
    if count > max {
        return Err(Error::limit("table entry count exceeds the per-track limit").context(what));
    }
    let need = (count_at as u64 + 4).saturating_add(u64::from(count).saturating_mul(entry_len));
    if need > child.body.len() as u64 {
        return Err(Error::malformed("table entry count exceeds its box")
            .context(what)
            .at_offset(child.offset));
    }
    Ok(count)
}

/// Parses the body of a `moov` box that starts at absolute file offset `base`.
pub(crate) fn parse_moov(body: Bytes, base: u64, limits: MoovLimits) -> Result<Movie> {
    parse_moov_with(body, base, limits, false)
}

/// Parses the `moov` of a fragmented file (an init segment): like [`parse_moov`], but
/// tracks whose samples all live in `moof` boxes (empty sample tables) are accepted.
pub(crate) fn parse_fragmented_moov(body: Bytes, base: u64, limits: MoovLimits) -> Result<Movie> {
    parse_moov_with(body, base, limits, true)
}

fn parse_moov_with(
    body: Bytes,
    base: u64,
    limits: MoovLimits,
    allow_fragmented: bool,
) -> Result<Movie> {
    let mut mvhd = None;
    let mut traks = Vec::new();
    let mut fragmented = false;
    for child in children(body, base) {
        let child = child?;
        match &child.header.kind {
            b"mvhd" => mvhd = Some(decode::<Mvhd>(&child, "mvhd")?),
            b"trak" => {
                if traks.len() >= MAX_TRAKS {
                    return Err(Error::limit("too many tracks"));
                }
                traks.push(child);
            }
            b"mvex" => fragmented = true,
            _ => {}
        }
    }
    let mvhd = mvhd.ok_or_else(|| Error::malformed("moov without mvhd"))?;
    let movie_scale = Timescale::new(mvhd.timescale);
    let mut tracks: Vec<Track> = Vec::new();
    let mut unusable = None;
    for (i, trak) in traks.iter().enumerate() {
        let parsed = parse_trak(trak, movie_scale, limits)
            .map_err(|e| e.context(format!("trak {}", i + 1)))?;
        match parsed {
            Parsed::Track(t) => {
                if tracks.iter().any(|o| o.info.id == t.info.id) {
                    return Err(Error::malformed("duplicate track_ID")
                        .context(format!("track {}", t.info.id)));
                }
                tracks.push(*t);
            }
            Parsed::Unsupported => {}
            Parsed::Unusable(e) => {
                unusable.get_or_insert(e);
            }
        }
    }
    if tracks.is_empty() {
        // Report why a handled codec could not be used, if that is what happened.
        return Err(unusable.unwrap_or_else(|| {
            Error::unsupported("no supported track (H.264, H.265, AAC, Opus) in moov")
        }));
    }
    if fragmented && !allow_fragmented && tracks.iter().all(|t| t.table.len() == 0) {
        return Err(Error::unsupported(
            "fragmented MP4: samples are in moof boxes, not in moov",
        ));
    }
    Ok(Movie { tracks })
}

#[derive(Default)]
struct TrakBoxes {
    tkhd: Option<Child>,
    elst: Option<Child>,
    mdhd: Option<Child>,
    hdlr: Option<Child>,
    udta_name: Option<Bytes>,
    stbl: Option<Child>,
}

fn collect(trak: &Child) -> Result<TrakBoxes> {
    let mut b = TrakBoxes::default();
    for c in trak.children() {
        let c = c?;
        match &c.header.kind {
            b"tkhd" => b.tkhd = Some(c),
            b"edts" => {
                for e in c.children() {
                    let e = e?;
                    if &e.header.kind == b"elst" {
                        b.elst = Some(e);
                    }
                }
            }
            b"udta" => {
                // udta is free-form user data: a broken one costs only the name.
                for u in c.children().map_while(Result::ok) {
                    if &u.header.kind == b"name" {
                        b.udta_name = Some(u.body);
                    }
                }
            }
            b"mdia" => {
                for m in c.children() {
                    let m = m?;
                    match &m.header.kind {
                        b"mdhd" => b.mdhd = Some(m),
                        b"hdlr" => b.hdlr = Some(m),
                        b"minf" => {
                            for n in m.children() {
                                let n = n?;
                                if &n.header.kind == b"stbl" {
                                    b.stbl = Some(n);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(b)
}

fn text(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b);
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// What became of one `trak`.
enum Parsed {
    /// A track to read.
    Track(Box<Track>),
    /// A codec or layout this reader does not handle (logged at debug level).
    Unsupported,
    /// A handled codec whose sample description is missing or broken: skipped (logged),
    /// and reported if no track is left.
    Unusable(Error),
}

/// Parses one `trak`. Sample table errors of a supported track are errors; codecs the
/// reader does not handle and unusable sample descriptions skip the track.
fn parse_trak(trak: &Child, movie_scale: Option<Timescale>, limits: MoovLimits) -> Result<Parsed> {
    let b = collect(trak)?;
    let tkhd: Tkhd = decode(
        b.tkhd
            .as_ref()
            .ok_or_else(|| Error::malformed("trak without tkhd"))?,
        "tkhd",
    )?;
    let id = tkhd.track_id;
    if id == 0 {
        return Err(Error::malformed("track_ID 0"));
    }
    let inner = || -> Result<Parsed> {
        let mdhd: Mdhd = decode(
            b.mdhd
                .as_ref()
                .ok_or_else(|| Error::malformed("trak without mdhd"))?,
            "mdhd",
        )?;
        let hdlr = b
            .hdlr
            .as_ref()
            .ok_or_else(|| Error::malformed("trak without hdlr"))?;
        let (handler, hdlr_name) = match decode::<Hdlr>(hdlr, "hdlr") {
            Ok(h) => (h.handler.to_string(), text(h.name.as_bytes())),
            // Tolerate odd names (QuickTime Pascal strings): the type is at body[8..12].
            Err(_) => (
                hdlr.body
                    .get(8..12)
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .unwrap_or_default(),
                None,
            ),
        };
        let stbl = b
            .stbl
            .as_ref()
            .ok_or_else(|| Error::malformed("trak without stbl"))?;
        let mut boxes: [Option<Child>; 8] = Default::default();
        const NAMES: [&[u8; 4]; 8] = [
            b"stsd", b"stts", b"ctts", b"stss", b"stsc", b"stsz", b"stco", b"co64",
        ];
        for c in stbl.children() {
            let c = c?;
            if let Some(i) = NAMES.iter().position(|n| **n == c.header.kind) {
                boxes[i] = Some(c);
            } else if &c.header.kind == b"stz2" {
                tracing::debug!(
                    track = id,
                    "compact sample sizes (stz2) not supported; track skipped"
                );
                return Ok(Parsed::Unsupported);
            }
        }
        let [stsd, stts, ctts, stss, stsc, stsz, stco, co64] = boxes;
        let stsd = stsd.ok_or_else(|| Error::malformed("stbl without stsd"))?;
        let Codec {
            config,
            nal_length_size,
            bitrate,
        } = match stsd::codec(&stsd) {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::debug!(track = id, handler = %handler, "unsupported codec; track skipped");
                return Ok(Parsed::Unsupported);
            }
            Err(e) => {
                tracing::debug!(track = id, error = %e, "unusable sample description; track skipped");
                return Ok(Parsed::Unusable(
                    e.context("stsd").context(format!("track {id}")),
                ));
            }
        };
        let timescale = Timescale::new(mdhd.timescale)
            .ok_or_else(|| Error::malformed("zero timescale in mdhd"))?;

        // Sample tables, counts checked before decoding.
        let max = limits.max_samples;
        let stsc_child = stsc.ok_or_else(|| Error::malformed("stbl without stsc"))?;
        check_count(&stsc_child, 4, 12, max, "stsc")?;
        let stsc: Stsc = decode(&stsc_child, "stsc")?;
        if stsd::entry_count(&stsd) > 1
            && stsc.entries.iter().any(|e| e.sample_description_index != 1)
        {
            tracing::debug!(
                track = id,
                "several sample descriptions in use; track skipped"
            );
            return Ok(Parsed::Unsupported);
        }
        let stts_child = stts.ok_or_else(|| Error::malformed("stbl without stts"))?;
        check_count(&stts_child, 4, 8, max, "stts")?;
        let stts: Stts = decode(&stts_child, "stts")?;
        let stsz_child = stsz.ok_or_else(|| Error::malformed("stbl without stsz"))?;
        let constant =
            be32(&stsz_child.body, 4).ok_or_else(|| Error::malformed("stsz too short"))?;
        check_count(
            &stsz_child,
            8,
            if constant == 0 { 4 } else { 0 },
            max,
            "stsz",
        )?;
        let stsz: Stsz = decode(&stsz_child, "stsz")?;
        let (sizes, count) = match stsz.samples {
            StszSamples::Identical { count, size } => (Sizes::Constant(size), count),
            StszSamples::Different { sizes } => {
                let n = sizes.len() as u32;
                (Sizes::Table(sizes), n)
            }
        };
        let chunk_offsets: Vec<u64> = match (stco, co64) {
            (_, Some(c)) => {
                check_count(&c, 4, 8, max, "co64")?;
                decode::<Co64>(&c, "co64")?.entries
            }
            (Some(c), None) => {
                check_count(&c, 4, 4, max, "stco")?;
                decode::<Stco>(&c, "stco")?
                    .entries
                    .into_iter()
                    .map(u64::from)
                    .collect()
            }
            (None, None) => return Err(Error::malformed("stbl without stco or co64")),
        };
        let ctts = match ctts {
            Some(c) => {
                check_count(&c, 4, 8, max, "ctts")?;
                decode::<Ctts>(&c, "ctts")?
                    .entries
                    .into_iter()
                    // Version 0 offsets are unsigned on paper; read them as signed
                    // 32-bit (two's complement), as FFmpeg does. Version 1 is signed.
                    .map(|e| OffsetRun {
                        count: e.sample_count,
                        offset: e.sample_offset as u32 as i32,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let sync = match stss {
            Some(c) => {
                check_count(&c, 4, 4, max, "stss")?;
                Some(decode::<Stss>(&c, "stss")?.entries)
            }
            None => None,
        };
        let parts = TableParts {
            stts: stts
                .entries
                .iter()
                .map(|e| TimeRun {
                    count: e.sample_count,
                    delta: e.sample_delta,
                })
                .collect(),
            ctts,
            stsc: stsc
                .entries
                .iter()
                .map(|e| ChunkRun {
                    first_chunk: e.first_chunk.wrapping_sub(1),
                    samples_per_chunk: e.samples_per_chunk,
                })
                .collect(),
            chunk_offsets,
            sizes,
            sample_count: count,
            sync,
        };
        let table = SampleTable::new(
            parts,
            TableLimits {
                max_samples: limits.max_samples,
                max_sample_size: limits.max_sample_size,
                file_size: limits.file_size,
            },
        )?;

        let shift = match &b.elst {
            Some(c) => match decode::<Elst>(c, "elst") {
                Ok(elst) => edit_shift(&elst, movie_scale, timescale),
                Err(e) => {
                    tracing::debug!(track = id, error = %e, "unreadable edit list ignored");
                    0
                }
            },
            None => 0,
        };

        let language = Some(mdhd.language)
            .filter(|l| l.len() == 3 && l.bytes().all(|c| c.is_ascii_lowercase()) && l != "und");
        let name = b.udta_name.as_deref().and_then(text).or(hdlr_name);
        let mut info = TrackInfo::new(id, timescale, config);
        info.language = language;
        info.name = name;
        info.bitrate = bitrate;
        tracing::debug!(track = id, handler = %handler, codecs = %info.config.codecs_string(), samples = table.len(), shift, "mp4 track");
        Ok(Parsed::Track(Box::new(Track {
            info,
            table,
            nal_length_size,
            shift,
        })))
    };
    inner().map_err(|e| e.context(format!("track {id}")))
}

/// The presentation shift of an edit list (ISO/IEC 14496-12 §8.6.6), as FFmpeg applies it:
/// leading empty edits delay the media by their duration (movie timescale), and the first
/// media edit's `media_time` is subtracted so that it presents at that delay (0 without
/// empty edits). Later edits, rates and dwell are not applied.
fn edit_shift(elst: &Elst, movie_scale: Option<Timescale>, media_scale: Timescale) -> i64 {
    let mut empty: i64 = 0;
    for e in &elst.entries {
        match e.media_time {
            None => {
                empty = empty.saturating_add(i64::try_from(e.segment_duration).unwrap_or(i64::MAX))
            }
            Some(m) => {
                let delay =
                    movie_scale.map_or(0, |s| rescale(empty, s, media_scale, Rounding::Nearest));
                return delay.saturating_sub(i64::try_from(m).unwrap_or(i64::MAX));
            }
        }
    }
    0
}
