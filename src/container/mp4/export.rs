//! Export of stored CMAF fragments as one progressive MP4 (ISO/IEC 14496-12 §8): the
//! `moov` with full sample tables first, then one `mdat` with the samples interleaved,
//! without re-encoding and without copying the payloads.

use bytes::{Bytes, BytesMut};

use super::{children, Child};
use crate::container::fmp4::{Fmp4Reader, Fmp4ReaderOptions, MAX_SAMPLES_PER_FRAGMENT};
use crate::error::{Error, Result};
use crate::media::{MediaKind, TrackId, TrackInfo};
use crate::time::{rescale, Rounding, Timescale, Timestamp};

mod layout;

/// Most tracks one [`Mp4Export`] holds; one more is [`crate::ErrorKind::Limit`].
pub const MAX_EXPORT_TRACKS: usize = 64;

/// `ftyp` major brand of an exported file (ISO/IEC 14496-12 §4.3, §E.2).
pub const EXPORT_MAJOR_BRAND: [u8; 4] = *b"isom";

/// `ftyp` compatible brands of an exported file: the ISO base media file format
/// (`isom`, and `iso6` for version 1 `ctts`/`elst`/`co64` and 64-bit box sizes) and
/// MP4 version 1 (`mp41`, ISO/IEC 14496-14).
pub const EXPORT_COMPATIBLE_BRANDS: [[u8; 4]; 3] = [*b"isom", *b"iso6", *b"mp41"];

/// Length of the fields `tkhd` ends with and the export copies from the init segment:
/// `layer`, `alternate_group`, `volume`, reserved, `matrix`, `width`, `height` (§8.3.2).
const TKHD_TAIL: usize = 52;

/// What happens to the sample payloads an [`Mp4Export`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PayloadMode {
    /// The fragments handed to [`Mp4Export::push_fragment`] are kept (a reference, no
    /// copy) and the output's payload parts slice them ([`ExportPart::Data`]). Memory
    /// holds every fragment until the output is written. The default.
    #[default]
    Keep,
    /// Only the sample tables are kept; the output names the byte ranges of the
    /// fragments its payload parts are ([`ExportPart::Fragment`]), for the host to read
    /// again from where it stored them (a second pass). Memory holds the tables only.
    Refer,
}

/// Options of an [`Mp4Export`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mp4ExportOptions {
    /// Most samples over all tracks; one more is [`crate::ErrorKind::Limit`]. The tables
    /// take about 4 bytes of memory per sample (plus runs of equal durations and
    /// composition offsets), and as much again in the `moov`. Default 10 000 000
    /// (a day of 30 fps video and 48 kHz AAC is about 6.7 million).
    pub max_samples: u32,
    /// Target duration of one chunk of one track in the `mdat`: a track's chunk starts
    /// with the first sample at or after this long past the previous chunk's first
    /// sample, and chunks of all tracks are laid out in decode time order, so a
    /// progressive player reads the file front to back. Must be positive. Default 1 s.
    pub chunk_duration: Timestamp,
    /// How far a fragment may start from the end of the previous sample of its track
    /// (its `tfdt` against the previous fragment's last decode time plus duration): a
    /// difference this small is given to (gap) or taken from (overlap) the previous
    /// sample's duration, so every sample keeps the decode time its fragment states; a
    /// larger one is [`crate::ErrorKind::Malformed`]. Stores fed from millisecond clocks
    /// (RTMP) leave one-tick differences. Must not be negative. Default 10 ms.
    pub timeline_slack: Timestamp,
    /// Whether payloads are kept or referred to. Default [`PayloadMode::Keep`].
    pub payloads: PayloadMode,
}

impl Default for Mp4ExportOptions {
    fn default() -> Self {
        Mp4ExportOptions {
            max_samples: 10_000_000,
            chunk_duration: Timestamp::from_secs(1),
            timeline_slack: Timestamp::from_millis(10),
            payloads: PayloadMode::Keep,
        }
    }
}

/// One piece of an exported file, in file order ([`ExportedMp4::parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportPart {
    /// Bytes to write as they are: the header (`ftyp`, `moov`, `mdat` header), or
    /// sample data slicing a fragment kept with [`PayloadMode::Keep`].
    Data(Bytes),
    /// Sample data not kept ([`PayloadMode::Refer`]): `len` bytes at `offset` of the
    /// fragment the `fragment`-th (from 0) [`Mp4Export::push_fragment`] call handed
    /// for track `track` (the index [`Mp4Export::add_track`] returned).
    Fragment {
        /// The track, as [`Mp4Export::add_track`] numbered it.
        track: usize,
        /// The fragment: the count of earlier `push_fragment` calls for the track.
        fragment: u64,
        /// First byte in that fragment.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl ExportPart {
    /// Length of the part in bytes.
    pub fn len(&self) -> u64 {
        match self {
            ExportPart::Data(b) => b.len() as u64,
            ExportPart::Fragment { len, .. } => *len,
        }
    }

    /// Whether the part has no bytes (never, in an [`ExportedMp4`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an [`ExportedMp4`] holds of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportedTrack {
    /// The `track_ID` in the exported file (the init segment's, unless an earlier track
    /// of the export had it: then one above the highest so far).
    pub track_id: TrackId,
    /// Samples.
    pub samples: u32,
    /// Chunks in the `mdat`.
    pub chunks: u32,
    /// Sum of the sample durations (the `mdhd` duration), in the track's timescale.
    pub duration: Timestamp,
    /// Empty edit before the track's first sample is shown (ISO/IEC 14496-12 §8.6.6),
    /// in the movie timescale: how much later than the earliest track it starts.
    pub delay: Timestamp,
    /// `media_time` of the track's edit: the composition time, in the track's
    /// timescale, shown first (the first sample's composition offset behind B-frames).
    pub media_time: Timestamp,
}

/// An exported progressive MP4: a list of parts to write in order ([`ExportedMp4::parts`],
/// for vectored IO) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedMp4 {
    parts: Vec<ExportPart>,
    len: u64,
    header_len: usize,
    movie_timescale: Timescale,
    co64: bool,
    tracks: Vec<ExportedTrack>,
}

impl ExportedMp4 {
    /// The parts, in file order: first the header ([`ExportPart::Data`] with `ftyp`,
    /// `moov` and the `mdat` header), then the sample data, no part empty.
    pub fn parts(&self) -> &[ExportPart] {
        &self.parts
    }

    /// The parts, by value.
    pub fn into_parts(self) -> Vec<ExportPart> {
        self.parts
    }

    /// Length of the file in bytes (the sum of the parts' lengths).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty (never: there is always a header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length of the header (`ftyp` + `moov` + `mdat` header): where the samples start.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The `mvhd` timescale: the least common multiple of the track timescales when it
    /// fits 32 bits (edits are then exact), else the largest track timescale.
    pub fn movie_timescale(&self) -> Timescale {
        self.movie_timescale
    }

    /// Whether chunk offsets are 64-bit (`co64`, a file beyond 4 GiB) rather than
    /// `stco`.
    pub fn co64(&self) -> bool {
        self.co64
    }

    /// The tracks, in the order they were added.
    pub fn tracks(&self) -> &[ExportedTrack] {
        &self.tracks
    }

    /// The whole file in one buffer: for small files and tests.
    ///
    /// Errors: [`crate::ErrorKind::Usage`] when payloads were referred to
    /// ([`PayloadMode::Refer`]), [`crate::ErrorKind::Limit`] when the file does not fit
    /// in memory's address space.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let len = usize::try_from(self.len)
            .map_err(|_| Error::limit("exported MP4 larger than the address space"))?;
        let mut out = BytesMut::with_capacity(len);
        for p in &self.parts {
            match p {
                ExportPart::Data(b) => out.extend_from_slice(b),
                ExportPart::Fragment { .. } => return Err(Error::usage(
                    "payloads were referred to (PayloadMode::Refer): read them from the fragments",
                )),
            }
        }
        Ok(out.freeze())
    }
}

/// Exports stored CMAF renditions (one track each: an init segment and its media
/// segments) as one progressive MP4, without re-encoding (sans-IO, zero-copy).
///
/// Drive: [`Mp4Export::add_track`] with each rendition's init segment, then
/// [`Mp4Export::push_fragment`] with that track's fragments in decode order (tracks may
/// be fed one after the other or interleaved), then [`Mp4Export::finish`]. The fragments
/// are read with [`Fmp4Reader`] (every `tfhd`/`trun` option, `tfdt`-less fragments
/// continuing the previous one); only the sample tables are kept: sizes, durations and
/// composition offsets as runs, sync samples, and where each run of samples lies in
/// which fragment. Payloads stay in the caller's fragments ([`PayloadMode`]).
///
/// The file ([`ExportedMp4`]), ISO/IEC 14496-12:
/// * `ftyp` ([`EXPORT_MAJOR_BRAND`], [`EXPORT_COMPATIBLE_BRANDS`]), `moov`, `mdat`:
///   the `moov` first ("faststart"), the `mdat` with a 64-bit size past 4 GiB (§4.2).
/// * `mvhd` (§8.2.2) in [`ExportedMp4::movie_timescale`]; per track `tkhd` (§8.3.2, its
///   layer, group, volume, matrix and size copied from the init segment), `mdhd` (§8.4.2,
///   the track timescale and language) and `hdlr` (copied), the media header and `stsd`
///   copied, `dinf` with a self-contained `url `. Version 1 boxes where values pass
///   32 bits.
/// * `stts` (§8.6.1.2) and `ctts` (§8.6.1.3, only when a composition offset is not zero;
///   version 1 when one is negative) run-length coded, `stss` (§8.6.2) when a sample is
///   not a sync sample, `stsc` (§8.7.4), `stsz` (§8.7.3, one size when all are equal),
///   `stco` or, when an offset passes 4 GiB, `co64` (§8.7.5) for every track.
/// * Samples keep the decode times their fragments state (`tfdt` plus durations), made
///   relative to the track's first sample. An edit list (§8.6.6) keeps what the
///   fragments' players show: the movie starts at the earliest presentation time of all
///   tracks (composition time plus the init segment's edit shift, see
///   [`Fmp4Reader::edit_shift`]); a track starting later gets an empty edit that long,
///   and the media edit starts at the track's earliest composition time (behind
///   B-frames, the first sample's composition offset). Without delay or offset there is
///   no edit list. When composition times start below zero (negative offsets), all
///   offsets are raised so the earliest is zero.
/// * Each track's samples are cut into chunks of [`Mp4ExportOptions::chunk_duration`],
///   laid out in decode time order across tracks.
///
/// Track identity is by `track_ID`: each init segment must hold exactly one supported
/// track (H.264, H.265, AAC, Opus), and a fragment of another `track_ID` is refused. The
/// output keeps each init segment's `track_ID`, renumbering a duplicate.
///
/// Errors are typed; a failed call leaves the export as it was:
/// * [`crate::ErrorKind::Malformed`]: what [`Fmp4Reader`] refuses (a box that lies about
///   its size, sample data outside the `mdat`...), a fragment of another track, a gap or
///   overlap in the timeline beyond [`Mp4ExportOptions::timeline_slack`].
/// * [`crate::ErrorKind::Unsupported`]: an init segment with several tracks or an
///   unsupported codec, protected tracks (`encv`/`enca`: export the clear store), video
///   with NAL lengths other than 4 bytes.
/// * [`crate::ErrorKind::Limit`]: more than [`Mp4ExportOptions::max_samples`] samples,
///   more than [`MAX_EXPORT_TRACKS`] tracks, times or offsets beyond 63 bits.
/// * [`crate::ErrorKind::Usage`]: an unknown track index, [`Mp4Export::finish`] without
///   tracks or with a track without samples, invalid options.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::fmp4::Fmp4Writer;
/// use strom::container::mp4::{Mp4Demuxer, Mp4Export, Mp4ExportOptions};
/// use strom::media::{AacConfig, CodecConfig, Frame, FrameFlags, Item, TrackInfo};
/// use strom::time::{Timescale, Timestamp};
/// use strom::ErrorKind;
///
/// // A stored AAC rendition: an init segment and two fragments of 3 frames.
/// let scale = Timescale::new(48_000).unwrap();
/// let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
/// let mut writer = Fmp4Writer::new(TrackInfo::new(2, scale, CodecConfig::Aac(aac))).unwrap();
/// let mut init = BytesMut::new();
/// writer.init_segment(&mut init).unwrap();
/// let fragment = |writer: &mut Fmp4Writer, n: i64| {
///     let frames: Vec<Frame> = (3 * n..3 * n + 3)
///         .map(|i| {
///             let t = Timestamp::new(i * 1024, scale);
///             Frame::new(2, t, t, Bytes::from(vec![i as u8; 9])).with_flags(FrameFlags::KEYFRAME)
///         })
///         .collect();
///     let end = Timestamp::new((3 * n + 3) * 1024, scale);
///     let mut out = BytesMut::new();
///     writer.media_segment(&frames, n as u32 + 1, Some(end), &mut out).unwrap();
///     out.freeze()
/// };
/// let (f1, f2) = (fragment(&mut writer, 0), fragment(&mut writer, 1));
///
/// let mut export = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
/// let track = export.add_track(init.freeze()).unwrap();
/// export.push_fragment(track, f1).unwrap();
/// // A fragment pushed twice overlaps the timeline: a typed error, nothing changes.
/// let err = export.push_fragment(track, f2.clone()).and_then(|_| export.push_fragment(track, f2));
/// assert_eq!(err.unwrap_err().kind(), ErrorKind::Malformed);
/// let mp4 = export.finish().unwrap();
/// assert_eq!(mp4.tracks()[0].samples, 6);
///
/// // A host writes `mp4.parts()` with vectored IO; here, one buffer read back.
/// let file = mp4.to_bytes().unwrap();
/// assert_eq!(&file[4..8], b"ftyp");
/// let frames: Vec<Frame> = Mp4Demuxer::read_all(file)
///     .unwrap()
///     .into_iter()
///     .filter_map(|i| match i {
///         Item::Frame(f) => Some(f),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(frames.len(), 6);
/// assert_eq!(frames[5].dts, Timestamp::new(5 * 1024, scale));
/// assert_eq!(&frames[5].data[..], &[5; 9][..]);
/// ```
#[derive(Debug, Clone)]
pub struct Mp4Export {
    opts: Mp4ExportOptions,
    tracks: Vec<ExportTrack>,
    /// Samples of all tracks.
    samples: u64,
}

/// Boxes of a track's init segment the export copies.
#[derive(Debug, Clone)]
struct InitBoxes {
    /// The last [`TKHD_TAIL`] bytes of the `tkhd` fields.
    tkhd_tail: Bytes,
    /// `mdhd` pad bit and packed language.
    language: u16,
    /// The whole `hdlr` box.
    hdlr: Bytes,
    /// The whole media header box (`vmhd`, `smhd`, `sthd`, `nmhd`...), if any.
    media_header: Option<Bytes>,
    /// The whole `stsd` box.
    stsd: Bytes,
}

/// Samples lying back to back in one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    fragment: u64,
    offset: u64,
    len: u64,
    samples: u32,
}

/// One track of an export: its reader, the boxes it copies and its sample tables.
#[derive(Debug, Clone)]
struct ExportTrack {
    reader: Fmp4Reader,
    info: TrackInfo,
    out_id: TrackId,
    video: bool,
    /// [`Fmp4Reader::edit_shift`] of the init segment.
    shift: i64,
    boxes: InitBoxes,
    /// The fragments, when kept; index = push count.
    fragments: Vec<Bytes>,
    pushed: u64,
    /// Decode time of the first sample, as the fragments state it.
    first_dts: Option<u64>,
    /// Decode time after the last sample.
    next_dts: u64,
    sizes: Vec<u32>,
    /// `(count, duration)` runs.
    stts: Vec<(u32, u32)>,
    /// `(count, composition offset)` runs.
    ctts: Vec<(u32, i32)>,
    /// 1-based numbers of the sync samples.
    sync: Vec<u32>,
    runs: Vec<Run>,
}

/// What one fragment adds to a track, before it is committed.
#[derive(Default)]
struct Pending {
    sizes: Vec<u32>,
    durations: Vec<u32>,
    ctos: Vec<i32>,
    sync: Vec<bool>,
    runs: Vec<Run>,
    /// New duration of the track's last committed sample (a gap or overlap absorbed).
    last_duration: Option<u32>,
    first_dts: Option<u64>,
    next_dts: u64,
}

fn push_run<T: PartialEq + Copy>(runs: &mut Vec<(u32, T)>, v: T) {
    match runs.last_mut() {
        Some((n, x)) if *x == v && *n < u32::MAX => *n += 1,
        _ => runs.push((1, v)),
    }
}

/// Sets the duration of the last sample of `stts` runs.
fn set_last(runs: &mut Vec<(u32, u32)>, v: u32) {
    let Some(&(n, d)) = runs.last() else {
        return;
    };
    if d == v {
        return;
    }
    if n > 1 {
        if let Some(last) = runs.last_mut() {
            last.0 = n - 1;
        }
    } else {
        runs.pop();
    }
    push_run(runs, v);
}

impl Mp4Export {
    /// An empty export.
    ///
    /// Errors: [`crate::ErrorKind::Usage`] when
    /// [`Mp4ExportOptions::chunk_duration`] is not positive or
    /// [`Mp4ExportOptions::timeline_slack`] is negative.
    pub fn new(opts: Mp4ExportOptions) -> Result<Self> {
        if opts.chunk_duration.ticks() <= 0 {
            return Err(Error::usage("export chunk duration must be positive"));
        }
        if opts.timeline_slack.ticks() < 0 {
            return Err(Error::usage("export timeline slack must not be negative"));
        }
        Ok(Mp4Export {
            opts,
            tracks: Vec::new(),
            samples: 0,
        })
    }

    /// The options.
    pub fn options(&self) -> &Mp4ExportOptions {
        &self.opts
    }

    /// Adds a track from a rendition's init segment (`ftyp` + `moov` with one track and
    /// `mvex`, ISO/IEC 23000-19 §7.3.2.1); returns its index for
    /// [`Mp4Export::push_fragment`]. Tracks appear in the file in the order added.
    ///
    /// Errors: what [`Fmp4Reader::new`] refuses; several or no supported tracks, a
    /// protected sample entry ([`crate::ErrorKind::Unsupported`]); more than
    /// [`MAX_EXPORT_TRACKS`] ([`crate::ErrorKind::Limit`]).
    pub fn add_track(&mut self, init: Bytes) -> Result<usize> {
        if self.tracks.len() >= MAX_EXPORT_TRACKS {
            return Err(Error::limit("too many tracks in one MP4 export"));
        }
        let ro = Fmp4ReaderOptions {
            max_samples: self
                .opts
                .max_samples
                .min(MAX_SAMPLES_PER_FRAGMENT as u32)
                .max(1),
            ..Fmp4ReaderOptions::default()
        };
        let ctx = "mp4 export init segment";
        let reader = Fmp4Reader::with_options(init.clone(), ro).map_err(|e| e.context(ctx))?;
        let info = match reader.tracks() {
            [t] => t.clone(),
            _ => {
                return Err(Error::unsupported("init segment with more than one track").context(ctx))
            }
        };
        if reader.encryption(info.id).is_some() {
            return Err(Error::unsupported(
                "protected track (encv/enca): export the clear fragments",
            )
            .context(format!("track {}", info.id))
            .context(ctx));
        }
        let shift = reader.edit_shift(info.id).unwrap_or(0);
        let boxes = init_boxes(&init).map_err(|e| e.context(ctx))?;
        let out_id = if self.tracks.iter().any(|t| t.out_id == info.id) {
            self.tracks
                .iter()
                .map(|t| t.out_id)
                .max()
                .unwrap_or(0)
                .checked_add(1)
                .ok_or_else(|| Error::limit("no track_ID left").context(ctx))?
        } else {
            info.id
        };
        self.tracks.push(ExportTrack {
            reader,
            video: info.kind == MediaKind::Video,
            info,
            out_id,
            shift,
            boxes,
            fragments: Vec::new(),
            pushed: 0,
            first_dts: None,
            next_dts: 0,
            sizes: Vec::new(),
            stts: Vec::new(),
            ctts: Vec::new(),
            sync: Vec::new(),
            runs: Vec::new(),
        });
        Ok(self.tracks.len() - 1)
    }

    /// The source track of index `track` as its init segment describes it.
    pub fn track(&self, track: usize) -> Option<&TrackInfo> {
        self.tracks.get(track).map(|t| &t.info)
    }

    /// Number of tracks added.
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Samples read so far, all tracks together.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Reads one media segment of track `track` (`styp`? `moof` `mdat`, or several back
    /// to back, ISO/IEC 23000-19 §7.3.2.2) and appends its samples to the track's tables.
    /// Fragments come in decode order; the first sample must start where the previous
    /// one ended, within [`Mp4ExportOptions::timeline_slack`].
    ///
    /// With [`PayloadMode::Keep`] the fragment is kept (a reference); with
    /// [`PayloadMode::Refer`] it is dropped, and this call's count (from 0, per track,
    /// failed calls not counted) names it in [`ExportPart::Fragment`].
    ///
    /// Errors: see [`Mp4Export`]; on error nothing changes.
    pub fn push_fragment(&mut self, track: usize, fragment: Bytes) -> Result<()> {
        let room = u64::from(self.opts.max_samples).saturating_sub(self.samples);
        let slack_opt = self.opts.timeline_slack;
        let keep = self.opts.payloads == PayloadMode::Keep;
        let t = self
            .tracks
            .get_mut(track)
            .ok_or_else(|| Error::usage("unknown export track index"))?;
        let ctx = || format!("mp4 export track {}", t.info.id);
        let mut reader = t.reader.clone();
        let frames = reader
            .read_segment(fragment.clone())
            .map_err(|e| e.context(ctx()))?;
        if frames.len() as u64 > room {
            return Err(Error::limit("more samples than the export's max_samples").context(ctx()));
        }
        let scale = t.info.timescale;
        let slack = rescale(slack_opt.ticks(), slack_opt.scale(), scale, Rounding::Down)
            .max(0)
            .unsigned_abs();
        let base = fragment.as_ptr() as usize;
        let index = t.pushed;
        let mut p = Pending {
            first_dts: t.first_dts,
            next_dts: t.next_dts,
            ..Pending::default()
        };
        for (i, f) in frames.iter().enumerate() {
            let sample = || format!("sample {} of the fragment", i + 1);
            if f.track != t.info.id {
                return Err(Error::malformed("sample of another track")
                    .context(sample())
                    .context(ctx()));
            }
            let bad = |what: &'static str| Error::malformed(what).context(sample()).context(ctx());
            let dts = u64::try_from(f.dts.ticks()).map_err(|_| bad("negative decode time"))?;
            let duration = f
                .duration
                .and_then(|d| u32::try_from(d.ticks()).ok())
                .ok_or_else(|| bad("sample duration beyond 32 bits"))?;
            let cto = f
                .pts
                .ticks()
                .checked_sub(f.dts.ticks())
                .and_then(|c| i32::try_from(c).ok())
                .ok_or_else(|| bad("composition offset beyond 32 bits"))?;
            let size = u32::try_from(f.data.len()).map_err(|_| bad("sample beyond 4 GiB"))?;
            // Continuity with the previous sample of the track.
            if p.first_dts.is_none() {
                p.first_dts = Some(dts);
            } else if dts != p.next_dts {
                let diff = i128::from(dts) - i128::from(p.next_dts);
                let what = if diff > 0 {
                    "gap in the timeline (tfdt after the previous fragment's end)"
                } else {
                    "overlap in the timeline (tfdt before the previous fragment's end)"
                };
                let at = || format!("decode time {dts}, expected {}", p.next_dts);
                if diff.unsigned_abs() > u128::from(slack) {
                    return Err(Error::malformed(what)
                        .context(at())
                        .context(sample())
                        .context(ctx()));
                }
                let prev = match p.durations.last() {
                    Some(&d) => d,
                    None => p
                        .last_duration
                        .or_else(|| t.stts.last().map(|r| r.1))
                        .unwrap_or(0),
                };
                let new = u32::try_from(i128::from(prev) + diff)
                    .ok()
                    .filter(|&d| d > 0)
                    .ok_or_else(|| {
                        Error::malformed("overlap longer than the previous sample")
                            .context(at())
                            .context(sample())
                            .context(ctx())
                    })?;
                match p.durations.last_mut() {
                    Some(d) => *d = new,
                    None => p.last_duration = Some(new),
                }
            }
            p.next_dts = dts
                .checked_add(u64::from(duration))
                .filter(|&e| e <= i64::MAX as u64)
                .ok_or_else(|| {
                    Error::limit("decode time beyond 63 bits")
                        .context(sample())
                        .context(ctx())
                })?;
            // Where the payload lies in the fragment (the reader slices it).
            if size > 0 {
                let at = (f.data.as_ptr() as usize)
                    .checked_sub(base)
                    .filter(|&o| o + f.data.len() <= fragment.len())
                    .ok_or_else(|| {
                        Error::unsupported("video NAL lengths other than 4 bytes")
                            .context(sample())
                            .context(ctx())
                    })? as u64;
                match p.runs.last_mut() {
                    Some(r) if r.offset + r.len == at => {
                        r.len += u64::from(size);
                        r.samples += 1;
                    }
                    _ => p.runs.push(Run {
                        fragment: index,
                        offset: at,
                        len: u64::from(size),
                        samples: 1,
                    }),
                }
            } else {
                match p.runs.last_mut() {
                    Some(r) => r.samples += 1,
                    None => p.runs.push(Run {
                        fragment: index,
                        offset: 0,
                        len: 0,
                        samples: 1,
                    }),
                }
            }
            p.sizes.push(size);
            p.durations.push(duration);
            p.ctos.push(cto);
            p.sync.push(f.is_keyframe());
        }
        // Commit.
        let added = p.sizes.len();
        if let Some(d) = p.last_duration {
            set_last(&mut t.stts, d);
        }
        let mut number = t.sizes.len() as u32;
        for ((&d, &c), &s) in p.durations.iter().zip(&p.ctos).zip(&p.sync) {
            number += 1;
            push_run(&mut t.stts, d);
            push_run(&mut t.ctts, c);
            if s {
                t.sync.push(number);
            }
        }
        t.sizes.extend_from_slice(&p.sizes);
        t.runs.extend_from_slice(&p.runs);
        t.first_dts = p.first_dts;
        t.next_dts = p.next_dts;
        t.reader = reader;
        if keep {
            t.fragments.push(fragment);
        }
        t.pushed += 1;
        self.samples += added as u64;
        Ok(())
    }

    /// Lays out the file: the `moov` with every track's sample tables, then the samples
    /// in chunks. See [`Mp4Export`] for the boxes and [`ExportedMp4`] for the output.
    ///
    /// Errors: no track, a track without samples ([`crate::ErrorKind::Usage`]); times,
    /// sizes or offsets beyond 63 bits ([`crate::ErrorKind::Limit`]).
    pub fn finish(self) -> Result<ExportedMp4> {
        layout::finish(&self.tracks, self.opts.chunk_duration)
    }
}

/// The boxes of an init segment's single `trak` that the export copies.
fn init_boxes(init: &Bytes) -> Result<InitBoxes> {
    let find = |parent: &Child, kind: &[u8; 4]| -> Result<Option<Child>> {
        for c in parent.children() {
            let c = c?;
            if &c.header.kind == kind {
                return Ok(Some(c));
            }
        }
        Ok(None)
    };
    let missing = |what: &'static str| Error::malformed(what);
    let mut moov = None;
    for c in children(init.clone(), 0) {
        let c = c?;
        if &c.header.kind == b"moov" {
            moov = Some(c);
            break;
        }
    }
    let moov = moov.ok_or_else(|| missing("no moov"))?;
    let mut trak = None;
    for c in moov.children() {
        let c = c?;
        if &c.header.kind == b"trak" {
            if trak.is_some() {
                return Err(Error::unsupported("init segment with more than one track"));
            }
            trak = Some(c);
        }
    }
    let trak = trak.ok_or_else(|| missing("moov without trak"))?;
    let tkhd = find(&trak, b"tkhd")?.ok_or_else(|| missing("trak without tkhd"))?;
    // tkhd fields end 84 (version 0) or 96 (version 1) bytes into the body.
    let fields = if tkhd.body.first() == Some(&1) {
        96
    } else {
        84
    };
    let tkhd_tail = tkhd
        .body
        .get(fields - TKHD_TAIL..fields)
        .map(|s| tkhd.body.slice_ref(s))
        .ok_or_else(|| missing("tkhd too short").at_offset(tkhd.offset))?;
    let mdia = find(&trak, b"mdia")?.ok_or_else(|| missing("trak without mdia"))?;
    let mdhd = find(&mdia, b"mdhd")?.ok_or_else(|| missing("mdia without mdhd"))?;
    let at = if mdhd.body.first() == Some(&1) {
        32
    } else {
        20
    };
    let language = mdhd
        .body
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| missing("mdhd too short").at_offset(mdhd.offset))?;
    let hdlr = find(&mdia, b"hdlr")?
        .ok_or_else(|| missing("mdia without hdlr"))?
        .full;
    let minf = find(&mdia, b"minf")?.ok_or_else(|| missing("mdia without minf"))?;
    let mut media_header = None;
    let mut stbl = None;
    for c in minf.children() {
        let c = c?;
        match &c.header.kind {
            b"vmhd" | b"smhd" | b"sthd" | b"nmhd" | b"hmhd" => {
                media_header.get_or_insert(c.full);
            }
            b"stbl" => stbl = Some(c),
            _ => {}
        }
    }
    let stbl = stbl.ok_or_else(|| missing("minf without stbl"))?;
    let stsd = find(&stbl, b"stsd")?
        .ok_or_else(|| missing("stbl without stsd"))?
        .full;
    Ok(InitBoxes {
        tkhd_tail,
        language,
        hdlr,
        media_header,
        stsd,
    })
}

#[cfg(test)]
mod tests;
