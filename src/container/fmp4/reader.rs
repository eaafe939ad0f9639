//! Fragmented MP4 / CMAF reader (ISO/IEC 14496-12 §8.8, ISO/IEC 23000-19 §7.3): an init
//! segment (`ftyp` + `moov` with `mvex`/`trex`) gives the tracks, media segments
//! (`moof` + `mdat` pairs) give the frames.

use bytes::Bytes;

use super::decrypt::{decrypt_traf, moov_protection, TrafAux};
use super::fragment::MAX_SAMPLES_PER_FRAGMENT;
use super::pssh::PsshBox;
use super::sinf::TrackEncryption;
use crate::bitstream::nal;
use crate::container::mp4::{children, parse_fragmented_moov, scan_box_header, Child, MoovLimits};
use crate::crypto::{ContentKey, KeyId};
use crate::error::{Error, Result};
use crate::media::{Frame, FrameFlags, MediaKind, TrackId, TrackInfo};
use crate::time::Timestamp;

const TFHD_BASE_DATA_OFFSET: u32 = 0x1;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x2;
const TFHD_DEFAULT_DURATION: u32 = 0x8;
const TFHD_DEFAULT_SIZE: u32 = 0x10;
const TFHD_DEFAULT_FLAGS: u32 = 0x20;
const TFHD_DURATION_IS_EMPTY: u32 = 0x1_0000;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x2_0000;

const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x4;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;

/// `sample_is_non_sync_sample` in `sample_flags` (§8.8.3.1).
const FLAG_NON_SYNC: u32 = 0x0001_0000;

/// Limits of an [`Fmp4Reader`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fmp4ReaderOptions {
    /// Most samples one [`Fmp4Reader::read_segment`] call returns (all fragments of the
    /// call together); more is [`crate::ErrorKind::Limit`]. Default
    /// [`MAX_SAMPLES_PER_FRAGMENT`] (1 048 576), the writer's limit.
    pub max_samples: u32,
    /// Most samples [`Fmp4Reader::read_file_with`] returns for a whole file. Default
    /// 10 000 000.
    pub max_file_samples: u32,
}

impl Default for Fmp4ReaderOptions {
    fn default() -> Self {
        Fmp4ReaderOptions {
            max_samples: MAX_SAMPLES_PER_FRAGMENT as u32,
            max_file_samples: 10_000_000,
        }
    }
}

/// `trex` defaults of one track (§8.8.3).
#[derive(Debug, Clone, Copy, Default)]
struct Defaults {
    description: u32,
    duration: u32,
    size: u32,
    flags: u32,
}

/// What the reader keeps per `trex` track.
#[derive(Debug, Clone)]
struct TrackState {
    id: TrackId,
    /// Index into `Fmp4Reader::tracks`; `None` for a track the reader does not decode
    /// (its fragments are parsed and checked, its samples not returned).
    info: Option<usize>,
    trex: Defaults,
    /// NAL length field size of a video track (`avcC`/`hvcC`).
    nal_length_size: Option<u8>,
    video: bool,
    /// Edit list shift from the `moov` (§8.6.6), in the track timescale.
    shift: i64,
    /// Decode time after the last sample read: the base of a `traf` without `tfdt`.
    next_dts: Option<u64>,
    /// The `sinf` of a protected sample entry.
    encryption: Option<TrackEncryption>,
}

/// Reads fragmented MP4 / CMAF: an init segment, then media segments (sans-IO, zero-copy).
///
/// Construct it from the init segment ([`Fmp4Reader::new`]: `ftyp` + `moov`, whose
/// `mvex` holds a `trex` per track), then hand it each media segment
/// ([`Fmp4Reader::read_segment`]). For a whole fragmented file (`ftyp` + `moov` followed by
/// fragments, as FFmpeg writes with `-movflags frag_keyframe+empty_moov+default_base_moof`)
/// use [`Fmp4Reader::read_file`].
///
/// Tracks are those of [`crate::container::mp4::Mp4Demuxer`]: H.264 (`avc1`/`avc3`),
/// H.265 (`hvc1`/`hev1`), AAC (`mp4a`) and Opus, with ids, timescales, languages and
/// names read the same way. Fragments of other tracks (with a `trex`) are parsed and
/// checked but yield no frames.
///
/// Frames (ISO/IEC 14496-12 §8.8.7–§8.8.12):
/// * Sample durations, sizes and flags come from `trun`, else the `tfhd` defaults, else
///   the `trex` defaults; a `trun`'s `first_sample_flags` applies to its first sample.
/// * `dts` is the `tfdt` base decode time plus the durations of the earlier samples of the
///   track fragment; a `traf` without `tfdt` continues from the end of the same track's
///   previous fragment (an error when there is none). `pts = dts + composition offset`;
///   version 0 offsets are read as signed 32-bit, as FFmpeg does. Times are in the track
///   timescale, as written: the edit list is not applied (see [`Fmp4Reader::edit_shift`]).
/// * `duration` is the sample duration. [`FrameFlags::KEYFRAME`] when
///   `sample_is_non_sync_sample` is clear and, for video, `sample_depends_on` is not 1;
///   [`FrameFlags::DISPOSABLE`] for video samples with `sample_is_depended_on` = 2.
/// * Sample data offsets: a `trun`'s `data_offset` is relative to the `tfhd`
///   `base_data_offset`, else (`default-base-is-moof`, or the first `traf`) the first byte
///   of the `moof`, else the end of the previous `traf`'s data; a `trun` without
///   `data_offset` continues after the previous `trun`'s data. `base_data_offset` is
///   counted from the first byte handed to the call. Each sample must lie inside one
///   `mdat` of the same call.
/// * Payloads slice the input [`Bytes`] without copying; video with 1- or 2-byte NAL
///   lengths is converted to the canonical 4-byte form (a copy), 4-byte framing is
///   checked.
/// * Frames come in file order: `moof` by `moof`, `traf` by `traf`, `trun` by `trun`.
///
/// Other top-level boxes (`styp`, `sidx`, `ssix`, `prft`, `emsg`, `free`, `skip`, `mfra`,
/// `uuid`...) are skipped. Errors are typed and name the byte offset: a box running past
/// the end of the data (a truncated segment), sample data outside the `mdat`s, a sample
/// count above [`Fmp4ReaderOptions::max_samples`] or larger than its `trun`, a `traf` of a
/// track without `trex`, decode times beyond 63 bits. A failed call leaves the reader as
/// it was.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::fmp4::{Fmp4Reader, Fmp4Writer};
/// use strom::media::{AacConfig, CodecConfig, Frame, FrameFlags, TrackInfo};
/// use strom::time::{Timescale, Timestamp};
/// use strom::ErrorKind;
///
/// let scale = Timescale::new(48_000).unwrap();
/// let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
/// let track = TrackInfo::new(1, scale, CodecConfig::Aac(aac)).with_language("fra");
/// let mut writer = Fmp4Writer::new(track).unwrap();
/// let mut init = BytesMut::new();
/// writer.init_segment(&mut init).unwrap();
/// let frames: Vec<Frame> = (0..3)
///     .map(|i| {
///         let t = Timestamp::new(i * 1024, scale);
///         Frame::new(1, t, t, Bytes::from(vec![i as u8; 10])).with_flags(FrameFlags::KEYFRAME)
///     })
///     .collect();
/// let mut seg = BytesMut::new();
/// writer.media_segment(&frames, 1, None, &mut seg).unwrap();
///
/// let mut reader = Fmp4Reader::new(init.freeze()).unwrap();
/// assert_eq!(reader.tracks()[0].language.as_deref(), Some("fra"));
/// let seg = seg.freeze();
/// let read = reader.read_segment(seg.clone()).unwrap();
/// assert_eq!(read.len(), 3);
/// for (r, f) in read.iter().zip(&frames) {
///     assert_eq!((r.track, r.dts, r.pts, r.is_keyframe()), (1, f.dts, f.pts, true));
///     assert_eq!(r.data, f.data);
/// }
/// // A truncated segment is a typed error, not a panic.
/// let err = reader.read_segment(seg.slice(..seg.len() - 1)).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Malformed);
/// ```
#[derive(Debug, Clone)]
pub struct Fmp4Reader {
    opts: Fmp4ReaderOptions,
    tracks: Vec<TrackInfo>,
    states: Vec<TrackState>,
    pssh: Vec<PsshBox>,
}

/// A top-level box of the data handed to one call.
struct TopBox {
    kind: [u8; 4],
    /// Offset of the box in the data.
    start: usize,
    /// Offset of the body.
    body: usize,
    /// Offset of the first byte after the box.
    end: usize,
}

/// Walks the boxes of `data` from `from` to the end: every byte must belong to a box.
fn top_boxes(data: &Bytes, from: usize) -> impl Iterator<Item = Result<TopBox>> + '_ {
    let mut pos = from;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= data.len() {
            return None;
        }
        let rest = &data[pos..];
        let r = match scan_box_header(rest) {
            Ok(Some(h)) => {
                let total = h.total_size(rest.len() as u64);
                if total > rest.len() as u64 {
                    Err(Error::malformed("box runs past the end of the data")
                        .context(format!("box '{}'", h.kind_str())))
                } else {
                    let b = TopBox {
                        kind: h.kind,
                        start: pos,
                        body: pos + usize::from(h.header_len),
                        end: pos + total as usize,
                    };
                    pos = b.end;
                    Ok(b)
                }
            }
            Ok(None) => Err(Error::malformed(
                "truncated box header at the end of the data",
            )),
            Err(e) => Err(e),
        };
        if r.is_err() {
            failed = true;
        }
        Some(r.map_err(|e| e.at_offset(pos as u64)))
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// Reads a big-endian `u32` field of a box body, advancing `at`.
fn field(body: &[u8], at: &mut usize, what: &'static str) -> Result<u32> {
    let v = be32(body, *at).ok_or_else(|| Error::malformed(what))?;
    *at += 4;
    Ok(v)
}

/// Frame flags of `sample_flags` (§8.8.3.1).
fn frame_flags(flags: u32, video: bool) -> FrameFlags {
    let depends_on = (flags >> 24) & 0x3;
    let depended_on = (flags >> 22) & 0x3;
    let mut out = FrameFlags::NONE;
    if flags & FLAG_NON_SYNC == 0 && !(video && depends_on == 1) {
        out = out.union(FrameFlags::KEYFRAME);
    }
    if video && depended_on == 2 {
        out = out.union(FrameFlags::DISPOSABLE);
    }
    out
}

/// The `mdat` bodies of one call, in file order, for the "sample inside an mdat" check.
struct Mdats(Vec<(u64, u64)>);

impl Mdats {
    fn contains(&self, start: u64, end: u64) -> bool {
        let i = self.0.partition_point(|m| m.0 <= start);
        i > 0 && end <= self.0[i - 1].1
    }
}

/// Per-call working state: the frames so far and the limit.
struct Call<'a> {
    data: &'a Bytes,
    mdats: Mdats,
    frames: Vec<Frame>,
    samples: u64,
    max_samples: u32,
    /// Content keys when the call decrypts.
    keys: Option<&'a [(KeyId, ContentKey)]>,
}

impl Fmp4Reader {
    /// A reader for the init segment `init` (`ftyp` + `moov`, ISO/IEC 23000-19 §7.3.2.1),
    /// with default [`Fmp4ReaderOptions`].
    ///
    /// Errors: no `moov`, no `mvex` (not fragmented), a track without `trex`, samples in the
    /// `moov` sample tables (not an `empty_moov` file), no supported track, and everything
    /// [`crate::container::mp4::Mp4Demuxer`] refuses in a `moov`. A `moof` or `mdat` in the
    /// init segment is [`crate::ErrorKind::Usage`] (use [`Fmp4Reader::read_file`]).
    pub fn new(init: Bytes) -> Result<Self> {
        Self::with_options(init, Fmp4ReaderOptions::default())
    }

    /// Like [`Fmp4Reader::new`] with explicit limits.
    pub fn with_options(init: Bytes, opts: Fmp4ReaderOptions) -> Result<Self> {
        let mut moov = None;
        for b in top_boxes(&init, 0) {
            let b = b.map_err(|e| e.context("fmp4 init segment"))?;
            match &b.kind {
                b"moov" if moov.is_some() => {
                    return Err(Error::malformed("two moov boxes in the init segment")
                        .at_offset(b.start as u64))
                }
                b"moov" => moov = Some(b),
                b"moof" | b"mdat" => {
                    return Err(Error::usage(
                        "media data in the init segment: read whole files with read_file",
                    )
                    .at_offset(b.start as u64))
                }
                _ => {}
            }
        }
        let moov = moov.ok_or_else(|| Error::malformed("no moov in the fmp4 init segment"))?;
        Self::from_moov(&init, &moov, opts).map_err(|e| e.context("fmp4 init segment"))
    }

    fn from_moov(data: &Bytes, moov: &TopBox, opts: Fmp4ReaderOptions) -> Result<Self> {
        let body = data.slice(moov.body..moov.end);
        let limits = MoovLimits {
            max_samples: opts.max_file_samples,
            max_sample_size: u32::MAX,
            file_size: data.len() as u64,
        };
        // Protected entries are read as their original format (ISO/IEC 23001-7 §4.2).
        let protection = moov_protection(&body, moov.body as u64)?;
        let clear_body = protection.body.clone().unwrap_or_else(|| body.clone());
        let movie = parse_fragmented_moov(clear_body, moov.body as u64, limits)?;
        if let Some(t) = movie.tracks.iter().find(|t| t.table.len() > 0) {
            return Err(Error::unsupported(
                "samples in the moov sample tables (only empty_moov fragmented files are read)",
            )
            .context(format!("track {}", t.info.id)));
        }
        // mvex/trex (§8.8.1, §8.8.3).
        let mut trex: Vec<(TrackId, Defaults)> = Vec::new();
        let mut mvex = false;
        for c in children(body, moov.body as u64) {
            let c = c?;
            if &c.header.kind != b"mvex" {
                continue;
            }
            mvex = true;
            for t in c.children() {
                let t = t?;
                if &t.header.kind != b"trex" {
                    continue;
                }
                let (id, d) = parse_trex(&t)?;
                if trex.iter().any(|(i, _)| *i == id) {
                    return Err(Error::malformed("two trex boxes for one track")
                        .context(format!("track {id}"))
                        .at_offset(t.offset));
                }
                trex.push((id, d));
            }
        }
        if !mvex {
            return Err(Error::malformed("moov without mvex: not a fragmented MP4"));
        }
        let mut states: Vec<TrackState> = trex
            .iter()
            .map(|&(id, d)| TrackState {
                id,
                info: None,
                trex: d,
                nal_length_size: None,
                video: false,
                shift: 0,
                next_dts: None,
                encryption: protection
                    .tracks
                    .iter()
                    .find(|(t, _)| *t == id)
                    .map(|(_, e)| e.clone()),
            })
            .collect();
        let mut tracks = Vec::with_capacity(movie.tracks.len());
        for t in movie.tracks {
            let id = t.info.id;
            let s = states.iter_mut().find(|s| s.id == id).ok_or_else(|| {
                Error::malformed("track without trex").context(format!("track {id}"))
            })?;
            s.info = Some(tracks.len());
            s.nal_length_size = t.nal_length_size;
            s.video = t.info.kind == MediaKind::Video;
            s.shift = t.shift;
            tracks.push(t.info);
        }
        Ok(Fmp4Reader {
            opts,
            tracks,
            states,
            pssh: protection.pssh,
        })
    }

    /// Reads a whole fragmented file: `ftyp` + `moov` (with `mvex`, empty sample tables)
    /// followed by fragments, as FFmpeg writes with
    /// `-movflags frag_keyframe+empty_moov+default_base_moof`. Returns the reader (for its
    /// [`Fmp4Reader::tracks`]) and every frame in file order. `base_data_offset`s count from
    /// the start of the file. Default [`Fmp4ReaderOptions`].
    pub fn read_file(file: Bytes) -> Result<(Self, Vec<Frame>)> {
        Self::read_file_with(file, Fmp4ReaderOptions::default())
    }

    /// Like [`Fmp4Reader::read_file`] with explicit limits: at most
    /// [`Fmp4ReaderOptions::max_file_samples`] frames.
    pub fn read_file_with(file: Bytes, opts: Fmp4ReaderOptions) -> Result<(Self, Vec<Frame>)> {
        let mut found = None;
        for b in top_boxes(&file, 0) {
            let b = b.map_err(|e| e.context("fmp4 file"))?;
            match &b.kind {
                b"moov" => {
                    found = Some(b);
                    break;
                }
                b"moof" | b"mdat" => {
                    return Err(Error::malformed("fragment before the moov")
                        .at_offset(b.start as u64)
                        .context("fmp4 file"))
                }
                _ => {}
            }
        }
        let moov = found.ok_or_else(|| Error::malformed("no moov").context("fmp4 file"))?;
        let max = opts.max_file_samples;
        let mut reader = Self::from_moov(&file, &moov, opts).map_err(|e| e.context("fmp4 file"))?;
        let frames = reader
            .read_from(&file, moov.end, max, None)
            .map_err(|e| e.context("fmp4 file"))?;
        Ok((reader, frames))
    }

    /// Like [`Fmp4Reader::read_file`], decrypting the protected tracks as
    /// [`Fmp4Reader::read_segment_decrypted`] does.
    pub fn read_file_decrypted(
        file: Bytes,
        keys: &[(KeyId, ContentKey)],
    ) -> Result<(Self, Vec<Frame>)> {
        let opts = Fmp4ReaderOptions::default();
        let mut found = None;
        for b in top_boxes(&file, 0) {
            let b = b.map_err(|e| e.context("fmp4 file"))?;
            if &b.kind == b"moov" {
                found = Some(b);
                break;
            }
        }
        let moov = found.ok_or_else(|| Error::malformed("no moov").context("fmp4 file"))?;
        let max = opts.max_file_samples;
        let mut reader = Self::from_moov(&file, &moov, opts).map_err(|e| e.context("fmp4 file"))?;
        let frames = reader
            .read_from(&file, moov.end, max, Some(keys))
            .map_err(|e| e.context("fmp4 file"))?;
        Ok((reader, frames))
    }

    /// The protection of `track` (its `sinf`, ISO/IEC 23001-7 §8.2) when its sample entry
    /// is `encv`/`enca`; `None` for a clear or unknown track.
    pub fn encryption(&self, track: TrackId) -> Option<&TrackEncryption> {
        self.states
            .iter()
            .find(|s| s.id == track)
            .and_then(|s| s.encryption.as_ref())
    }

    /// The `pssh` boxes of the init segment's `moov`, in order (ISO/IEC 23001-7 §8.1).
    pub fn pssh(&self) -> &[PsshBox] {
        &self.pssh
    }

    /// The tracks the reader returns frames of, in `moov` order.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// The edit list shift of `track` (ISO/IEC 14496-12 §8.6.6), in its timescale: the
    /// ticks [`crate::container::mp4::Mp4Demuxer`] adds to every `dts` and `pts` (leading
    /// empty edits delay, the first media edit's `media_time` advances). Frames from this
    /// reader carry the times as written; add this to present them as the progressive
    /// reader does. `None` for a track the reader does not return.
    pub fn edit_shift(&self, track: TrackId) -> Option<i64> {
        self.states
            .iter()
            .find(|s| s.id == track && s.info.is_some())
            .map(|s| s.shift)
    }

    /// The decode time, in `track`'s timescale, at which its next fragment continues
    /// when it has no `tfdt`: the end of the last sample read. `None` before any.
    pub fn next_decode_time(&self, track: TrackId) -> Option<u64> {
        self.states
            .iter()
            .find(|s| s.id == track)
            .and_then(|s| s.next_dts)
    }

    /// Reads one media segment, or several back to back: any number of
    /// `(styp | sidx | prft | emsg | free)* moof mdat` groups (ISO/IEC 23000-19 §7.3.2.2).
    /// Returns the frames of the supported tracks in file order, their payloads slicing
    /// `data`. Offsets in errors count from the start of `data`. On error the reader is
    /// unchanged.
    ///
    /// Samples of protected tracks ([`Fmp4Reader::encryption`]) are returned as stored,
    /// encrypted; [`Fmp4Reader::read_segment_decrypted`] decrypts them.
    pub fn read_segment(&mut self, data: Bytes) -> Result<Vec<Frame>> {
        let max = self.opts.max_samples;
        self.read_from(&data, 0, max, None)
            .map_err(|e| e.context("fmp4 segment"))
    }

    /// Like [`Fmp4Reader::read_segment`], decrypting the samples of protected tracks
    /// (ISO/IEC 23001-7 §9, §10): schemes `cenc` (AES-CTR) and `cbcs` (AES-CBC with the
    /// `tenc` pattern), keys looked up in `keys` by the track's `tenc` key id. Each
    /// `traf`'s IVs and subsample tables come from its `senc` (or PIFF's `uuid` `senc`),
    /// else from the entries `saiz` and `saio` locate; a track with a constant IV and no
    /// auxiliary information is protected whole. Decrypted payloads are copies; clear
    /// tracks still slice `data`.
    ///
    /// Errors: a missing key ([`crate::ErrorKind::Crypto`]); another scheme or key
    /// rotation with `seig` sample groups ([`crate::ErrorKind::Unsupported`]); auxiliary
    /// information whose sample count differs from the `traf`'s, that runs past its box,
    /// or whose subsamples do not add up to their sample ([`crate::ErrorKind::Malformed`]).
    pub fn read_segment_decrypted(
        &mut self,
        data: Bytes,
        keys: &[(KeyId, ContentKey)],
    ) -> Result<Vec<Frame>> {
        let max = self.opts.max_samples;
        self.read_from(&data, 0, max, Some(keys))
            .map_err(|e| e.context("fmp4 segment"))
    }

    /// Reads the top-level boxes of `data` from `from`; restores the decode times on error.
    fn read_from(
        &mut self,
        data: &Bytes,
        from: usize,
        max_samples: u32,
        keys: Option<&[(KeyId, ContentKey)]>,
    ) -> Result<Vec<Frame>> {
        let saved: Vec<Option<u64>> = self.states.iter().map(|s| s.next_dts).collect();
        let r = self.read_boxes(data, from, max_samples, keys);
        if r.is_err() {
            for (s, d) in self.states.iter_mut().zip(saved) {
                s.next_dts = d;
            }
        }
        r
    }

    fn read_boxes(
        &mut self,
        data: &Bytes,
        from: usize,
        max_samples: u32,
        keys: Option<&[(KeyId, ContentKey)]>,
    ) -> Result<Vec<Frame>> {
        let mut moofs = Vec::new();
        let mut mdats = Vec::new();
        for b in top_boxes(data, from) {
            let b = b?;
            match &b.kind {
                b"moof" => moofs.push(b),
                b"mdat" => mdats.push((b.body as u64, b.end as u64)),
                b"moov" | b"ftyp" => {
                    return Err(Error::malformed(
                        "ftyp or moov among the fragments (one init segment per reader)",
                    )
                    .at_offset(b.start as u64))
                }
                _ => {}
            }
        }
        let mut call = Call {
            data,
            mdats: Mdats(mdats),
            frames: Vec::new(),
            samples: 0,
            max_samples,
            keys,
        };
        for m in &moofs {
            self.read_moof(&mut call, m)?;
        }
        Ok(call.frames)
    }

    fn read_moof(&mut self, call: &mut Call<'_>, moof: &TopBox) -> Result<()> {
        let body = call.data.slice(moof.body..moof.end);
        let moof_start = moof.start as u64;
        // End of the previous traf's data: the implicit base of the next one (§8.8.7.1).
        let mut prev_end: Option<u64> = None;
        for c in children(body, moof.body as u64) {
            let c = c?;
            if &c.header.kind == b"traf" {
                let end = self.read_traf(call, &c, moof_start, prev_end)?;
                prev_end = Some(end);
            }
        }
        Ok(())
    }

    /// Reads one `traf`; returns the end of its data.
    fn read_traf(
        &mut self,
        call: &mut Call<'_>,
        traf: &Child,
        moof_start: u64,
        prev_end: Option<u64>,
    ) -> Result<u64> {
        let mut tfhd = None;
        let mut tfdt = None;
        let mut truns = Vec::new();
        let mut aux = TrafAux::default();
        for c in traf.children() {
            let c = c?;
            aux.see(&c);
            match &c.header.kind {
                b"tfhd" if tfhd.is_some() => {
                    return Err(Error::malformed("two tfhd in one traf").at_offset(c.offset))
                }
                b"tfhd" => tfhd = Some(c),
                b"tfdt" => tfdt = Some(c),
                b"trun" => truns.push(c),
                _ => {}
            }
        }
        let tfhd =
            tfhd.ok_or_else(|| Error::malformed("traf without tfhd").at_offset(traf.offset))?;
        let at = |e: Error| e.at_offset(tfhd.offset);
        let b = &tfhd.body[..];
        let mut pos = 0;
        let flags = field(b, &mut pos, "tfhd too short").map_err(at)? & 0x00ff_ffff;
        let id = field(b, &mut pos, "tfhd too short").map_err(at)?;
        let ctx = || format!("track {id}");
        let si = self.states.iter().position(|s| s.id == id).ok_or_else(|| {
            Error::malformed("traf of a track without trex")
                .at_offset(tfhd.offset)
                .context(ctx())
        })?;
        let short = "tfhd shorter than its flags say";
        let base_data_offset = if flags & TFHD_BASE_DATA_OFFSET != 0 {
            let v = be64(b, pos).ok_or_else(|| Error::malformed(short).at_offset(tfhd.offset))?;
            pos += 8;
            Some(v)
        } else {
            None
        };
        let trex = self.states[si].trex;
        let mut opt = |bit: u32, default: u32| -> Result<u32> {
            if flags & bit != 0 {
                field(b, &mut pos, short).map_err(|e| e.at_offset(tfhd.offset))
            } else {
                Ok(default)
            }
        };
        let description = opt(TFHD_SAMPLE_DESCRIPTION_INDEX, trex.description)?;
        let d = Defaults {
            description,
            duration: opt(TFHD_DEFAULT_DURATION, trex.duration)?,
            size: opt(TFHD_DEFAULT_SIZE, trex.size)?,
            flags: opt(TFHD_DEFAULT_FLAGS, trex.flags)?,
        };
        let emit = self.states[si].info;
        if emit.is_some() && d.description > 1 {
            return Err(Error::unsupported("sample description index other than 1")
                .at_offset(tfhd.offset)
                .context(ctx()));
        }
        let base = match base_data_offset {
            Some(v) => v,
            None if flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 => moof_start,
            None => prev_end.unwrap_or(moof_start),
        };
        let base_dts = match &tfdt {
            Some(t) => Some(parse_tfdt(t).map_err(|e| e.context(ctx()))?),
            None => None,
        };
        let mut dts = base_dts.or(self.states[si].next_dts);
        let mut pos = base;
        let first_frame = call.frames.len();
        let samples_before = call.samples;
        for (i, trun) in truns.iter().enumerate() {
            let r = self.read_trun(call, si, trun, &d, i == 0, base, &mut pos, &mut dts, flags);
            r.map_err(|e| e.context(ctx()))?;
        }
        let state = &self.states[si];
        if let (Some(keys), Some(enc), Some(_)) = (call.keys, &state.encryption, emit) {
            let count = (call.samples - samples_before) as u32;
            let frames = &mut call.frames[first_frame..];
            decrypt_traf(
                call.data,
                base,
                &aux,
                enc,
                keys,
                frames,
                count,
                state.nal_length_size,
            )
            .map_err(|e| e.context(ctx()))?;
        }
        if let Some(t) = dts {
            self.states[si].next_dts = Some(t);
        }
        Ok(pos)
    }

    /// Reads one `trun` (§8.8.8): `pos` is where its data starts without `data_offset`
    /// and becomes the end of its data; `dts` the decode time of its first sample.
    #[allow(clippy::too_many_arguments)]
    fn read_trun(
        &mut self,
        call: &mut Call<'_>,
        si: usize,
        trun: &Child,
        d: &Defaults,
        first: bool,
        base: u64,
        pos: &mut u64,
        dts: &mut Option<u64>,
        tfhd_flags: u32,
    ) -> Result<()> {
        let at = trun.offset;
        let b = &trun.body[..];
        let mut p = 0;
        let vf = field(b, &mut p, "trun too short").map_err(|e| e.at_offset(at))?;
        let version = vf >> 24;
        let flags = vf & 0x00ff_ffff;
        if version > 1 {
            return Err(Error::unsupported("trun version above 1").at_offset(at));
        }
        let count = field(b, &mut p, "trun too short").map_err(|e| e.at_offset(at))?;
        if count == 0 {
            return Ok(());
        }
        if tfhd_flags & TFHD_DURATION_IS_EMPTY != 0 {
            return Err(
                Error::malformed("samples in a traf marked duration-is-empty").at_offset(at),
            );
        }
        let total = call.samples + u64::from(count);
        if count > call.max_samples || total > u64::from(call.max_samples) {
            return Err(Error::limit("too many samples").at_offset(at));
        }
        let short = "trun shorter than its flags say";
        let data_offset = if flags & TRUN_DATA_OFFSET != 0 {
            Some(field(b, &mut p, short).map_err(|e| e.at_offset(at))? as i32)
        } else {
            None
        };
        let first_flags = if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
            Some(field(b, &mut p, short).map_err(|e| e.at_offset(at))?)
        } else {
            None
        };
        let fields = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO]
            .iter()
            .filter(|&&f| flags & f != 0)
            .count();
        let entry = 4 * fields as u64;
        let left = (b.len() - p) as u64;
        if u64::from(count) * entry > left {
            return Err(Error::malformed("trun sample count exceeds its box").at_offset(at));
        }
        if flags & TRUN_SIZE == 0 && u64::from(count) * u64::from(d.size) > call.data.len() as u64 {
            return Err(Error::malformed("trun sample data exceeds the data").at_offset(at));
        }
        call.samples = total;
        let mut start = match data_offset {
            Some(o) => {
                let s = i128::from(base) + i128::from(o);
                u64::try_from(s).map_err(|_| {
                    Error::malformed("trun data offset before the start of the data").at_offset(at)
                })?
            }
            None if first => base,
            None => *pos,
        };
        let mut t = dts.ok_or_else(|| {
            Error::malformed("traf without tfdt and no earlier decode time for the track")
                .at_offset(at)
        })?;
        let state = &self.states[si];
        let emit = state.info.map(|i| &self.tracks[i]);
        let video = state.video;
        // A protected track being decrypted is made canonical after decryption: the
        // subsample tables count the stored bytes.
        let nal_length_size = if call.keys.is_some() && state.encryption.is_some() {
            None
        } else {
            state.nal_length_size
        };
        if emit.is_some() {
            // Bounded by the limit and by the bytes the entries or payloads take; frames
            // of zero-byte samples with zero-byte entries grow the vector as they come.
            let bytes = (b.len() - p) as u64 + call.data.len() as u64;
            call.frames.reserve(u64::from(count).min(bytes) as usize);
        }
        for i in 0..count {
            let mut get = |bit: u32, default: u32| -> u32 {
                if flags & bit != 0 {
                    // In range: count * entry <= left was checked.
                    let v = be32(b, p).unwrap_or(0);
                    p += 4;
                    v
                } else {
                    default
                }
            };
            let duration = get(TRUN_DURATION, d.duration);
            let size = get(TRUN_SIZE, d.size);
            let mut sflags = get(TRUN_FLAGS, d.flags);
            let cto = get(TRUN_CTO, 0) as i32;
            if i == 0 {
                if let Some(f) = first_flags {
                    sflags = f;
                }
            }
            let sample = || format!("sample {}", i + 1);
            let end = start
                .checked_add(u64::from(size))
                .filter(|&e| call.mdats.contains(start, e))
                .ok_or_else(|| {
                    Error::malformed("sample data outside the mdat")
                        .at_offset(at)
                        .context(sample())
                })?;
            if let Some(info) = emit {
                let too_late = || {
                    Error::limit("decode time beyond 63 bits")
                        .at_offset(at)
                        .context(sample())
                };
                let dts_i = i64::try_from(t).map_err(|_| too_late())?;
                let pts = dts_i.checked_add(i64::from(cto)).ok_or_else(too_late)?;
                // In range: `mdats` are ranges of `data`.
                let payload = call.data.slice(start as usize..end as usize);
                let payload = match nal_length_size {
                    Some(n) => nal::to_canonical(payload, n)
                        .map_err(|e| e.at_offset(start).context(sample()))?,
                    None => payload,
                };
                let scale = info.timescale;
                call.frames.push(
                    Frame::new(
                        info.id,
                        Timestamp::new(dts_i, scale),
                        Timestamp::new(pts, scale),
                        payload,
                    )
                    .with_duration(Timestamp::new(i64::from(duration), scale))
                    .with_flags(frame_flags(sflags, video)),
                );
            }
            t = t.checked_add(u64::from(duration)).ok_or_else(|| {
                Error::limit("decode time beyond 64 bits")
                    .at_offset(at)
                    .context(sample())
            })?;
            start = end;
        }
        *pos = start;
        *dts = Some(t);
        Ok(())
    }
}

/// `trex` (§8.8.3): track id and defaults.
fn parse_trex(t: &Child) -> Result<(TrackId, Defaults)> {
    let b = &t.body[..];
    let short = || Error::malformed("trex too short").at_offset(t.offset);
    let v = |at: usize| be32(b, at).ok_or_else(short);
    let id = v(4)?;
    Ok((
        id,
        Defaults {
            description: v(8)?,
            duration: v(12)?,
            size: v(16)?,
            flags: v(20)?,
        },
    ))
}

/// `tfdt` (§8.8.12): the base media decode time.
fn parse_tfdt(t: &Child) -> Result<u64> {
    let b = &t.body[..];
    let short = || Error::malformed("tfdt too short").at_offset(t.offset);
    let vf = be32(b, 0).ok_or_else(short)?;
    match vf >> 24 {
        0 => be32(b, 4).map(u64::from).ok_or_else(short),
        1 => be64(b, 4).ok_or_else(short),
        _ => Err(Error::unsupported("tfdt version above 1").at_offset(t.offset)),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::super::Fmp4Writer;
    use super::*;
    use crate::media::{AacConfig, CodecConfig, H264Config};
    use crate::time::Timescale;
    use crate::ErrorKind;

    use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P as SPS};

    fn video_track(id: u32) -> TrackInfo {
        let cfg = H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .unwrap();
        TrackInfo::new(id, Timescale::new(90_000).unwrap(), CodecConfig::H264(cfg))
    }

    fn audio_track(id: u32) -> TrackInfo {
        let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        TrackInfo::new(id, Timescale::new(48_000).unwrap(), CodecConfig::Aac(aac))
    }

    fn init_of(track: &TrackInfo) -> Bytes {
        let mut out = BytesMut::new();
        Fmp4Writer::new(track.clone())
            .unwrap()
            .init_segment(&mut out)
            .unwrap();
        out.freeze()
    }

    fn nal(n: u8, len: usize) -> Bytes {
        let mut v = (len as u32).to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(n, len));
        Bytes::from(v)
    }

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut b = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        b.extend_from_slice(body);
        boxed(kind, &b)
    }

    #[test]
    fn writer_output_reads_back() {
        let track = video_track(3);
        let mut w = Fmp4Writer::new(track.clone()).unwrap();
        let mut reader = Fmp4Reader::new(init_of(&track)).unwrap();
        let t = &reader.tracks()[0];
        assert_eq!(
            (t.id, t.timescale, &t.config),
            (3, track.timescale, &track.config)
        );
        assert_eq!(t.name.as_deref(), Some("VideoHandler"));
        let s = track.timescale;
        let mk = |dts: i64, pts: i64, key: bool, n: u8| {
            let f = Frame::new(
                3,
                Timestamp::new(dts, s),
                Timestamp::new(pts, s),
                nal(n, 5 + n as usize),
            );
            if key {
                f.with_flags(FrameFlags::KEYFRAME)
            } else {
                f.with_flags(FrameFlags::DISPOSABLE)
            }
        };
        let frames = vec![
            mk(0, 7200, true, 1),
            mk(3600, 3600, false, 2),
            mk(7200, 10800, false, 3),
        ];
        let mut seg = BytesMut::new();
        w.media_segment(&frames, 1, Some(Timestamp::new(10800, s)), &mut seg)
            .unwrap();
        let seg = seg.freeze();
        let read = reader.read_segment(seg.clone()).unwrap();
        assert_eq!(read.len(), 3);
        for (r, f) in read.iter().zip(&frames) {
            assert_eq!(
                (r.track, r.dts, r.pts, r.flags),
                (f.track, f.dts, f.pts, f.flags)
            );
            assert_eq!(r.data, f.data);
            assert_eq!(r.duration, Some(Timestamp::new(3600, s)));
            // Zero copy: the payload points into the segment.
            let at = r.data.as_ptr() as usize - seg.as_ptr() as usize;
            assert!(at < seg.len());
        }
        assert_eq!(reader.next_decode_time(3), Some(10800));
        assert_eq!(reader.edit_shift(3), Some(0));
    }

    /// A hand-built fragment with every optional field: two trafs (one implicit base after
    /// the other), two truns (the second continuing without data_offset), tfhd defaults,
    /// first_sample_flags, tfdt version 0, trun version 0, and a traf without tfdt
    /// continuing the previous decode time.
    #[test]
    fn optional_fields_and_implicit_bases() {
        let audio = audio_track(2);
        let mut reader = Fmp4Reader::new(init_of(&audio)).unwrap();
        // moof: mfhd, traf(tfhd flags base-data-offset | default duration | default size |
        // default flags; tfdt v0; trun v0 count 2 with first_sample_flags, sizes; trun
        // count 1, no data offset, no fields).
        let mut tfhd = Vec::new();
        tfhd.extend_from_slice(&2u32.to_be_bytes());
        tfhd.extend_from_slice(&0u64.to_be_bytes()); // base_data_offset: patched below
        tfhd.extend_from_slice(&1024u32.to_be_bytes()); // default duration
        tfhd.extend_from_slice(&3u32.to_be_bytes()); // default size
        tfhd.extend_from_slice(&FLAG_NON_SYNC.to_be_bytes()); // default flags
        let tfhd_flags =
            TFHD_BASE_DATA_OFFSET | TFHD_DEFAULT_DURATION | TFHD_DEFAULT_SIZE | TFHD_DEFAULT_FLAGS;
        let tfdt = full(b"tfdt", 0, 0, &5000u32.to_be_bytes());
        let mut trun1 = Vec::new();
        trun1.extend_from_slice(&2u32.to_be_bytes());
        trun1.extend_from_slice(&0u32.to_be_bytes()); // first_sample_flags: sync
        trun1.extend_from_slice(&4u32.to_be_bytes()); // size 4
        trun1.extend_from_slice(&2u32.to_be_bytes()); // size 2
        let trun1 = full(b"trun", 0, TRUN_FIRST_SAMPLE_FLAGS | TRUN_SIZE, &trun1);
        let trun2 = full(b"trun", 0, 0, &1u32.to_be_bytes());
        let build = |bdo: u64| {
            let mut t = tfhd.clone();
            t[4..12].copy_from_slice(&bdo.to_be_bytes());
            let mut traf = full(b"tfhd", 0, tfhd_flags, &t);
            traf.extend_from_slice(&tfdt);
            traf.extend_from_slice(&trun1);
            traf.extend_from_slice(&trun2);
            let mut moof = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
            moof.extend(boxed(b"traf", &traf));
            boxed(b"moof", &moof)
        };
        let styp = boxed(b"styp", b"msdhxxxxmsdh");
        let moof_len = build(0).len();
        let mdat_body: Vec<u8> = (1..=9).collect();
        let bdo = (styp.len() + moof_len + 8) as u64;
        let mut seg = styp.clone();
        seg.extend(build(bdo));
        seg.extend(boxed(b"mdat", &mdat_body));
        let read = reader.read_segment(Bytes::from(seg)).unwrap();
        let got: Vec<(i64, bool, Vec<u8>)> = read
            .iter()
            .map(|f| (f.dts.ticks(), f.is_keyframe(), f.data.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (5000, true, vec![1, 2, 3, 4]),
                (6024, false, vec![5, 6]),
                (7048, false, vec![7, 8, 9]),
            ]
        );
        // A traf without tfdt continues at 8072.
        let mut traf = full(
            b"tfhd",
            0,
            TFHD_DEFAULT_BASE_IS_MOOF | TFHD_DEFAULT_DURATION,
            &{
                let mut t = 2u32.to_be_bytes().to_vec();
                t.extend_from_slice(&10u32.to_be_bytes());
                t
            },
        );
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend_from_slice(&0i32.to_be_bytes()); // data offset: patched
        body.extend_from_slice(&1u32.to_be_bytes()); // size
        let trun = full(b"trun", 1, TRUN_DATA_OFFSET | TRUN_SIZE, &body);
        traf.extend_from_slice(&trun);
        let moof = boxed(b"moof", &boxed(b"traf", &traf));
        let off = (moof.len() + 8) as i32;
        let mut seg = moof.clone();
        let p = seg.len() - 8;
        seg[p..p + 4].copy_from_slice(&off.to_be_bytes());
        seg.extend(boxed(b"mdat", &[42]));
        let read = reader.read_segment(Bytes::from(seg.clone())).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].dts.ticks(), &read[0].data[..]), (8072, &[42][..]));
        assert_eq!(reader.next_decode_time(2), Some(8082));

        // Errors leave the reader as it was; a fresh reader has no decode time to continue.
        let mut fresh = Fmp4Reader::new(init_of(&audio)).unwrap();
        let e = fresh.read_segment(Bytes::from(seg.clone())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(e.to_string().contains("without tfdt"), "{e}");
        // data_offset one past the mdat.
        let mut bad = seg.clone();
        bad[p..p + 4].copy_from_slice(&(off + 1).to_be_bytes());
        let e = reader.read_segment(Bytes::from(bad)).unwrap_err();
        assert!(e.to_string().contains("outside the mdat"), "{e}");
        assert_eq!(reader.next_decode_time(2), Some(8082));
    }

    #[test]
    fn malformed_segments_are_typed_errors() {
        let track = audio_track(1);
        let init = init_of(&track);
        let mut w = Fmp4Writer::new(track.clone()).unwrap();
        let s = track.timescale;
        let frames: Vec<Frame> = (0..4)
            .map(|i| {
                let t = Timestamp::new(i * 1024, s);
                Frame::new(1, t, t, Bytes::from(vec![i as u8; 7]))
            })
            .collect();
        let mut seg = BytesMut::new();
        let info = w.media_segment(&frames, 1, None, &mut seg).unwrap();
        let seg = seg.to_vec();
        let mut r = Fmp4Reader::new(init.clone()).unwrap();
        assert_eq!(r.read_segment(Bytes::from(seg.clone())).unwrap().len(), 4);

        let kind = |data: Vec<u8>| {
            Fmp4Reader::new(init.clone())
                .unwrap()
                .read_segment(Bytes::from(data))
                .unwrap_err()
                .kind()
        };
        // Truncated in the moof and in the mdat.
        assert_eq!(
            kind(seg[..info.moof_offset + 20].to_vec()),
            ErrorKind::Malformed
        );
        assert_eq!(kind(seg[..seg.len() - 3].to_vec()), ErrorKind::Malformed);
        let trun = seg.windows(4).position(|w| w == b"trun").unwrap();
        // Sample count beyond the limit, then beyond the box.
        let mut huge = seg.clone();
        huge[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(kind(huge), ErrorKind::Limit);
        let mut big = seg.clone();
        big[trun + 8..trun + 12].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(kind(big), ErrorKind::Malformed);
        // data_offset past the mdat.
        let mut past = seg.clone();
        past[trun + 12..trun + 16].copy_from_slice(&100_000i32.to_be_bytes());
        assert_eq!(kind(past), ErrorKind::Malformed);
        // Unknown track id.
        let tfhd = seg.windows(4).position(|w| w == b"tfhd").unwrap();
        let mut unknown = seg.clone();
        unknown[tfhd + 8..tfhd + 12].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(kind(unknown), ErrorKind::Malformed);
        // trun version 2.
        let mut v2 = seg.clone();
        v2[trun + 4] = 2;
        assert_eq!(kind(v2), ErrorKind::Unsupported);
        // An init segment handed as a media segment.
        assert_eq!(kind(init.to_vec()), ErrorKind::Malformed);
        // A media segment handed as an init segment.
        let e = Fmp4Reader::new(Bytes::from(seg.clone())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        // Decode time beyond 63 bits.
        let tfdt = seg.windows(4).position(|w| w == b"tfdt").unwrap();
        let mut late = seg.clone();
        late[tfdt + 8..tfdt + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(kind(late), ErrorKind::Limit);
    }

    #[test]
    fn init_without_mvex_or_with_samples_is_refused() {
        let init = init_of(&audio_track(1)).to_vec();
        let mvex = init.windows(4).position(|w| w == b"mvex").unwrap();
        let mut no = init.clone();
        no[mvex..mvex + 4].copy_from_slice(b"free");
        let e = Fmp4Reader::new(Bytes::from(no)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(e.to_string().contains("mvex"), "{e}");
        let e = Fmp4Reader::new(Bytes::from_static(b"\0\0\0\x08free")).unwrap_err();
        assert!(e.to_string().contains("no moov"), "{e}");
        // trex of another track.
        let trex = init.windows(4).position(|w| w == b"trex").unwrap();
        let mut other = init.clone();
        other[trex + 8..trex + 12].copy_from_slice(&5u32.to_be_bytes());
        let e = Fmp4Reader::new(Bytes::from(other)).unwrap_err();
        assert!(e.to_string().contains("without trex"), "{e}");
    }

    /// Two trafs of one track in one moof, neither with a base flag: the first's base is the
    /// moof, the second's the end of the first's data (§8.8.7.1); the second has no tfdt
    /// and continues the first's decode time. Its trun has no data_offset either.
    #[test]
    fn second_traf_continues_after_the_first() {
        let audio = audio_track(4);
        let mut reader = Fmp4Reader::new(init_of(&audio)).unwrap();
        let traf = |tfdt: Option<u64>, sizes: &[u32], data_offset: Option<i32>| {
            let mut t = full(b"tfhd", 0, TFHD_DEFAULT_DURATION, &{
                let mut b = 4u32.to_be_bytes().to_vec();
                b.extend_from_slice(&100u32.to_be_bytes());
                b
            });
            if let Some(d) = tfdt {
                t.extend(full(b"tfdt", 1, 0, &d.to_be_bytes()));
            }
            let mut body = (sizes.len() as u32).to_be_bytes().to_vec();
            let mut flags = TRUN_SIZE;
            if let Some(o) = data_offset {
                flags |= TRUN_DATA_OFFSET;
                body.extend_from_slice(&o.to_be_bytes());
            }
            for s in sizes {
                body.extend_from_slice(&s.to_be_bytes());
            }
            t.extend(full(b"trun", 0, flags, &body));
            boxed(b"traf", &t)
        };
        let moof_of = |off: i32| {
            let mut m = traf(Some(1000), &[2, 1], Some(off));
            m.extend(traf(None, &[3], None));
            boxed(b"moof", &m)
        };
        let len = moof_of(0).len() as i32;
        let mut seg = moof_of(len + 8);
        seg.extend(boxed(b"mdat", &[1, 1, 2, 3, 3, 3]));
        let read = reader.read_segment(Bytes::from(seg)).unwrap();
        let got: Vec<(i64, Vec<u8>)> = read
            .iter()
            .map(|f| (f.dts.ticks(), f.data.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![(1000, vec![1, 1]), (1100, vec![2]), (1200, vec![3, 3, 3])]
        );
        assert_eq!(reader.next_decode_time(4), Some(1300));
    }

    #[test]
    fn two_byte_nal_lengths_become_canonical() {
        // An avcC with lengthSizeMinusOne = 1.
        let track = video_track(1);
        let mut init = init_of(&track).to_vec();
        let avcc = init.windows(4).position(|w| w == b"avcC").unwrap();
        init[avcc + 8] = 0xfd; // reserved bits + lengthSizeMinusOne 1
        let mut reader = Fmp4Reader::new(Bytes::from(init)).unwrap();
        let mut w = Fmp4Writer::new(track.clone()).unwrap();
        let s = track.timescale;
        let f = Frame::new(
            1,
            Timestamp::new(0, s),
            Timestamp::new(0, s),
            Bytes::from_static(&[0, 2, 0x65, 0x88]),
        )
        .with_flags(FrameFlags::KEYFRAME);
        let mut seg = BytesMut::new();
        w.media_segment(&[f], 1, Some(Timestamp::new(3000, s)), &mut seg)
            .unwrap();
        let read = reader.read_segment(seg.freeze()).unwrap();
        assert_eq!(&read[0].data[..], &[0, 0, 0, 2, 0x65, 0x88]);
        // Bad framing is an error.
        let mut seg = BytesMut::new();
        let f = Frame::new(
            1,
            Timestamp::new(3000, s),
            Timestamp::new(3000, s),
            Bytes::from_static(&[0, 9, 0x65]),
        );
        w.media_segment(&[f], 2, Some(Timestamp::new(6000, s)), &mut seg)
            .unwrap();
        let e = reader.read_segment(seg.freeze()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
    }
}
