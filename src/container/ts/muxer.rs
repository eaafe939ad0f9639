//! [`TsMuxer`]: canonical frames in, MPEG-TS transport packets out (ISO/IEC 13818-1).
//!
//! One program (number 1) with a PAT, a PMT, one PID per track (video first, then
//! audio, in the order given) and PCR on the video PID (the first audio PID when there
//! is no video). Video becomes Annex B with an access unit delimiter in front of every
//! access unit and the decoder configuration's parameter sets in front of every
//! random access point; AAC gets a 7-byte ADTS header per raw frame, and consecutive
//! frames of a track are grouped into one PES packet.

use bytes::BytesMut;

use super::packet::{
    self, ContinuityCounter, StartFlags, MAX_USER_PID, MIN_USER_PID, PACKET_SIZE, PAT_PID,
};
use super::pes::{
    PesHeader, MAX_PES_PACKET_LENGTH, STREAM_ID_AUDIO, STREAM_ID_VIDEO, TIMESTAMP_MASK,
};
use super::psi::{self, PmtStream, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_HEVC};
use crate::bitstream::{aac, h264, h265};
use crate::error::{Error, Result};
use crate::media::{AacConfig, CodecConfig, Frame, MediaKind, TrackId, TrackInfo};
use crate::package::Segment;
use crate::time::{Timescale, Timestamp};

/// `program_number` of the one program we write (PAT and PMT).
pub const PROGRAM_NUMBER: u16 = 1;
/// `transport_stream_id` written in the PAT.
pub const TRANSPORT_STREAM_ID: u16 = 1;
/// Most tracks one muxer accepts (the PMT must fit in one transport packet).
pub const MAX_TRACKS: usize = 16;
/// How far the PCR runs behind the DTS of the PES packet it travels with: 0.7 s,
/// ffmpeg's default `max_delay`. The PCR never exceeds that DTS.
pub const PCR_DELAY: Timestamp = Timestamp::new(PCR_DELAY_90K, Timescale::MPEG);
/// Longest gap between two PCRs we let happen when other PIDs have data to send
/// (§2.7.2 requires at most 100 ms).
pub const PCR_MAX_INTERVAL: Timestamp = Timestamp::new(PCR_INTERVAL_90K, Timescale::MPEG);
/// Default [`TsMuxerOptions::audio_pes_max_bytes`]: ffmpeg's default PES payload size.
pub const DEFAULT_AUDIO_PES_MAX_BYTES: usize = 2930;

const PCR_DELAY_90K: i64 = 63_000;
const PCR_INTERVAL_90K: i64 = 9_000;
/// Largest audio PES payload: keeps `PES_packet_length` (PTS only header) within 16 bits.
const MAX_AUDIO_PES_PAYLOAD: usize = MAX_PES_PACKET_LENGTH - 8;

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 access unit delimiter, `primary_pic_type` 7 (any slice type), with start code.
const H264_AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
/// H.265 access unit delimiter (type 35, `nuh_temporal_id_plus1` 1, `pic_type` 2), with start code.
const H265_AUD: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// Options of a [`TsMuxer`]. Start from [`TsMuxerOptions::default`] and set fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TsMuxerOptions {
    /// PID of the PMT. Default `0x1000`. Must be in `0x0010..=0x1FFE` and not collide
    /// with an elementary stream PID.
    pub pmt_pid: u16,
    /// PID of the first elementary stream; the others follow consecutively, video
    /// tracks first, then audio tracks, each in the order given. Default `0x100`.
    pub first_es_pid: u16,
    /// Added to every PTS, DTS and PCR so that B-frame DTS before the first PTS (and
    /// the PCR, [`PCR_DELAY`] behind the DTS) stay positive. Default 1.4 s, as ffmpeg's
    /// mpegts muxer.
    pub timestamp_offset: Timestamp,
    /// Consecutive AAC frames of a track are grouped into one PES packet until its
    /// payload (ADTS headers included) reaches this size. Default
    /// [`DEFAULT_AUDIO_PES_MAX_BYTES`] (2930, like ffmpeg); 0 or 1 writes one frame per
    /// PES packet. Capped so that `PES_packet_length` fits in 16 bits.
    pub audio_pes_max_bytes: usize,
}

impl Default for TsMuxerOptions {
    fn default() -> Self {
        TsMuxerOptions {
            pmt_pid: 0x1000,
            first_es_pid: 0x100,
            timestamp_offset: Timestamp::new(126_000, Timescale::MPEG),
            audio_pes_max_bytes: DEFAULT_AUDIO_PES_MAX_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoCodec {
    H264,
    H265,
}

/// AAC frames waiting to become one PES packet: ADTS frames back to back.
#[derive(Debug, Default)]
struct AudioGroup {
    data: Vec<u8>,
    frames: usize,
    /// PTS / DTS of the first frame, 90 kHz with offset.
    pts: i64,
    dts: i64,
    /// Expected DTS of the next frame if it continues the group.
    next_dts: i64,
    /// The track's configuration changed: the next frame starts a new group.
    sealed: bool,
}

#[derive(Debug)]
enum Codec {
    Video {
        codec: VideoCodec,
        /// Parameter sets of the configuration, Annex B (start codes included).
        params: Vec<u8>,
    },
    Aac {
        cfg: AacConfig,
        /// Duration of one frame (1024 samples) in 90 kHz ticks.
        frame_90k: i64,
        group: AudioGroup,
    },
}

#[derive(Debug)]
struct Track {
    info: TrackInfo,
    pid: u16,
    stream_id: u8,
    stream_type: u8,
    cc: ContinuityCounter,
    codec: Codec,
}

fn annexb_units(sets: &[&[bytes::Bytes]]) -> Vec<u8> {
    let mut v = Vec::new();
    for set in sets {
        for unit in set.iter() {
            v.extend_from_slice(&START_CODE);
            v.extend_from_slice(unit);
        }
    }
    v
}

fn language_code(info: &TrackInfo) -> Option<[u8; 3]> {
    match info.language.as_deref().map(str::as_bytes) {
        Some(&[a, b, c]) if [a, b, c].iter().all(u8::is_ascii_alphabetic) => Some([a, b, c]),
        _ => None,
    }
}

impl Track {
    fn new(info: TrackInfo, pid: u16) -> Result<Self> {
        let (stream_id, stream_type, codec) = match &info.config {
            CodecConfig::H264(c) => (
                STREAM_ID_VIDEO,
                STREAM_TYPE_H264,
                Codec::Video {
                    codec: VideoCodec::H264,
                    params: annexb_units(&[&c.sps, &c.pps]),
                },
            ),
            CodecConfig::H265(c) => (
                STREAM_ID_VIDEO,
                STREAM_TYPE_HEVC,
                Codec::Video {
                    codec: VideoCodec::H265,
                    params: annexb_units(&[&c.vps, &c.sps, &c.pps]),
                },
            ),
            CodecConfig::Aac(c) => {
                // Fails early when the configuration cannot be expressed in ADTS.
                aac::adts_header(c, 0)?;
                let frame_90k = 1024 * 90_000 / i64::from(c.sample_rate.max(1));
                (
                    STREAM_ID_AUDIO,
                    STREAM_TYPE_AAC_ADTS,
                    Codec::Aac {
                        cfg: c.clone(),
                        frame_90k,
                        group: AudioGroup::default(),
                    },
                )
            }
            CodecConfig::Opus(_) => {
                return Err(Error::unsupported("Opus in MPEG-TS is not supported"))
            }
            #[allow(unreachable_patterns)]
            _ => {
                return Err(Error::unsupported(
                    "codec not supported by the MPEG-TS muxer",
                ))
            }
        };
        Ok(Track {
            info,
            pid,
            stream_id,
            stream_type,
            cc: ContinuityCounter::new(),
            codec,
        })
    }
}

/// State saved at the start of [`TsMuxer::write_segment`] to undo a failed segment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    track_cc: [ContinuityCounter; MAX_TRACKS],
    pat_cc: ContinuityCounter,
    pmt_cc: ContinuityCounter,
    last_pcr: Option<i64>,
    tables_due: bool,
}

/// MPEG-TS muxer (ISO/IEC 13818-1): writes frames of H.264, H.265 and AAC tracks as
/// transport packets into a buffer the caller owns.
///
/// State (continuity counters, PMT version, PCR clock) persists for the life of the
/// muxer, so consecutive segments form one continuous transport stream while each one
/// starts with its own PAT and PMT and can be decoded alone.
///
/// Drive it with [`write_segment`](Self::write_segment) per segment, or with
/// [`write_tables`](Self::write_tables), [`write_frame`](Self::write_frame) per frame
/// and [`flush`](Self::flush) at the end for a continuous stream. Frames are in decode
/// order per track, with canonical payloads (4-byte length-prefixed NAL units, raw AAC).
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::ts::{TsMuxer, TsMuxerOptions};
/// use strom::media::{AacConfig, CodecConfig, Frame, TrackInfo};
/// use strom::time::{Timescale, Timestamp};
///
/// let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap(); // LC 48 kHz stereo
/// let ts = Timescale::new(48_000).unwrap();
/// let track = TrackInfo::new(2, ts, CodecConfig::Aac(aac));
/// let mut mux = TsMuxer::new(&[track], TsMuxerOptions::default()).unwrap();
/// let mut out = BytesMut::new();
/// mux.write_tables(&mut out);
/// let t = Timestamp::new(0, ts);
/// mux.write_frame(&Frame::new(2, t, t, Bytes::from_static(&[0x21; 300])), &mut out).unwrap();
/// mux.flush(&mut out).unwrap();
/// assert_eq!(out.len(), 4 * 188); // PAT, PMT, two packets of audio
/// assert!(out.chunks(188).all(|p| p[0] == 0x47));
/// ```
#[derive(Debug)]
pub struct TsMuxer {
    opts: TsMuxerOptions,
    offset_90k: i64,
    /// Video tracks first, then audio; PIDs consecutive from `first_es_pid`.
    tracks: Vec<Track>,
    /// Index in `tracks` of the PCR track: always 0 (video if any, else the first audio).
    pcr_track: usize,
    pat: [u8; PACKET_SIZE],
    pmt: [u8; PACKET_SIZE],
    pat_cc: ContinuityCounter,
    pmt_cc: ContinuityCounter,
    pmt_version: u8,
    /// PAT and PMT must be written before the next PES (start, or a track changed).
    tables_due: bool,
    /// Last PCR base written, 90 kHz with offset, not wrapped.
    last_pcr: Option<i64>,
    /// Scratch: PES header and the Annex B prefix of the current video frame.
    head: Vec<u8>,
    /// Scratch: byte offsets of the NAL length prefixes of the current video frame.
    nal_offsets: Vec<usize>,
}

impl TsMuxer {
    /// A muxer for `tracks` (H.264, H.265 and AAC; anything else is
    /// [`Error::unsupported`]).
    ///
    /// Errors with [`Error::usage`] for no tracks, duplicate track ids or PIDs outside
    /// `0x0010..=0x1FFE` (or colliding), and [`Error::limit`] for more than
    /// [`MAX_TRACKS`] tracks or a PMT too large for one packet.
    pub fn new(tracks: &[TrackInfo], opts: TsMuxerOptions) -> Result<Self> {
        if tracks.is_empty() {
            return Err(Error::usage("TsMuxer needs at least one track"));
        }
        if tracks.len() > MAX_TRACKS {
            return Err(Error::limit("too many tracks for the MPEG-TS muxer"));
        }
        for (i, t) in tracks.iter().enumerate() {
            if tracks[..i].iter().any(|u| u.id == t.id) {
                return Err(Error::usage("duplicate track id"));
            }
        }
        let first = opts.first_es_pid as usize;
        let last = first + tracks.len() - 1;
        let pmt = opts.pmt_pid as usize;
        if !(MIN_USER_PID as usize..=MAX_USER_PID as usize).contains(&pmt)
            || first < MIN_USER_PID as usize
            || last > MAX_USER_PID as usize
            || (first..=last).contains(&pmt)
        {
            return Err(Error::usage("TS muxer PIDs out of range or colliding"));
        }
        let ordered = tracks
            .iter()
            .filter(|t| t.config.kind() == MediaKind::Video)
            .chain(
                tracks
                    .iter()
                    .filter(|t| t.config.kind() != MediaKind::Video),
            );
        let mut built = Vec::with_capacity(tracks.len());
        for (i, t) in ordered.enumerate() {
            let track = Track::new(t.clone(), opts.first_es_pid + i as u16)
                .map_err(|e| e.context(format!("ts muxer: track {}", t.id)))?;
            built.push(track);
        }
        let offset_90k = opts.timestamp_offset.ticks_in(Timescale::MPEG);
        let mut mux = TsMuxer {
            opts,
            offset_90k,
            tracks: built,
            pcr_track: 0,
            pat: [0; PACKET_SIZE],
            pmt: [0; PACKET_SIZE],
            pat_cc: ContinuityCounter::new(),
            pmt_cc: ContinuityCounter::new(),
            pmt_version: 0,
            tables_due: true,
            last_pcr: None,
            head: Vec::with_capacity(256),
            nal_offsets: Vec::with_capacity(16),
        };
        mux.build_tables()?;
        Ok(mux)
    }

    /// The options this muxer was built with.
    pub fn options(&self) -> &TsMuxerOptions {
        &self.opts
    }
    /// The PID carrying `track`, if the muxer knows it.
    pub fn pid(&self, track: TrackId) -> Option<u16> {
        self.index_of(track).map(|i| self.tracks[i].pid)
    }
    /// The `PCR_PID` of the program: the first video PID, else the first audio PID.
    pub fn pcr_pid(&self) -> u16 {
        self.tracks[self.pcr_track].pid
    }
    /// The current PMT `version_number` (0..=31), bumped by each track change.
    pub fn pmt_version(&self) -> u8 {
        self.pmt_version
    }

    fn index_of(&self, id: TrackId) -> Option<usize> {
        self.tracks.iter().position(|t| t.info.id == id)
    }

    fn build_tables(&mut self) -> Result<()> {
        let pat = psi::pat_section(TRANSPORT_STREAM_ID, 0, PROGRAM_NUMBER, self.opts.pmt_pid);
        let mut streams = [PmtStream {
            stream_type: 0,
            pid: 0,
            language: None,
        }; MAX_TRACKS];
        for (s, t) in streams.iter_mut().zip(&self.tracks) {
            *s = PmtStream {
                stream_type: t.stream_type,
                pid: t.pid,
                language: language_code(&t.info),
            };
        }
        let pmt = psi::pmt_section(
            PROGRAM_NUMBER,
            self.pmt_version,
            self.pcr_pid(),
            &streams[..self.tracks.len()],
        )?;
        self.pat = psi::section_packet(PAT_PID, &pat)?;
        self.pmt = psi::section_packet(self.opts.pmt_pid, &pmt)?;
        Ok(())
    }

    /// Adopts a new configuration for an existing track (the `TrackChanged` event):
    /// new SPS/PPS, new AudioSpecificConfig, or another codec of the same media kind.
    ///
    /// A configuration equal to the current one changes nothing. Otherwise the PMT
    /// `version_number` is bumped (§2.4.4.9), PAT and PMT are written again before the
    /// next PES, parameter sets inserted at keyframes come from the new configuration
    /// and pending AAC frames are not grouped with later ones. Continuity counters and
    /// PIDs are kept. Errors ([`Error::usage`] for an unknown id or a change of media
    /// kind, [`Error::unsupported`] for a codec we cannot carry) leave the muxer unchanged.
    pub fn update_track(&mut self, track: &TrackInfo) -> Result<()> {
        let idx = self
            .index_of(track.id)
            .ok_or_else(|| Error::usage("update_track: unknown track id"))?;
        if self.tracks[idx].info == *track {
            return Ok(());
        }
        if self.tracks[idx].info.config.kind() != track.config.kind() {
            return Err(Error::usage(
                "update_track cannot change a track's media kind",
            ));
        }
        let mut new = Track::new(track.clone(), self.tracks[idx].pid)?;
        let old = &mut self.tracks[idx];
        new.cc = old.cc;
        if let (Codec::Aac { group: g_new, .. }, Codec::Aac { group: g_old, .. }) =
            (&mut new.codec, &mut old.codec)
        {
            std::mem::swap(g_new, g_old);
            g_new.sealed = g_new.frames > 0;
        }
        let old = std::mem::replace(&mut self.tracks[idx], new);
        let old_version = self.pmt_version;
        self.pmt_version = (self.pmt_version + 1) & 0x1f;
        if let Err(e) = self.build_tables() {
            // Undo: put the old track back (with the pending audio group).
            let mut cur = std::mem::replace(&mut self.tracks[idx], old);
            if let (Codec::Aac { group: g_cur, .. }, Codec::Aac { group: g_old, .. }) =
                (&mut cur.codec, &mut self.tracks[idx].codec)
            {
                std::mem::swap(g_cur, g_old);
                g_old.sealed = false;
            }
            self.pmt_version = old_version;
            return Err(e);
        }
        self.tables_due = true;
        Ok(())
    }

    /// Appends the PAT and the PMT (two packets, §2.4.4.3, §2.4.4.8). Call at the start
    /// of a stream or segment; [`write_frame`](Self::write_frame) writes them by itself
    /// before the first PES and after a track change if the caller has not.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        out.reserve(2 * PACKET_SIZE);
        let mut p = self.pat;
        psi::set_continuity_counter(&mut p, self.pat_cc.next_payload());
        out.extend_from_slice(&p);
        let mut p = self.pmt;
        psi::set_continuity_counter(&mut p, self.pmt_cc.next_payload());
        out.extend_from_slice(&p);
        self.tables_due = false;
    }

    /// Appends one frame. Video frames become one PES packet each; AAC frames are
    /// grouped (see [`TsMuxerOptions::audio_pes_max_bytes`]) and may be written by a
    /// later call or by [`flush`](Self::flush).
    ///
    /// Errors: [`Error::usage`] for an unknown track, [`Error::malformed`] for a video
    /// payload that is not 4-byte length-prefixed NAL units (or has none),
    /// [`Error::limit`] for an AAC frame too long for ADTS. On error nothing is written.
    pub fn write_frame(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<()> {
        let idx = self
            .index_of(frame.track)
            .ok_or_else(|| Error::usage("frame for a track the TS muxer does not know"))?;
        let r = match self.tracks[idx].codec {
            Codec::Video { .. } => self.write_video(idx, frame, out),
            Codec::Aac { .. } => self.write_audio(idx, frame, out),
        };
        r.map_err(|e| e.context(format!("ts muxer: track {}", frame.track)))
    }

    /// Appends the AAC frames still grouped, one PES packet per track.
    pub fn flush(&mut self, out: &mut BytesMut) -> Result<()> {
        for idx in 0..self.tracks.len() {
            self.flush_audio(idx, out);
        }
        Ok(())
    }

    /// Appends one whole segment: pending audio from earlier calls, PAT, PMT, every
    /// frame in order, then the grouped audio, so that the segment decodes alone.
    ///
    /// Track configurations in `seg.tracks` that differ from the current ones are
    /// adopted first, as by [`update_track`](Self::update_track). If a frame fails,
    /// `out` is truncated back to its length before this segment's tables and the
    /// continuity counters and PCR clock are restored, so the next segment continues
    /// the stream as if this one had not been written.
    pub fn write_segment(&mut self, seg: &Segment, out: &mut BytesMut) -> Result<()> {
        for t in &seg.tracks {
            self.update_track(t)
                .map_err(|e| e.context(format!("ts muxer: segment {}", seg.sequence)))?;
        }
        self.flush(out)?;
        let start = out.len();
        let snap = self.snapshot();
        self.write_tables(out);
        // Payload plus PES/ADTS/AUD overhead, plus up to one partial packet per frame.
        let frames = seg.frames.len();
        out.reserve(
            (seg.payload_len() + frames * 48) / packet::MAX_PAYLOAD * PACKET_SIZE
                + (frames + 2) * PACKET_SIZE,
        );
        let r = self.write_frames(&seg.frames, out);
        if let Err(e) = r {
            out.truncate(start);
            self.restore(&snap);
            return Err(e.context(format!("ts muxer: segment {}", seg.sequence)));
        }
        Ok(())
    }

    fn write_frames(&mut self, frames: &[Frame], out: &mut BytesMut) -> Result<()> {
        for f in frames {
            self.write_frame(f, out)?;
        }
        self.flush(out)
    }

    fn snapshot(&self) -> Snapshot {
        let mut track_cc = [ContinuityCounter::new(); MAX_TRACKS];
        for (c, t) in track_cc.iter_mut().zip(&self.tracks) {
            *c = t.cc;
        }
        Snapshot {
            track_cc,
            pat_cc: self.pat_cc,
            pmt_cc: self.pmt_cc,
            last_pcr: self.last_pcr,
            tables_due: self.tables_due,
        }
    }

    fn restore(&mut self, s: &Snapshot) {
        for (t, c) in self.tracks.iter_mut().zip(&s.track_cc) {
            t.cc = *c;
            if let Codec::Aac { group, .. } = &mut t.codec {
                group.data.clear();
                group.frames = 0;
            }
        }
        self.pat_cc = s.pat_cc;
        self.pmt_cc = s.pmt_cc;
        self.last_pcr = s.last_pcr;
        self.tables_due = s.tables_due;
    }

    #[inline]
    fn to_90k(&self, t: Timestamp) -> i64 {
        t.ticks_in(Timescale::MPEG).saturating_add(self.offset_90k)
    }

    /// The next PCR base for a PES with decode time `dts`: [`PCR_DELAY`] behind it,
    /// never going backwards.
    fn next_pcr(&mut self, dts: i64) -> i64 {
        let v = dts.saturating_sub(PCR_DELAY_90K);
        let v = match self.last_pcr {
            Some(l) if l > v => l,
            _ => v,
        };
        self.last_pcr = Some(v);
        v
    }

    /// Adaptation field flags for the first packet of a PES on track `idx`; writes a
    /// PCR-only packet on the PCR PID first when the PCR would otherwise lag.
    fn start_flags(
        &mut self,
        idx: usize,
        dts: i64,
        random_access: bool,
        out: &mut BytesMut,
    ) -> StartFlags {
        if idx == self.pcr_track {
            let pcr = self.next_pcr(dts);
            return StartFlags {
                pcr: Some(pcr as u64 & TIMESTAMP_MASK),
                random_access,
            };
        }
        let due = match self.last_pcr {
            None => true,
            Some(l) => dts.saturating_sub(PCR_DELAY_90K).saturating_sub(l) >= PCR_INTERVAL_90K,
        };
        if due {
            let pcr = self.next_pcr(dts) as u64 & TIMESTAMP_MASK;
            let t = &mut self.tracks[self.pcr_track];
            packet::put_pcr_packet(out, t.pid, &mut t.cc, pcr);
        }
        StartFlags {
            pcr: None,
            random_access,
        }
    }

    fn write_video(&mut self, idx: usize, frame: &Frame, out: &mut BytesMut) -> Result<()> {
        let data: &[u8] = &frame.data;
        let Codec::Video { codec, ref params } = self.tracks[idx].codec else {
            return Err(Error::usage("not a video track"));
        };
        // One pass over the NAL length prefixes: validate framing, classify units.
        self.nal_offsets.clear();
        let (mut first_aud_len, mut has_sps, mut irap) = (None, false, false);
        let mut pos = 0usize;
        while pos < data.len() {
            let p = data.get(pos..pos + 4).ok_or_else(|| {
                Error::malformed("truncated NAL length prefix").at_offset(pos as u64)
            })?;
            let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
            let end = (pos + 4)
                .checked_add(len)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| {
                    Error::malformed("NAL unit length exceeds the frame").at_offset(pos as u64)
                })?;
            if len > 0 {
                let b = data[pos + 4];
                let (aud, sps, rap) = match codec {
                    VideoCodec::H264 => {
                        let t = b & 0x1f;
                        (
                            t == h264::nal_type::AUD,
                            t == h264::nal_type::SPS,
                            t == h264::nal_type::IDR,
                        )
                    }
                    VideoCodec::H265 => {
                        let t = (b >> 1) & 0x3f;
                        (
                            t == h265::nal_type::AUD,
                            t == h265::nal_type::SPS,
                            (h265::nal_type::BLA_W_LP..=h265::nal_type::IRAP_END).contains(&t),
                        )
                    }
                };
                if aud && self.nal_offsets.is_empty() {
                    first_aud_len = Some(len);
                }
                has_sps |= sps;
                irap |= rap;
            }
            self.nal_offsets.push(pos);
            pos = end;
        }
        if self.nal_offsets.is_empty() {
            return Err(Error::malformed("video frame has no NAL units"));
        }
        let keyframe = frame.is_keyframe() || irap;
        let insert_params = keyframe && !has_sps;

        // Head: PES header, AUD (ours or the frame's own), parameter sets.
        let aud: &[u8] = match codec {
            VideoCodec::H264 => &H264_AUD,
            VideoCodec::H265 => &H265_AUD,
        };
        let skip = first_aud_len.map_or(0, |l| 4 + l);
        let params: &[u8] = if insert_params { params } else { &[] };
        let aud_len = if skip > 0 { skip } else { aud.len() };
        let payload_len = aud_len + params.len() + (data.len() - skip);
        let pts = self.to_90k(frame.pts);
        let dts = self.to_90k(frame.dts);
        let (hdr, n) = PesHeader {
            stream_id: self.tracks[idx].stream_id,
            pts: pts as u64,
            dts: Some(dts as u64),
            payload_len,
        }
        .encode();
        self.head.clear();
        self.head.extend_from_slice(&hdr[..n]);
        if skip > 0 {
            self.head.extend_from_slice(&START_CODE);
            self.head.extend_from_slice(&data[4..skip]);
        } else {
            self.head.extend_from_slice(aud);
        }
        self.head.extend_from_slice(params);

        if self.tables_due {
            self.write_tables(out);
        }
        let start = self.start_flags(idx, dts, keyframe, out);
        let t = &mut self.tracks[idx];
        let body = &data[skip..];
        let layout = packet::put_pes(out, t.pid, &mut t.cc, start, &self.head, body);
        // Length prefixes become start codes of the same size, in place.
        let head_len = self.head.len();
        for &off in &self.nal_offsets {
            if off >= skip {
                layout.patch(out, head_len + off - skip, &START_CODE);
            }
        }
        Ok(())
    }

    fn write_audio(&mut self, idx: usize, frame: &Frame, out: &mut BytesMut) -> Result<()> {
        let pts = self.to_90k(frame.pts);
        let dts = self.to_90k(frame.dts);
        let max = self.opts.audio_pes_max_bytes.min(MAX_AUDIO_PES_PAYLOAD);
        let is_pcr = idx == self.pcr_track;
        let Codec::Aac {
            cfg,
            frame_90k,
            group,
        } = &self.tracks[idx].codec
        else {
            return Err(Error::usage("not an audio track"));
        };
        let adts = aac::adts_header(cfg, frame.data.len())?;
        let add = adts.len() + frame.data.len();
        let flush_first = group.frames > 0
            && (group.sealed
                || group.data.len() + add > max
                || (dts - group.next_dts).abs() > frame_90k / 2
                || (is_pcr && dts - group.dts >= PCR_INTERVAL_90K));
        let frame_90k = *frame_90k;
        if self.tables_due {
            self.write_tables(out);
        }
        if flush_first {
            self.flush_audio(idx, out);
        }
        let Codec::Aac { group, .. } = &mut self.tracks[idx].codec else {
            return Err(Error::usage("not an audio track"));
        };
        if group.frames == 0 {
            group.pts = pts;
            group.dts = dts;
            group.sealed = false;
        }
        group.data.extend_from_slice(&adts);
        group.data.extend_from_slice(&frame.data);
        group.frames += 1;
        group.next_dts = dts
            + frame
                .duration
                .map_or(frame_90k, |d| d.ticks_in(Timescale::MPEG));
        if group.data.len() >= max {
            self.flush_audio(idx, out);
        }
        Ok(())
    }

    fn flush_audio(&mut self, idx: usize, out: &mut BytesMut) {
        let (pts, dts, len) = match &self.tracks[idx].codec {
            Codec::Aac { group, .. } if group.frames > 0 => {
                (group.pts, group.dts, group.data.len())
            }
            _ => return,
        };
        let (hdr, n) = PesHeader {
            stream_id: self.tracks[idx].stream_id,
            pts: pts as u64,
            dts: Some(dts as u64),
            payload_len: len,
        }
        .encode();
        let start = self.start_flags(idx, dts, idx == self.pcr_track, out);
        let t = &mut self.tracks[idx];
        if let Codec::Aac { group, .. } = &mut t.codec {
            packet::put_pes(out, t.pid, &mut t.cc, start, &hdr[..n], &group.data);
            group.data.clear();
            group.frames = 0;
        }
    }
}
