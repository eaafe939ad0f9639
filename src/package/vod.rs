//! [`VodPackager`]: frames in, MPEG-TS segments and HLS VOD playlists out.
//!
//! Composes the [`Segmenter`] and the [`TsMuxer`] and keeps the playlist
//! bookkeeping, so a host only moves bytes: it pushes [`Item`]s from any demuxer and
//! stores each [`VodOutput`] under its name. A segment is muxed as the host polls,
//! in pieces of about [`VodPackagerOptions::chunk_size`] bytes, and each frame is
//! released once muxed: memory stays at about one segment of input plus one piece
//! of output, and each piece is still in cache when the host writes it. The
//! playlists come out last, after [`Stage::finish`], so a failed run never leaves a
//! playlist that looks complete.
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
//!
//! A host appends the pieces of a segment in order; [`VodOutput::SegmentData`]'s
//! `first` says when to start a new file.

use std::collections::VecDeque;
use std::vec::IntoIter;

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
    /// Target size of one [`VodOutput::SegmentData`] piece, in bytes. A piece ends at
    /// the first frame boundary at or past this size. Default: 256 KiB.
    pub chunk_size: usize,
}

impl Default for VodPackagerOptions {
    fn default() -> Self {
        VodPackagerOptions {
            segmenter: SegmenterOptions::default(),
            ts: TsMuxerOptions::default(),
            segment_prefix: "segment".into(),
            media_playlist: "media.m3u8".into(),
            multivariant_playlist: "index.m3u8".into(),
            chunk_size: 256 * 1024,
        }
    }
}

/// One output of a [`VodPackager`]: bytes to store under a name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VodOutput {
    /// A piece of an MPEG-TS media segment. Pieces of one segment come in order and
    /// are appended to the file `name`; no other output comes between them.
    SegmentData {
        /// File name (relative to the playlists).
        name: String,
        /// Segment sequence number, from 0.
        sequence: u64,
        /// The first piece: start a new file.
        first: bool,
        /// The last piece: the segment is complete.
        last: bool,
        /// Exact segment duration.
        duration: Timestamp,
        /// TS packets (a whole number of 188-byte packets).
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
            VodOutput::SegmentData { name, .. } | VodOutput::Playlist { name, .. } => name,
        }
    }
    /// The bytes to store (or append, for a segment piece that is not `first`).
    pub fn data(&self) -> Bytes {
        match self {
            VodOutput::SegmentData { data, .. } => data.clone(),
            VodOutput::Playlist { text, .. } => Bytes::from(text.clone()),
        }
    }
}

/// Totals of a packaging run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VodSummary {
    /// Segments written completely.
    pub segments: u64,
    /// Sum of the complete segments' durations in milliseconds.
    pub duration_ms: i64,
    /// Bytes of TS written.
    pub bytes: u64,
    /// Frames the segmenter dropped (before the first keyframe, unknown tracks).
    pub dropped_frames: u64,
}

/// The segment being muxed, piece by piece.
#[derive(Debug)]
struct Writing {
    name: String,
    sequence: u64,
    duration: Timestamp,
    discontinuity: bool,
    frames: IntoIter<crate::media::Frame>,
    bytes: u64,
    first: bool,
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
    /// Segments cut and not yet muxed.
    pending: VecDeque<Segment>,
    writing: Option<Writing>,
    playlists: VecDeque<VodOutput>,
    summary: VodSummary,
    buf: BytesMut,
    finished: bool,
    playlists_made: bool,
    failed: bool,
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
            pending: VecDeque::new(),
            writing: None,
            playlists: VecDeque::new(),
            summary: VodSummary::default(),
            buf: BytesMut::new(),
            finished: false,
            playlists_made: false,
            failed: false,
        })
    }

    /// Totals so far.
    pub fn summary(&self) -> VodSummary {
        VodSummary {
            dropped_frames: self.segmenter.dropped_frames(),
            ..self.summary
        }
    }

    /// Starts muxing `seg`: picks or updates the muxer and writes PAT/PMT.
    fn begin(&mut self, mut seg: Segment) -> Result<()> {
        // A new muxer when the track set changes; continuity counters restart, which
        // is fine: such a segment is marked discontinuous.
        let same = matches!(&self.muxer, Some((t, _)) if *t == seg.tracks);
        if !same {
            let reuse = match &mut self.muxer {
                Some((t, m)) if t.iter().map(|x| x.id).eq(seg.tracks.iter().map(|x| x.id)) => {
                    for tr in &seg.tracks {
                        m.update_track(tr)?;
                    }
                    t.clone_from(&seg.tracks);
                    true
                }
                _ => false,
            };
            if !reuse {
                let m = TsMuxer::new(&seg.tracks, self.opts.ts.clone())?;
                self.muxer = Some((seg.tracks.clone(), m));
            }
        }
        if self.tracks.is_empty() {
            self.tracks.clone_from(&seg.tracks);
        }
        let (_, muxer) = self.muxer.as_mut().ok_or(Error::usage("no muxer"))?;
        self.buf.clear();
        muxer.write_tables(&mut self.buf);
        self.writing = Some(Writing {
            name: format!("{}{:05}.ts", self.opts.segment_prefix, seg.sequence),
            sequence: seg.sequence,
            duration: seg.duration,
            discontinuity: seg.discontinuity,
            frames: std::mem::take(&mut seg.frames).into_iter(),
            bytes: 0,
            first: true,
        });
        Ok(())
    }

    /// Muxes frames of the segment being written until a piece is full; returns it.
    fn next_piece(&mut self) -> Result<VodOutput> {
        let (w, (_, muxer)) = match (self.writing.as_mut(), self.muxer.as_mut()) {
            (Some(w), Some(m)) => (w, m),
            _ => return Err(Error::usage("no segment is being written")),
        };
        let chunk = self.opts.chunk_size.max(188);
        let mut last = false;
        while self.buf.len() < chunk {
            match w.frames.next() {
                Some(f) => muxer
                    .write_frame(&f, &mut self.buf)
                    .map_err(|e| e.context(format!("segment {}", w.sequence)))?,
                None => {
                    muxer.flush(&mut self.buf)?;
                    last = true;
                    break;
                }
            }
        }
        if !last && w.frames.as_slice().is_empty() {
            muxer.flush(&mut self.buf)?;
            last = true;
        }
        let data = self.buf.split().freeze();
        w.bytes += data.len() as u64;
        let out = VodOutput::SegmentData {
            name: w.name.clone(),
            sequence: w.sequence,
            first: std::mem::replace(&mut w.first, false),
            last,
            duration: w.duration,
            data,
        };
        if last {
            let w = self.writing.take().ok_or(Error::usage("no segment"))?;
            self.meter.record(w.bytes, w.duration);
            self.playlist.push_segment(
                MediaSegment::new(w.name, w.duration).with_discontinuity(w.discontinuity),
            );
            self.summary.segments += 1;
            self.summary.duration_ms += w.duration.as_millis();
        }
        self.summary.bytes += out.data().len() as u64;
        Ok(out)
    }

    fn step(&mut self) -> Result<Option<VodOutput>> {
        if self.writing.is_none() {
            if let Some(seg) = self.pending.pop_front() {
                self.begin(seg)?;
            }
        }
        if self.writing.is_some() {
            return self.next_piece().map(Some);
        }
        if self.finished && !self.playlists_made {
            self.playlists_made = true;
            self.make_playlists()?;
        }
        Ok(self.playlists.pop_front())
    }

    fn make_playlists(&mut self) -> Result<()> {
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
        self.playlists.push_back(VodOutput::Playlist {
            name: self.opts.media_playlist.clone(),
            text: media,
        });
        self.playlists.push_back(VodOutput::Playlist {
            name: self.opts.multivariant_playlist.clone(),
            text: multi,
        });
        Ok(())
    }

    fn collect(&mut self) -> Result<()> {
        while let Some(seg) = self.segmenter.poll() {
            self.pending.push_back(seg?);
        }
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
        self.collect()
    }

    /// The next piece of output. After an error the packager yields nothing more:
    /// the run has failed and no playlist will be made.
    fn poll(&mut self) -> Option<Result<VodOutput>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(o) => o.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.segmenter.finish()?;
        self.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags};
    use crate::pipeline::drain;
    use crate::time::Timescale;

    fn items() -> Vec<Item> {
        let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let scale = Timescale::new(48_000).unwrap();
        let track = TrackInfo::new(2, scale, CodecConfig::Aac(asc));
        let mut v = vec![Item::Event(Event::TrackAdded(track))];
        for i in 0..1000i64 {
            let t = Timestamp::new(i * 1024, scale);
            let payload: Vec<u8> = (0..300 + (i % 50) as usize)
                .map(|k| (k + i as usize) as u8)
                .collect();
            v.push(Item::Frame(
                Frame::new(2, t, t, Bytes::from(payload))
                    .with_flags(FrameFlags::KEYFRAME)
                    .with_duration(Timestamp::new(1024, scale)),
            ));
        }
        v
    }

    #[test]
    fn pieces_concatenate_to_the_whole_segment() {
        // Reference: the segmenter's segments written whole by one muxer.
        let mut seg = Segmenter::new(SegmenterOptions::default()).unwrap();
        let mut whole = Vec::new();
        for it in items() {
            seg.push(it).unwrap();
            whole.extend(drain(&mut seg).unwrap());
        }
        seg.finish().unwrap();
        whole.extend(drain(&mut seg).unwrap());
        let mut mux = TsMuxer::new(&whole[0].tracks, TsMuxerOptions::default()).unwrap();
        let expected: Vec<Bytes> = whole
            .iter()
            .map(|s| {
                let mut b = BytesMut::new();
                mux.write_segment(s, &mut b).unwrap();
                b.freeze()
            })
            .collect();

        let opts = VodPackagerOptions {
            chunk_size: 188 * 7,
            ..VodPackagerOptions::default()
        };
        let mut p = VodPackager::new(opts).unwrap();
        let mut outs = Vec::new();
        for it in items() {
            p.push(it).unwrap();
            outs.extend(drain(&mut p).unwrap());
        }
        p.finish().unwrap();
        outs.extend(drain(&mut p).unwrap());
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut open = false;
        for o in &outs {
            if let VodOutput::SegmentData {
                first, last, data, ..
            } = o
            {
                assert_eq!(*first, !open, "first piece starts a segment");
                if *first {
                    got.push(Vec::new());
                }
                assert!(data.len() % 188 == 0 && !data.is_empty());
                got.last_mut().unwrap().extend_from_slice(data);
                open = !*last;
            }
        }
        assert!(!open);
        assert!(
            outs.len() > expected.len() * 3,
            "segments came in several pieces"
        );
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!(g[..] == e[..], "pieces differ from the whole segment");
        }
        let names: Vec<&str> = outs[outs.len() - 2..].iter().map(|o| o.name()).collect();
        assert_eq!(names, ["media.m3u8", "index.m3u8"]);
        assert_eq!(p.summary().segments, expected.len() as u64);
        assert_eq!(
            p.summary().bytes,
            expected.iter().map(|b| b.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn no_playlist_without_segments_and_nothing_after_an_error() {
        let mut p = VodPackager::new(VodPackagerOptions::default()).unwrap();
        p.finish().unwrap();
        let e = p.poll().unwrap().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
        assert!(p.poll().is_none());
        assert_eq!(
            p.push(items().remove(0)).unwrap_err().kind(),
            crate::ErrorKind::Usage
        );
    }
}
