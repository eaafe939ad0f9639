//! [`TsDemuxer`]: MPEG-TS bytes (ISO/IEC 13818-1) in, frames and events out.
//!
//! The module tree follows the specification's layers:
//!
//! * `mod.rs`: the [`Stage`], transport packets (§2.4.3.2, §2.4.3.4) and sync;
//! * `section`: PSI and private sections across packets (§2.4.4.1, §2.4.4.2);
//! * `tables`: PAT and PMT (§2.4.4.3, §2.4.4.8) and their descriptors;
//! * `program`: the program chosen, its elementary streams and their PIDs;
//! * `pes`: PES reassembly and headers (§2.4.3.6, §2.4.3.7);
//! * `stream`: PES packets to frames: timestamps, tracks, discontinuities;
//! * `video` and `hevc`: Annex B access units to canonical frames and configurations;
//! * `audio`: ADTS to raw AAC frames;
//! * `cue`: SCTE 35 sections (SCTE 35 §8, §9) to [`Event::Cue`].

mod audio;
mod cue;
mod hevc;
mod pes;
mod program;
mod section;
mod stream;
mod tables;
#[cfg(test)]
mod tests;
mod video;

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::debug;

use self::program::{Program, Role};
use self::stream::Clock;
use super::packet::{PACKET_SIZE, SYNC_BYTE};
use crate::error::{Error, Result};
use crate::media::{Event, Item};
use crate::pipeline::Stage;
use crate::scte35::CueSignal;
use crate::time::Timestamp;

/// Most elementary streams a [`TsDemuxer`] follows by default
/// ([`TsDemuxerOptions::max_streams`]).
pub const DEFAULT_MAX_STREAMS: usize = 16;

/// Number of PIDs (13 bits).
const PIDS: usize = 1 << 13;
/// Packets that must follow a candidate sync byte at 188-byte steps before the
/// demuxer locks on it (the candidate's own packet plus two).
const SYNC_CONFIRM: usize = 2;
/// Most bytes gathered for one sync search step.
const SEARCH_CHUNK: usize = 4096;

/// Options of a [`TsDemuxer`]. Start from [`TsDemuxerOptions::default`] and set fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TsDemuxerOptions {
    /// The `program_number` to demux. Default `None`: the first program the PAT lists
    /// (program number 0, the network PID, is never a program).
    pub program: Option<u16>,
    /// Largest PES packet gathered, in bytes (headers included); a larger one is an
    /// [`Error::limit`] for that packet, which is dropped. Default 8 MiB. With
    /// [`max_streams`](Self::max_streams) it bounds the demuxer's memory: at most one
    /// PES packet per stream is buffered.
    pub max_pes_size: usize,
    /// Most elementary streams followed (audio, video and SCTE 35 together, in PMT
    /// order); others are ignored. Default [`DEFAULT_MAX_STREAMS`] (16).
    pub max_streams: usize,
    /// A frame more than this after (or before) the latest frame of any track is
    /// preceded by [`Event::Discontinuity`]. Default: 10 s.
    pub max_forward_jump: Timestamp,
    /// A frame more than this before the previous frame of its own track is preceded
    /// by [`Event::Discontinuity`]. Default: 1 s.
    pub max_backward_jump: Timestamp,
    /// Most SCTE 35 cues held while no PTS has been seen to place them; more are
    /// dropped and counted in [`TsDemuxerStats::cue_errors`]. Default 16.
    pub max_pending_cues: usize,
    /// Bytes searched for sync without finding any before an [`Error::malformed`] is
    /// returned (once per such run; the search goes on). Default 64 KiB.
    pub max_sync_search: usize,
}

impl Default for TsDemuxerOptions {
    fn default() -> Self {
        TsDemuxerOptions {
            program: None,
            max_pes_size: 8 << 20,
            max_streams: DEFAULT_MAX_STREAMS,
            max_forward_jump: Timestamp::from_secs(10),
            max_backward_jump: Timestamp::from_secs(1),
            max_pending_cues: 16,
            max_sync_search: 64 << 10,
        }
    }
}

/// What a [`TsDemuxer`] saw and dropped: transport damage is counted here, not returned
/// as errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TsDemuxerStats {
    /// Transport packets read.
    pub packets: u64,
    /// Times the sync byte was not where the previous packet said it would be.
    pub sync_losses: u64,
    /// Bytes skipped while looking for sync (garbage, a truncated last packet).
    pub skipped_bytes: u64,
    /// Packets with `transport_error_indicator` set (dropped) or an impossible
    /// adaptation field length.
    pub bad_packets: u64,
    /// `continuity_counter` gaps on the PIDs followed (lost packets).
    pub cc_errors: u64,
    /// Duplicate packets (same `continuity_counter` twice, §2.4.3.3), dropped.
    pub duplicates: u64,
    /// PES packets dropped: cut by a gap, shorter than their `PES_packet_length`,
    /// larger than [`TsDemuxerOptions::max_pes_size`], with a bad header.
    pub dropped_pes: u64,
    /// PSI sections dropped: bad CRC or lengths, cut by a gap.
    pub bad_sections: u64,
    /// Frames dropped: video before its track's first configuration and keyframe,
    /// audio without a time or with an ADTS header we cannot carry.
    pub dropped_frames: u64,
    /// Bytes of audio skipped looking for an ADTS sync word.
    pub skipped_audio_bytes: u64,
    /// [`Event::Discontinuity`] events emitted.
    pub discontinuities: u64,
    /// SCTE 35 sections read (whole sections on a SCTE 35 PID).
    pub cue_sections: u64,
    /// [`Event::Cue`] events emitted.
    pub cues: u64,
    /// SCTE 35 sections that did not parse (bad CRC, malformed) or cues dropped
    /// because too many waited for a time.
    pub cue_errors: u64,
}

/// Incremental MPEG-TS demuxer: a [`Stage`] from input bytes to [`Item`]s.
///
/// Accepts 188-byte transport packets (ISO/IEC 13818-1 §2.4.3) in chunks of any size;
/// packets are parsed lazily in [`Stage::poll`]. 192-byte (M2TS, BDAV) and 204-byte
/// (Reed-Solomon) packets are not recognised: such input loses sync and is skipped.
///
/// * **Program**: the PAT (PID 0) gives the PMT PID of the first program (or
///   [`TsDemuxerOptions::program`]); the PMT gives the elementary streams. Sections
///   may span packets and several may share one; each is CRC-checked (Annex A), and a
///   bad one is counted and skipped. A new PMT version adds and removes streams.
/// * **Streams**: H.264 (`stream_type` 0x1B), H.265 (0x24), AAC in ADTS (0x0F) and
///   SCTE 35 (0x86, or any stream with a "CUEI" registration descriptor, SCTE 35
///   §8.1). Other streams are ignored. Each becomes a track whose id is its PID, in
///   90 kHz ([`crate::time::Timescale::MPEG`]), with the ISO 639 language of the PMT.
/// * **Tracks**: [`Event::TrackAdded`] when a track's configuration is first known (the
///   first access unit with SPS and PPS, plus VPS for H.265; the first ADTS header),
///   [`Event::TrackChanged`] when in-band parameter sets or the ADTS header change.
/// * **Video** frames are one PES packet each (unbounded `PES_packet_length` 0 ends at
///   the next packet start), converted from Annex B to 4-byte length prefixes; access
///   unit delimiters and parameter sets are removed (they live in the configuration).
///   Keyframes are IDR (H.264) and IRAP (H.265) pictures, and H.264 I pictures with the
///   `random_access_indicator` or a recovery point SEI. A track's frames before its
///   first configuration and first keyframe are dropped. Durations are not set.
/// * **Audio**: every ADTS frame of a PES packet becomes a raw AAC frame timed
///   `PTS + i × 1024` samples (rounded to 90 kHz, durations summing exactly); a frame
///   split across PES packets is joined.
/// * **Time**: PTS and DTS are unwrapped from 33 bits onto one monotonic 64-bit 90 kHz
///   timeline per program (a wrap is not a discontinuity; the first value is taken as
///   is). [`Event::Discontinuity`] precedes a frame that jumps (see
///   [`TsDemuxerOptions::max_forward_jump`] and
///   [`max_backward_jump`](TsDemuxerOptions::max_backward_jump)) or the first frame
///   after a `discontinuity_indicator` on the PCR PID.
/// * **Cues**: each `splice_info_section` on a SCTE 35 PID that signals a break
///   ([`crate::scte35::SpliceInfo::signal`]) becomes an [`Event::Cue`] where it
///   arrives, ahead of its splice time: `at` is its `pts_time + pts_adjustment`
///   unwrapped next to the last video PTS (the last PTS of any stream without video),
///   an immediate cue's `at` is that PTS itself, and `raw` is the section. A cue that
///   arrives before any PTS waits for the first one. Other commands (`splice_null`...)
///   are skipped; a bad section is counted, never an error.
/// * [`Stage::finish`] emits the last unbounded video PES packet, then
///   [`Event::EndOfStream`].
///
/// Damage is counted in [`TsDemuxerStats`], not returned: lost sync (the demuxer
/// searches for three sync bytes 188 bytes apart), `transport_error_indicator`,
/// `continuity_counter` gaps (the PES packet or section in progress on that PID is
/// dropped; no discontinuity is emitted, the timeline goes on), duplicates. Errors are
/// returned for one PES packet (a bad header, scrambling, a video PES without PTS,
/// parameter sets that do not parse, a packet over [`TsDemuxerOptions::max_pes_size`])
/// with its byte offset and PID; that packet is dropped and polling may continue. An
/// input in which no sync is found for [`TsDemuxerOptions::max_sync_search`] bytes
/// gives one [`Error::malformed`] per such run. Nothing is fatal.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::ts::{TsDemuxer, TsMuxer, TsMuxerOptions};
/// use strom::media::{AacConfig, CodecConfig, Event, Frame, Item, TrackInfo};
/// use strom::pipeline::Stage;
/// use strom::time::{Timescale, Timestamp};
///
/// // Two AAC frames written by our muxer (1.4 s offset, PID 0x100)...
/// let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap(); // LC 48 kHz stereo
/// let track = TrackInfo::new(1, Timescale::MPEG, CodecConfig::Aac(aac));
/// let mut mux = TsMuxer::new(&[track], TsMuxerOptions::default()).unwrap();
/// let mut ts = BytesMut::new();
/// for n in 0..2 {
///     let t = Timestamp::new(n * 1920, Timescale::MPEG);
///     mux.write_frame(&Frame::new(1, t, t, Bytes::from(vec![0x21; 100])), &mut ts).unwrap();
/// }
/// mux.flush(&mut ts).unwrap();
///
/// // ...read back in 100-byte chunks.
/// let mut demux = TsDemuxer::new();
/// let mut items = Vec::new();
/// for chunk in ts.chunks(100) {
///     demux.push(Bytes::copy_from_slice(chunk)).unwrap();
///     while let Some(item) = demux.poll() {
///         items.push(item.unwrap());
///     }
/// }
/// demux.finish().unwrap();
/// while let Some(item) = demux.poll() {
///     items.push(item.unwrap());
/// }
/// assert!(matches!(&items[0], Item::Event(Event::TrackAdded(t)) if t.id == 0x100));
/// let f = items[2].as_frame().unwrap();
/// assert_eq!((f.pts.ticks(), f.data.len()), (126_000 + 1920, 100));
/// assert_eq!(items[3], Item::Event(Event::EndOfStream));
/// ```
#[derive(Debug)]
pub struct TsDemuxer {
    opts: TsDemuxerOptions,
    /// Unparsed input.
    cur: Bytes,
    cur_pos: usize,
    /// The start of a packet the previous chunk did not finish.
    tail: [u8; PACKET_SIZE],
    tail_len: usize,
    /// Packets start where the previous one ended (else: searching).
    synced: bool,
    /// Bytes kept while searching for sync.
    search: Vec<u8>,
    /// Bytes skipped in the current search (for the one error per run).
    search_run: u64,
    search_reported: bool,
    /// Absolute offset of the next byte to read as a packet.
    pos: u64,
    /// Continuity counter of the last packet with payload per PID (0xFF: none).
    cc: Box<[u8; PIDS]>,
    program: Program,
    clock: Clock,
    /// SCTE 35 cues waiting for a first PTS to be placed next to.
    pending_cues: Vec<(CueSignal, Bytes)>,
    out: VecDeque<Result<Item>>,
    stats: TsDemuxerStats,
    finished: bool,
    eos_queued: bool,
}

impl Default for TsDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl TsDemuxer {
    /// A demuxer with default options.
    pub fn new() -> Self {
        Self::with_options(TsDemuxerOptions::default())
    }

    /// A demuxer with `opts`.
    pub fn with_options(opts: TsDemuxerOptions) -> Self {
        let clock = Clock::new(&opts);
        TsDemuxer {
            program: Program::new(&opts),
            opts,
            cur: Bytes::new(),
            cur_pos: 0,
            tail: [0; PACKET_SIZE],
            tail_len: 0,
            synced: true,
            search: Vec::new(),
            search_run: 0,
            search_reported: false,
            pos: 0,
            cc: Box::new([0xff; PIDS]),
            clock,
            pending_cues: Vec::new(),
            out: VecDeque::new(),
            stats: TsDemuxerStats::default(),
            finished: false,
            eos_queued: false,
        }
    }

    /// The options in use.
    pub fn options(&self) -> &TsDemuxerOptions {
        &self.opts
    }

    /// What was read and dropped so far.
    pub fn stats(&self) -> TsDemuxerStats {
        self.stats
    }

    /// The `program_number` being demuxed, once the PAT named it.
    pub fn program_number(&self) -> Option<u16> {
        self.program.number()
    }

    /// The `PCR_PID` of the program, once its PMT arrived.
    pub fn pcr_pid(&self) -> Option<u16> {
        self.program.pcr_pid()
    }

    /// Input bytes consumed as whole packets (or skipped) so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes held between calls: unread input, partial packets, sections and PES
    /// packets in progress, partial audio frames. Bounded by the options (about
    /// [`TsDemuxerOptions::max_pes_size`] per stream followed) plus the last chunk.
    pub fn buffered(&self) -> usize {
        (self.cur.len() - self.cur_pos)
            + self.tail_len
            + self.search.len()
            + self.program.buffered()
    }

    /// Processes input until an output is queued (`lazy`) or the input is used up.
    fn pump(&mut self, lazy: bool) {
        let cur = std::mem::take(&mut self.cur);
        let mut at = self.cur_pos;
        while at < cur.len() && (!lazy || self.out.is_empty()) {
            if self.tail_len > 0 {
                let take = (PACKET_SIZE - self.tail_len).min(cur.len() - at);
                self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&cur[at..at + take]);
                self.tail_len += take;
                at += take;
                if self.tail_len == PACKET_SIZE {
                    self.tail_len = 0;
                    let p = self.tail;
                    self.packet(&p);
                }
                continue;
            }
            if !self.synced {
                at = self.search(&cur, at);
                continue;
            }
            if cur[at] != SYNC_BYTE {
                self.lose_sync();
                continue;
            }
            match cur.get(at..at + PACKET_SIZE) {
                Some(p) => {
                    self.packet(p);
                    at += PACKET_SIZE;
                }
                None => {
                    let rest = &cur[at..];
                    self.tail[..rest.len()].copy_from_slice(rest);
                    self.tail_len = rest.len();
                    at = cur.len();
                }
            }
        }
        if at < cur.len() {
            self.cur = cur;
            self.cur_pos = at;
        } else {
            self.cur_pos = 0;
        }
    }

    fn lose_sync(&mut self) {
        self.synced = false;
        self.stats.sync_losses += 1;
        self.search_run = 0;
        self.search_reported = false;
        debug!(offset = self.pos, "ts demuxer: lost sync");
    }

    /// Skips `n` unsynced bytes.
    fn skip(&mut self, n: usize) {
        self.pos += n as u64;
        self.stats.skipped_bytes += n as u64;
        self.search_run += n as u64;
        if !self.search_reported && self.search_run >= self.opts.max_sync_search as u64 {
            self.search_reported = true;
            self.out.push_back(Err(Error::malformed(
                "no MPEG-TS sync found (188-byte packets)",
            )
            .at_offset(self.pos)
            .context("ts demuxer")));
        }
    }

    /// Searches for sync in `search` + `cur[at..]`; returns how far `cur` was used.
    fn search(&mut self, cur: &Bytes, at: usize) -> usize {
        let take = (SEARCH_CHUNK.saturating_sub(self.search.len())).min(cur.len() - at);
        self.search.extend_from_slice(&cur[at..at + take]);
        self.scan(false);
        at + take
    }

    /// Looks for sync in `search`: a sync byte with [`SYNC_CONFIRM`] more 188 bytes
    /// apart (at the end of input, `at_end`: with as many as there are, at least one
    /// whole packet). The packets from there are processed at once (sync may be lost
    /// again in them: the search goes on in what follows). Without a candidate, only the
    /// bytes that could still start one are kept; at the end of input, none.
    fn scan(&mut self, at_end: bool) {
        const SPAN: usize = PACKET_SIZE * SYNC_CONFIRM;
        while !self.synced && !self.search.is_empty() {
            let s = &self.search;
            let confirmed = |q: usize, full: bool| {
                (0..=SYNC_CONFIRM).all(|k| match s.get(q + k * PACKET_SIZE) {
                    Some(&b) => b == SYNC_BYTE,
                    None => !full && q + PACKET_SIZE <= s.len(),
                })
            };
            let strict = (0..s.len().saturating_sub(SPAN)).find(|&q| confirmed(q, true));
            let found = match (strict, at_end) {
                (Some(q), _) => Some(q),
                (None, true) => (0..s.len()).find(|&q| s[q] == SYNC_BYTE && confirmed(q, false)),
                (None, false) => None,
            };
            let Some(q) = found else {
                let n = if at_end {
                    s.len()
                } else {
                    // Keep what could still start a confirmed run.
                    let from = s.len().saturating_sub(SPAN);
                    s[from..]
                        .iter()
                        .position(|&b| b == SYNC_BYTE)
                        .map_or(s.len(), |p| from + p)
                };
                self.search.drain(..n);
                self.skip(n);
                return;
            };
            let buf = std::mem::take(&mut self.search);
            self.skip(q);
            self.synced = true;
            self.feed_synced(&buf[q..]);
        }
    }

    /// Processes bytes known to start at a packet boundary (after a search).
    fn feed_synced(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if !self.synced {
                self.search.extend_from_slice(data);
                return;
            }
            if data[0] != SYNC_BYTE {
                self.lose_sync();
                continue;
            }
            if data.len() < PACKET_SIZE {
                self.tail[..data.len()].copy_from_slice(data);
                self.tail_len = data.len();
                return;
            }
            let (p, rest) = data.split_at(PACKET_SIZE);
            self.packet(p);
            data = rest;
        }
    }

    /// At the end of input: what the search holds is scanned with fewer confirmations
    /// (a short input), the rest skipped; a partial packet is skipped.
    fn flush_search(&mut self) {
        self.scan(true);
        if self.tail_len > 0 {
            let n = self.tail_len;
            self.tail_len = 0;
            self.stats.skipped_bytes += n as u64;
            self.pos += n as u64;
            debug!(offset = self.pos, "ts demuxer: truncated last packet");
        }
    }

    /// One 188-byte transport packet (§2.4.3.2).
    fn packet(&mut self, p: &[u8]) {
        let offset = self.pos;
        self.pos += PACKET_SIZE as u64;
        self.stats.packets += 1;
        let pid = usize::from(u16::from_be_bytes([p[1] & 0x1f, p[2]]));
        let role = self.program.role(pid);
        if role == Role::None {
            return;
        }
        if p[1] & 0x80 != 0 {
            self.stats.bad_packets += 1; // transport_error_indicator
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0f;
        let (mut start, mut discontinuity, mut random_access) = (4, false, false);
        if afc & 2 != 0 {
            let len = usize::from(p[4]);
            if len > if afc == 3 { 182 } else { 183 } {
                self.stats.bad_packets += 1;
                return;
            }
            if len > 0 {
                discontinuity = p[5] & 0x80 != 0;
                random_access = p[5] & 0x40 != 0;
            }
            start = 5 + len;
        }
        if discontinuity && Some(pid as u16) == self.program.pcr_pid() {
            self.clock.time_base_changed();
        }
        if afc & 1 == 0 {
            return; // no payload (afc 00 is reserved: nothing to read either)
        }
        let prev = self.cc[pid];
        self.cc[pid] = cc;
        let mut gap = false;
        if prev != 0xff && !discontinuity {
            if cc == prev {
                self.stats.duplicates += 1;
                return;
            }
            if cc != (prev + 1) & 0x0f {
                self.stats.cc_errors += 1;
                gap = true;
                debug!(pid, offset, "ts demuxer: continuity counter gap");
            }
        }
        let payload = &p[start..];
        let e = stream::PacketCtx {
            pid: pid as u16,
            pusi,
            gap,
            random_access,
            offset,
        };
        match role {
            Role::None => {}
            Role::Pat | Role::Pmt => self.on_psi(role, payload, &e),
            Role::Stream(i) => self.on_stream_payload(i, payload, &e),
        }
    }
}

impl Stage for TsDemuxer {
    type In = Bytes;
    type Out = Item;

    /// Takes the next chunk of the byte stream (any size). Usage error after
    /// [`Stage::finish`].
    fn push(&mut self, input: Bytes) -> Result<()> {
        if self.finished {
            return Err(Error::usage("TsDemuxer: input after finish"));
        }
        if self.cur_pos < self.cur.len() {
            // The caller did not poll until None: read what is left first.
            self.pump(false);
        }
        self.cur = input;
        self.cur_pos = 0;
        Ok(())
    }

    fn poll(&mut self) -> Option<Result<Item>> {
        loop {
            if let Some(x) = self.out.pop_front() {
                return Some(x);
            }
            if self.cur_pos < self.cur.len() {
                self.pump(true);
                continue;
            }
            if self.finished && !self.eos_queued {
                self.eos_queued = true;
                self.flush_search();
                self.flush_streams();
                self.out.push_back(Ok(Item::Event(Event::EndOfStream)));
                continue;
            }
            return None;
        }
    }

    /// End of input: the last unbounded PES packets are emitted, partial ones
    /// dropped, then [`Event::EndOfStream`] (on the following polls).
    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        Ok(())
    }
}
