//! [`FlvDemuxer`]: FLV bytes (or RTMP-style tags) in, frames and events out.

use std::collections::VecDeque;
use std::mem;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use tracing::debug;

use super::codec::{
    frame_type, AudioCodec, AudioTagHeader, PacketKind, VideoCodec, VideoTagHeader,
};
use super::script::{FlvMetadata, ScriptData};
use super::tag::{
    FlvHeader, TagHeader, TagType, HEADER_LEN, MAX_DATA_SIZE, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN,
};
use crate::bitstream::nal;
use crate::error::{Error, Result};
use crate::media::{
    AacConfig, CodecConfig, Event, Frame, FrameFlags, H264Config, H265Config, Item, TrackId,
    TrackInfo,
};
use crate::pipeline::Stage;
use crate::time::{Rollover, Timescale, Timestamp};

/// Track id of the video track of an FLV stream.
pub const VIDEO_TRACK: TrackId = 1;
/// Track id of the audio track of an FLV stream.
pub const AUDIO_TRACK: TrackId = 2;

/// What the byte input of a [`FlvDemuxer`] looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Framing {
    /// A file: the FLV header, `PreviousTagSize0`, then `tag, PreviousTagSize` pairs.
    #[default]
    File,
    /// `tag, PreviousTagSize` pairs without a file header.
    Tags,
}

/// What the demuxer does when a `PreviousTagSize` is not 11 + `DataSize` of its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PreviousTagSizePolicy {
    /// Accept the tag and log once at debug level: some writers get the field wrong
    /// and players ignore it.
    #[default]
    Tolerate,
    /// Return a malformed error for the tag (the tag is dropped; polling may continue).
    Strict,
}

/// Options of a [`FlvDemuxer`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FlvDemuxerOptions {
    /// Whether the input starts with a file header. Default: [`Framing::File`].
    pub framing: Framing,
    /// A frame more than this after the previous audio/video frame is preceded by
    /// [`Event::Discontinuity`]. Default: 10 s.
    pub max_forward_jump: Timestamp,
    /// A frame more than this before the previous audio/video frame (or before the
    /// previous frame of its own track) is preceded by [`Event::Discontinuity`].
    /// Default: 1 s.
    pub max_backward_jump: Timestamp,
    /// Largest tag body accepted, in bytes; a larger `DataSize` is a limit error that
    /// stops the demuxer. Default and maximum: [`MAX_DATA_SIZE`] (16 MiB - 1).
    pub max_tag_size: u32,
    /// `PreviousTagSize` checking. Default: [`PreviousTagSizePolicy::Tolerate`].
    pub previous_tag_size: PreviousTagSizePolicy,
}

impl Default for FlvDemuxerOptions {
    fn default() -> Self {
        FlvDemuxerOptions {
            framing: Framing::File,
            max_forward_jump: Timestamp::from_secs(10),
            max_backward_jump: Timestamp::from_secs(1),
            max_tag_size: MAX_DATA_SIZE,
            previous_tag_size: PreviousTagSizePolicy::Tolerate,
        }
    }
}

#[derive(Debug, Default)]
struct TrackState {
    config: Option<CodecConfig>,
    last_dts: Option<i64>,
    /// A skip (no config, unsupported codec) was logged already.
    logged_skip: bool,
}

impl TrackState {
    fn skip(&mut self, what: &'static str) {
        if !self.logged_skip {
            self.logged_skip = true;
            debug!("flv demuxer: {what}");
        }
    }
}

/// Incremental FLV demuxer: a [`Stage`] from input bytes to [`Item`]s.
///
/// Accepts the input in chunks of any size (one byte at a time works) and parses tags
/// lazily in [`Stage::poll`]. Payloads are zero-copy slices of the pushed [`Bytes`];
/// a tag that spans chunks is copied once, when it completes. At most one tag is
/// buffered, and memory grows only as its bytes arrive.
///
/// Output (E.4 of the Adobe FLV v10.1 specification, Enhanced RTMP v2):
/// * video is track [`VIDEO_TRACK`] (1), audio [`AUDIO_TRACK`] (2), both in
///   milliseconds ([`Timescale::MILLIS`]); the 32-bit tag clock is unwrapped once;
/// * an AVC or HEVC sequence header (legacy `CodecID` 7 or 12, Enhanced `avc1`/`hvc1`)
///   yields [`Event::TrackAdded`], and [`Event::TrackChanged`] when it differs from the
///   current one; an AAC `AudioSpecificConfig` likewise;
/// * coded frames become [`Frame`]s with `pts = dts + CompositionTime`, video payloads
///   in canonical 4-byte length-prefixed form, keyframes flagged from `FrameType` 1
///   (every AAC frame is a keyframe);
/// * script tags become [`Event::Data`] with the handler name and the raw body;
///   `onMetaData` (also inside `@setDataFrame`) is kept, see [`FlvDemuxer::metadata`];
/// * a timestamp jump beyond the options' thresholds yields
///   [`Event::Discontinuity`] before the frame;
/// * [`Stage::finish`] yields [`Event::EndOfStream`].
///
/// Skipped with one debug log per track: frames before their sequence header, audio
/// codecs other than AAC and legacy video codecs other than AVC/HEVC (nothing is output
/// for that track). Ignored: end-of-sequence, command and Enhanced metadata packets.
/// Unknown tag types are skipped.
///
/// Errors carry the byte offset of the tag. A problem inside one tag (malformed
/// codec configuration or NAL framing, malformed AMF0 script data, the `Filter`
/// encryption bit, an Enhanced codec other than `avc1`/`hvc1`) is returned for that
/// tag, which is dropped; polling may continue. A bad file header or a tag larger than
/// [`FlvDemuxerOptions::max_tag_size`] stops the demuxer: later pushes are usage errors.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::ingest::flv::{write_tag, FlvDemuxer, FlvHeader, TagType};
/// use strom::media::{Event, Item};
/// use strom::pipeline::Stage;
///
/// let mut file = BytesMut::new();
/// FlvHeader::new(true, false).write(&mut file);
/// write_tag(TagType::Audio, 0, &[0xaf, 0, 0x12, 0x10], &mut file).unwrap(); // AAC-LC 44.1 kHz stereo
/// write_tag(TagType::Audio, 23, &[0xaf, 1, 0x21, 0x10], &mut file).unwrap();
///
/// let mut demux = FlvDemuxer::new();
/// let mut items = Vec::new();
/// for chunk in file.chunks(7) {
///     demux.push(Bytes::copy_from_slice(chunk)).unwrap();
///     while let Some(item) = demux.poll() {
///         items.push(item.unwrap());
///     }
/// }
/// demux.finish().unwrap();
/// while let Some(item) = demux.poll() {
///     items.push(item.unwrap());
/// }
/// assert!(matches!(items[0], Item::Event(Event::TrackAdded(_))));
/// let frame = items[1].as_frame().unwrap();
/// assert_eq!((frame.track, frame.dts.ticks(), &frame.data[..]), (2, 23, &[0x21, 0x10][..]));
/// assert_eq!(items[2], Item::Event(Event::EndOfStream));
/// ```
#[derive(Debug)]
pub struct FlvDemuxer {
    opts: FlvDemuxerOptions,
    back_ms: i64,
    fwd_ms: i64,
    header: Option<FlvHeader>,
    header_done: bool,
    /// Bytes still to skip (header padding and `PreviousTagSize0`).
    skip: u64,
    /// Unparsed input after `partial`.
    cur: Bytes,
    /// The start of an incomplete unit (header or tag), copied from earlier chunks.
    partial: BytesMut,
    /// Absolute offset of the next unit (the first byte of `partial`, or of `cur`).
    pos: u64,
    out: VecDeque<Item>,
    clock: Rollover,
    last_media: Option<i64>,
    video: TrackState,
    audio: TrackState,
    metadata: Option<FlvMetadata>,
    logged_prev_size: bool,
    /// `poll` ran out of input since the last push.
    starved: bool,
    finished: bool,
    eos_queued: bool,
    failed: bool,
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvDemuxer {
    /// A demuxer for an FLV file, with default options.
    pub fn new() -> Self {
        Self::with_options(FlvDemuxerOptions::default())
    }
    /// A demuxer for tags without a file header (`tag, PreviousTagSize, ...` bytes, or
    /// whole tags through [`FlvDemuxer::push_tag`]), with default options.
    pub fn without_header() -> Self {
        Self::with_options(FlvDemuxerOptions {
            framing: Framing::Tags,
            ..FlvDemuxerOptions::default()
        })
    }
    /// A demuxer with `opts`.
    pub fn with_options(opts: FlvDemuxerOptions) -> Self {
        let back_ms = opts.max_backward_jump.as_millis().max(0);
        let fwd_ms = opts.max_forward_jump.as_millis().max(0);
        let header_done = opts.framing == Framing::Tags;
        FlvDemuxer {
            opts,
            back_ms,
            fwd_ms,
            header: None,
            header_done,
            skip: 0,
            cur: Bytes::new(),
            partial: BytesMut::new(),
            pos: 0,
            out: VecDeque::new(),
            clock: Rollover::new(32),
            last_media: None,
            video: TrackState::default(),
            audio: TrackState::default(),
            metadata: None,
            logged_prev_size: false,
            starved: true,
            finished: false,
            eos_queued: false,
            failed: false,
        }
    }
    /// The options in use.
    pub fn options(&self) -> &FlvDemuxerOptions {
        &self.opts
    }
    /// The file header, once parsed.
    pub fn header(&self) -> Option<&FlvHeader> {
        self.header.as_ref()
    }
    /// The latest `onMetaData` seen (also inside `@setDataFrame`), if any.
    pub fn metadata(&self) -> Option<&FlvMetadata> {
        self.metadata.as_ref()
    }
    /// The current configuration of the video track.
    pub fn video_config(&self) -> Option<&CodecConfig> {
        self.video.config.as_ref()
    }
    /// The current configuration of the audio track.
    pub fn audio_config(&self) -> Option<&CodecConfig> {
        self.audio.config.as_ref()
    }
    /// Input bytes consumed by complete units so far (the offset of the next tag).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Demuxes one whole tag, as RTMP delivers them (one message = one tag body).
    ///
    /// `timestamp_ms` is the 32-bit message timestamp. Outputs are queued for
    /// [`Stage::poll`]; errors are those of a tag in the byte input (the tag is dropped
    /// and the demuxer continues). Usage error after [`Stage::finish`], after a fatal
    /// error, or while bytes of a partial tag pushed with [`Stage::push`] are buffered.
    pub fn push_tag(&mut self, kind: TagType, timestamp_ms: u32, body: Bytes) -> Result<()> {
        self.check_open()?;
        if !self.partial.is_empty() || !self.cur.is_empty() {
            return Err(Error::usage(
                "FlvDemuxer::push_tag while pushed bytes are buffered",
            ));
        }
        let offset = self.pos;
        self.pos += (TAG_HEADER_LEN + body.len() + PREVIOUS_TAG_SIZE_LEN) as u64;
        if body.len() > self.opts.max_tag_size as usize {
            return Err(
                Error::limit("FLV tag larger than the configured maximum").at_offset(offset)
            );
        }
        let range = 0..body.len();
        self.process(kind, false, timestamp_ms, &body, range)
            .map_err(|e| tag_error(e, offset))
    }

    fn check_open(&self) -> Result<()> {
        if self.finished {
            return Err(Error::usage("FlvDemuxer: input after finish"));
        }
        if self.failed {
            return Err(Error::usage("FlvDemuxer: input after a fatal error"));
        }
        Ok(())
    }

    fn fatal(&mut self, e: Error) -> Error {
        self.failed = true;
        self.cur = Bytes::new();
        self.partial = BytesMut::new();
        e
    }

    /// The buffered start of the current unit.
    fn pending(&self) -> &[u8] {
        if self.partial.is_empty() {
            &self.cur
        } else {
            &self.partial
        }
    }

    /// Makes the first `n` bytes of the current unit available in [`Self::pending`];
    /// false when more input is needed.
    fn fill(&mut self, n: usize) -> bool {
        if self.partial.is_empty() {
            if self.cur.len() >= n {
                return true;
            }
            // A short tail: start a partial unit (the only copy of these bytes).
            self.partial.extend_from_slice(&self.cur);
            self.cur = Bytes::new();
            return false;
        }
        let have = self.partial.len();
        if have < n {
            let take = (n - have).min(self.cur.len());
            self.partial.extend_from_slice(&self.cur[..take]);
            self.cur.advance(take);
        }
        self.partial.len() >= n
    }

    /// Consumes `n` bytes of the current unit (after [`Self::fill`] returned true).
    fn consume(&mut self, n: usize) {
        self.pos += n as u64;
        if self.partial.is_empty() {
            self.cur.advance(n);
        } else {
            let _ = self.partial.split_to(n);
        }
    }

    /// Parses the next unit. `Ok(false)` when more input is needed.
    fn step(&mut self) -> Result<bool> {
        if self.skip > 0 {
            let n = self.skip.min(self.cur.len() as u64);
            self.cur.advance(n as usize);
            self.pos += n;
            self.skip -= n;
            if self.skip > 0 {
                return Ok(false);
            }
        }
        if !self.header_done {
            if !self.fill(HEADER_LEN) {
                // Reject a wrong signature as soon as it is visible.
                if let Err(e) = FlvHeader::parse(self.pending()) {
                    return Err(self.fatal(e));
                }
                return Ok(false);
            }
            let h = match FlvHeader::parse(self.pending()) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(false),
                Err(e) => return Err(self.fatal(e)),
            };
            self.consume(HEADER_LEN);
            self.skip = u64::from(h.data_offset) - HEADER_LEN as u64 + PREVIOUS_TAG_SIZE_LEN as u64;
            self.header = Some(h);
            self.header_done = true;
            return Ok(true);
        }
        if !self.fill(TAG_HEADER_LEN) {
            return Ok(false);
        }
        let Some(th) = TagHeader::parse(self.pending()) else {
            return Ok(false);
        };
        if th.data_size > self.opts.max_tag_size {
            let e = Error::limit("FLV tag larger than the configured maximum").at_offset(self.pos);
            return Err(self.fatal(e));
        }
        let need = th.wire_len();
        if !self.fill(need) {
            return Ok(false);
        }
        let offset = self.pos;
        let body = TAG_HEADER_LEN..TAG_HEADER_LEN + th.data_size as usize;
        // Borrow the unit's bytes without a refcount round trip: payloads are sliced
        // from it directly.
        let (unit, from_cur) = if self.partial.is_empty() {
            (mem::take(&mut self.cur), true)
        } else {
            (self.partial.split_to(need).freeze(), false)
        };
        let p = &unit[need - PREVIOUS_TAG_SIZE_LEN..need];
        let prev = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        let result = if prev as usize != TAG_HEADER_LEN + th.data_size as usize {
            self.previous_tag_size_mismatch(prev, offset)
        } else {
            Ok(())
        }
        .and_then(|()| self.process(th.tag_type, th.filter, th.timestamp, &unit, body));
        if from_cur {
            self.cur = unit;
            self.cur.advance(need);
        }
        self.pos += need as u64;
        result.map_err(|e| tag_error(e, offset))?;
        Ok(true)
    }

    fn previous_tag_size_mismatch(&mut self, prev: u32, offset: u64) -> Result<()> {
        match self.opts.previous_tag_size {
            PreviousTagSizePolicy::Strict => Err(Error::malformed(
                "FLV PreviousTagSize does not match its tag",
            )),
            PreviousTagSizePolicy::Tolerate => {
                if !self.logged_prev_size {
                    self.logged_prev_size = true;
                    debug!(
                        offset,
                        prev, "flv demuxer: PreviousTagSize does not match its tag (tolerated)"
                    );
                }
                Ok(())
            }
        }
    }

    /// Interprets one tag whose body is `unit[body]`.
    fn process(
        &mut self,
        kind: TagType,
        filter: bool,
        ts: u32,
        unit: &Bytes,
        body: Range<usize>,
    ) -> Result<()> {
        if filter {
            return Err(Error::unsupported("encrypted FLV tag (Filter bit set)"));
        }
        match kind {
            TagType::Video => self.video_tag(ts, unit, body),
            TagType::Audio => self.audio_tag(ts, unit, body),
            TagType::Script => self.script_tag(ts, unit, body),
            TagType::Other(t) => {
                debug!(tag_type = t, "flv demuxer: skipping tag of unknown type");
                Ok(())
            }
        }
    }

    fn video_tag(&mut self, ts: u32, unit: &Bytes, body: Range<usize>) -> Result<()> {
        let h = VideoTagHeader::parse(&unit[body.clone()])?;
        let Some(codec) = h.codec else {
            return Ok(()); // Enhanced command frame.
        };
        let payload = body.start + h.header_len..body.end;
        match (codec, h.kind) {
            (VideoCodec::Av1 | VideoCodec::Vp9 | VideoCodec::FourCc(_), _) => Err(
                Error::unsupported("FLV video codec not supported (only avc1 and hvc1)"),
            ),
            (VideoCodec::Legacy(_), _) => {
                self.video
                    .skip("legacy video codec not supported; video skipped");
                Ok(())
            }
            (VideoCodec::Avc | VideoCodec::Hevc, PacketKind::SequenceHeader) => {
                if let Some(cur) = &self.video.config {
                    let same = match (cur, codec) {
                        (CodecConfig::H264(c), VideoCodec::Avc) => {
                            c.record[..] == unit[payload.clone()]
                        }
                        (CodecConfig::H265(c), VideoCodec::Hevc) => {
                            c.record[..] == unit[payload.clone()]
                        }
                        _ => false,
                    };
                    if same {
                        return Ok(());
                    }
                }
                let record = unit.slice(payload);
                let cfg = if codec == VideoCodec::Avc {
                    CodecConfig::H264(H264Config::from_avcc(record)?)
                } else {
                    CodecConfig::H265(H265Config::from_hvcc(record)?)
                };
                self.announce(VIDEO_TRACK, cfg);
                Ok(())
            }
            (VideoCodec::Avc | VideoCodec::Hevc, PacketKind::Frame) => {
                let nal_length_size = match (&self.video.config, codec) {
                    (Some(CodecConfig::H264(c)), VideoCodec::Avc) => c.nal_length_size,
                    (Some(CodecConfig::H265(c)), VideoCodec::Hevc) => c.nal_length_size,
                    (None, _) => {
                        self.video
                            .skip("video frames before a sequence header are skipped");
                        return Ok(());
                    }
                    (Some(_), _) => {
                        self.video.skip(
                            "video frames of another codec than the sequence header are skipped",
                        );
                        return Ok(());
                    }
                };
                let data = nal::to_canonical(unit.slice(payload), nal_length_size)?;
                let dts = self.media_time(VIDEO_TRACK, ts);
                let pts = dts.saturating_add(i64::from(h.composition_time));
                let mut flags = FrameFlags::NONE;
                if h.is_keyframe() {
                    flags = flags.union(FrameFlags::KEYFRAME);
                } else if h.frame_type == frame_type::DISPOSABLE {
                    flags = flags.union(FrameFlags::DISPOSABLE);
                }
                let frame = Frame::new(VIDEO_TRACK, ms(dts), ms(pts), data).with_flags(flags);
                self.out.push_back(Item::Frame(frame));
                Ok(())
            }
            // End of sequence, command, Enhanced metadata, other packet types.
            _ => Ok(()),
        }
    }

    fn audio_tag(&mut self, ts: u32, unit: &Bytes, body: Range<usize>) -> Result<()> {
        let h = AudioTagHeader::parse(&unit[body.clone()])?;
        if h.codec != AudioCodec::Aac {
            self.audio.skip("audio codec other than AAC; audio skipped");
            return Ok(());
        }
        let payload = body.start + h.header_len..body.end;
        match h.kind {
            PacketKind::SequenceHeader => {
                if let Some(CodecConfig::Aac(c)) = &self.audio.config {
                    if c.asc[..] == unit[payload.clone()] {
                        return Ok(());
                    }
                }
                let cfg = AacConfig::from_asc(unit.slice(payload))?;
                self.announce(AUDIO_TRACK, CodecConfig::Aac(cfg));
                Ok(())
            }
            PacketKind::Frame => {
                if !matches!(self.audio.config, Some(CodecConfig::Aac(_))) {
                    self.audio
                        .skip("AAC frames before a sequence header are skipped");
                    return Ok(());
                }
                let dts = ms(self.media_time(AUDIO_TRACK, ts));
                let frame = Frame::new(AUDIO_TRACK, dts, dts, unit.slice(payload))
                    .with_flags(FrameFlags::KEYFRAME);
                self.out.push_back(Item::Frame(frame));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn script_tag(&mut self, ts: u32, unit: &Bytes, body: Range<usize>) -> Result<()> {
        let sd = ScriptData::parse(&unit[body.clone()])?;
        if let Some(m) = sd.metadata {
            self.metadata = Some(m);
        }
        // Script tags do not move the media clock (servers stamp them 0 mid-stream).
        let at = self.clock.clone().unwrap(u64::from(ts));
        self.out.push_back(Item::Event(Event::Data {
            at: ms(at),
            name: sd.name,
            payload: unit.slice(body),
        }));
        Ok(())
    }

    fn track_mut(&mut self, id: TrackId) -> &mut TrackState {
        if id == VIDEO_TRACK {
            &mut self.video
        } else {
            &mut self.audio
        }
    }

    /// Queues `TrackAdded` (first configuration) or `TrackChanged` for `id`.
    fn announce(&mut self, id: TrackId, cfg: CodecConfig) {
        let key = if id == VIDEO_TRACK {
            "videodatarate"
        } else {
            "audiodatarate"
        };
        let bitrate = self.metadata.as_ref().and_then(|m| m.bitrate(key));
        let slot = self.track_mut(id);
        if slot.config.as_ref() == Some(&cfg) {
            return;
        }
        let changed = slot.config.is_some();
        slot.config = Some(cfg.clone());
        let mut info = TrackInfo::new(id, Timescale::MILLIS, cfg);
        info.bitrate = bitrate;
        self.out.push_back(Item::Event(if changed {
            Event::TrackChanged(info)
        } else {
            Event::TrackAdded(info)
        }));
    }

    /// Unwraps a frame's tag timestamp and queues a discontinuity when it jumps.
    fn media_time(&mut self, id: TrackId, raw: u32) -> i64 {
        let t = self.clock.unwrap(u64::from(raw));
        let (back, fwd) = (self.back_ms, self.fwd_ms);
        let global = self
            .last_media
            .is_some_and(|l| t < l.saturating_sub(back) || t > l.saturating_add(fwd));
        let own = self
            .track_mut(id)
            .last_dts
            .is_some_and(|l| t < l.saturating_sub(back));
        if global || own {
            debug!(
                from = self.last_media,
                to = t,
                "flv demuxer: timestamp discontinuity"
            );
            self.out
                .push_back(Item::Event(Event::Discontinuity { track: None }));
            self.video.last_dts = None;
            self.audio.last_dts = None;
        }
        self.last_media = Some(t);
        self.track_mut(id).last_dts = Some(t);
        t
    }

    /// Input ended: queues `EndOfStream`; an error if a unit was left incomplete.
    fn end_of_input(&mut self) -> Result<()> {
        self.eos_queued = true;
        self.out.push_back(Item::Event(Event::EndOfStream));
        let leftover = !self.partial.is_empty() || !self.cur.is_empty() || self.skip > 0;
        self.partial = BytesMut::new();
        self.cur = Bytes::new();
        if leftover && !self.failed {
            let msg = if self.header_done && self.skip == 0 {
                "truncated FLV tag"
            } else {
                "truncated FLV header"
            };
            return Err(Error::malformed(msg).at_offset(self.pos));
        }
        Ok(())
    }
}

/// Milliseconds as a timestamp.
fn ms(t: i64) -> Timestamp {
    Timestamp::new(t, Timescale::MILLIS)
}

/// Gives a tag-level error the offset of its tag (replacing an offset relative to the
/// body, which the caller could not interpret).
fn tag_error(e: Error, tag_offset: u64) -> Error {
    if e.offset().is_some() {
        Error::new(e.kind(), e.message().to_owned()).at_offset(tag_offset)
    } else {
        e.at_offset(tag_offset)
    }
}

impl Stage for FlvDemuxer {
    type In = Bytes;
    type Out = Item;

    /// Appends a chunk of input. Usage error after `finish` or a fatal error.
    fn push(&mut self, input: Bytes) -> Result<()> {
        self.check_open()?;
        if input.is_empty() {
            return Ok(());
        }
        self.starved = false;
        if self.cur.is_empty() {
            self.cur = input;
        } else {
            // The caller pushed again without polling until `None`: join the chunks.
            let mut joined = BytesMut::with_capacity(self.cur.len() + input.len());
            joined.extend_from_slice(&self.cur);
            joined.extend_from_slice(&input);
            self.cur = joined.freeze();
        }
        Ok(())
    }

    /// The next frame or event, parsing the next complete tag when needed.
    fn poll(&mut self) -> Option<Result<Item>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(Ok(item));
            }
            if self.eos_queued || self.failed {
                return None;
            }
            match self.step() {
                Ok(true) => {}
                Ok(false) => {
                    self.starved = true;
                    if !self.finished {
                        return None;
                    }
                    if let Err(e) = self.end_of_input() {
                        return Some(Err(e));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// End of input. Returns a malformed error ("truncated FLV tag" / "truncated FLV
    /// header", with the offset of the incomplete unit) when input ended inside a unit;
    /// [`Event::EndOfStream`] is queued either way. If complete tags were left unpolled,
    /// the error comes from `poll` after them instead.
    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if self.failed {
            self.eos_queued = true;
            self.out.push_back(Item::Event(Event::EndOfStream));
            return Ok(());
        }
        if self.starved {
            return self.end_of_input();
        }
        Ok(())
    }
}
