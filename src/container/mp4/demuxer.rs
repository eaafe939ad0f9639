//! [`Mp4Demuxer`]: the sans-IO state machine that reads a progressive MP4.

use std::collections::VecDeque;

use bytes::Bytes;

use super::header::{scan_box_header, MAX_HEADER_LEN};
use super::sample_table::{Cursor, Sample};
use super::track::{parse_moov, MoovLimits, Track};
use super::Mp4Options;
use crate::bitstream::nal;
use crate::error::{Error, Result};
use crate::media::{Event, Frame, FrameFlags, Item, TrackInfo};
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
        let Some(p) = self.pending else {
            return Err(Error::usage("supply without an outstanding read request"));
        };
        if offset != p.req.offset || data.len() < p.req.len {
            return Err(Error::usage("supplied range differs from the read request"));
        }
        self.pending = None;
        let data = data.slice(..p.req.len);
        let r = match self.state {
            State::Scan { pos, boxes } => self.on_header(pos, boxes, &data),
            State::Moov => self.on_moov(offset, data),
            State::Streaming => {
                self.on_samples(offset, data, p.samples);
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
        let data = if s.size == 0 {
            Bytes::new()
        } else {
            let wi = self.window_of(&s)?;
            let w = &mut self.windows[wi];
            let start = (s.offset - w.offset) as usize;
            let data = w.data.slice(start..start + s.size as usize);
            w.remaining = w.remaining.saturating_sub(1);
            if w.remaining == 0 {
                self.buffered = self.buffered.saturating_sub(w.data.len());
                self.windows.swap_remove(wi);
            }
            data
        };
        match self.emit(ti, s, data) {
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

    fn on_samples(&mut self, offset: u64, data: Bytes, samples: u32) {
        self.buffered += data.len();
        self.windows.push(Window {
            offset,
            data,
            remaining: samples,
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
