//! [`FlvDemuxer`]: FLV bytes (or RTMP-style tags) in, frames and events out.

use std::collections::VecDeque;
use std::mem;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use tracing::debug;

use super::codec::{
    frame_type, AudioCodec, AudioTagHeader, PacketKind, VideoCodec, VideoTagHeader,
};
use super::cue::{CuePointReader, CuePointStats};
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

/// Most bytes reserved for a partial unit beyond those that have arrived.
const RESERVE_AHEAD: usize = 256 << 10;

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
/// a tag that spans chunks is copied once into a buffer of its own. At most one tag
/// is buffered, and that buffer grows as the tag's bytes arrive (reserving at most
/// 256 KiB ahead of them, whatever `DataSize` claims).
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
///   an `onCuePoint` that carries an ad marker (a SCTE 35 section, or a cue-out /
///   cue-in marker) becomes [`Event::Cue`] instead, on the 90 kHz timeline (see
///   [`CuePointReader`]; malformed markers stay data, see [`FlvDemuxer::cue_stats`]);
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
    cues: CuePointReader,
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
            cues: CuePointReader::new(),
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
    /// What the `onCuePoint` tags read so far gave: cues, malformed markers (kept as
    /// [`Event::Data`]), cues placed at their tag time because their section was on
    /// another clock.
    pub fn cue_stats(&self) -> CuePointStats {
        self.cues.stats()
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
                return true; // the fast path: the unit lies in one chunk
            }
            if self.cur.is_empty() {
                return false;
            }
        }
        let have = self.partial.len();
        if have < n {
            let take = (n - have).min(self.cur.len());
            // Reserve for the rest of the unit up to a fixed bound, so that a unit
            // spanning chunks is copied once, while a hostile size reserves at most
            // the bound before its bytes arrive.
            if self.partial.capacity() - have < take {
                self.partial
                    .reserve((n - have).min(RESERVE_AHEAD).max(take));
            }
            self.partial.extend_from_slice(&self.cur[..take]);
            self.cur.advance(take);
            if self.cur.is_empty() {
                self.cur = Bytes::new(); // release the chunk
            }
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
        if sd.name == "onCuePoint" {
            if let Some(cue) = self.cues.read(&unit[body.clone()], at) {
                self.out.push_back(Item::Event(Event::Cue(cue)));
                return Ok(());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::amf0::{self, Value};
    use crate::ingest::flv::test_util::*;
    use crate::ErrorKind;

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    fn events(items: &[Item]) -> Vec<&Event> {
        items.iter().filter_map(Item::as_event).collect()
    }
    fn frames(items: &[Item]) -> Vec<&Frame> {
        items.iter().filter_map(Item::as_frame).collect()
    }

    #[test]
    fn avc_frames_timestamps_and_flags() {
        let f = file(&[
            (TagType::Video, 0, avc_body(1, 0, 0, &avcc(4))),
            (TagType::Video, 0, avc_body(1, 1, 80, &prefixed(&[IDR], 4))),
            (
                TagType::Video,
                40,
                avc_body(2, 1, -40, &prefixed(&[P, P], 4)),
            ),
            (TagType::Video, 80, avc_body(3, 1, 0, &prefixed(&[P], 4))),
            (TagType::Video, 120, avc_body(1, 2, 0, &[])), // end of sequence: ignored
        ]);
        let mut d = FlvDemuxer::new();
        let items = items(&mut d, f.clone());
        let Item::Event(Event::TrackAdded(info)) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!((info.id, info.timescale), (VIDEO_TRACK, Timescale::MILLIS));
        assert_eq!(info.config.resolution(), Some((1280, 720)));
        let fr = frames(&items);
        assert_eq!(fr.len(), 3);
        assert_eq!(
            (fr[0].dts.ticks(), fr[0].pts.ticks(), fr[0].is_keyframe()),
            (0, 80, true)
        );
        assert_eq!(
            (fr[1].dts.ticks(), fr[1].pts.ticks(), fr[1].is_keyframe()),
            (40, 0, false)
        );
        assert!(fr[2].flags.contains(FrameFlags::DISPOSABLE));
        assert_eq!(&fr[1].data[..], &prefixed(&[P, P], 4)[..]);
        // Zero copy: the payload points into the pushed buffer.
        let range = f.as_ptr_range();
        assert!(range.contains(&fr[1].data.as_ptr()));
        assert_eq!(items.last(), Some(&Item::Event(Event::EndOfStream)));
        assert_eq!(d.header().map(|h| h.has_video()), Some(true));
    }

    #[test]
    fn short_nal_lengths_become_canonical() {
        let f = file(&[
            (TagType::Video, 0, avc_body(1, 0, 0, &avcc(2))),
            (
                TagType::Video,
                0,
                avc_body(1, 1, 0, &prefixed(&[IDR, P], 2)),
            ),
        ]);
        let items = items(&mut FlvDemuxer::new(), f);
        assert_eq!(&frames(&items)[0].data[..], &prefixed(&[IDR, P], 4)[..]);
    }

    #[test]
    fn frames_before_a_sequence_header_are_skipped() {
        let f = file(&[
            (TagType::Video, 0, avc_body(1, 1, 0, &prefixed(&[IDR], 4))),
            (TagType::Audio, 0, vec![0xaf, 1, 0x21]),
            (TagType::Audio, 0, vec![0x2f, 0xff, 0xfb]), // MP3: skipped
            (TagType::Video, 40, avc_body(1, 0, 0, &avcc(4))),
            (TagType::Video, 40, avc_body(1, 1, 0, &prefixed(&[IDR], 4))),
        ]);
        let items = items(&mut FlvDemuxer::new(), f);
        assert!(matches!(items[0], Item::Event(Event::TrackAdded(_))));
        assert_eq!(frames(&items).len(), 1);
        assert_eq!(frames(&items)[0].dts.ticks(), 40);
    }

    #[test]
    fn sequence_headers_add_then_change_tracks() {
        let other_asc = vec![0xaf, 0, 0x11, 0x90]; // 48 kHz stereo
        let f = file(&[
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]), // repeated: nothing
            (TagType::Audio, 0, vec![0xaf, 1, 0x21]),
            (TagType::Audio, 23, other_asc),
            (TagType::Audio, 23, vec![0xaf, 1, 0x21]),
        ]);
        let mut d = FlvDemuxer::new();
        let items = items(&mut d, f);
        let ev = events(&items);
        assert!(matches!(ev[0], Event::TrackAdded(t) if t.id == AUDIO_TRACK));
        assert!(matches!(ev[1], Event::TrackChanged(t) if t.config == *d.audio_config().unwrap()));
        assert_eq!(ev.len(), 3); // + EndOfStream
        let fr = frames(&items);
        assert!(fr
            .iter()
            .all(|f| f.is_keyframe() && f.dts == f.pts && f.track == AUDIO_TRACK));
        match d.audio_config() {
            Some(CodecConfig::Aac(c)) => assert_eq!(c.sample_rate, 48_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamp_jumps_and_wraps() {
        let aac = |ts: u32| (TagType::Audio, ts, vec![0xaf, 1, 0x21]);
        let f = file(&[
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
            aac(0),
            aac(23),
            aac(20_000), // +20 s: discontinuity
            aac(19_000), // back exactly 1 s: tolerated
            aac(17_000), // back 2 s: discontinuity
            aac(u32::MAX - 9),
            aac(5),
        ]);
        let items = items(&mut FlvDemuxer::new(), f);
        let mut seen = Vec::new();
        for i in &items {
            match i {
                Item::Frame(f) => seen.push(f.dts.ticks()),
                Item::Event(Event::Discontinuity { track: None }) => seen.push(-1),
                _ => {}
            }
        }
        // 17 000 -> 2^32 - 10 unwraps to the nearest candidate, -10: more than 1 s
        // back, a discontinuity; then 5 continues from -10.
        assert_eq!(
            seen,
            vec![0, 23, -1, 20_000, 19_000, -1, 17_000, -1, -10, 5]
        );
    }

    #[test]
    fn thirty_two_bit_wrap_is_continuous() {
        let aac = |ts: u32| (TagType::Audio, ts, vec![0xaf, 1, 0x21]);
        let f = file(&[
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
            aac(u32::MAX - 20),
            aac(u32::MAX),
            aac(2),
        ]);
        let items = items(&mut FlvDemuxer::new(), f);
        let dts: Vec<i64> = frames(&items).iter().map(|f| f.dts.ticks()).collect();
        assert_eq!(dts, vec![(1 << 32) - 21, (1 << 32) - 1, (1 << 32) + 2]);
        assert!(!items
            .iter()
            .any(|i| matches!(i, Item::Event(Event::Discontinuity { .. }))));
    }

    #[test]
    fn jump_thresholds_are_options() {
        let aac = |ts: u32| (TagType::Audio, ts, vec![0xaf, 1, 0x21]);
        let f = file(&[
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
            aac(0),
            aac(3000),
        ]);
        let opts = FlvDemuxerOptions {
            max_forward_jump: Timestamp::from_secs(2),
            ..FlvDemuxerOptions::default()
        };
        let jumped = items(&mut FlvDemuxer::with_options(opts), f.clone());
        assert!(jumped
            .iter()
            .any(|i| matches!(i, Item::Event(Event::Discontinuity { .. }))));
        let default = items(&mut FlvDemuxer::new(), f);
        assert!(!default
            .iter()
            .any(|i| matches!(i, Item::Event(Event::Discontinuity { .. }))));
    }

    fn script(values: &[Value]) -> Vec<u8> {
        let mut b = BytesMut::new();
        amf0::encode_all(values, &mut b);
        b.to_vec()
    }

    #[test]
    fn script_tags_become_data_events() {
        let meta = script(&[
            "onMetaData".into(),
            Value::ecma_array([
                ("width", Value::Number(1280.0)),
                ("videodatarate", Value::Number(2500.0)),
            ]),
        ]);
        let cue = script(&["onCuePoint".into(), Value::object([("name", "ad".into())])]);
        let f = file(&[
            (TagType::Script, 0, meta.clone()),
            (TagType::Video, 0, avc_body(1, 0, 0, &avcc(4))),
            (TagType::Script, 5000, cue.clone()),
        ]);
        let mut d = FlvDemuxer::new();
        let items = items(&mut d, f);
        assert_eq!(
            items[0],
            Item::Event(Event::Data {
                at: Timestamp::from_millis(0),
                name: "onMetaData".into(),
                payload: Bytes::from(meta),
            })
        );
        let Item::Event(Event::TrackAdded(info)) = &items[1] else {
            panic!()
        };
        assert_eq!(info.bitrate, Some(2_500_000));
        assert!(
            matches!(&items[2], Item::Event(Event::Data { at, name, payload })
            if at.ticks() == 5000 && name == "onCuePoint" && payload[..] == cue[..])
        );
        assert_eq!(d.metadata().unwrap().width(), Some(1280));
    }

    #[test]
    fn tag_errors_carry_the_tag_offset_and_do_not_stop_the_demuxer() {
        let bad_amf = vec![0x02, 0x00, 0x0a, b'o', b'n'];
        let bad_nal = avc_body(1, 1, 0, &[0, 0, 0, 9, 1]);
        let f = file(&[
            (TagType::Script, 0, bad_amf.clone()),            // offset 13
            (TagType::Video, 0, avc_body(1, 0, 0, &avcc(4))), // 13 + 15 + 5
            (TagType::Video, 0, bad_nal),
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
        ]);
        let out = run(&mut FlvDemuxer::new(), f);
        let e = out[0].as_ref().unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, Some(13)));
        assert!(matches!(out[1], Ok(Item::Event(Event::TrackAdded(_)))));
        let avcc_tag = 15 + 5 + avcc(4).len() as u64;
        let e = out[2].as_ref().unwrap_err();
        assert_eq!(
            (e.kind(), e.offset()),
            (
                ErrorKind::Malformed,
                Some(13 + 15 + bad_amf.len() as u64 + avcc_tag)
            )
        );
        assert!(matches!(out[3], Ok(Item::Event(Event::TrackAdded(_)))));
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn filter_bit_unknown_types_and_strict_sizes() {
        let mut f = file(&[
            (TagType::Other(15), 0, vec![1, 2, 3]),
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
        ])
        .to_vec();
        let out = run(&mut FlvDemuxer::new(), Bytes::from(f.clone()));
        assert!(matches!(out[0], Ok(Item::Event(Event::TrackAdded(_)))));
        // Set the Filter bit on the audio tag.
        f[13 + 18] |= 0x20;
        let out = run(&mut FlvDemuxer::new(), Bytes::from(f.clone()));
        assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Unsupported);
        assert_eq!(out[0].as_ref().unwrap_err().offset(), Some(31));
        // A wrong PreviousTagSize: tolerated by default, an error when strict.
        f[13 + 18] &= !0x20;
        f[13 + 17] = 0x55;
        assert!(run(&mut FlvDemuxer::new(), Bytes::from(f.clone()))
            .iter()
            .all(|r| r.is_ok()));
        let strict = FlvDemuxerOptions {
            previous_tag_size: PreviousTagSizePolicy::Strict,
            ..FlvDemuxerOptions::default()
        };
        let out = run(&mut FlvDemuxer::with_options(strict), Bytes::from(f));
        assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Malformed);
        assert!(matches!(out[1], Ok(Item::Event(Event::TrackAdded(_)))));
    }

    #[test]
    fn hostile_data_size_does_not_allocate_up_front() {
        let mut f = file(&[]).to_vec();
        f.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&[0x17; 10]);
        let mut d = FlvDemuxer::new();
        for b in &f {
            d.push(Bytes::copy_from_slice(&[*b])).unwrap();
            assert!(d.poll().is_none());
        }
        // 21 bytes arrived: the bound, not the 16 MiB the header claims.
        let cap = d.partial.capacity();
        assert!(cap <= RESERVE_AHEAD + 64, "reserved {cap}");
        let e = d.finish().unwrap_err();
        assert_eq!(
            (e.kind(), e.message(), e.offset()),
            (ErrorKind::Malformed, "truncated FLV tag", Some(13))
        );
        assert_eq!(d.poll().unwrap().unwrap(), Item::Event(Event::EndOfStream));
        assert!(d.poll().is_none());

        // With a lower cap the size itself is refused, and the demuxer stops.
        let opts = FlvDemuxerOptions {
            max_tag_size: 1 << 20,
            ..FlvDemuxerOptions::default()
        };
        let mut d = FlvDemuxer::with_options(opts);
        d.push(Bytes::from(f)).unwrap();
        let e = d.poll().unwrap().unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Limit, Some(13)));
        assert!(d.poll().is_none());
        assert_eq!(
            d.push(Bytes::from_static(b"x")).unwrap_err().kind(),
            ErrorKind::Usage
        );
        d.finish().unwrap();
        assert_eq!(d.poll().unwrap().unwrap(), Item::Event(Event::EndOfStream));
    }

    #[test]
    fn bad_headers_are_fatal() {
        let mut d = FlvDemuxer::new();
        d.push(Bytes::from_static(b"FLX")).unwrap();
        assert_eq!(d.poll().unwrap().unwrap_err().kind(), ErrorKind::Malformed);
        assert!(d.poll().is_none());
        let mut d = FlvDemuxer::new();
        d.push(Bytes::from_static(b"FLV\x01\x05\0\0\0\x05\0\0\0\0"))
            .unwrap();
        assert_eq!(d.poll().unwrap().unwrap_err().offset(), Some(5));
        // A larger DataOffset is skipped, even a byte at a time.
        let mut f = b"FLV\x01\x04\0\0\0\x0c\xaa\xbb\xcc\0\0\0\0".to_vec();
        let mut tags = BytesMut::new();
        crate::ingest::flv::write_tag(TagType::Audio, 0, &[0xaf, 0, 0x12, 0x10], &mut tags)
            .unwrap();
        f.extend_from_slice(&tags);
        let mut d = FlvDemuxer::new();
        let mut out = Vec::new();
        for b in &f {
            d.push(Bytes::copy_from_slice(&[*b])).unwrap();
            while let Some(i) = d.poll() {
                out.push(i.unwrap());
            }
        }
        d.finish().unwrap();
        assert!(matches!(out[0], Item::Event(Event::TrackAdded(_))));
        assert_eq!(d.header().unwrap().data_offset, 12);
        // Empty input: a clean end.
        let mut d = FlvDemuxer::new();
        d.finish().unwrap();
        assert_eq!(d.poll().unwrap().unwrap(), Item::Event(Event::EndOfStream));
    }

    #[test]
    fn finish_without_polling_reports_truncation_after_the_items() {
        let mut f = file(&[(TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10])]).to_vec();
        f.extend_from_slice(&[8, 0, 0]);
        let mut d = FlvDemuxer::new();
        d.push(Bytes::from(f)).unwrap();
        d.finish().unwrap();
        assert!(matches!(
            d.poll(),
            Some(Ok(Item::Event(Event::TrackAdded(_))))
        ));
        assert_eq!(
            d.poll().unwrap().unwrap_err().message(),
            "truncated FLV tag"
        );
        assert_eq!(d.poll().unwrap().unwrap(), Item::Event(Event::EndOfStream));
        assert!(d.poll().is_none());
        assert_eq!(
            d.push(Bytes::from_static(b"x")).unwrap_err().kind(),
            ErrorKind::Usage
        );
    }

    #[test]
    fn headerless_tags_and_push_tag() {
        let mut tags = BytesMut::new();
        crate::ingest::flv::write_tag(TagType::Audio, 0, &[0xaf, 0, 0x12, 0x10], &mut tags)
            .unwrap();
        let items = items(&mut FlvDemuxer::without_header(), tags.freeze());
        assert!(matches!(items[0], Item::Event(Event::TrackAdded(_))));

        let mut d = FlvDemuxer::without_header();
        let seq = avc_body(1, 0, 0, &avcc(4));
        let key = avc_body(1, 1, 66, &prefixed(&[IDR], 4));
        // Offsets count the tags as if serialised: 15 bytes of framing per tag.
        let third = (15 + seq.len() + 15 + key.len()) as u64;
        d.push_tag(TagType::Video, 0, Bytes::from(seq)).unwrap();
        d.push_tag(TagType::Video, 33, Bytes::from(key)).unwrap();
        let e = d
            .push_tag(
                TagType::Video,
                66,
                Bytes::from(avc_body(2, 1, 0, &[0, 0, 0, 5])),
            )
            .unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, Some(third)));
        d.finish().unwrap();
        let items: Vec<Item> = std::iter::from_fn(|| d.poll())
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(items.len(), 3);
        let f = items[1].as_frame().unwrap();
        assert_eq!((f.dts.ticks(), f.pts.ticks()), (33, 99));
        assert_eq!(
            d.push_tag(TagType::Video, 0, Bytes::new())
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
        // push_tag while bytes of a partial tag are buffered is a usage error.
        let mut d = FlvDemuxer::without_header();
        d.push(Bytes::from_static(&[8, 0])).unwrap();
        assert!(d.poll().is_none());
        assert_eq!(
            d.push_tag(TagType::Audio, 0, Bytes::new())
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
    }

    #[test]
    fn enhanced_hevc_and_legacy_codec_12() {
        let hvcc = hvcc();
        let mut seq = b"\x90hvc1".to_vec();
        seq.extend_from_slice(&hvcc);
        let irap = [0x26, 0x01, 0xaf];
        let mut key = b"\x91hvc1\x00\x00\x28".to_vec(); // CodedFrames, cts 40
        key.extend_from_slice(&prefixed(&[&irap], 4));
        let mut inter = b"\xa3hvc1".to_vec(); // CodedFramesX
        inter.extend_from_slice(&prefixed(&[&[0x02, 0x01, 0xd0]], 4));
        let f = file(&[
            (TagType::Video, 0, seq),
            (TagType::Video, 0, key),
            (TagType::Video, 40, inter),
            (
                TagType::Video,
                80,
                b"\xd4hvc1\x02\x00\x09colorInfo\x05".to_vec(),
            ), // metadata: ignored
        ]);
        let hevc = items(&mut FlvDemuxer::new(), f);
        let Item::Event(Event::TrackAdded(info)) = &hevc[0] else {
            panic!("{:?}", hevc[0])
        };
        assert_eq!(info.config.resolution(), Some((320, 240)));
        assert!(matches!(info.config, CodecConfig::H265(_)));
        let fr = frames(&hevc);
        assert_eq!(fr.len(), 2);
        assert_eq!(
            (fr[0].dts.ticks(), fr[0].pts.ticks(), fr[0].is_keyframe()),
            (0, 40, true)
        );
        assert_eq!(
            (fr[1].dts.ticks(), fr[1].pts.ticks(), fr[1].is_keyframe()),
            (40, 40, false)
        );

        // Legacy layout with CodecID 12.
        let f = file(&[
            (TagType::Video, 0, [&[0x1c, 0, 0, 0, 0][..], &hvcc].concat()),
            (
                TagType::Video,
                0,
                [&[0x1c, 1, 0, 0, 0][..], &prefixed(&[&irap], 4)].concat(),
            ),
        ]);
        let legacy = items(&mut FlvDemuxer::new(), f);
        assert!(
            matches!(&legacy[0], Item::Event(Event::TrackAdded(t)) if matches!(t.config, CodecConfig::H265(_)))
        );
        assert_eq!(frames(&legacy).len(), 1);

        // AV1 is recognised but not supported.
        let out = run(
            &mut FlvDemuxer::new(),
            file(&[(TagType::Video, 0, b"\x90av01\x81".to_vec())]),
        );
        assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn enhanced_aac() {
        let f = file(&[
            (TagType::Audio, 0, b"\x90mp4a\x12\x10".to_vec()),
            (TagType::Audio, 23, b"\x91mp4a\x21\x10".to_vec()),
        ]);
        let items = items(&mut FlvDemuxer::new(), f);
        assert!(
            matches!(&items[0], Item::Event(Event::TrackAdded(t)) if matches!(t.config, CodecConfig::Aac(_)))
        );
        assert_eq!(&frames(&items)[0].data[..], &[0x21, 0x10]);
    }
}
