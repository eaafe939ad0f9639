//! [`Mp4Demuxer`]: the sans-IO state machine that reads a progressive MP4.

use std::collections::VecDeque;

use bytes::Bytes;

use super::header::{scan_box_header, MAX_HEADER_LEN};
use super::sample_table::{Cursor, Sample};
use super::track::{parse_moov, MoovLimits, Track};
use super::Mp4Options;
use crate::bitstream::nal;
use crate::error::{Error, Result};
use crate::media::{Event, Frame, FrameFlags, Item, TrackId, TrackInfo};
use crate::time::Timestamp;

/// Most top-level boxes scanned while looking for `moov`.
const MAX_TOP_LEVEL_BOXES: u32 = 1 << 20;

/// A range of the file the host should read and hand back with [`Mp4Demuxer::supply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ReadRequest {
    /// Absolute byte offset in the file.
    pub offset: u64,
    /// Number of bytes to read (never 0, never past the file size given at construction).
    pub len: usize,
}

impl ReadRequest {
    /// The offset one past the last requested byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len as u64
    }
}

/// A sample inside the outstanding [`ReadRequest`] that comes out of the demuxer byte for
/// byte, as the data of its frame ([`Mp4Demuxer::read_samples`]): a host may transform
/// these bytes in place before [`Mp4Demuxer::supply_transformed`], such as encrypting
/// them ([`crate::package::VodPackager::encrypt_in_place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ReadSample {
    /// The sample's track.
    pub track: TrackId,
    /// The sample's 0-based number in its track.
    pub index: u32,
    /// Where the sample starts, from the start of the read.
    pub start: usize,
    /// Its length in bytes (never 0).
    pub len: usize,
}

impl ReadSample {
    /// Its byte range within the read.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// Samples per track [`Mp4Demuxer::read_samples`] looks through for one read: a bound on
/// the work for files whose chunks are far out of order (the samples it does not reach
/// come out untransformed, as ever).
const MAX_READ_SAMPLE_WALK: u32 = 1 << 16;

#[derive(Debug)]
enum State {
    /// Reading top-level box headers at `pos`, looking for `moov`.
    Scan { pos: u64, boxes: u32 },
    /// Waiting for the whole `moov` box.
    Moov,
    /// Emitting frames.
    Streaming,
    /// `EndOfStream` emitted.
    Done,
    /// An error was returned; nothing more comes.
    Failed,
}

/// One file range with the sample data of one or more chunks.
#[derive(Debug)]
struct Window {
    offset: u64,
    data: Bytes,
    /// Samples inside not yet emitted; the window is dropped at 0.
    remaining: u32,
    /// The samples the host transformed in place ([`Mp4Demuxer::supply_transformed`]),
    /// as (track position, sample index), sorted; their frames are flagged
    /// [`FrameFlags::TRANSFORMED`].
    transformed: Vec<(usize, u32)>,
    /// Their byte ranges in the file, sorted (they do not overlap): no other sample
    /// that shares their bytes comes out of this run.
    transformed_ranges: Vec<(u64, u64)>,
}

impl Window {
    /// Whether `s` is one of the transformed samples, or an error when it shares bytes
    /// with one.
    fn transformed(&self, ti: usize, s: &Sample) -> Result<bool> {
        if self.transformed.binary_search(&(ti, s.index)).is_ok() {
            return Ok(true);
        }
        let end = s.offset + u64::from(s.size);
        let i = self.transformed_ranges.partition_point(|r| r.1 <= s.offset);
        match self.transformed_ranges.get(i) {
            Some(r) if r.0 < end => Err(Error::malformed(
                "a sample shares bytes with a sample transformed in place",
            )
            .at_offset(s.offset)),
            _ => Ok(false),
        }
    }
}

impl Window {
    fn contains(&self, offset: u64, size: u32) -> bool {
        offset >= self.offset && offset + u64::from(size) <= self.offset + self.data.len() as u64
    }
}

/// A chunk of any track in file order, for merging adjacent chunks into one read.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    len: u64,
    samples: u32,
}

#[derive(Debug)]
struct TrackState {
    track: Track,
    cursor: Cursor,
    next: Option<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    req: ReadRequest,
    samples: u32,
}

/// Sans-IO progressive MP4 demuxer (ISO/IEC 14496-12, codecs per ISO/IEC 14496-15 and
/// 14496-3): tells the host which byte ranges to read and turns them into [`Item`]s.
///
/// The host owns the file. Drive it like this: poll items until `None`, then ask what to
/// read; supply exactly that range; repeat until [`Mp4Demuxer::poll_read`] returns
/// `None`, which after draining the items only happens once [`Event::EndOfStream`] (or
/// an error) has been returned.
///
/// 1. Top-level box headers are requested one by one ([`super::scan_box_header`]) until
///    `moov` is found, before or after `mdat` (`+faststart` or not); then the whole
///    `moov` is requested (at most [`Mp4Options::max_moov_size`]).
/// 2. The `moov` is parsed and validated (sample tables consistent, every sample inside
///    the file, counts within limits). One [`Event::TrackAdded`] per supported track
///    follows, in `trak` order: H.264 (`avc1`/`avc3` with `avcC`), H.265 (`hvc1`/`hev1`
///    with `hvcC`), AAC (`mp4a` with an `esds` AudioSpecificConfig) and Opus (`Opus` with
///    `dOps`). Other tracks are skipped (logged at debug level), and so are tracks whose
///    sample description is missing or broken; when no track is left, the error is the
///    first such problem, or [`crate::ErrorKind::Unsupported`]. Track ids are the MP4
///    `track_ID`s, timescales the `mdhd` timescales, languages the `mdhd` language
///    (`und` becomes `None`), names the `udta`/`name` or the `hdlr` name.
/// 3. Frames follow in decode-time order across tracks (ties: lower file offset first).
///    Sample data is requested in runs of whole chunks, adjacent chunks of any track
///    merged up to [`Mp4Options::read_size`]; frames slice the supplied [`Bytes`]
///    (video is converted to 4-byte NAL length prefixes, a copy only when the file uses
///    1- or 2-byte prefixes). A run is dropped once all its samples are emitted.
/// 4. [`Event::EndOfStream`] after the last frame.
///
/// Times: `dts` accumulates `stts` in 64 bits; `pts = dts + ctts` (version 0 offsets read
/// as signed 32-bit, as FFmpeg does); both then get the edit list shift: leading empty
/// edits delay the track, and the first media edit's `media_time` is subtracted, so the
/// first presented sample is at 0 and `dts` may start negative (what FFmpeg reports).
/// Further edits are not applied. `duration` is the `stts` delta (FFmpeg reports the last
/// sample's duration cut to the end of the edit instead); the keyframe flag comes from
/// `stss` (every sample is sync without `stss`).
///
/// After an error (returned by [`Mp4Demuxer::supply`] or [`Mp4Demuxer::poll_item`]) the
/// demuxer is failed: it requests and yields nothing more.
#[derive(Debug)]
pub struct Mp4Demuxer {
    file_size: u64,
    opts: Mp4Options,
    state: State,
    deferred: Option<Error>,
    pending: Option<Pending>,
    tracks: Vec<TrackState>,
    infos: Vec<TrackInfo>,
    events: VecDeque<Event>,
    spans: Vec<Span>,
    windows: Vec<Window>,
    buffered: usize,
    /// What [`Mp4Demuxer::read_samples`] listed for the outstanding read.
    listed: Option<(ReadRequest, Vec<(usize, Sample)>)>,
}

impl Mp4Demuxer {
    /// A demuxer for a file of `file_size` bytes, with default [`Mp4Options`].
    pub fn new(file_size: u64) -> Self {
        Self::with_options(file_size, Mp4Options::default())
    }

    /// A demuxer for a file of `file_size` bytes.
    pub fn with_options(file_size: u64, opts: Mp4Options) -> Self {
        let mut d = Mp4Demuxer {
            file_size,
            opts,
            state: State::Scan { pos: 0, boxes: 0 },
            deferred: None,
            pending: None,
            tracks: Vec::new(),
            infos: Vec::new(),
            events: VecDeque::new(),
            spans: Vec::new(),
            windows: Vec::new(),
            buffered: 0,
            listed: None,
        };
        if let Err(e) = d.scan_at(0, 0) {
            d.deferred = Some(e);
        }
        d
    }

    /// The file size given at construction.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The supported tracks, once the `moov` has been parsed (empty before).
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.infos
    }

    /// Whether [`Event::EndOfStream`] has been emitted or the demuxer failed.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// The byte range the demuxer needs next, or `None` when it needs nothing: items are
    /// ready ([`Mp4Demuxer::poll_item`]), or the stream is finished. Asking again
    /// without supplying returns the same request.
    pub fn poll_read(&mut self) -> Option<ReadRequest> {
        if let Some(p) = self.pending {
            return Some(p.req);
        }
        if !matches!(self.state, State::Streaming)
            || !self.events.is_empty()
            || self.deferred.is_some()
        {
            return None;
        }
        let ti = self.pick()?;
        let s = self.tracks[ti].next?;
        if s.size == 0 || self.window_of(&s).is_some() {
            return None;
        }
        let p = self.plan_read(ti, &s);
        self.pending = Some(p);
        Some(p.req)
    }

    /// Hands over the bytes of the range last returned by [`Mp4Demuxer::poll_read`]:
    /// `offset` must be the requested offset and `data` at least the requested length
    /// (extra bytes are ignored). A mismatch is a [`crate::ErrorKind::Usage`] error that
    /// leaves the demuxer as it was; parse errors fail the demuxer.
    pub fn supply(&mut self, offset: u64, data: Bytes) -> Result<()> {
        self.supply_inner(offset, data, false)
    }

    /// The samples of the outstanding read ([`Mp4Demuxer::poll_read`]) that will come
    /// out byte for byte, each as the whole data of its frame, by track and in sample
    /// order within a track: those of
    /// audio tracks and of video tracks with 4-byte NAL length prefixes (other prefix
    /// sizes are rewritten, a copy), not yet emitted, not empty, wholly inside the read.
    /// Empty without an outstanding sample read.
    ///
    /// A host that transforms these bytes in place before handing the read over with
    /// [`Mp4Demuxer::supply_transformed`] gets their frames flagged
    /// [`FrameFlags::TRANSFORMED`], and the frame data is the very memory it transformed
    /// (the same address: the [`Bytes`] made from its buffer, sliced). Samples of other
    /// tracks, and those of tracks whose chunks lie far out of order in the file that this
    /// walk does not reach, are not listed and come out as read.
    ///
    /// ```
    /// use strom::container::mp4::Mp4Demuxer;
    ///
    /// let mut d = Mp4Demuxer::new(1000);
    /// assert!(d.read_samples().is_empty()); // nothing read yet: no sample request
    /// ```
    pub fn read_samples(&mut self) -> Vec<ReadSample> {
        let listed = self.listed_samples();
        let base = self.pending.map_or(0, |p| p.req.offset);
        let out = listed
            .iter()
            .map(|(ti, s)| ReadSample {
                track: self.tracks[*ti].track.info.id,
                index: s.index,
                start: (s.offset - base) as usize,
                len: s.size as usize,
            })
            .collect();
        // Kept for supply_transformed: the same read lists the same samples.
        self.listed = self.pending.map(|p| (p.req, listed));
        out
    }

    /// [`Mp4Demuxer::supply`], for a read whose [`Mp4Demuxer::read_samples`] the host
    /// transformed in place (all of them): their frames carry [`FrameFlags::TRANSFORMED`].
    /// Same arguments and errors as [`Mp4Demuxer::supply`].
    pub fn supply_transformed(&mut self, offset: u64, data: Bytes) -> Result<()> {
        self.supply_inner(offset, data, true)
    }

    /// The samples [`Mp4Demuxer::read_samples`] lists, as (track position, sample).
    fn listed_samples(&self) -> Vec<(usize, Sample)> {
        let Some(p) = self.pending else {
            return Vec::new();
        };
        if !matches!(self.state, State::Streaming) {
            return Vec::new();
        }
        let (start, end) = (p.req.offset, p.req.end());
        // Every sample of every track wholly inside the read that the walk reaches, as
        // (track position, sample, listable).
        let mut inside: Vec<(usize, Sample, bool)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            let byte_for_byte = matches!(t.track.nal_length_size, None | Some(4));
            let (Some(mut s), mut cursor) = (t.next, t.cursor) else {
                continue;
            };
            for _ in 0..MAX_READ_SAMPLE_WALK {
                if s.offset >= end {
                    break;
                }
                if s.size > 0 && s.offset >= start && s.offset + u64::from(s.size) <= end {
                    // A sample also inside an earlier read comes out from there, or from
                    // here untransformed.
                    let listable = byte_for_byte && self.window_of(&s).is_none();
                    inside.push((ti, s, listable));
                }
                match t.track.table.next(&mut cursor) {
                    Ok(Some(n)) => s = n,
                    _ => break,
                }
            }
        }
        // Samples sharing bytes (a hostile file) would be transformed twice, or one
        // through the other: none of them is listed.
        inside.sort_unstable_by_key(|(ti, s, _)| (s.offset, *ti));
        // Sorted by start: a sample overlaps an earlier one when it starts before the
        // furthest end so far, a later one when it ends after the next start.
        let mut reach = 0u64;
        for i in 0..inside.len() {
            let (a, b) = (
                inside[i].1.offset,
                inside[i].1.offset + u64::from(inside[i].1.size),
            );
            let next_start = inside.get(i + 1).map_or(u64::MAX, |x| x.1.offset);
            if a < reach || b > next_start {
                inside[i].2 = false;
            }
            reach = reach.max(b);
        }
        let mut out: Vec<(usize, Sample)> = inside
            .into_iter()
            .filter(|x| x.2)
            .map(|(ti, s, _)| (ti, s))
            .collect();
        out.sort_unstable_by_key(|(ti, s)| (*ti, s.index));
        out
    }

    fn supply_inner(&mut self, offset: u64, data: Bytes, transformed: bool) -> Result<()> {
        let Some(p) = self.pending else {
            return Err(Error::usage("supply without an outstanding read request"));
        };
        if offset != p.req.offset || data.len() < p.req.len {
            return Err(Error::usage("supplied range differs from the read request"));
        }
        let mut listed = Vec::new();
        if transformed {
            listed = match self.listed.take() {
                Some((req, l)) if req == p.req => l,
                _ => self.listed_samples(),
            };
        }
        self.listed = None;
        self.pending = None;
        let data = data.slice(..p.req.len);
        let r = match self.state {
            State::Scan { pos, boxes } => self.on_header(pos, boxes, &data),
            State::Moov => self.on_moov(offset, data),
            State::Streaming => {
                self.on_samples(offset, data, p.samples, listed);
                Ok(())
            }
            State::Done | State::Failed => Err(Error::usage("supply after the end of the stream")),
        };
        if let Err(e) = &r {
            if e.kind() != crate::ErrorKind::Usage {
                self.fail();
            }
        }
        r
    }

    /// The next item, or `None` when the demuxer needs data ([`Mp4Demuxer::poll_read`])
    /// or is finished.
    pub fn poll_item(&mut self) -> Option<Result<Item>> {
        if let Some(e) = self.deferred.take() {
            self.fail();
            return Some(Err(e));
        }
        if !matches!(self.state, State::Streaming) {
            return None;
        }
        if let Some(e) = self.events.pop_front() {
            return Some(Ok(Item::Event(e)));
        }
        let Some(ti) = self.pick() else {
            self.state = State::Done;
            self.windows.clear();
            self.buffered = 0;
            return Some(Ok(Item::Event(Event::EndOfStream)));
        };
        let s = self.tracks[ti].next?;
        let mut transformed = false;
        let data = if s.size == 0 {
            Bytes::new()
        } else {
            let wi = self.window_of(&s)?;
            let w = &mut self.windows[wi];
            let start = (s.offset - w.offset) as usize;
            let data = w.data.slice(start..start + s.size as usize);
            if !w.transformed.is_empty() {
                match w.transformed(ti, &s) {
                    Ok(t) => transformed = t,
                    Err(e) => {
                        self.fail();
                        return Some(Err(e));
                    }
                }
            }
            w.remaining = w.remaining.saturating_sub(1);
            if w.remaining == 0 {
                self.buffered = self.buffered.saturating_sub(w.data.len());
                self.windows.swap_remove(wi);
            }
            data
        };
        match self.emit(ti, s, data) {
            Ok(f) if transformed => {
                let flags = f.flags.union(FrameFlags::TRANSFORMED);
                Some(Ok(Item::Frame(f.with_flags(flags))))
            }
            Ok(f) => Some(Ok(Item::Frame(f))),
            Err(e) => {
                self.fail();
                Some(Err(e))
            }
        }
    }

    /// Demuxes a whole in-memory file: drives the state machine, slicing `file` for each
    /// request (no copy), and returns every item through [`Event::EndOfStream`].
    /// For tests and tools; servers drive [`Mp4Demuxer`] over their own IO.
    pub fn read_all(file: Bytes) -> Result<Vec<Item>> {
        let mut d = Mp4Demuxer::new(file.len() as u64);
        let mut out = Vec::new();
        loop {
            while let Some(item) = d.poll_item() {
                out.push(item?);
            }
            let Some(req) = d.poll_read() else {
                break;
            };
            let start = req.offset as usize;
            let data = file.slice(start..start + req.len);
            d.supply(req.offset, data)?;
        }
        Ok(out)
    }

    /// Heap bytes of the sample index (tables and the chunk list).
    #[cfg(test)]
    pub(crate) fn index_heap_bytes(&self) -> usize {
        self.tracks
            .iter()
            .map(|t| t.track.table.heap_bytes())
            .sum::<usize>()
            + self.spans.capacity() * std::mem::size_of::<Span>()
    }

    fn fail(&mut self) {
        self.state = State::Failed;
        self.pending = None;
        self.listed = None;
        self.windows.clear();
        self.events.clear();
        self.buffered = 0;
    }

    /// Requests the top-level box header at `pos`.
    fn scan_at(&mut self, pos: u64, boxes: u32) -> Result<()> {
        if pos >= self.file_size {
            return Err(Error::malformed("no moov box in the file"));
        }
        if boxes >= MAX_TOP_LEVEL_BOXES {
            return Err(Error::limit("too many top-level boxes before moov"));
        }
        let len = (self.file_size - pos).min(MAX_HEADER_LEN as u64) as usize;
        self.state = State::Scan { pos, boxes };
        self.pending = Some(Pending {
            req: ReadRequest { offset: pos, len },
            samples: 0,
        });
        Ok(())
    }

    fn on_header(&mut self, pos: u64, boxes: u32, data: &[u8]) -> Result<()> {
        let h = scan_box_header(data)
            .map_err(|e| e.at_offset(pos))?
            .ok_or_else(|| {
                Error::malformed("truncated box header at the end of the file").at_offset(pos)
            })?;
        let remaining = self.file_size - pos;
        let total = h.total_size(remaining);
        if total > remaining {
            return Err(Error::malformed("box runs past the end of the file")
                .context(format!("box '{}'", h.kind_str()))
                .at_offset(pos));
        }
        if &h.kind == b"moov" {
            if total > self.opts.max_moov_size {
                return Err(Error::limit("moov larger than the moov size limit").at_offset(pos));
            }
            let len =
                usize::try_from(total).map_err(|_| Error::limit("moov does not fit in memory"))?;
            self.state = State::Moov;
            self.pending = Some(Pending {
                req: ReadRequest { offset: pos, len },
                samples: 0,
            });
            return Ok(());
        }
        tracing::debug!(kind = %h.kind_str(), pos, size = total, "mp4 top-level box skipped");
        self.scan_at(pos + total, boxes + 1)
    }

    fn on_moov(&mut self, pos: u64, moov: Bytes) -> Result<()> {
        let header_len = scan_box_header(&moov)?.map_or(8, |h| h.header_len as usize);
        let body = moov.slice(header_len.min(moov.len())..);
        let movie = parse_moov(
            body,
            pos + header_len as u64,
            MoovLimits {
                max_samples: self.opts.max_samples,
                max_sample_size: self.opts.max_sample_size,
                file_size: self.file_size,
            },
        )
        .map_err(|e| e.context(format!("moov at offset {pos}")))?;
        let mut spans = Vec::new();
        for t in &movie.tracks {
            let mut c = t.table.cursor();
            let mut chunk = None;
            while let Some(s) = t.table.next(&mut c)? {
                if chunk != Some(s.chunk) {
                    chunk = Some(s.chunk);
                    spans.push(Span {
                        offset: s.offset,
                        len: 0,
                        samples: 0,
                    });
                }
                if let Some(sp) = spans.last_mut() {
                    sp.len += u64::from(s.size);
                    sp.samples += 1;
                }
            }
        }
        spans.sort_by_key(|s| s.offset);
        self.spans = spans;
        for t in movie.tracks {
            let mut cursor = t.table.cursor();
            let next = t.table.next(&mut cursor)?;
            self.infos.push(t.info.clone());
            self.events.push_back(Event::TrackAdded(t.info.clone()));
            self.tracks.push(TrackState {
                track: t,
                cursor,
                next,
            });
        }
        self.state = State::Streaming;
        Ok(())
    }

    fn on_samples(&mut self, offset: u64, data: Bytes, samples: u32, listed: Vec<(usize, Sample)>) {
        self.buffered += data.len();
        // listed_samples gives them by track, then sample.
        let transformed = listed.iter().map(|(ti, s)| (*ti, s.index)).collect();
        let mut transformed_ranges: Vec<(u64, u64)> = listed
            .iter()
            .map(|(_, s)| (s.offset, s.offset + u64::from(s.size)))
            .collect();
        transformed_ranges.sort_unstable();
        self.windows.push(Window {
            offset,
            data,
            remaining: samples,
            transformed,
            transformed_ranges,
        });
        // Runs whose samples were partly taken from other runs (overlapping chunks in a
        // hostile file) never reach zero: bound both bytes and count.
        let max_windows = 16 + 4 * self.tracks.len();
        if self.buffered > self.opts.max_buffered || self.windows.len() > max_windows {
            // Keep only runs some track reads from right now; the rest is read again later.
            let nexts: Vec<Sample> = self.tracks.iter().filter_map(|t| t.next).collect();
            let mut buffered = 0;
            self.windows.retain(|w| {
                let keep = nexts.iter().any(|s| w.contains(s.offset, s.size));
                if keep {
                    buffered += w.data.len();
                }
                keep
            });
            self.buffered = buffered;
        }
    }

    /// The track whose next sample comes first in decode order (ties: file offset).
    fn pick(&self) -> Option<usize> {
        let mut best: Option<(usize, Timestamp, u64)> = None;
        for (i, t) in self.tracks.iter().enumerate() {
            let Some(s) = t.next else { continue };
            let dts = Timestamp::new(s.dts.saturating_add(t.track.shift), t.track.info.timescale);
            let better = match best {
                None => true,
                Some((_, bd, bo)) => dts < bd || (dts == bd && s.offset < bo),
            };
            if better {
                best = Some((i, dts, s.offset));
            }
        }
        best.map(|b| b.0)
    }

    fn window_of(&self, s: &Sample) -> Option<usize> {
        self.windows
            .iter()
            .position(|w| w.contains(s.offset, s.size))
    }

    /// One read covering `s` and what follows it in its chunk, then adjacent chunks of
    /// any track, up to `read_size` bytes (at least the sample itself).
    fn plan_read(&self, ti: usize, s: &Sample) -> Pending {
        let table = &self.tracks[ti].track.table;
        let max = self.opts.read_size as u64;
        let start = s.offset;
        let mut end = start + u64::from(s.size);
        let mut samples = 1u32;
        let mut whole_chunk = true;
        for k in 1..=s.left_in_chunk {
            let size = u64::from(table.size_of(s.index.saturating_add(k)));
            if end + size - start > max {
                whole_chunk = false;
                break;
            }
            end += size;
            samples += 1;
        }
        if whole_chunk {
            let mut i = self.spans.partition_point(|sp| sp.offset < end);
            while let Some(sp) = self.spans.get(i) {
                if sp.offset != end || end + sp.len - start > max {
                    break;
                }
                end += sp.len;
                samples = samples.saturating_add(sp.samples);
                i += 1;
            }
        }
        Pending {
            req: ReadRequest {
                offset: start,
                len: (end - start) as usize,
            },
            samples,
        }
    }

    fn emit(&mut self, ti: usize, s: Sample, data: Bytes) -> Result<Frame> {
        let t = &mut self.tracks[ti];
        t.next = t.track.table.next(&mut t.cursor)?;
        let info = &t.track.info;
        let ctx = || format!("track {} sample {}", info.id, s.index + 1);
        let data = match t.track.nal_length_size {
            Some(n) => {
                nal::to_canonical(data, n).map_err(|e| e.at_offset(s.offset).context(ctx()))?
            }
            None => data,
        };
        let scale = info.timescale;
        let dts = s.dts.saturating_add(t.track.shift);
        let pts = dts.saturating_add(i64::from(s.cts));
        let flags = if s.sync {
            FrameFlags::KEYFRAME
        } else {
            FrameFlags::NONE
        };
        Ok(Frame::new(
            info.id,
            Timestamp::new(dts, scale),
            Timestamp::new(pts, scale),
            data,
        )
        .with_duration(Timestamp::new(i64::from(s.duration), scale))
        .with_flags(flags))
    }
}
