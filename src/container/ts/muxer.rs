//! [`TsMuxer`]: canonical frames in, MPEG-TS transport packets out (ISO/IEC 13818-1).
//!
//! One program (number 1) with a PAT, a PMT, one PID per track (video first, then
//! audio, in the order given) and PCR on the video PID (the first audio PID when there
//! is no video). Video becomes Annex B with an access unit delimiter in front of every
//! access unit and the decoder configuration's parameter sets in front of every
//! random access point; AAC gets a 7-byte ADTS header per raw frame, and consecutive
//! frames of a track are grouped into one PES packet. With
//! [`TsEncryption::SampleAes`] the H.264 slices and AAC frames are encrypted on the
//! way out (HLS SAMPLE-AES, [`super::sample_aes`]). With
//! [`TsMuxerOptions::scte35_pid`] the SCTE 35 sections of [`Event::Cue`]s travel on a
//! cue PID of their own (SCTE 35 §8).

use bytes::{Bytes, BytesMut};
use tracing::debug;

use super::packet::{
    self, ContinuityCounter, StartFlags, MAX_USER_PID, MIN_USER_PID, PACKET_SIZE, PAT_PID,
};
use super::pes::{
    PesHeader, MAX_PES_PACKET_LENGTH, STREAM_ID_AUDIO, STREAM_ID_VIDEO, TIMESTAMP_MASK,
};
use super::psi::{
    self, PmtStream, DESCRIPTOR_REGISTRATION, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_AAC_SAMPLE_AES,
    STREAM_TYPE_H264, STREAM_TYPE_H264_SAMPLE_AES, STREAM_TYPE_HEVC, STREAM_TYPE_SCTE35,
};
use super::sample_aes::{self as senc, TsEncryption};
use crate::bitstream::{aac, h264, h265};
use crate::crypto::sample_aes::SampleAes;
use crate::error::{Error, Result};
use crate::media::{
    AacConfig, CodecConfig, CueKind, Event, Frame, MediaKind, SpliceCue, TrackId, TrackInfo,
};
use crate::package::Segment;
use crate::scte35::{self, SpliceCommand, SpliceInfo, PTS_MAX};
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
/// Registration descriptor with `format_identifier` "CUEI" (ISO/IEC 13818-1 §2.6.8,
/// SCTE 35 §8.1): the program's `stream_type` 0x86 streams are SCTE 35.
const CUEI_REGISTRATION: [u8; 6] = [DESCRIPTOR_REGISTRATION, 4, b'C', b'U', b'E', b'I'];

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
    /// Protection of the elementary streams. Default [`TsEncryption::Clear`];
    /// [`TsEncryption::SampleAes`] writes HLS SAMPLE-AES (H.264 and AAC only). Change
    /// it on a running muxer with [`TsMuxer::set_encryption`].
    pub encryption: TsEncryption,
    /// PID of a SCTE 35 cue stream (SCTE 35 §8.1: `stream_type` 0x86 in the PMT, a
    /// registration descriptor "CUEI" in its program loop), carrying the sections of
    /// the cues given to [`TsMuxer::write_cue`] and of the [`Event::Cue`]s of a
    /// segment. Must be in `0x0010..=0x1FFE` and collide with no other PID. Default
    /// `None`: no cue stream, cues are not written (the output is what it was before
    /// the option existed).
    pub scte35_pid: Option<u16>,
}

impl Default for TsMuxerOptions {
    fn default() -> Self {
        TsMuxerOptions {
            pmt_pid: 0x1000,
            first_es_pid: 0x100,
            timestamp_offset: Timestamp::new(126_000, Timescale::MPEG),
            audio_pes_max_bytes: DEFAULT_AUDIO_PES_MAX_BYTES,
            encryption: TsEncryption::Clear,
            scte35_pid: None,
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
    /// `ES_info` descriptors besides the language (SAMPLE-AES signalling).
    descriptors: Vec<u8>,
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
    /// A track of `info` on `pid`; `encrypted` picks the SAMPLE-AES stream types.
    fn new(info: TrackInfo, pid: u16, encrypted: bool) -> Result<Self> {
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
        let (stream_type, descriptors) = match (&codec, encrypted) {
            (_, false) => (stream_type, Vec::new()),
            (
                Codec::Video {
                    codec: VideoCodec::H264,
                    ..
                },
                true,
            ) => (
                STREAM_TYPE_H264_SAMPLE_AES,
                senc::h264_descriptors().to_vec(),
            ),
            (Codec::Aac { cfg, .. }, true) => {
                (STREAM_TYPE_AAC_SAMPLE_AES, senc::aac_descriptors(cfg)?)
            }
            (Codec::Video { .. }, true) => {
                return Err(Error::unsupported(
                    "SAMPLE-AES in MPEG-TS covers H.264 video only",
                ))
            }
        };
        Ok(Track {
            info,
            pid,
            stream_id,
            stream_type,
            descriptors,
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
    cue_cc: ContinuityCounter,
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
    /// Continuity counter of the SCTE 35 PID.
    cue_cc: ContinuityCounter,
    pmt_version: u8,
    /// PAT and PMT must be written before the next PES (start, or a track changed).
    tables_due: bool,
    /// Last PCR base written, 90 kHz with offset, not wrapped.
    last_pcr: Option<i64>,
    /// Scratch: PES header and the Annex B prefix of the current video frame.
    head: Vec<u8>,
    /// Scratch: byte offsets of the NAL length prefixes of the current video frame.
    nal_offsets: Vec<usize>,
    /// The SAMPLE-AES cipher when [`TsMuxerOptions::encryption`] asks for it.
    sample_aes: Option<SampleAes>,
    /// Scratch: the encrypted Annex B body of the current video frame.
    body: Vec<u8>,
}

/// `pmt` (a whole PMT section from [`psi::pmt_section`], no program descriptors) with
/// `descriptor` in its program loop: `section_length` and `program_info_length` grow,
/// the CRC is computed again.
fn with_program_descriptor(pmt: Vec<u8>, descriptor: &[u8]) -> Result<Vec<u8>> {
    const INFO: usize = 10; // program_info_length, after the 8-byte header and PCR_PID
    let len = pmt.len() + descriptor.len();
    if len > psi::MAX_SINGLE_PACKET_SECTION || pmt.len() < 16 {
        return Err(Error::limit(
            "PMT does not fit in one transport packet (too many tracks)",
        ));
    }
    let mut s = Vec::with_capacity(len);
    s.extend_from_slice(&pmt[..INFO]);
    let info_len =
        ((u16::from(pmt[INFO] & 0x0f) << 8) | u16::from(pmt[INFO + 1])) + descriptor.len() as u16;
    s.extend_from_slice(&(0xf000 | info_len).to_be_bytes());
    s.extend_from_slice(descriptor);
    s.extend_from_slice(&pmt[INFO + 2..pmt.len() - 4]);
    let section_length = (s.len() + 4 - 3) as u16;
    s[1] = (s[1] & 0xf0) | (section_length >> 8) as u8;
    s[2] = section_length as u8;
    let crc = psi::crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    Ok(s)
}

/// The cipher of an encryption mode. Errors: an 8-byte IV ([`Error::usage`]).
fn cipher_of(enc: &TsEncryption) -> Result<Option<SampleAes>> {
    match enc {
        TsEncryption::Clear => Ok(None),
        TsEncryption::SampleAes { key, iv } => SampleAes::new(key, iv).map(Some),
    }
}

impl TsMuxer {
    /// A muxer for `tracks` (H.264, H.265 and AAC; anything else is
    /// [`Error::unsupported`]).
    ///
    /// Errors with [`Error::usage`] for no tracks, duplicate track ids or PIDs outside
    /// `0x0010..=0x1FFE` (or colliding) or an 8-byte SAMPLE-AES IV,
    /// [`Error::unsupported`] for H.265 with SAMPLE-AES, and [`Error::limit`] for more
    /// than [`MAX_TRACKS`] tracks or a PMT too large for one packet.
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
        let user = MIN_USER_PID as usize..=MAX_USER_PID as usize;
        if !user.contains(&pmt)
            || first < MIN_USER_PID as usize
            || last > MAX_USER_PID as usize
            || (first..=last).contains(&pmt)
            || opts.scte35_pid.is_some_and(|c| {
                let c = c as usize;
                !user.contains(&c) || c == pmt || (first..=last).contains(&c)
            })
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
        let sample_aes = cipher_of(&opts.encryption)?;
        let mut built = Vec::with_capacity(tracks.len());
        for (i, t) in ordered.enumerate() {
            let track = Track::new(
                t.clone(),
                opts.first_es_pid + i as u16,
                sample_aes.is_some(),
            )
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
            cue_cc: ContinuityCounter::new(),
            pmt_version: 0,
            tables_due: true,
            last_pcr: None,
            head: Vec::with_capacity(256),
            nal_offsets: Vec::with_capacity(16),
            sample_aes,
            body: Vec::new(),
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
            descriptors: &[],
        }; MAX_TRACKS + 1];
        for (s, t) in streams.iter_mut().zip(&self.tracks) {
            *s = PmtStream {
                stream_type: t.stream_type,
                pid: t.pid,
                language: language_code(&t.info),
                descriptors: &t.descriptors,
            };
        }
        let mut n = self.tracks.len();
        if let Some(pid) = self.opts.scte35_pid {
            streams[n] = PmtStream {
                stream_type: STREAM_TYPE_SCTE35,
                pid,
                language: None,
                descriptors: &[],
            };
            n += 1;
        }
        let mut pmt = psi::pmt_section(
            PROGRAM_NUMBER,
            self.pmt_version,
            self.pcr_pid(),
            &streams[..n],
        )?;
        if self.opts.scte35_pid.is_some() {
            pmt = with_program_descriptor(pmt, &CUEI_REGISTRATION)?;
        }
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
        let mut new = Track::new(
            track.clone(),
            self.tracks[idx].pid,
            self.sample_aes.is_some(),
        )?;
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

    /// Changes the protection of everything written from now on, from the next PES
    /// packet (AAC frames still grouped included): HLS key rotation, a new IV per
    /// segment, SAMPLE-AES on or off (see [`TsMuxerOptions::encryption`]).
    ///
    /// Another key or IV in the same mode changes nothing else. Between clear and
    /// SAMPLE-AES the stream types change: the PMT `version_number` is bumped and PAT
    /// and PMT are written again before the next PES. Errors ([`Error::usage`] for an
    /// 8-byte IV, [`Error::unsupported`] for SAMPLE-AES with an H.265 track) leave the
    /// muxer unchanged.
    pub fn set_encryption(&mut self, encryption: TsEncryption) -> Result<()> {
        let cipher = cipher_of(&encryption)?;
        if cipher.is_some() != self.sample_aes.is_some() {
            let mut signalling = Vec::with_capacity(self.tracks.len());
            for t in &self.tracks {
                let n = Track::new(t.info.clone(), t.pid, cipher.is_some())
                    .map_err(|e| e.context(format!("ts muxer: track {}", t.info.id)))?;
                signalling.push((n.stream_type, n.descriptors));
            }
            let swap = |tracks: &mut [Track], sig: &mut Vec<(u8, Vec<u8>)>| {
                for (t, (st, d)) in tracks.iter_mut().zip(sig.iter_mut()) {
                    std::mem::swap(&mut t.stream_type, st);
                    std::mem::swap(&mut t.descriptors, d);
                }
            };
            swap(&mut self.tracks, &mut signalling);
            let old_version = self.pmt_version;
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
            if let Err(e) = self.build_tables() {
                swap(&mut self.tracks, &mut signalling);
                self.pmt_version = old_version;
                return Err(e);
            }
            self.tables_due = true;
        }
        self.sample_aes = cipher;
        self.opts.encryption = encryption;
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

    /// Appends the `splice_info_section` of `cue` on the SCTE 35 PID
    /// ([`TsMuxerOptions::scte35_pid`]): a run of packets starting with
    /// `payload_unit_start_indicator` and `pointer_field` 0, the last one stuffed with
    /// 0xFF (ISO/IEC 13818-1 §2.4.4.1). Write it ahead of the splice time (SCTE 67
    /// asks for 4 s or more); [`write_segment`](Self::write_segment) writes a
    /// segment's cues after its tables.
    ///
    /// The section is `cue.raw` with its `pts_adjustment` (SCTE 35 §9.6.1, the field
    /// for re-stamping devices) set so that its splice time lands on this muxer's
    /// output timeline at [`SpliceCue::cut_at`] (the keyframe a splicer chose), else
    /// at [`SpliceCue::at`]: the timestamp offset of the frames is applied to the cue
    /// too. Sections without a splice time (immediate, cancels) and encrypted ones are
    /// written as they are. A cue without `raw` (an operator's) is written as a
    /// `splice_insert` built from its id, kind, time and duration.
    ///
    /// Errors: [`Error::usage`] without a cue PID, or for a cue of kind
    /// [`CueKind::Other`] without `raw`; [`Error::malformed`] for a `raw` that is not a
    /// valid section. On error nothing is written.
    pub fn write_cue(&mut self, cue: &SpliceCue, out: &mut BytesMut) -> Result<()> {
        let pid = self
            .opts
            .scte35_pid
            .ok_or(Error::usage("write_cue: the muxer has no SCTE 35 PID"))?;
        let section = self
            .cue_section(cue)
            .map_err(|e| e.context(format!("ts muxer: cue {}", cue.id)))?;
        if self.tables_due {
            self.write_tables(out);
        }
        out.reserve(section.len().div_ceil(packet::MAX_PAYLOAD - 1) * PACKET_SIZE);
        let mut rest: &[u8] = &section;
        let mut first = true;
        while first || !rest.is_empty() {
            let mut p = [0xffu8; PACKET_SIZE];
            let cc = self.cue_cc.next_payload();
            p[..4].copy_from_slice(&packet::header(pid, first, packet::AFC_PAYLOAD, cc));
            let mut at = 4;
            if first {
                p[4] = 0; // pointer_field
                at = 5;
            }
            let n = rest.len().min(PACKET_SIZE - at);
            p[at..at + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            first = false;
            out.extend_from_slice(&p);
        }
        Ok(())
    }

    /// The section to write for `cue`, re-timed onto the output timeline.
    fn cue_section(&self, cue: &SpliceCue) -> Result<Bytes> {
        let target = self.to_90k(cue.cut_at.unwrap_or(cue.at)) as u64 & PTS_MAX;
        if cue.raw.is_empty() {
            let out_of_network = match cue.kind {
                CueKind::Out => true,
                CueKind::In => false,
                _ => return Err(Error::usage("a cue of kind Other needs its section")),
            };
            let duration = cue
                .duration
                .map(|d| d.ticks_in(Timescale::MPEG).max(0) as u64);
            let pts = (!cue.immediate).then_some(target);
            return Ok(scte35::splice_insert_section(
                cue.id,
                out_of_network,
                pts,
                duration,
                true,
            ));
        }
        let info = SpliceInfo::parse(cue.raw.clone())?;
        let pts_time = match &info.command {
            SpliceCommand::Insert(ins) if !ins.cancel => ins.pts_time(),
            SpliceCommand::TimeSignal { pts_time } => *pts_time,
            _ => None,
        };
        let Some(pts_time) = pts_time else {
            return Ok(info.raw);
        };
        let adjustment = target.wrapping_sub(pts_time) & PTS_MAX;
        if adjustment == info.pts_adjustment {
            return Ok(info.raw);
        }
        // pts_adjustment: the low bit of byte 4 and bytes 5..9 (SCTE 35 §9.6.1).
        let mut s = info.raw.to_vec();
        s[4] = (s[4] & 0xfe) | (adjustment >> 32) as u8;
        s[5..9].copy_from_slice(&(adjustment as u32).to_be_bytes());
        let end = s.len() - 4;
        let crc = psi::crc32_mpeg2(&s[..end]);
        s[end..].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(s))
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

    /// Appends one whole segment: pending audio from earlier calls, PAT, PMT, the
    /// segment's cues when the muxer has a SCTE 35 PID (a cue that cannot be written is
    /// skipped, with a debug log), every frame in order, then the grouped audio, so
    /// that the segment decodes alone.
    ///
    /// Track configurations in `seg.tracks` that differ from the current ones are
    /// adopted first, as by [`update_track`](Self::update_track); a track id the muxer
    /// does not know is an [`Error::usage`] (PIDs are fixed at construction: a new track
    /// set needs a new muxer). If a frame fails,
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
        if self.opts.scte35_pid.is_some() {
            for e in &seg.events {
                if let Event::Cue(cue) = e {
                    if let Err(e) = self.write_cue(cue, out) {
                        // A cue we cannot carry does not cost the segment its media.
                        debug!(error = %e, id = cue.id, "ts muxer: cue not written");
                    }
                }
            }
        }
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
            cue_cc: self.cue_cc,
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
        self.cue_cc = s.cue_cc;
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
        // SAMPLE-AES: the body is rebuilt as Annex B with its slices encrypted (one
        // copy, into a reused buffer); clear bodies are written from the frame.
        let encrypted = match &self.sample_aes {
            Some(sa) => {
                self.body.clear();
                self.body.reserve(data.len() - skip + 16);
                for &off in self.nal_offsets.iter().filter(|&&o| o >= skip) {
                    let nal = data
                        .get(off..off + 4)
                        .map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize)
                        .and_then(|len| data.get(off + 4..off + 4 + len))
                        .unwrap_or(&[]);
                    self.body.extend_from_slice(&START_CODE);
                    sa.encrypt_h264_nal(nal, &mut self.body);
                }
                true
            }
            None => false,
        };
        let body_len = if encrypted {
            self.body.len()
        } else {
            data.len() - skip
        };
        let payload_len = aud_len + params.len() + body_len;
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
        if encrypted {
            packet::put_pes(out, t.pid, &mut t.cc, start, &self.head, &self.body);
            return Ok(());
        }
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
            if let Some(sa) = &self.sample_aes {
                // Encrypted when written, under the key in force now. The buffer holds
                // the ADTS frames this muxer built, so it always splits into frames.
                let r = sa.encrypt_adts(&mut group.data);
                debug_assert!(r.is_ok(), "grouped ADTS frames: {r:?}");
            }
            packet::put_pes(out, t.pid, &mut t.cc, start, &hdr[..n], &group.data);
            group.data.clear();
            group.frames = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{FrameFlags, H264Config, H265Config};
    use crate::ErrorKind;
    use bytes::Bytes;

    use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P as SPS};

    /// One parsed transport packet.
    #[derive(Debug, Clone)]
    struct Pkt {
        pid: u16,
        pusi: bool,
        afc: u8,
        cc: u8,
        af: Vec<u8>,
        payload: Vec<u8>,
    }

    fn packets(buf: &[u8]) -> Vec<Pkt> {
        assert_eq!(buf.len() % PACKET_SIZE, 0, "whole packets");
        buf.chunks(PACKET_SIZE)
            .map(|p| {
                assert_eq!(p[0], 0x47);
                let afc = (p[3] >> 4) & 3;
                let mut i = 4;
                let mut af = Vec::new();
                if afc & 2 != 0 {
                    let l = p[4] as usize;
                    assert!(5 + l <= PACKET_SIZE);
                    af = p[5..5 + l].to_vec();
                    i = 5 + l;
                }
                Pkt {
                    pid: u16::from_be_bytes([p[1] & 0x1f, p[2]]),
                    pusi: p[1] & 0x40 != 0,
                    afc,
                    cc: p[3] & 0x0f,
                    af,
                    payload: if afc & 1 != 0 {
                        p[i..].to_vec()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }

    /// Reassembled PES packets of `pid`: (first packet, whole PES bytes).
    fn pes_of(pkts: &[Pkt], pid: u16) -> Vec<(Pkt, Vec<u8>)> {
        let mut v: Vec<(Pkt, Vec<u8>)> = Vec::new();
        for p in pkts.iter().filter(|p| p.pid == pid && p.afc & 1 != 0) {
            if p.pusi {
                v.push((p.clone(), Vec::new()));
            }
            v.last_mut()
                .expect("PES starts with PUSI")
                .1
                .extend_from_slice(&p.payload);
        }
        v
    }

    /// (pts, dts, payload) of a PES packet; checks the fixed header fields.
    fn parse_pes(pes: &[u8]) -> (u64, Option<u64>, Vec<u8>) {
        assert_eq!(&pes[..3], &[0, 0, 1]);
        assert_eq!(pes[6], 0x84, "data_alignment_indicator");
        let hl = pes[8] as usize;
        let len = u16::from_be_bytes([pes[4], pes[5]]) as usize;
        if len != 0 {
            assert_eq!(len, pes.len() - 6, "PES_packet_length");
        }
        let pts = super::super::pes::decode_timestamp(pes[9..14].try_into().unwrap());
        let dts = (pes[7] & 0x40 != 0)
            .then(|| super::super::pes::decode_timestamp(pes[14..19].try_into().unwrap()));
        (pts, dts, pes[9 + hl..].to_vec())
    }

    fn pcr_of(p: &Pkt) -> Option<u64> {
        (p.af.len() >= 7 && p.af[0] & 0x10 != 0).then(|| {
            let b = &p.af[1..7];
            (u64::from(b[0]) << 25)
                | (u64::from(b[1]) << 17)
                | (u64::from(b[2]) << 9)
                | (u64::from(b[3]) << 1)
                | u64::from(b[4] >> 7)
        })
    }

    fn h264_track(id: TrackId) -> TrackInfo {
        let cfg = H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .unwrap();
        TrackInfo::new(id, Timescale::MILLIS, CodecConfig::H264(cfg))
    }

    fn aac_track(id: TrackId) -> TrackInfo {
        let cfg = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        TrackInfo::new(id, Timescale::new(48_000).unwrap(), CodecConfig::Aac(cfg))
    }

    /// Canonical payload from NAL units.
    fn lp(units: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for u in units {
            v.extend_from_slice(&(u.len() as u32).to_be_bytes());
            v.extend_from_slice(u);
        }
        Bytes::from(v)
    }

    fn annexb(units: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for u in units {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(u);
        }
        v
    }

    fn video_frame(ms: i64, cts: i64, units: &[&[u8]], key: bool) -> Frame {
        let f = Frame::new(
            1,
            Timestamp::from_millis(ms),
            Timestamp::from_millis(ms + cts),
            lp(units),
        );
        if key {
            f.with_flags(FrameFlags::KEYFRAME)
        } else {
            f
        }
    }

    fn big_nal(first: u8, n: usize) -> Vec<u8> {
        let mut v = vec![first];
        v.extend((1..n).map(|i| (i * 31 % 251) as u8 | 1));
        v
    }

    #[test]
    fn h264_access_units_become_annexb() {
        let mut mux = TsMuxer::new(&[h264_track(1)], TsMuxerOptions::default()).unwrap();
        let mut out = BytesMut::new();
        let sei: &[u8] = &[0x06, 0x05, 0x01, 0x80];
        let idr = big_nal(0x65, 70_000);
        let slice2 = big_nal(0x65, 183); // second slice of the IDR, across packet boundaries
        let p_slice = big_nal(0x41, 9_000);
        let frames = [
            // FLV-style IDR: no AUD, no parameter sets -> AUD + SPS + PPS inserted.
            video_frame(0, 80, &[sei, &idr, &slice2], true),
            // Non-IDR: AUD only.
            video_frame(40, 40, &[&p_slice], false),
            // Already has AUD and SPS/PPS: nothing inserted.
            video_frame(80, 120, &[&[0x09, 0x10], SPS, PPS, &idr], true),
            // AUD first but no SPS, keyframe: its own AUD, then SPS + PPS.
            video_frame(120, 40, &[&[0x09, 0x10], &idr], true),
            // Empty NAL unit and a tiny one.
            video_frame(160, 0, &[&[], &[0x41, 0x01]], false),
        ];
        let aud: &[u8] = &[0x09, 0xf0];
        let expect: [Vec<u8>; 5] = [
            annexb(&[aud, SPS, PPS, sei, &idr, &slice2]),
            annexb(&[aud, &p_slice]),
            annexb(&[&[0x09, 0x10], SPS, PPS, &idr]),
            annexb(&[&[0x09, 0x10], SPS, PPS, &idr]),
            annexb(&[aud, &[], &[0x41, 0x01]]),
        ];
        for f in &frames {
            mux.write_frame(f, &mut out).unwrap();
        }
        let pkts = packets(&out);
        assert_eq!(
            (pkts[0].pid, pkts[1].pid),
            (0, 0x1000),
            "tables written before the first PES"
        );
        let pes = pes_of(&pkts, 0x100);
        assert_eq!(pes.len(), 5);
        for (i, ((first, bytes), f)) in pes.iter().zip(&frames).enumerate() {
            let (pts, dts, payload) = parse_pes(bytes);
            assert_eq!(payload, expect[i], "frame {i}");
            let dts90 = (f.dts.as_millis() * 90 + 126_000) as u64;
            let pts90 = (f.pts.as_millis() * 90 + 126_000) as u64;
            assert_eq!(pts, pts90);
            assert_eq!(
                dts,
                (pts90 != dts90).then_some(dts90),
                "DTS only when it differs"
            );
            assert_eq!(bytes[3], 0xe0);
            // Every video PES starts with a PCR 0.7 s behind its DTS; RAI on keyframes.
            assert_eq!(pcr_of(first), Some(dts90 - 63_000));
            assert_eq!(first.af[0] & 0x40 != 0, f.is_keyframe());
        }
        // The 70 KB frame has PES_packet_length 0, the small ones their length.
        assert_eq!(&pes[0].1[4..6], &[0, 0]);
        assert_ne!(&pes[4].1[4..6], &[0, 0]);
    }

    #[test]
    fn h265_aud_and_parameter_sets() {
        let vps: &[u8] = &[0x40, 0x01, 0x0c];
        let sps: &[u8] = &[0x42, 0x01, 0x01];
        let pps: &[u8] = &[0x44, 0x01, 0xc1];
        let cfg = H265Config {
            profile_space: 0,
            tier_flag: false,
            profile_idc: 1,
            profile_compatibility: 0x6000_0000,
            constraint_flags: 0,
            level_idc: 93,
            nal_length_size: 4,
            vps: vec![Bytes::from_static(vps)],
            sps: vec![Bytes::from_static(sps)],
            pps: vec![Bytes::from_static(pps)],
            width: 320,
            height: 240,
            frame_rate: None,
            record: Bytes::new(),
        };
        let track = TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H265(cfg));
        let mut mux = TsMuxer::new(&[track], TsMuxerOptions::default()).unwrap();
        let mut out = BytesMut::new();
        let idr: &[u8] = &[0x26, 0x01, 0xaf, 0x09]; // IDR_W_RADL (19), not flagged keyframe
        let trail: &[u8] = &[0x02, 0x01, 0xd0]; // TRAIL_R
        mux.write_frame(&video_frame(0, 0, &[idr], false), &mut out)
            .unwrap();
        mux.write_frame(&video_frame(40, 0, &[trail], false), &mut out)
            .unwrap();
        let pkts = packets(&out);
        let pmt = &pkts[1].payload;
        assert_eq!(pmt[1 + 12], STREAM_TYPE_HEVC);
        let pes = pes_of(&pkts, 0x100);
        let aud: &[u8] = &[0x46, 0x01, 0x50];
        assert_eq!(parse_pes(&pes[0].1).2, annexb(&[aud, vps, sps, pps, idr]));
        assert_eq!(parse_pes(&pes[1].1).2, annexb(&[aud, trail]));
        assert!(pes[0].0.af[0] & 0x40 != 0, "IRAP is a random access point");
    }

    fn audio_frame(track: TrackId, n: i64, len: usize) -> Frame {
        let t = Timestamp::new(n * 1024, Timescale::new(48_000).unwrap());
        Frame::new(track, t, t, Bytes::from(vec![n as u8; len]))
    }

    #[test]
    fn aac_frames_are_grouped_with_adts() {
        let mut mux =
            TsMuxer::new(&[h264_track(1), aac_track(2)], TsMuxerOptions::default()).unwrap();
        assert_eq!(
            (mux.pid(1), mux.pid(2), mux.pcr_pid()),
            (Some(0x100), Some(0x101), 0x100)
        );
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        for n in 0..10 {
            mux.write_frame(&audio_frame(2, n, 380), &mut out).unwrap();
        }
        // 387 bytes per ADTS frame: 7 fit in 2930, the 8th starts a new PES.
        let pes = pes_of(&packets(&out), 0x101);
        assert_eq!(pes.len(), 1);
        mux.flush(&mut out).unwrap();
        let pkts = packets(&out);
        let pes = pes_of(&pkts, 0x101);
        assert_eq!(pes.len(), 2);
        let (pts, dts, payload) = parse_pes(&pes[1].1);
        assert_eq!((pts, dts), (126_000 + 7 * 1920, None));
        assert_eq!(payload.len(), 3 * 387);
        let mut pos = 0;
        for n in 7..10u8 {
            let h = aac::parse_adts(&payload[pos..]).unwrap().unwrap();
            assert_eq!(h.frame_len, 387);
            assert!(payload[pos + 7..pos + 387].iter().all(|&b| b == n));
            pos += 387;
        }
        assert_eq!(pes[0].1[3], 0xc0);
        // Audio is not the PCR PID: a PCR-only packet on the video PID came first.
        let first_pcr = pkts.iter().position(|p| p.pid == 0x100).unwrap();
        assert!(first_pcr < pkts.iter().position(|p| p.pid == 0x101).unwrap());
        assert_eq!(pkts[first_pcr].afc, 0b10);
        assert_eq!(pcr_of(&pkts[first_pcr]), Some(126_000 - 63_000));
        assert!(pes[0].0.af.is_empty() || pes[0].0.af[0] & 0x10 == 0);

        // One frame per PES with audio_pes_max_bytes = 0; a timestamp gap splits groups.
        let opts = TsMuxerOptions {
            audio_pes_max_bytes: 0,
            ..Default::default()
        };
        let mut mux = TsMuxer::new(&[aac_track(2)], opts).unwrap();
        let mut out = BytesMut::new();
        for n in 0..3 {
            mux.write_frame(&audio_frame(2, n, 100), &mut out).unwrap();
        }
        assert_eq!(pes_of(&packets(&out), 0x100).len(), 3);
        let mut mux = TsMuxer::new(&[aac_track(2)], TsMuxerOptions::default()).unwrap();
        let mut out = BytesMut::new();
        for n in [0, 1, 5, 6] {
            mux.write_frame(&audio_frame(2, n, 100), &mut out).unwrap();
        }
        mux.flush(&mut out).unwrap();
        let pkts = packets(&out);
        let pes = pes_of(&pkts, 0x100);
        let pts: Vec<u64> = pes.iter().map(|p| parse_pes(&p.1).0).collect();
        assert_eq!(pts, vec![126_000, 126_000 + 5 * 1920]);
        // Audio-only: PCR on the audio PID with every PES, RAI set.
        assert!(pes
            .iter()
            .all(|p| pcr_of(&p.0).is_some() && p.0.af[0] & 0x40 != 0));
        // Groups on the PCR PID span less than 100 ms: 4 frames of 21.3 ms, then a new PES.
        let mut out = BytesMut::new();
        for n in 10..20 {
            mux.write_frame(&audio_frame(2, n, 20), &mut out).unwrap();
        }
        mux.flush(&mut out).unwrap();
        let sizes: Vec<usize> = pes_of(&packets(&out), 0x100)
            .iter()
            .map(|p| parse_pes(&p.1).2.len())
            .collect();
        assert_eq!(sizes, vec![5 * 27, 5 * 27]);
    }

    #[test]
    fn continuity_and_tables_across_segments() {
        let tracks = vec![h264_track(1), aac_track(2).with_language("eng")];
        let mut mux = TsMuxer::new(&tracks, TsMuxerOptions::default()).unwrap();
        let slice = big_nal(0x41, 5000);
        let idr = big_nal(0x65, 20_000);
        let seg = |seq: u64, tracks: Vec<TrackInfo>| {
            let mut frames = Vec::new();
            for i in 0..10i64 {
                let ms = seq as i64 * 400 + i * 40;
                let nal: &[u8] = if i == 0 { &idr } else { &slice };
                frames.push(video_frame(ms, 80, &[nal], i == 0));
                frames.push(audio_frame(2, (ms * 48 / 1024) + 1, 300));
            }
            Segment {
                sequence: seq,
                start: Timestamp::from_millis(seq as i64 * 400),
                duration: Timestamp::from_millis(400),
                discontinuity: false,
                tracks,
                frames,
                events: Vec::new(),
            }
        };
        let mut all = BytesMut::new();
        let mut segs = Vec::new();
        for s in 0..4 {
            let mut out = BytesMut::new();
            let mut t = tracks.clone();
            if s == 3 {
                // A new SPS-carrying config: PMT version bump.
                t[0].name = Some("changed".into());
            }
            mux.write_segment(&seg(s, t), &mut out).unwrap();
            let pkts = packets(&out);
            assert_eq!(
                (pkts[0].pid, pkts[1].pid, pkts[2].pid),
                (0, 0x1000, 0x100),
                "segment {s}"
            );
            assert!(
                pkts[2].pusi && pkts[2].af[0] & 0x40 != 0,
                "keyframe PES first"
            );
            let version = (pkts[1].payload[6] >> 1) & 0x1f;
            assert_eq!(version, if s == 3 { 1 } else { 0 });
            // Language descriptor of the audio stream.
            assert!(pkts[1]
                .payload
                .windows(6)
                .any(|w| w == [0x0a, 4, b'e', b'n', b'g', 0]));
            all.extend_from_slice(&out);
            segs.push(out);
        }
        assert_eq!(mux.pmt_version(), 1);
        // Continuity counters run on across segments, per PID, only with payload.
        let mut last: std::collections::HashMap<u16, u8> = Default::default();
        for p in packets(&all) {
            let prev = last.get(&p.pid).copied();
            let expect = match (prev, p.afc & 1 != 0) {
                (None, true) => 0,
                (None, false) => 15,
                (Some(c), true) => (c + 1) & 15,
                (Some(c), false) => c,
            };
            assert_eq!(p.cc, expect, "pid {:#x}", p.pid);
            last.insert(p.pid, p.cc);
        }
        // PCRs at most 100 ms apart and never above the DTS of their PES.
        let pkts = packets(&all);
        let mut pcrs = Vec::new();
        for p in pkts.iter().filter(|p| p.pid == 0x100) {
            if let Some(pcr) = pcr_of(p) {
                if p.pusi {
                    let h = &p.payload;
                    let ts = if h[7] & 0x40 != 0 {
                        &h[14..19]
                    } else {
                        &h[9..14]
                    };
                    assert!(pcr <= super::super::pes::decode_timestamp(ts.try_into().unwrap()));
                }
                pcrs.push(pcr);
            }
        }
        assert!(pcrs
            .windows(2)
            .all(|w| w[1] >= w[0] && w[1] - w[0] <= 9_000));
    }

    #[test]
    fn failed_segment_is_undone() {
        let mut mux =
            TsMuxer::new(&[h264_track(1), aac_track(2)], TsMuxerOptions::default()).unwrap();
        let good = video_frame(0, 0, &[&[0x65, 1, 2]], true);
        let mk = |frames: Vec<Frame>| Segment {
            sequence: 0,
            start: Timestamp::from_millis(0),
            duration: Timestamp::from_millis(40),
            discontinuity: false,
            tracks: Vec::new(),
            frames,
            events: Vec::new(),
        };
        let mut bad = good.clone();
        bad.data = Bytes::from_static(&[0, 0, 0, 9, 0x65]);
        let mut out = BytesMut::from(&b"previous"[..]);
        let err = mux
            .write_segment(
                &mk(vec![good.clone(), audio_frame(2, 0, 10), bad]),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed);
        assert_eq!(&out[..], b"previous");
        let mut a = BytesMut::new();
        mux.write_segment(&mk(vec![good.clone()]), &mut a).unwrap();
        let mut fresh =
            TsMuxer::new(&[h264_track(1), aac_track(2)], TsMuxerOptions::default()).unwrap();
        let mut b = BytesMut::new();
        fresh.write_segment(&mk(vec![good]), &mut b).unwrap();
        assert_eq!(
            a, b,
            "state restored as if the failed segment never happened"
        );
    }

    #[test]
    fn update_track_bumps_pmt_version() {
        let mut mux =
            TsMuxer::new(&[h264_track(1), aac_track(2)], TsMuxerOptions::default()).unwrap();
        let mut out = BytesMut::new();
        mux.write_frame(&video_frame(0, 0, &[&[0x65, 1]], true), &mut out)
            .unwrap();
        mux.update_track(&h264_track(1)).unwrap();
        assert_eq!(mux.pmt_version(), 0, "same config: no change");
        let new_sps: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
        let cfg =
            H264Config::from_parameter_sets(Bytes::from_static(new_sps), Bytes::from_static(PPS));
        let cfg = cfg.unwrap();
        let t = TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(cfg));
        mux.update_track(&t).unwrap();
        assert_eq!(mux.pmt_version(), 1);
        let mut out = BytesMut::new();
        mux.write_frame(&video_frame(40, 0, &[&[0x65, 1]], true), &mut out)
            .unwrap();
        let pkts = packets(&out);
        assert_eq!(
            (pkts[0].pid, pkts[1].pid),
            (0, 0x1000),
            "tables again after a change"
        );
        assert_eq!((pkts[1].payload[6] >> 1) & 0x1f, 1);
        let pes = pes_of(&pkts, 0x100);
        assert_eq!(
            parse_pes(&pes[0].1).2,
            annexb(&[&[0x09, 0xf0], new_sps, PPS, &[0x65, 1]])
        );
        // Kind changes and unknown ids are usage errors; nothing changes.
        let mut a = aac_track(1);
        a.id = 1;
        assert_eq!(mux.update_track(&a).unwrap_err().kind(), ErrorKind::Usage);
        assert_eq!(
            mux.update_track(&aac_track(7)).unwrap_err().kind(),
            ErrorKind::Usage
        );
        assert_eq!(mux.pmt_version(), 1);
    }

    #[test]
    fn bad_input_is_an_error() {
        let opus = TrackInfo::new(
            3,
            Timescale::new(48_000).unwrap(),
            CodecConfig::Opus(crate::media::OpusConfig {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48_000,
                dops: Bytes::new(),
            }),
        );
        let e = TsMuxer::new(&[h264_track(1), opus], TsMuxerOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(
            TsMuxer::new(&[], TsMuxerOptions::default())
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
        let dup = [h264_track(1), h264_track(1)];
        assert_eq!(
            TsMuxer::new(&dup, TsMuxerOptions::default())
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
        let o = TsMuxerOptions {
            pmt_pid: 0x101,
            ..Default::default()
        };
        let e = TsMuxer::new(&[h264_track(1), aac_track(2)], o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        let o = TsMuxerOptions {
            first_es_pid: 0x1ffe,
            ..Default::default()
        };
        assert!(TsMuxer::new(&[h264_track(1), aac_track(2)], o).is_err());

        let mut mux =
            TsMuxer::new(&[h264_track(1), aac_track(2)], TsMuxerOptions::default()).unwrap();
        let mut out = BytesMut::new();
        let t = Timestamp::from_millis(0);
        for data in [
            &[][..],
            &[0, 0, 0],
            &[0, 0, 0, 5, 0x65],
            &[0, 0, 0, 1, 0x65, 0xff, 0xff, 0xff, 0xff],
        ] {
            let f = Frame::new(1, t, t, Bytes::copy_from_slice(data));
            assert_eq!(
                mux.write_frame(&f, &mut out).unwrap_err().kind(),
                ErrorKind::Malformed
            );
        }
        let f = Frame::new(9, t, t, Bytes::from_static(&[0, 0, 0, 1, 0x65]));
        assert_eq!(
            mux.write_frame(&f, &mut out).unwrap_err().kind(),
            ErrorKind::Usage
        );
        let f = Frame::new(2, t, t, Bytes::from(vec![0; 9000]));
        assert_eq!(
            mux.write_frame(&f, &mut out).unwrap_err().kind(),
            ErrorKind::Limit
        );
        assert!(out.is_empty(), "nothing written on error");
    }
}
