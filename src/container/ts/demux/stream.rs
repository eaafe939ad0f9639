//! Elementary streams: PES packets to frames and track events, on one unwrapped 90 kHz
//! timeline per program (ISO/IEC 13818-1 §2.4.3.7 PTS/DTS, 33 bits).

use bytes::BytesMut;

use super::audio::{AudioOut, AudioState};
use super::pes::{self, PesBuf};
use super::section::SectionBuf;
use super::video::{VideoCodec, VideoState};
use super::{TsDemuxer, TsDemuxerOptions};
use crate::error::{Error, Result};
use crate::media::{CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
use crate::time::{Rollover, Timescale, Timestamp};

/// 2^33, the modulus of PTS and DTS.
const WRAP: i64 = 1 << 33;

/// What the demuxer knows about one transport packet when it hands its payload on.
#[derive(Debug, Clone, Copy)]
pub(super) struct PacketCtx {
    pub pid: u16,
    pub pusi: bool,
    /// Packets of this PID were lost just before this one.
    pub gap: bool,
    pub random_access: bool,
    /// Byte offset of the packet in the input.
    pub offset: u64,
}

/// The per-stream parser.
#[derive(Debug)]
pub(super) enum Body {
    Video {
        pes: PesBuf,
        state: Box<VideoState>,
        /// A keyframe was emitted: later frames may follow.
        keyed: bool,
    },
    Audio {
        pes: PesBuf,
        state: AudioState,
    },
    Cue {
        sections: SectionBuf,
    },
}

impl Body {
    pub fn video(codec: VideoCodec) -> Self {
        Body::Video {
            pes: PesBuf::default(),
            state: Box::new(VideoState::new(codec)),
            keyed: false,
        }
    }
    pub fn audio() -> Self {
        Body::Audio {
            pes: PesBuf::default(),
            state: AudioState::default(),
        }
    }
    pub fn cue() -> Self {
        Body::Cue {
            sections: SectionBuf::default(),
        }
    }
}

/// One elementary stream of the program.
#[derive(Debug)]
pub(super) struct Stream {
    pub pid: u16,
    pub stream_type: u8,
    pub language: Option<String>,
    pub body: Body,
    /// DTS of this track's last frame.
    last_dts: Option<i64>,
    /// The time base ([`Clock::epoch`]) of that frame.
    epoch: Option<u64>,
}

impl Stream {
    pub fn new(pid: u16, stream_type: u8, language: Option<String>, body: Body) -> Self {
        Stream {
            pid,
            stream_type,
            language,
            body,
            last_dts: None,
            epoch: None,
        }
    }

    pub fn buffered(&self) -> usize {
        match &self.body {
            Body::Video { pes, .. } => pes.data.len(),
            Body::Audio { pes, state } => pes.data.len() + state.buffered(),
            Body::Cue { sections } => sections.buffered(),
        }
    }

    fn pes(&mut self) -> Option<&mut PesBuf> {
        match &mut self.body {
            Body::Video { pes, .. } | Body::Audio { pes, .. } => Some(pes),
            Body::Cue { .. } => None,
        }
    }
}

/// The program's clock: 33-bit PTS/DTS unwrapped once, jump detection.
#[derive(Debug)]
pub(super) struct Clock {
    roll: Rollover,
    fwd: u64,
    back: i64,
    /// Time bases so far: one more per [`Event::Discontinuity`].
    epoch: u64,
    /// DTS of the latest frame on the current time base, and on the one before.
    epoch_last: Option<i64>,
    prev_last: Option<i64>,
    /// A frame was emitted (a discontinuity means something only after one).
    emitted: bool,
    /// `discontinuity_indicator` on the PCR PID: the next frame starts a new time base.
    pending: bool,
    /// PTS of the last video PES packet and of the last PES packet of any stream.
    pub last_video_pts: Option<i64>,
    pub last_pts: Option<i64>,
}

impl Clock {
    pub fn new(opts: &TsDemuxerOptions) -> Self {
        Clock {
            roll: Rollover::new(33),
            fwd: opts.max_forward_jump.ticks_in(Timescale::MPEG).max(0) as u64,
            back: opts.max_backward_jump.ticks_in(Timescale::MPEG).max(0),
            epoch: 0,
            epoch_last: None,
            prev_last: None,
            emitted: false,
            pending: false,
            last_video_pts: None,
            last_pts: None,
        }
    }

    /// The time next to which a SCTE 35 time is unwrapped, and an immediate cue's time.
    pub fn reference(&self) -> Option<i64> {
        self.last_video_pts.or(self.last_pts)
    }

    pub fn time_base_changed(&mut self) {
        if self.emitted {
            self.pending = true;
        }
    }

    /// Unwrapped (pts, dts) of a PES header's 33-bit values; `dts` defaults to `pts`.
    /// The DTS follows the program's rollover; the PTS is placed within ±2^32 of it.
    fn unwrap(&mut self, pts: u64, dts: Option<u64>) -> (i64, i64) {
        let d = dts.unwrap_or(pts);
        let dts = self.roll.unwrap(d);
        let mut delta = (pts as i64 - d as i64).rem_euclid(WRAP);
        if delta > WRAP / 2 {
            delta -= WRAP;
        }
        (dts + delta, dts)
    }
}

impl TsDemuxer {
    /// Payload of a packet on elementary stream `i`.
    pub(super) fn on_stream_payload(&mut self, i: usize, payload: &[u8], e: &PacketCtx) {
        let max = self.opts.max_pes_size;
        let Some(s) = self.program.streams.get_mut(i) else {
            return;
        };
        if let Body::Cue { sections } = &mut s.body {
            let mut done = Vec::new();
            let o = sections.push(payload, e.pusi, e.gap, &mut done);
            self.stats.cue_errors += u64::from(o.dropped);
            for section in done {
                self.on_cue_section(section);
            }
            return;
        }
        if e.gap {
            self.drop_pes(i);
        }
        let Some(pes) = self.program.streams[i].pes() else {
            return;
        };
        if e.pusi {
            if pes.active {
                if pes.short() {
                    self.drop_pes(i);
                } else {
                    self.finish_pes(i);
                }
            }
            if let Some(pes) = self.program.streams[i].pes() {
                pes.start(payload, e.random_access, e.offset);
            }
        } else if pes.active {
            pes.append(payload);
        } else {
            return; // waiting for the start of a PES packet
        }
        let Some(pes) = self.program.streams[i].pes() else {
            return;
        };
        if pes.data.len() > max {
            let offset = pes.offset;
            self.drop_pes(i);
            self.out.push_back(Err(Error::limit(
                "PES packet larger than the configured maximum",
            )
            .at_offset(offset)
            .context(format!("ts demuxer: pid {:#x}", e.pid))));
        } else if pes.complete() {
            self.finish_pes(i);
        }
    }

    /// Drops the PES packet in progress on stream `i` (and a partial audio frame).
    fn drop_pes(&mut self, i: usize) {
        let s = &mut self.program.streams[i];
        let had = match &mut s.body {
            Body::Video { pes, .. } => std::mem::replace(&mut pes.active, false),
            Body::Audio { pes, state } => {
                if state.drop_carry() {
                    self.stats.dropped_frames += 1;
                }
                std::mem::replace(&mut pes.active, false)
            }
            Body::Cue { .. } => false,
        };
        if had {
            self.stats.dropped_pes += 1;
        }
        if let Some(pes) = s.pes() {
            pes.reset();
        }
    }

    /// The PES packet of stream `i` is whole: frames and events out.
    fn finish_pes(&mut self, i: usize) {
        let Some(pes) = self.program.streams[i].pes() else {
            return;
        };
        let mut data = std::mem::take(&mut pes.data);
        let (random_access, offset) = (pes.random_access, pes.offset);
        pes.reset();
        let size = data.len();
        let r = self.pes_packet(i, &mut data, random_access);
        if let Some(pes) = self.program.streams.get_mut(i).and_then(Stream::pes) {
            // Keep the allocation for the next packet of the stream (a video frame
            // rewritten in place took it: the next one reserves about this one's size).
            // A buffer far larger than this packet (after a big keyframe) is let go.
            data.clear();
            if data.capacity() > 2 * size.max(4096) {
                data = BytesMut::new();
            }
            pes.data = data;
            pes.size_hint = size.min(self.opts.max_pes_size);
        }
        if let Err(e) = r {
            self.stats.dropped_pes += 1;
            let pid = self.program.streams[i].pid;
            self.out.push_back(Err(e
                .at_offset(offset)
                .context(format!("ts demuxer: pid {pid:#x}"))));
        }
    }

    fn pes_packet(&mut self, i: usize, data: &mut BytesMut, random_access: bool) -> Result<()> {
        let h = pes::parse_header(data)?;
        let pid = self.program.streams[i].pid;
        match &mut self.program.streams[i].body {
            Body::Video { state, .. } => {
                let pts33 = h
                    .pts
                    .ok_or(Error::malformed("video PES packet without PTS"))?;
                let (pts, dts) = self.clock.unwrap(pts33, h.dts);
                self.clock.last_video_pts = Some(pts);
                self.clock.last_pts = Some(pts);
                let (au, config) = state.access_unit(data, h.payload_start, random_access)?;
                let configured = state.config.is_some();
                self.release_cues();
                if let Some(c) = config {
                    self.announce(i, c);
                }
                let Some(au) = au else { return Ok(()) };
                let Body::Video { keyed, .. } = &mut self.program.streams[i].body else {
                    return Ok(());
                };
                if !configured || !(*keyed || au.keyframe) {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                }
                *keyed = true;
                let mut f = Frame::new(
                    u32::from(pid),
                    Timestamp::new(dts, Timescale::MPEG),
                    Timestamp::new(pts, Timescale::MPEG),
                    au.data,
                );
                if au.keyframe {
                    f = f.with_flags(FrameFlags::KEYFRAME);
                }
                self.emit_frame(i, f);
            }
            Body::Audio { state, .. } => {
                let (skipped, dropped) = (state.skipped_bytes, state.dropped_frames);
                let pts = h.pts.map(|p| self.clock.unwrap(p, h.dts).0);
                let outs = state.pes(&data[h.payload_start..], pts);
                self.stats.skipped_audio_bytes += state.skipped_bytes - skipped;
                self.stats.dropped_frames += state.dropped_frames - dropped;
                if let Some(p) = pts {
                    self.clock.last_pts = Some(p);
                    self.release_cues();
                }
                for o in outs {
                    match o {
                        AudioOut::Config(c) => self.announce(i, CodecConfig::Aac(c)),
                        AudioOut::Frame {
                            data,
                            pts,
                            duration,
                        } => {
                            let t = Timestamp::new(pts, Timescale::MPEG);
                            let f = Frame::new(u32::from(pid), t, t, data)
                                .with_flags(FrameFlags::KEYFRAME)
                                .with_duration(Timestamp::new(duration, Timescale::MPEG));
                            self.emit_frame(i, f);
                        }
                    }
                }
            }
            Body::Cue { .. } => {}
        }
        Ok(())
    }

    /// [`Event::TrackAdded`] (first time for the PID) or [`Event::TrackChanged`].
    fn announce(&mut self, i: usize, config: CodecConfig) {
        let s = &self.program.streams[i];
        let mut info = TrackInfo::new(u32::from(s.pid), Timescale::MPEG, config);
        info.language = s.language.clone();
        let pid = s.pid;
        let event = if self.program.announce(pid) {
            Event::TrackChanged(info)
        } else {
            Event::TrackAdded(info)
        };
        self.out.push_back(Ok(Item::Event(event)));
    }

    /// Queues a frame, preceded by [`Event::Discontinuity`] when its time jumps.
    ///
    /// Tracks cross a jump one after the other (a PES packet of the old time base may
    /// follow one of the new): the first track to jump opens a new time base and emits
    /// the event; another track's frame then joins it silently when it lands near the
    /// new time base's latest frame, and continues on the old one while it stays near
    /// its own previous frame (a track's first frame, near the old one's latest).
    fn emit_frame(&mut self, i: usize, f: Frame) {
        let dts = f.dts.ticks();
        let c = &self.clock;
        let s = &self.program.streams[i];
        let near_own = s
            .last_dts
            .is_some_and(|l| dts >= l.saturating_sub(c.back) && dts.abs_diff(l) <= c.fwd);
        let near = |last: Option<i64>| last.is_some_and(|l| dts.abs_diff(l) <= c.fwd);
        let near_base = c.epoch_last.is_none() || near(c.epoch_last);
        let current = s.epoch == Some(c.epoch);
        let (jump, join) = if c.pending {
            (true, false)
        } else if current {
            (!near_own, false)
        } else if near_base {
            (false, true)
        } else if s.last_dts.is_none() && near(c.prev_last) {
            // A first frame on the previous time base: it stays there.
            self.program.streams[i].epoch = c.epoch.checked_sub(1);
            (false, false)
        } else {
            (!near_own, false)
        };
        let mut on_base = current || join;
        if jump && self.clock.emitted {
            self.stats.discontinuities += 1;
            self.clock.epoch += 1;
            self.clock.prev_last = self.clock.epoch_last;
            self.out
                .push_back(Ok(Item::Event(Event::Discontinuity { track: None })));
        }
        if jump {
            on_base = true;
        }
        self.clock.pending = false;
        self.clock.emitted = true;
        let s = &mut self.program.streams[i];
        s.last_dts = Some(dts);
        if on_base {
            s.epoch = Some(self.clock.epoch);
            self.clock.epoch_last = Some(dts);
        }
        self.out.push_back(Ok(Item::Frame(f)));
    }

    /// End of input: whole PES packets still open are emitted (an unbounded video
    /// packet ends here), short ones dropped; partial audio frames and cues that never
    /// got a time are dropped.
    pub(super) fn flush_streams(&mut self) {
        for i in 0..self.program.streams.len() {
            let Some(pes) = self.program.streams[i].pes() else {
                continue;
            };
            if pes.active && !pes.short() {
                self.finish_pes(i);
            } else {
                self.drop_pes(i);
            }
            if let Body::Audio { state, .. } = &mut self.program.streams[i].body {
                if state.drop_carry() {
                    self.stats.dropped_frames += 1;
                }
            }
        }
        self.drop_pending_cues();
    }
}
