//! [`VodPackager`]: frames in, MPEG-TS segments and HLS VOD playlists out.
//!
//! Composes the [`Segmenter`] and the [`TsMuxer`] and keeps the playlist
//! bookkeeping, so a host only moves bytes: it pushes [`Item`]s from any demuxer and
//! stores each [`VodOutput`] under its name. Segments come out as soon as they are
//! complete (memory stays at about one segment); the playlists come out last, at
//! [`Stage::finish`], so a failed run never leaves a playlist that looks complete.
//!
//! ```
//! use bytes::Bytes;
//! use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
//! use strom::package::{VodOutput, VodPackager, VodPackagerOptions};
//! use strom::pipeline::{drain, Stage};
//! use strom::time::{Timescale, Timestamp};
//!
//! let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
//! let track = TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(asc));
//! let mut p = VodPackager::new(VodPackagerOptions::default()).unwrap();
//! p.push(Item::Event(Event::TrackAdded(track))).unwrap();
//! let mut names = Vec::new();
//! for i in 0..500 {
//!     let t = Timestamp::new(i * 1024, Timescale::new(48_000).unwrap());
//!     let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
//!         .with_flags(FrameFlags::KEYFRAME)
//!         .with_duration(Timestamp::new(1024, t.scale()));
//!     p.push(Item::Frame(f)).unwrap();
//!     names.extend(drain(&mut p).unwrap().iter().map(|o| o.name().to_string()));
//! }
//! p.finish().unwrap();
//! names.extend(drain(&mut p).unwrap().iter().map(|o| o.name().to_string()));
//! assert_eq!(names, ["segment00000.ts", "segment00001.ts", "media.m3u8", "index.m3u8"]);
//! ```

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::hls::{
    BandwidthMeter, MediaPlaylist, MediaSegment, MultivariantPlaylist, PlaylistType, Variant,
};
use super::{Segment, Segmenter, SegmenterOptions};
use crate::container::ts::{TsMuxer, TsMuxerOptions};
use crate::error::{Error, Result};
use crate::media::{Item, MediaKind, TrackInfo};
use crate::pipeline::Stage;
use crate::time::Timestamp;

/// Options of a [`VodPackager`]. Each field's doc states its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VodPackagerOptions {
    /// Segmenter options (target duration: default 6 s).
    pub segmenter: SegmenterOptions,
    /// MPEG-TS muxer options (defaults of [`TsMuxerOptions`]).
    pub ts: TsMuxerOptions,
    /// Segment file names are this prefix, a 5-digit sequence number and `.ts`.
    /// Default: `"segment"`.
    pub segment_prefix: String,
    /// Name of the media playlist. Default: `"media.m3u8"`.
    pub media_playlist: String,
    /// Name of the multivariant playlist. Default: `"index.m3u8"`.
    pub multivariant_playlist: String,
}

impl Default for VodPackagerOptions {
    fn default() -> Self {
        VodPackagerOptions {
            segmenter: SegmenterOptions::default(),
            ts: TsMuxerOptions::default(),
            segment_prefix: "segment".into(),
            media_playlist: "media.m3u8".into(),
            multivariant_playlist: "index.m3u8".into(),
        }
    }
}

/// One named output of a [`VodPackager`]: store `data` under `name`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VodOutput {
    /// A complete MPEG-TS media segment.
    Segment {
        /// File name (relative to the playlists).
        name: String,
        /// Segment sequence number, from 0.
        sequence: u64,
        /// Exact duration.
        duration: Timestamp,
        /// The TS bytes.
        data: Bytes,
    },
    /// A playlist, emitted at the end: the media playlist, then the multivariant one.
    Playlist {
        /// File name.
        name: String,
        /// Playlist text.
        text: String,
    },
}

impl VodOutput {
    /// The name to store this output under.
    pub fn name(&self) -> &str {
        match self {
            VodOutput::Segment { name, .. } | VodOutput::Playlist { name, .. } => name,
        }
    }
    /// The bytes to store.
    pub fn data(&self) -> Bytes {
        match self {
            VodOutput::Segment { data, .. } => data.clone(),
            VodOutput::Playlist { text, .. } => Bytes::from(text.clone()),
        }
    }
}

/// Totals of a packaging run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VodSummary {
    /// Segments written.
    pub segments: u64,
    /// Sum of segment durations in milliseconds.
    pub duration_ms: i64,
    /// Bytes of TS written.
    pub bytes: u64,
    /// Frames the segmenter dropped (before the first keyframe, unknown tracks).
    pub dropped_frames: u64,
}

/// Packages a frame stream as HLS VOD with MPEG-TS segments (one variant, all
/// tracks muxed together). A [`Stage`]: push items, poll outputs, finish.
#[derive(Debug)]
pub struct VodPackager {
    opts: VodPackagerOptions,
    segmenter: Segmenter,
    muxer: Option<(Vec<TrackInfo>, TsMuxer)>,
    playlist: MediaPlaylist,
    meter: BandwidthMeter,
    /// Track set of the variant (first configuration seen), for CODECS/RESOLUTION.
    tracks: Vec<TrackInfo>,
    ready: VecDeque<VodOutput>,
    summary: VodSummary,
    buf: BytesMut,
    finished: bool,
}

impl VodPackager {
    /// A packager with `opts`; errors when the segmenter options are invalid.
    pub fn new(opts: VodPackagerOptions) -> Result<Self> {
        let segmenter = Segmenter::new(opts.segmenter.clone())?;
        Ok(VodPackager {
            opts,
            segmenter,
            muxer: None,
            playlist: MediaPlaylist::new(PlaylistType::Vod),
            meter: BandwidthMeter::new(),
            tracks: Vec::new(),
            ready: VecDeque::new(),
            summary: VodSummary::default(),
            buf: BytesMut::new(),
            finished: false,
        })
    }

    /// Totals so far.
    pub fn summary(&self) -> VodSummary {
        VodSummary {
            dropped_frames: self.segmenter.dropped_frames(),
            ..self.summary
        }
    }

    fn write_segment(&mut self, seg: Segment) -> Result<()> {
        // A new muxer when the track set changes (ids or codecs); continuity counters
        // restart, which is fine: such a segment is marked discontinuous.
        let same = matches!(&self.muxer, Some((t, _)) if *t == seg.tracks);
        if !same {
            let muxable: Vec<TrackInfo> = seg.tracks.clone();
            let reuse = match &mut self.muxer {
                Some((t, m)) if t.iter().map(|x| x.id).eq(muxable.iter().map(|x| x.id)) => {
                    for tr in &muxable {
                        m.update_track(tr)?;
                    }
                    *t = muxable.clone();
                    true
                }
                _ => false,
            };
            if !reuse {
                let m = TsMuxer::new(&muxable, self.opts.ts.clone())?;
                self.muxer = Some((muxable, m));
            }
        }
        if self.tracks.is_empty() {
            self.tracks = seg.tracks.clone();
        }
        let (_, muxer) = self.muxer.as_mut().ok_or(Error::usage("no muxer"))?;
        self.buf.clear();
        self.buf
            .reserve(seg.payload_len() + seg.payload_len() / 16 + 4096);
        muxer
            .write_segment(&seg, &mut self.buf)
            .map_err(|e| e.context(format!("segment {}", seg.sequence)))?;
        let data = self.buf.split().freeze();
        let name = format!("{}{:05}.ts", self.opts.segment_prefix, seg.sequence);
        self.meter.record(data.len() as u64, seg.duration);
        self.playlist
            .push_segment(MediaSegment::from_segment(&seg, name.clone()));
        self.summary.segments += 1;
        self.summary.duration_ms += seg.duration.as_millis();
        self.summary.bytes += data.len() as u64;
        self.ready.push_back(VodOutput::Segment {
            name,
            sequence: seg.sequence,
            duration: seg.duration,
            data,
        });
        Ok(())
    }

    fn pump(&mut self) -> Result<()> {
        while let Some(seg) = self.segmenter.poll() {
            let seg = seg?;
            self.write_segment(seg)?;
        }
        Ok(())
    }

    fn playlists(&mut self) -> Result<()> {
        if self.playlist.segments.is_empty() {
            return Err(Error::malformed(
                "no segment could be made: the input has no decodable frames",
            ));
        }
        self.playlist.ended = true;
        let media = self.playlist.write()?;
        let codecs: Vec<String> = self
            .tracks
            .iter()
            .map(|t| t.config.codecs_string())
            .collect();
        let mut v = Variant::new(
            self.opts.media_playlist.clone(),
            self.meter.peak(),
            codecs.join(","),
        );
        v.average_bandwidth = Some(self.meter.average());
        if let Some(video) = self.tracks.iter().find(|t| t.kind == MediaKind::Video) {
            v.resolution = video.config.resolution();
            v.frame_rate = video.config.frame_rate();
        }
        let mut mv = MultivariantPlaylist::new();
        mv.variants.push(v);
        let multi = mv.write()?;
        self.ready.push_back(VodOutput::Playlist {
            name: self.opts.media_playlist.clone(),
            text: media,
        });
        self.ready.push_back(VodOutput::Playlist {
            name: self.opts.multivariant_playlist.clone(),
            text: multi,
        });
        Ok(())
    }
}

impl Stage for VodPackager {
    type In = Item;
    type Out = VodOutput;

    fn push(&mut self, item: Item) -> Result<()> {
        if self.finished {
            return Err(Error::usage("VodPackager: push after finish"));
        }
        self.segmenter.push(item)?;
        self.pump()
    }

    fn poll(&mut self) -> Option<Result<VodOutput>> {
        self.ready.pop_front().map(Ok)
    }

    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.segmenter.finish()?;
        self.pump()?;
        self.playlists()
    }
}
