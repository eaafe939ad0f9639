//! [`FlvMuxer`]: frames and events to FLV tags in a caller-owned buffer.

use bytes::{BufMut, BytesMut};

use super::codec::{frame_type, put_si24, CODEC_ID_AVC, SOUND_FORMAT_AAC, VIDEO_EX_HEADER};
use super::tag::{
    write_tag, write_tag_parts, FlvHeader, TagHeader, TagType, MAX_DATA_SIZE, TAG_HEADER_LEN,
};
use crate::bitstream::nal;
use crate::error::{Error, Result};
use crate::media::{CodecConfig, Event, Frame, Item, TrackId, TrackInfo};
use crate::time::Timescale;

/// How a [`FlvMuxer`] writes the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MuxHeader {
    /// Before the first frame (or at end of stream), with the audio/video flags of the
    /// tracks added by then. Items that come earlier (track events, script data) are
    /// held and written after the header, in order.
    #[default]
    Auto,
    /// This header, written at the first item.
    Fixed(FlvHeader),
    /// No header: tags only (for appending to a file or a headerless tag stream).
    Omit,
}

/// Whether a [`FlvMuxer`] ends video with an end-of-sequence tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EndOfSequence {
    /// At [`Event::EndOfStream`], write an end-of-sequence tag for the video track
    /// (AVC `AVCPacketType` 2, Enhanced `SequenceEnd` for HEVC) stamped with the last
    /// video decode time, as FFmpeg does.
    #[default]
    OnEndOfStream,
    /// Never write one.
    Never,
}

/// Options of a [`FlvMuxer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FlvMuxerOptions {
    /// File header policy. Default: [`MuxHeader::Auto`].
    pub header: MuxHeader,
    /// End-of-sequence policy. Default: [`EndOfSequence::OnEndOfStream`].
    pub end_of_sequence: EndOfSequence,
}

#[derive(Debug)]
struct MuxTrack {
    id: TrackId,
    config: CodecConfig,
    last_dts: Option<u32>,
}

/// Writes [`Item`]s as an FLV file (Adobe FLV v10.1 Annex E, Enhanced RTMP v2 for HEVC)
/// into a buffer the caller owns.
///
/// * `TrackAdded`/`TrackChanged` write a sequence header tag: the H.264
///   `AVCDecoderConfigurationRecord` (`record`), an Enhanced `hvc1` `SequenceStart`
///   with the `HEVCDecoderConfigurationRecord`, or the AAC `AudioSpecificConfig`,
///   stamped with the timestamp of the last tag written (0 at the start).
/// * Frames become coded-frame tags: `FrameType` 1 for keyframes, 3 for disposable
///   frames, 2 otherwise; `CompositionTime` = pts - dts; video NAL units are written
///   with the length size of the track's configuration (canonical 4-byte prefixes are
///   copied as they are when it is 4). AAC tags use the flags byte `0xAF` that the
///   specification prescribes for AAC. HEVC frames without composition offset use
///   `CodedFramesX`.
/// * [`Event::Data`] becomes a script tag with the raw payload.
/// * [`Event::Cue`] becomes an `onCuePoint` script tag at the cue's time carrying its
///   SCTE 35 section ([`cue_point_body`](super::cue_point_body)), which the demuxer
///   reads back as the same cue.
/// * [`Event::EndOfStream`] ends the file (see [`EndOfSequence`]); nothing may follow.
/// * Other events (discontinuity) have no FLV form and are ignored.
///
/// Timestamps are rescaled to milliseconds (nearest) and written modulo 2^32. FLV holds
/// one video and one audio track; other codecs than H.264, H.265 and AAC are
/// unsupported errors. Writing the items of a [`FlvDemuxer`](super::FlvDemuxer) that
/// read an FFmpeg-made file gives the same tags back.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::bitstream::aac::build_asc;
/// use strom::ingest::flv::{FlvMuxer, TagReader, TagType};
/// use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
/// use strom::time::{Timescale, Timestamp};
///
/// let aac = AacConfig::from_asc(build_asc(2, 4, 2)).unwrap();
/// let mut mux = FlvMuxer::new();
/// let mut out = BytesMut::new();
/// let track = TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(aac));
/// mux.write(&Item::Event(Event::TrackAdded(track)), &mut out).unwrap();
/// assert!(out.is_empty()); // held until the first frame decides the header
/// let t = Timestamp::from_millis(23);
/// let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10])).with_flags(FrameFlags::KEYFRAME);
/// mux.write(&Item::Frame(f), &mut out).unwrap();
/// mux.finish(&mut out).unwrap();
/// let tags: Vec<_> = TagReader::new(out.freeze()).unwrap().map(|t| t.unwrap()).collect();
/// assert_eq!(tags.len(), 2);
/// assert_eq!((tags[1].tag_type, tags[1].timestamp, &tags[1].body[..]), (TagType::Audio, 23, &[0xaf, 1, 0x21, 0x10][..]));
/// ```
#[derive(Debug, Default)]
pub struct FlvMuxer {
    opts: FlvMuxerOptions,
    header_written: bool,
    held: Vec<Item>,
    video: Option<MuxTrack>,
    audio: Option<MuxTrack>,
    last_ts: u32,
    ended: bool,
}

impl FlvMuxer {
    /// A muxer with default options (header written automatically).
    pub fn new() -> Self {
        Self::with_options(FlvMuxerOptions::default())
    }
    /// A muxer with `opts`.
    pub fn with_options(opts: FlvMuxerOptions) -> Self {
        FlvMuxer {
            opts,
            ..FlvMuxer::default()
        }
    }

    /// Appends the tags for `item` to `out` (possibly none yet, see [`MuxHeader::Auto`]).
    ///
    /// Errors: usage for a frame of a track never added or an item after end of stream;
    /// unsupported for codecs FLV cannot carry here or a second video/audio track; limit
    /// for a composition offset beyond 24 bits, a NAL unit too long for the track's NAL
    /// length size or a tag body beyond 16 MiB. On error no tag is written for `item`
    /// (the header and held items it releases may have been).
    pub fn write(&mut self, item: &Item, out: &mut BytesMut) -> Result<()> {
        if self.ended {
            return Err(Error::usage("FlvMuxer: item after end of stream"));
        }
        self.update_tracks(item)?;
        if !self.header_written {
            match self.opts.header {
                MuxHeader::Omit => {}
                MuxHeader::Fixed(h) => h.write(out),
                MuxHeader::Auto => {
                    if !matches!(item, Item::Frame(_) | Item::Event(Event::EndOfStream)) {
                        self.held.push(item.clone());
                        return Ok(());
                    }
                    FlvHeader::new(self.audio.is_some(), self.video.is_some()).write(out);
                }
            }
            self.header_written = true;
            for held in std::mem::take(&mut self.held) {
                self.write_tags(&held, out)?;
            }
        }
        self.write_tags(item, out)
    }

    /// Ends the file as [`Event::EndOfStream`] would, unless that was written already.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.write(&Item::Event(Event::EndOfStream), out)
    }

    /// Records track configurations as items arrive (so the header knows them) and
    /// checks frames against them.
    fn update_tracks(&mut self, item: &Item) -> Result<()> {
        match item {
            Item::Event(Event::TrackAdded(info) | Event::TrackChanged(info)) => {
                self.set_track(info)
            }
            Item::Frame(f) => self.track(f.track).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn set_track(&mut self, info: &TrackInfo) -> Result<()> {
        let slot = match info.config {
            CodecConfig::H264(_) | CodecConfig::H265(_) => &mut self.video,
            CodecConfig::Aac(_) => &mut self.audio,
            _ => {
                return Err(Error::unsupported(
                    "FLV muxer: codec not supported (H.264, H.265, AAC only)",
                ))
            }
        };
        match slot {
            Some(t) if t.id != info.id => Err(Error::unsupported(
                "FLV carries one video and one audio track",
            )),
            Some(t) => {
                t.config = info.config.clone();
                Ok(())
            }
            None => {
                *slot = Some(MuxTrack {
                    id: info.id,
                    config: info.config.clone(),
                    last_dts: None,
                });
                Ok(())
            }
        }
    }

    fn track(&self, id: TrackId) -> Result<&MuxTrack> {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .find(|t| t.id == id)
            .ok_or(Error::usage(
                "FlvMuxer: frame for a track that was not added",
            ))
    }

    fn write_tags(&mut self, item: &Item, out: &mut BytesMut) -> Result<()> {
        match item {
            Item::Frame(f) => self.write_frame(f, out),
            Item::Event(Event::TrackAdded(info) | Event::TrackChanged(info)) => {
                let ts = self.last_ts;
                match &info.config {
                    CodecConfig::H264(c) => write_tag_parts(
                        TagType::Video,
                        ts,
                        &[&[0x10 | CODEC_ID_AVC, 0, 0, 0, 0], &c.record],
                        out,
                    ),
                    CodecConfig::H265(c) => {
                        let h = [VIDEO_EX_HEADER | 0x10, b'h', b'v', b'c', b'1'];
                        write_tag_parts(TagType::Video, ts, &[&h, &c.record], out)
                    }
                    CodecConfig::Aac(c) => {
                        write_tag_parts(TagType::Audio, ts, &[&[AAC_FLAGS, 0], &c.asc], out)
                    }
                    _ => Err(Error::unsupported(
                        "FLV muxer: codec not supported (H.264, H.265, AAC only)",
                    )),
                }
            }
            Item::Event(Event::Data { at, payload, .. }) => {
                let ts = at.ticks_in(Timescale::MILLIS) as u32;
                write_tag(TagType::Script, ts, payload, out)?;
                self.last_ts = ts;
                Ok(())
            }
            Item::Event(Event::Cue(cue)) => match super::cue_point_body(cue) {
                Some(body) => {
                    let ts = cue.at.ticks_in(Timescale::MILLIS) as u32;
                    write_tag(TagType::Script, ts, &body, out)
                }
                None => Ok(()),
            },
            Item::Event(Event::EndOfStream) => {
                if self.opts.end_of_sequence == EndOfSequence::OnEndOfStream {
                    if let Some(v) = &self.video {
                        let ts = v.last_dts.unwrap_or(0);
                        match v.config {
                            CodecConfig::H264(_) => write_tag(
                                TagType::Video,
                                ts,
                                &[0x10 | CODEC_ID_AVC, 2, 0, 0, 0],
                                out,
                            )?,
                            _ => write_tag(
                                TagType::Video,
                                ts,
                                &[VIDEO_EX_HEADER | 0x10 | 2, b'h', b'v', b'c', b'1'],
                                out,
                            )?,
                        }
                    }
                }
                self.ended = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn write_frame(&mut self, f: &Frame, out: &mut BytesMut) -> Result<()> {
        let dts = f.dts.ticks_in(Timescale::MILLIS);
        let cts = f.pts.ticks_in(Timescale::MILLIS).saturating_sub(dts);
        let cts24 =
            put_si24(cts).ok_or(Error::limit("FLV composition offset does not fit 24 bits"))?;
        // Written modulo 2^32, as the wire clock wraps.
        let ts = dts as u32;
        let ft = if f.is_keyframe() {
            frame_type::KEY
        } else if f.flags.contains(crate::media::FrameFlags::DISPOSABLE) {
            frame_type::DISPOSABLE
        } else {
            frame_type::INTER
        };
        let is_video = self.video.as_ref().is_some_and(|t| t.id == f.track);
        let track = self.track(f.track)?;
        match &track.config {
            CodecConfig::H264(c) => {
                let h = [(ft << 4) | CODEC_ID_AVC, 1, cts24[0], cts24[1], cts24[2]];
                write_video(ts, &h, &f.data, c.nal_length_size, out)?;
            }
            CodecConfig::H265(c) => {
                let nls = c.nal_length_size;
                if cts == 0 {
                    let h = [VIDEO_EX_HEADER | (ft << 4) | 3, b'h', b'v', b'c', b'1'];
                    write_video(ts, &h, &f.data, nls, out)?;
                } else {
                    let h = [
                        VIDEO_EX_HEADER | (ft << 4) | 1,
                        b'h',
                        b'v',
                        b'c',
                        b'1',
                        cts24[0],
                        cts24[1],
                        cts24[2],
                    ];
                    write_video(ts, &h, &f.data, nls, out)?;
                }
            }
            _ => write_tag_parts(TagType::Audio, ts, &[&[AAC_FLAGS, 1], &f.data], out)?,
        }
        self.last_ts = ts;
        let slot = if is_video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if let Some(t) = slot {
            t.last_dts = Some(ts);
        }
        Ok(())
    }
}

/// `SoundFormat` 10 (AAC), 44 kHz, 16-bit, stereo: what E.4.2.1 prescribes for AAC.
const AAC_FLAGS: u8 = (SOUND_FORMAT_AAC << 4) | 0x0f;

/// Writes a video tag: `header`, then the canonical 4-byte length-prefixed `data`
/// re-prefixed with `nal_length_size`-byte lengths.
fn write_video(
    ts: u32,
    header: &[u8],
    data: &[u8],
    nal_length_size: u8,
    out: &mut BytesMut,
) -> Result<()> {
    if nal_length_size == 4 {
        return write_tag_parts(TagType::Video, ts, &[header, data], out);
    }
    let max_unit = 1usize << (8 * u32::from(nal_length_size.clamp(1, 3)));
    let mut units = 0usize;
    for u in nal::iter_length_prefixed(data, 4) {
        if u?.len() >= max_unit {
            return Err(Error::limit(
                "NAL unit too long for the stream's NAL length size",
            ));
        }
        units += 1;
    }
    let size = header.len() + data.len() - units * (4 - nal_length_size as usize);
    if size > MAX_DATA_SIZE as usize {
        return Err(Error::limit("FLV tag body longer than 16 MiB"));
    }
    out.reserve(TAG_HEADER_LEN + size + 4);
    TagHeader {
        tag_type: TagType::Video,
        filter: false,
        data_size: size as u32,
        timestamp: ts,
        stream_id: 0,
    }
    .write(out);
    out.put_slice(header);
    for u in nal::iter_length_prefixed(data, 4).flatten() {
        let len = (u.len() as u32).to_be_bytes();
        out.put_slice(&len[4 - nal_length_size as usize..]);
        out.put_slice(u);
    }
    out.put_u32((TAG_HEADER_LEN + size) as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ingest::flv::test_util::*;
    use crate::ingest::flv::{FlvDemuxer, FlvTag, TagReader};
    use crate::media::{FrameFlags, H264Config, OpusConfig};
    use crate::time::Timestamp;
    use crate::ErrorKind;

    fn mux_all(mux: &mut FlvMuxer, items: &[Item]) -> Bytes {
        let mut out = BytesMut::new();
        for i in items {
            mux.write(i, &mut out).unwrap();
        }
        out.freeze()
    }

    fn tag_list(file: Bytes) -> Vec<(TagType, u32, Bytes)> {
        TagReader::new(file)
            .unwrap()
            .map(|t| t.unwrap())
            .map(|t: FlvTag| (t.tag_type, t.timestamp, t.body))
            .collect()
    }

    fn h264_track() -> TrackInfo {
        TrackInfo::new(
            1,
            Timescale::MILLIS,
            CodecConfig::H264(H264Config::from_avcc(avcc(4)).unwrap()),
        )
    }

    #[test]
    fn short_nal_lengths_are_restored() {
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        let input = file(&[
            (TagType::Video, 0, avc_body(1, 0, 0, &avcc(2))),
            (
                TagType::Video,
                0,
                avc_body(1, 1, 40, &prefixed(&[idr, idr], 2)),
            ),
            (TagType::Video, 0, avc_body(1, 2, 0, &[])),
        ]);
        let items = items(&mut FlvDemuxer::new(), input.clone());
        assert_eq!(
            &items[1].as_frame().unwrap().data[..],
            &prefixed(&[idr, idr], 4)[..]
        );
        let out = mux_all(&mut FlvMuxer::new(), &items);
        assert_eq!(tag_list(out.clone()), tag_list(input));
        assert!(!TagReader::new(out).unwrap().header().unwrap().has_audio());
    }

    #[test]
    fn hevc_round_trip() {
        let mut seq = b"\x90hvc1".to_vec();
        seq.extend_from_slice(&hvcc());
        let mut key = b"\x91hvc1\x00\x00\x28".to_vec();
        key.extend_from_slice(&prefixed(&[&[0x26, 0x01, 0xaf]], 4));
        let mut inter = b"\xa3hvc1".to_vec();
        inter.extend_from_slice(&prefixed(&[&[0x02, 0x01, 0xd0]], 4));
        let input = file(&[
            (TagType::Video, 0, seq),
            (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
            (TagType::Video, 0, key),
            (TagType::Audio, 10, vec![0xaf, 1, 0x21]),
            (TagType::Video, 40, inter),
            (TagType::Video, 40, b"\x92hvc1".to_vec()),
        ]);
        let items = items(&mut FlvDemuxer::new(), input.clone());
        let out = mux_all(&mut FlvMuxer::new(), &items);
        assert_eq!(out, input);
    }

    #[test]
    fn timescales_are_rescaled_to_milliseconds() {
        let mut track = h264_track();
        track.timescale = Timescale::MPEG;
        let t = |ticks| Timestamp::new(ticks, Timescale::MPEG);
        let frame = Frame::new(
            1,
            t(90_000),
            t(93_600),
            Bytes::from(prefixed(&[&[0x65, 1]], 4)),
        )
        .with_flags(FrameFlags::KEYFRAME);
        let data = Event::Data {
            at: Timestamp::from_millis(7),
            name: "onCuePoint".into(),
            payload: Bytes::from_static(b"\x02\x00\x01x"),
        };
        let out = mux_all(
            &mut FlvMuxer::new(),
            &[
                Item::Event(data),
                Item::Event(Event::TrackAdded(track)),
                Item::Frame(frame),
                Item::Event(Event::EndOfStream),
            ],
        );
        let tags = tag_list(out);
        // Held items keep their order after the header; the sequence header takes the
        // time of the last tag written.
        assert_eq!(
            tags[0],
            (TagType::Script, 7, Bytes::from_static(b"\x02\x00\x01x"))
        );
        assert_eq!(
            (tags[1].0, tags[1].1, tags[1].2[..5].to_vec()),
            (TagType::Video, 7, vec![0x17, 0, 0, 0, 0])
        );
        assert_eq!(
            (tags[2].1, &tags[2].2[..5]),
            (1000, &[0x17, 1, 0, 0, 40][..])
        );
        assert_eq!(tags.len(), 4); // + end of sequence
        assert_eq!((tags[3].1, &tags[3].2[..]), (1000, &[0x17, 2, 0, 0, 0][..]));
    }

    #[test]
    fn header_and_end_of_sequence_policies() {
        let opts = FlvMuxerOptions {
            header: MuxHeader::Omit,
            end_of_sequence: EndOfSequence::Never,
        };
        let mut mux = FlvMuxer::with_options(opts);
        let out = mux_all(&mut mux, &[Item::Event(Event::TrackAdded(h264_track()))]);
        let mut end = BytesMut::new();
        mux.finish(&mut end).unwrap();
        assert!(end.is_empty());
        let tags: Vec<_> = TagReader::without_header(out).map(|t| t.unwrap()).collect();
        assert_eq!(tags.len(), 1);

        let opts = FlvMuxerOptions {
            header: MuxHeader::Fixed(FlvHeader::new(true, true)),
            ..FlvMuxerOptions::default()
        };
        let out = mux_all(
            &mut FlvMuxer::with_options(opts),
            &[Item::Event(Event::TrackAdded(h264_track()))],
        );
        assert_eq!(&out[..13], b"FLV\x01\x05\0\0\0\x09\0\0\0\0");
        assert_eq!(out.len(), 13 + 15 + 5 + avcc(4).len());
    }

    #[test]
    fn misuse_and_limits_are_errors() {
        let mut out = BytesMut::new();
        let key = |dts: i64, pts: i64| {
            Item::Frame(
                Frame::new(
                    1,
                    Timestamp::from_millis(dts),
                    Timestamp::from_millis(pts),
                    Bytes::from(prefixed(&[&[0x65]], 4)),
                )
                .with_flags(FrameFlags::KEYFRAME),
            )
        };
        let mut mux = FlvMuxer::new();
        assert_eq!(
            mux.write(&key(0, 0), &mut out).unwrap_err().kind(),
            ErrorKind::Usage
        );
        mux.write(&Item::Event(Event::TrackAdded(h264_track())), &mut out)
            .unwrap();
        let mut other = h264_track();
        other.id = 7;
        let e = mux
            .write(&Item::Event(Event::TrackAdded(other)), &mut out)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let opus = OpusConfig {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48_000,
            dops: Bytes::new(),
        };
        let e = mux
            .write(
                &Item::Event(Event::TrackAdded(TrackInfo::new(
                    2,
                    Timescale::MILLIS,
                    CodecConfig::Opus(opus),
                ))),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(
            mux.write(&key(0, 1 << 23), &mut out).unwrap_err().kind(),
            ErrorKind::Limit
        );
        mux.write(&key(0, (1 << 23) - 1), &mut out).unwrap();
        mux.finish(&mut out).unwrap();
        assert_eq!(
            mux.write(&key(40, 40), &mut out).unwrap_err().kind(),
            ErrorKind::Usage
        );

        // A unit too long for a 1-byte NAL length.
        let mut mux = FlvMuxer::new();
        let mut t = h264_track();
        t.config = CodecConfig::H264(H264Config::from_avcc(avcc(1)).unwrap());
        mux.write(&Item::Event(Event::TrackAdded(t)), &mut out)
            .unwrap();
        let frame = |data: Vec<u8>| {
            Item::Frame(Frame::new(
                1,
                Timestamp::from_millis(0),
                Timestamp::from_millis(0),
                Bytes::from(data),
            ))
        };
        mux.write(&frame(prefixed(&[&[0x65; 2]], 4)), &mut out)
            .unwrap();
        let before = out.len();
        assert_eq!(
            mux.write(&frame(prefixed(&[&[0x65; 256]], 4)), &mut out)
                .unwrap_err()
                .kind(),
            ErrorKind::Limit
        );
        // Broken canonical framing, when it has to be rewritten.
        assert_eq!(
            mux.write(&frame(vec![0, 0, 0, 9]), &mut out)
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
        assert_eq!(out.len(), before, "nothing written on error");
        mux.write(&frame(prefixed(&[&[0x65; 255]], 4)), &mut out)
            .unwrap();
        assert_eq!(out.len(), before + 15 + 5 + 256);
    }
}
