//! The program being demuxed: which PID carries what (PAT, PMT, elementary streams),
//! updated from PAT and PMT sections (ISO/IEC 13818-1 §2.4.4.3, §2.4.4.8).

use bytes::Bytes;
use tracing::debug;

use super::section::SectionBuf;
use super::stream::{Body, PacketCtx, Stream};
use super::tables::{self, Reject};
use super::{TsDemuxer, TsDemuxerOptions, PIDS};
use crate::container::ts::packet::{MIN_USER_PID, NULL_PID, PAT_PID};
use crate::container::ts::psi::{
    STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_HEVC, STREAM_TYPE_SCTE35,
};

/// What a PID carries for the demuxer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Nothing we follow.
    None,
    /// The program association table.
    Pat,
    /// The program map table of the program.
    Pmt,
    /// Elementary stream `n` of [`Program::streams`].
    Stream(usize),
}

/// The program's PIDs and streams.
#[derive(Debug)]
pub(super) struct Program {
    roles: Box<[Role; PIDS]>,
    wanted: Option<u16>,
    number: Option<u16>,
    pmt_pid: Option<u16>,
    pmt_version: Option<u8>,
    pcr_pid: Option<u16>,
    pat: SectionBuf,
    pmt: SectionBuf,
    pub streams: Vec<Stream>,
    max_streams: usize,
    /// PIDs announced as tracks (bit per PID): a new configuration on one of them is a
    /// change, not an addition.
    announced: Box<[u64; PIDS / 64]>,
}

impl Program {
    pub fn new(opts: &TsDemuxerOptions) -> Self {
        let mut roles = Box::new([Role::None; PIDS]);
        roles[usize::from(PAT_PID)] = Role::Pat;
        Program {
            roles,
            wanted: opts.program,
            number: None,
            pmt_pid: None,
            pmt_version: None,
            pcr_pid: None,
            pat: SectionBuf::default(),
            pmt: SectionBuf::default(),
            streams: Vec::new(),
            max_streams: opts.max_streams,
            announced: Box::new([0; PIDS / 64]),
        }
    }

    #[inline]
    pub fn role(&self, pid: usize) -> Role {
        self.roles[pid & (PIDS - 1)]
    }

    pub fn number(&self) -> Option<u16> {
        self.number
    }

    pub fn pcr_pid(&self) -> Option<u16> {
        self.pcr_pid
    }

    pub fn buffered(&self) -> usize {
        self.pat.buffered()
            + self.pmt.buffered()
            + self.streams.iter().map(Stream::buffered).sum::<usize>()
    }

    /// Marks `pid` as announced; returns whether it was already.
    pub fn announce(&mut self, pid: u16) -> bool {
        let (word, bit) = (usize::from(pid) / 64 % (PIDS / 64), pid % 64);
        let was = self.announced[word] & (1 << bit) != 0;
        self.announced[word] |= 1 << bit;
        was
    }
}

/// The kind of stream a PMT entry is, if we follow it.
fn body_for(e: &tables::PmtEntry) -> Option<Body> {
    use super::video::VideoCodec;
    match e.stream_type {
        STREAM_TYPE_H264 => Some(Body::video(VideoCodec::H264)),
        STREAM_TYPE_HEVC => Some(Body::video(VideoCodec::H265)),
        STREAM_TYPE_AAC_ADTS => Some(Body::audio()),
        STREAM_TYPE_SCTE35 => Some(Body::cue()),
        _ if e.cuei => Some(Body::cue()),
        _ => None,
    }
}

fn usable_pid(pid: u16) -> bool {
    (MIN_USER_PID..NULL_PID).contains(&pid)
}

impl TsDemuxer {
    /// Payload of a PAT or PMT packet.
    pub(super) fn on_psi(&mut self, role: Role, payload: &[u8], e: &PacketCtx) {
        let mut sections: Vec<Bytes> = Vec::new();
        let buf = match role {
            Role::Pat => &mut self.program.pat,
            _ => &mut self.program.pmt,
        };
        let o = buf.push(payload, e.pusi, e.gap, &mut sections);
        self.stats.bad_sections += u64::from(o.dropped);
        for s in sections {
            match role {
                Role::Pat => self.on_pat(&s),
                _ => self.on_pmt(&s),
            }
        }
    }

    fn on_pat(&mut self, s: &[u8]) {
        let entries = match tables::parse_pat(s) {
            Ok(v) => v,
            Err(Reject::Bad) => {
                self.stats.bad_sections += 1;
                return;
            }
            Err(Reject::Skip) => return,
        };
        let wanted = self.program.wanted;
        let Some(entry) = entries.iter().find(|e| match wanted {
            Some(n) => e.program_number == n,
            None => e.program_number != 0,
        }) else {
            return;
        };
        if !usable_pid(entry.pid) {
            self.stats.bad_sections += 1;
            return;
        }
        let p = &mut self.program;
        if p.pmt_pid == Some(entry.pid) && p.number == Some(entry.program_number) {
            return;
        }
        debug!(
            program = entry.program_number,
            pmt_pid = entry.pid,
            "ts demuxer: program"
        );
        if let Some(old) = p.pmt_pid {
            p.roles[usize::from(old)] = Role::None;
        }
        // A PMT PID that was an elementary stream's stops being one.
        self.set_streams(Vec::new());
        let p = &mut self.program;
        p.pmt_pid = Some(entry.pid);
        p.number = Some(entry.program_number);
        p.pmt_version = None;
        p.pmt.reset();
        p.roles[usize::from(entry.pid)] = Role::Pmt;
        self.cc[usize::from(entry.pid)] = 0xff;
    }

    fn on_pmt(&mut self, s: &[u8]) {
        let Some(number) = self.program.number else {
            return;
        };
        let pmt = match tables::parse_pmt(s, number) {
            Ok(p) => p,
            Err(Reject::Bad) => {
                self.stats.bad_sections += 1;
                return;
            }
            Err(Reject::Skip) => return,
        };
        if self.program.pmt_version == Some(pmt.version) {
            return; // the repeat of the table in force
        }
        debug!(
            version = pmt.version,
            streams = pmt.streams.len(),
            "ts demuxer: PMT"
        );
        let mut old: Vec<Option<Stream>> = std::mem::take(&mut self.program.streams)
            .into_iter()
            .map(Some)
            .collect();
        let mut streams: Vec<Stream> = Vec::new();
        for e in &pmt.streams {
            if !usable_pid(e.pid)
                || Some(e.pid) == self.program.pmt_pid
                || streams.iter().any(|s| s.pid == e.pid)
            {
                continue;
            }
            let Some(body) = body_for(e) else {
                debug!(
                    pid = e.pid,
                    stream_type = e.stream_type,
                    "ts demuxer: stream type not followed"
                );
                continue;
            };
            if streams.len() == self.program.max_streams {
                debug!(pid = e.pid, "ts demuxer: more streams than max_streams");
                continue;
            }
            let language = e
                .language
                .filter(|l| l.iter().all(u8::is_ascii_alphabetic))
                .map(|l| String::from_utf8_lossy(&l).to_ascii_lowercase());
            let kept = old
                .iter_mut()
                .find(|s| {
                    s.as_ref()
                        .is_some_and(|s| s.pid == e.pid && s.stream_type == e.stream_type)
                })
                .and_then(Option::take);
            let stream = match kept {
                Some(mut s) => {
                    s.language = language;
                    s
                }
                None => Stream::new(e.pid, e.stream_type, language, body),
            };
            streams.push(stream);
        }
        // Every stream the previous version had goes; PIDs kept are set again below.
        for s in old.into_iter().flatten() {
            self.program.roles[usize::from(s.pid)] = Role::None;
        }
        self.program.pmt_version = Some(pmt.version);
        self.program.pcr_pid = Some(pmt.pcr_pid);
        self.set_streams(streams);
    }

    /// Installs `streams` as the program's streams, PIDs of the old ones released.
    fn set_streams(&mut self, streams: Vec<Stream>) {
        let p = &mut self.program;
        for s in &p.streams {
            p.roles[usize::from(s.pid)] = Role::None;
        }
        for (i, s) in streams.iter().enumerate() {
            let pid = usize::from(s.pid);
            if p.roles[pid] == Role::None {
                self.cc[pid] = 0xff; // newly followed: no gap against an old counter
            }
            p.roles[pid] = Role::Stream(i);
        }
        p.streams = streams;
    }
}
