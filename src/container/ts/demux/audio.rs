//! AAC in ADTS (ISO/IEC 13818-7 §6.2, ISO/IEC 14496-3 §1.A.2; stream type 0x0F) to raw
//! frames: several frames per PES packet, frames split across PES packets, each frame
//! timed `pts + i * 1024` samples from the PES packet's PTS.

use bytes::{Bytes, BytesMut};

use crate::bitstream::aac::{self, ADTS_HEADER_LEN, SAMPLE_RATES};
use crate::media::AacConfig;
use crate::time::{rescale, Rounding, Timescale};

/// Samples per AAC frame (ISO/IEC 14496-3 §4.5.1.1, 1024-sample frames; ADTS has no
/// 960-sample signalling).
const FRAME_SAMPLES: i64 = 1024;

/// The ADTS fields that make the configuration.
type AdtsKey = (u8, u8, u8);

/// What one PES packet of AAC yields, in order.
#[derive(Debug, PartialEq)]
pub(super) enum AudioOut {
    /// The configuration changed (or is known for the first time) before the next frame.
    Config(AacConfig),
    /// A raw frame with its PTS and duration, 90 kHz, unwrapped.
    Frame {
        data: Bytes,
        pts: i64,
        duration: i64,
    },
}

/// Per-stream ADTS state.
#[derive(Debug, Default)]
pub(super) struct AudioState {
    /// The start of a frame the previous PES packet did not finish.
    carry: Vec<u8>,
    /// Time of frame `index` counts from `base` (90 kHz) in samples at the rate in force.
    base: Option<i64>,
    index: i64,
    key: Option<AdtsKey>,
    rate: u32,
    pub config: Option<AacConfig>,
    /// Bytes skipped looking for a sync word, frames dropped (no time, bad header).
    pub skipped_bytes: u64,
    pub dropped_frames: u64,
}

impl AudioState {
    /// Bytes held for a frame split across PES packets.
    pub fn buffered(&self) -> usize {
        self.carry.len()
    }

    /// Forgets a partial frame (packets were lost); returns whether one was held.
    pub fn drop_carry(&mut self) -> bool {
        let had = !self.carry.is_empty();
        if had {
            self.dropped_frames += 1;
        }
        self.carry.clear();
        had
    }

    fn time(&self, index: i64) -> Option<i64> {
        let rate = Timescale::new(self.rate)?;
        Some(
            self.base?
                + rescale(
                    index * FRAME_SAMPLES,
                    rate,
                    Timescale::MPEG,
                    Rounding::Nearest,
                ),
        )
    }

    /// Emits one whole ADTS frame `f` (header included), advancing the frame clock: its
    /// raw bytes are appended to `raw`, their range is recorded in `out`.
    fn frame(&mut self, f: &[u8], h: &aac::AdtsHeader, raw: &mut BytesMut, out: &mut Vec<Pending>) {
        let key = (h.object_type, h.sampling_index, h.channel_config);
        let blocks = f.get(6).map_or(0, |b| b & 3);
        let Some(&rate) = SAMPLE_RATES.get(h.sampling_index as usize) else {
            self.dropped_frames += 1;
            return;
        };
        if blocks != 0 {
            // Several raw_data_blocks in one frame: no boundaries to split them on.
            self.dropped_frames += 1;
            return;
        }
        if self.key != Some(key) {
            let asc = aac::build_asc(h.object_type, h.sampling_index, h.channel_config);
            match AacConfig::from_asc(asc) {
                Ok(cfg) => {
                    if self.rate != rate {
                        if self.rate != 0 {
                            // Keep the frame clock continuous across a rate change.
                            self.base = self.time(self.index);
                            self.index = 0;
                        }
                        self.rate = rate;
                    }
                    self.key = Some(key);
                    self.config = Some(cfg.clone());
                    out.push(Pending::Config(cfg));
                }
                Err(_) => {
                    self.dropped_frames += 1;
                    return;
                }
            }
        }
        let (Some(pts), Some(next)) = (self.time(self.index), self.time(self.index + 1)) else {
            self.dropped_frames += 1;
            return;
        };
        self.index += 1;
        let at = raw.len();
        raw.extend_from_slice(&f[h.header_len..h.frame_len]);
        out.push(Pending::Frame {
            range: (at, raw.len()),
            pts,
            duration: next - pts,
        });
    }

    /// Takes the payload of one PES packet; `pts` is its PTS (90 kHz, unwrapped), which
    /// times the first frame that starts in it. Frames of a packet without PTS continue
    /// the previous packet's clock; without any PTS so far they are dropped. The raw
    /// frames of the packet share one buffer.
    pub fn pes(&mut self, mut data: &[u8], pts: Option<i64>) -> Vec<AudioOut> {
        let mut pending = Vec::new();
        let mut raw = BytesMut::with_capacity(data.len() + self.carry.len());
        if !self.carry.is_empty() {
            // Finish the frame started in the previous packet, on the previous clock.
            let mut carry = std::mem::take(&mut self.carry);
            let header_take = ADTS_HEADER_LEN.saturating_sub(carry.len()).min(data.len());
            carry.extend_from_slice(&data[..header_take]);
            data = &data[header_take..];
            match aac::parse_adts(&carry) {
                Ok(Some(h)) => {
                    let take = h.frame_len.saturating_sub(carry.len()).min(data.len());
                    carry.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if carry.len() < h.frame_len {
                        self.carry = carry;
                        return Vec::new();
                    }
                    self.frame(&carry[..h.frame_len], &h, &mut raw, &mut pending);
                }
                Ok(None) => {
                    self.carry = carry;
                    return Vec::new();
                }
                Err(_) => self.skipped_bytes += carry.len() as u64,
            }
        }
        if let Some(p) = pts {
            self.base = Some(p);
            self.index = 0;
        }
        while !data.is_empty() {
            match aac::parse_adts(data) {
                Ok(Some(h)) if h.frame_len <= data.len() => {
                    self.frame(&data[..h.frame_len], &h, &mut raw, &mut pending);
                    data = &data[h.frame_len..];
                }
                Ok(_) if data.len() < aac::ADTS_MAX_FRAME => {
                    // A frame (or its header) continues in the next PES packet.
                    self.carry.extend_from_slice(data);
                    break;
                }
                _ => {
                    // Lost sync: skip to the next 0xFF.
                    let skip = data
                        .get(1..)
                        .and_then(|d| d.iter().position(|&b| b == 0xff))
                        .map_or(data.len(), |p| p + 1);
                    self.skipped_bytes += skip as u64;
                    data = &data[skip..];
                }
            }
        }
        let raw = raw.freeze();
        pending
            .into_iter()
            .map(|p| match p {
                Pending::Config(c) => AudioOut::Config(c),
                Pending::Frame {
                    range: (s, e),
                    pts,
                    duration,
                } => AudioOut::Frame {
                    data: raw.slice(s..e),
                    pts,
                    duration,
                },
            })
            .collect()
    }
}

/// An output of [`AudioState::pes`] before the packet's raw buffer is frozen.
#[derive(Debug)]
enum Pending {
    Config(AacConfig),
    Frame {
        range: (usize, usize),
        pts: i64,
        duration: i64,
    },
}
