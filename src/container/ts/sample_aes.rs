//! SAMPLE-AES in MPEG-TS: the stream types and PMT descriptors of Apple's *MPEG-2
//! Stream Encryption Format for HTTP Live Streaming* (§3 Transport Stream Signaling,
//! §2.3.4 audio setup information), the [`TsEncryption`] mode of
//! [`TsMuxer`], and [`write_sample_aes_segment`], which turns a clear
//! [`Segment`] into a SAMPLE-AES segment at request time.
//!
//! | stream | `stream_type` | descriptors |
//! |---|---|---|
//! | H.264 | `0xdb` | private data indicator `zavc` |
//! | AAC (ADTS) | `0xcf` | private data indicator `aacd`; registration `apad` + audio setup information |
//!
//! The audio setup information is `audio_type` (`zaac` for AAC-LC, `zach` for HE-AAC,
//! `zacp` for HE-AAC v2), `priming` (16 bits, big-endian; 0: the canonical model does
//! not know the encoder delay), `version` (1), `setup_data_length` and the
//! AudioSpecificConfig. The media itself is encrypted by
//! [`crate::crypto::sample_aes`].
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use strom::container::ts::{write_sample_aes_segment, TsMuxerOptions, STREAM_TYPE_AAC_SAMPLE_AES};
//! use strom::crypto::{ContentKey, Iv};
//! use strom::media::{AacConfig, CodecConfig, Event, Frame, TrackInfo};
//! use strom::package::{Segmenter, SegmenterOptions};
//! use strom::pipeline::{drain, Stage};
//! use strom::time::{Timescale, Timestamp};
//!
//! let scale = Timescale::new(48_000).unwrap();
//! let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
//! let mut s = Segmenter::new(SegmenterOptions::default()).unwrap();
//! s.push(Event::TrackAdded(TrackInfo::new(2, scale, CodecConfig::Aac(aac))).into()).unwrap();
//! for i in 0..4 {
//!     let t = Timestamp::new(i * 1024, scale);
//!     s.push(Frame::new(2, t, t, Bytes::from(vec![0x21; 200])).into()).unwrap();
//! }
//! s.finish().unwrap();
//! let seg = drain(&mut s).unwrap().remove(0);
//!
//! let mut out = BytesMut::new();
//! let (key, iv) = (ContentKey([1; 16]), Iv::from_sequence(seg.sequence));
//! write_sample_aes_segment(&seg, &key, &iv, &TsMuxerOptions::default(), &mut out).unwrap();
//! // PAT, PMT with the encrypted AAC stream type and the apad descriptor, then audio.
//! assert_eq!(out[188 + 5 + 12], STREAM_TYPE_AAC_SAMPLE_AES);
//! assert!(out[188..376].windows(4).any(|w| w == b"apad"));
//! assert_eq!(out.len(), 7 * 188);
//! ```

use bytes::BytesMut;

use super::muxer::{TsMuxer, TsMuxerOptions};
use super::psi::{DESCRIPTOR_PRIVATE_DATA_INDICATOR, DESCRIPTOR_REGISTRATION};
use crate::crypto::{ContentKey, Iv};
use crate::error::{Error, Result};
use crate::media::AacConfig;
use crate::package::Segment;

/// How a [`TsMuxer`] protects the elementary streams it writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TsEncryption {
    /// Clear streams, the usual stream types. The default.
    #[default]
    Clear,
    /// HLS `METHOD=SAMPLE-AES`: H.264 slices and AAC frames encrypted one by one
    /// ([`crate::crypto::sample_aes`]), signalled with stream types `0xdb` / `0xcf`
    /// and their descriptors. H.265 has no SAMPLE-AES form in MPEG-TS
    /// ([`Error::unsupported`]).
    SampleAes {
        /// The content key (what the `EXT-X-KEY` `URI` serves).
        key: ContentKey,
        /// The IV, 16 bytes: the `EXT-X-KEY` `IV` attribute, or the segment's media
        /// sequence number ([`Iv::from_sequence`]) when the playlist writes none.
        iv: Iv,
    },
}

impl TsEncryption {
    /// A SAMPLE-AES mode with `key` and `iv`.
    pub fn sample_aes(key: ContentKey, iv: Iv) -> Self {
        TsEncryption::SampleAes { key, iv }
    }

    /// Whether this mode encrypts.
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, TsEncryption::Clear)
    }
}

/// The `private_data_indicator` of SAMPLE-AES H.264.
pub const PRIVATE_DATA_H264: [u8; 4] = *b"zavc";
/// The `private_data_indicator` of SAMPLE-AES AAC.
pub const PRIVATE_DATA_AAC: [u8; 4] = *b"aacd";
/// The registration descriptor's `format_identifier` carrying audio setup information.
pub const FORMAT_IDENTIFIER_AUDIO_SETUP: [u8; 4] = *b"apad";
/// `version` of the audio setup information we write.
pub const AUDIO_SETUP_VERSION: u8 = 1;

/// The `ES_info` descriptors of a SAMPLE-AES H.264 stream: a private data indicator
/// descriptor (ISO/IEC 13818-1 §2.6.28) with `zavc`.
pub fn h264_descriptors() -> [u8; 6] {
    let [a, b, c, d] = PRIVATE_DATA_H264;
    [DESCRIPTOR_PRIVATE_DATA_INDICATOR, 4, a, b, c, d]
}

/// The `audio_setup_information` of an AAC stream (§2.3.4): `audio_type`, `priming`
/// 0, `version` 1, `setup_data_length`, the AudioSpecificConfig.
///
/// Errors: [`Error::unsupported`] for an object type other than AAC-LC (2), SBR (5)
/// or PS (29), which have no `audio_type`; [`Error::limit`] for an
/// AudioSpecificConfig too long for the registration descriptor (over 243 bytes).
pub fn audio_setup_information(cfg: &AacConfig) -> Result<Vec<u8>> {
    let audio_type: [u8; 4] = match cfg.object_type {
        2 => *b"zaac",
        5 => *b"zach",
        29 => *b"zacp",
        _ => {
            return Err(Error::unsupported(
                "SAMPLE-AES audio setup information: AAC object type other than LC, SBR, PS",
            ))
        }
    };
    let asc: &[u8] = &cfg.asc;
    let len = u8::try_from(asc.len())
        .ok()
        .filter(|&l| usize::from(l) <= 255 - 4 - 8)
        .ok_or_else(|| Error::limit("AudioSpecificConfig too long for the apad descriptor"))?;
    let mut v = Vec::with_capacity(8 + asc.len());
    v.extend_from_slice(&audio_type);
    v.extend_from_slice(&0u16.to_be_bytes());
    v.push(AUDIO_SETUP_VERSION);
    v.push(len);
    v.extend_from_slice(asc);
    Ok(v)
}

/// The `ES_info` descriptors of a SAMPLE-AES AAC stream: a private data indicator
/// descriptor with `aacd`, then a registration descriptor (§2.6.8) with
/// `format_identifier` `apad` and the [`audio_setup_information`].
///
/// Errors: as [`audio_setup_information`].
pub fn aac_descriptors(cfg: &AacConfig) -> Result<Vec<u8>> {
    let setup = audio_setup_information(cfg)?;
    let mut v = Vec::with_capacity(6 + 6 + setup.len());
    v.extend_from_slice(&[DESCRIPTOR_PRIVATE_DATA_INDICATOR, 4]);
    v.extend_from_slice(&PRIVATE_DATA_AAC);
    // Fits: audio_setup_information caps the setup at 251 bytes.
    v.extend_from_slice(&[DESCRIPTOR_REGISTRATION, (4 + setup.len()) as u8]);
    v.extend_from_slice(&FORMAT_IDENTIFIER_AUDIO_SETUP);
    v.extend_from_slice(&setup);
    Ok(v)
}

/// Appends `seg` to `out` as one SAMPLE-AES MPEG-TS segment under `key` and `iv`,
/// with a muxer of its own (built from `seg.tracks` and `opts`, its encryption
/// replaced): what an origin does per request with a segment it stores clear. The
/// segment decodes alone (PAT and PMT first); continuity counters start at 0.
///
/// Errors: those of [`TsMuxer::new`] (H.265 or Opus tracks, an 8-byte IV) and
/// [`TsMuxer::write_segment`]; `out` is then unchanged.
pub fn write_sample_aes_segment(
    seg: &Segment,
    key: &ContentKey,
    iv: &Iv,
    opts: &TsMuxerOptions,
    out: &mut BytesMut,
) -> Result<()> {
    let mut opts = opts.clone();
    opts.encryption = TsEncryption::sample_aes(key.clone(), *iv);
    let mut mux = TsMuxer::new(&seg.tracks, opts)
        .map_err(|e| e.context(format!("SAMPLE-AES segment {}", seg.sequence)))?;
    mux.write_segment(seg, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn descriptors_bytes() {
        assert_eq!(h264_descriptors(), [0x0f, 4, b'z', b'a', b'v', b'c']);
        let lc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!(
            aac_descriptors(&lc).unwrap(),
            [
                0x0f, 4, b'a', b'a', b'c', b'd', // private data indicator
                0x05, 14, b'a', b'p', b'a', b'd', // registration
                b'z', b'a', b'a', b'c', 0, 0, 1, 2, 0x11, 0x90, // audio setup
            ]
        );
        // HE-AAC (explicit SBR signalling): zach.
        let he = AacConfig::from_asc(Bytes::from_static(&[0x2b, 0x92, 0x08, 0x00])).unwrap();
        if he.object_type == 5 {
            assert_eq!(&audio_setup_information(&he).unwrap()[..4], b"zach");
        }
        let mut main = lc.clone();
        main.object_type = 1;
        assert_eq!(
            audio_setup_information(&main).unwrap_err().kind(),
            crate::ErrorKind::Unsupported
        );
        let mut long = lc;
        long.asc = Bytes::from(vec![0x11; 244]);
        assert_eq!(
            aac_descriptors(&long).unwrap_err().kind(),
            crate::ErrorKind::Limit
        );
        assert!(!TsEncryption::default().is_encrypted());
        assert!(TsEncryption::sample_aes(ContentKey([0; 16]), Iv::from_sequence(0)).is_encrypted());
    }

    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
    use crate::container::ts::packet::PACKET_SIZE;
    use crate::container::ts::psi::crc32_mpeg2;
    use crate::crypto::sample_aes::SampleAes;
    use crate::media::{CodecConfig, Frame, FrameFlags, H264Config, TrackInfo};
    use crate::time::{Timescale, Timestamp};
    use crate::ErrorKind;

    fn tracks() -> Vec<TrackInfo> {
        let h264 = H264Config::from_parameter_sets(
            Bytes::from_static(SPS_720P),
            Bytes::from_static(PPS_720P),
        )
        .unwrap();
        let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        vec![
            TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(h264)),
            TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(aac)),
        ]
    }

    /// Deterministic bytes with zero runs, so that ciphertext and clear runs both
    /// meet the escaping rules.
    fn noise(seed: u32, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 41 < 2 {
                    0
                } else {
                    (x >> 24) as u8
                }
            })
            .collect()
    }

    /// `nal` as an encoder codes it: emulation prevention applied.
    fn escaped(nal: &[u8]) -> Vec<u8> {
        let (mut out, mut zeros) = (Vec::new(), 0);
        for &b in nal {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    fn frames() -> Vec<Frame> {
        let mut v = Vec::new();
        for i in 0..6u32 {
            let t = Timestamp::from_millis(i64::from(i) * 40);
            let mut data = Vec::new();
            // A short SEI, then one or two slices of various sizes (an EPB in the leader).
            for (j, len) in [
                (0u32, 20usize),
                (1, 30 + 700 * (i as usize + 1)),
                (2, 47 + i as usize),
            ] {
                let mut nal = noise(i * 3 + j, len);
                nal[0] = match j {
                    0 => 0x06,
                    _ if i == 0 => 0x65,
                    _ => 0x41,
                };
                if len > 12 {
                    nal[8..12].copy_from_slice(&[0, 0, 3, 1]);
                }
                if let Some(last) = nal.last_mut() {
                    *last |= 0x80;
                }
                let nal = escaped(&nal);
                data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                data.extend_from_slice(&nal);
            }
            let f = Frame::new(1, t, t, Bytes::from(data));
            v.push(if i == 0 {
                f.with_flags(FrameFlags::KEYFRAME)
            } else {
                f
            });
            let at = Timestamp::new(i64::from(i) * 1024, Timescale::new(48_000).unwrap());
            v.push(Frame::new(
                2,
                at,
                at,
                Bytes::from(noise(100 + i, 20 + 97 * i as usize)),
            ));
        }
        v
    }

    /// (PID, PUSI, payload) of every packet carrying one.
    fn payloads(ts: &[u8]) -> Vec<(u16, bool, Vec<u8>)> {
        ts.chunks(PACKET_SIZE)
            .filter(|p| p[3] & 0x10 != 0)
            .map(|p| {
                let start = if p[3] & 0x20 != 0 {
                    5 + p[4] as usize
                } else {
                    4
                };
                (
                    u16::from_be_bytes([p[1] & 0x1f, p[2]]),
                    p[1] & 0x40 != 0,
                    p[start..].to_vec(),
                )
            })
            .collect()
    }

    /// The PES payloads (after the PES header) of `pid`, in order.
    fn pes_payloads(ts: &[u8], pid: u16) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = Vec::new();
        for (p, pusi, data) in payloads(ts) {
            if p != pid {
                continue;
            }
            if pusi {
                v.push(Vec::new());
            }
            v.last_mut().unwrap().extend_from_slice(&data);
        }
        v.into_iter()
            .map(|pes| pes[9 + pes[8] as usize..].to_vec())
            .collect()
    }

    fn pmt_of(ts: &[u8]) -> Vec<u8> {
        let (_, _, p) = payloads(ts)
            .into_iter()
            .find(|(pid, _, _)| *pid == 0x1000)
            .unwrap();
        let len = (u16::from_be_bytes([p[2], p[3]]) & 0xfff) as usize;
        p[1..4 + len].to_vec()
    }

    fn write(enc: TsEncryption) -> BytesMut {
        let opts = TsMuxerOptions {
            encryption: enc,
            ..TsMuxerOptions::default()
        };
        let mut mux = TsMuxer::new(&tracks(), opts).unwrap();
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        for f in frames() {
            mux.write_frame(&f, &mut out).unwrap();
        }
        mux.flush(&mut out).unwrap();
        out
    }

    #[test]
    fn muxer_writes_what_decrypts_to_the_clear_streams() {
        let key = ContentKey(*b"0123456789abcdef");
        let iv = Iv::from_sequence(3);
        let clear = write(TsEncryption::Clear);
        let enc = write(TsEncryption::sample_aes(key.clone(), iv));
        // PMT: 0xdb + zavc, 0xcf + aacd + apad setup; valid CRC.
        let pmt = pmt_of(&enc);
        assert_eq!(crc32_mpeg2(&pmt), 0);
        assert_eq!(&pmt[12..17], &[0xdb, 0xe1, 0x00, 0xf0, 6]);
        assert_eq!(&pmt[17..23], &h264_descriptors());
        let aac = aac_descriptors(&AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap())
            .unwrap();
        assert_eq!(&pmt[23..28], &[0xcf, 0xe1, 0x01, 0xf0, aac.len() as u8]);
        assert_eq!(&pmt[28..28 + aac.len()], &aac[..]);
        assert_eq!(pmt_of(&clear)[12], 0x1b);

        let sa = SampleAes::new(&key, &iv).unwrap();
        let (cv, ev) = (pes_payloads(&clear, 0x100), pes_payloads(&enc, 0x100));
        assert_eq!(cv.len(), 6);
        assert_eq!(ev.len(), cv.len());
        for (c, e) in cv.iter().zip(&ev) {
            assert_ne!(c, e, "slices longer than 48 bytes are encrypted");
            let mut back = Vec::new();
            sa.decrypt_h264_annexb(e, &mut back);
            assert_eq!(&back, c);
            // Only the start codes the muxer wrote: AUD (+ SPS, PPS) and three NAL units.
            let starts = e.windows(3).filter(|w| *w == [0, 0, 1]).count();
            assert_eq!(starts, c.windows(3).filter(|w| *w == [0, 0, 1]).count());
        }
        let (ca, ea) = (pes_payloads(&clear, 0x101), pes_payloads(&enc, 0x101));
        assert_eq!(ca.len(), ea.len());
        for (c, e) in ca.iter().zip(&ea) {
            let mut back = e.clone();
            sa.decrypt_adts(&mut back).unwrap();
            assert_eq!(&back, c);
        }
        assert_ne!(ca, ea);
        // A wrong key does not decrypt.
        let wrong = SampleAes::new(&ContentKey([0; 16]), &iv).unwrap();
        let mut back = Vec::new();
        wrong.decrypt_h264_annexb(&ev[1], &mut back);
        assert_ne!(back, cv[1]);
    }

    #[test]
    fn set_encryption_rekeys_and_resignals() {
        let key = ContentKey([5; 16]);
        let mut mux = TsMuxer::new(&tracks(), TsMuxerOptions::default()).unwrap();
        let f = frames();
        let mut out = BytesMut::new();
        mux.write_frame(&f[0], &mut out).unwrap();
        assert_eq!(mux.pmt_version(), 0);
        // Clear -> SAMPLE-AES: new stream types, PMT version 1, tables before the next PES.
        mux.set_encryption(TsEncryption::sample_aes(key.clone(), Iv::from_sequence(1)))
            .unwrap();
        assert_eq!(mux.pmt_version(), 1);
        let mut seg = BytesMut::new();
        mux.write_frame(&f[2], &mut seg).unwrap();
        assert_eq!(seg[1] & 0x1f, 0, "PAT first");
        assert_eq!(pmt_of(&seg)[12], 0xdb);
        // Another IV in the same mode: no new PMT, the next PES uses it.
        mux.set_encryption(TsEncryption::sample_aes(key.clone(), Iv::from_sequence(2)))
            .unwrap();
        assert_eq!(mux.pmt_version(), 1);
        let mut next = BytesMut::new();
        mux.write_frame(&f[4], &mut next).unwrap();
        assert_ne!(next[1] & 0x1f, 0, "no tables");
        let pes = pes_payloads(&next, 0x100);
        let mut back = Vec::new();
        SampleAes::new(&key, &Iv::from_sequence(2))
            .unwrap()
            .decrypt_h264_annexb(&pes[0], &mut back);
        let mut clear_mux = TsMuxer::new(&tracks(), TsMuxerOptions::default()).unwrap();
        let mut c = BytesMut::new();
        clear_mux.write_frame(&f[4], &mut c).unwrap();
        assert_eq!(back, pes_payloads(&c, 0x100)[0]);
        // Errors leave the muxer as it was.
        let e = mux
            .set_encryption(TsEncryption::sample_aes(key, Iv::Iv8([0; 8])))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(mux.pmt_version(), 1);
        assert!(mux.options().encryption.is_encrypted());
        // Back to clear.
        mux.set_encryption(TsEncryption::Clear).unwrap();
        assert_eq!(mux.pmt_version(), 2);
        let mut last = BytesMut::new();
        mux.write_frame(&f[4], &mut last).unwrap();
        assert_eq!(pmt_of(&last)[12], 0x1b);
        assert_eq!(pes_payloads(&last, 0x100)[0], pes_payloads(&c, 0x100)[0]);
    }

    #[test]
    fn unsupported_combinations() {
        let hevc = crate::media::H265Config {
            profile_space: 0,
            tier_flag: false,
            profile_idc: 1,
            profile_compatibility: 0x6000_0000,
            constraint_flags: 0,
            level_idc: 93,
            nal_length_size: 4,
            vps: vec![],
            sps: vec![],
            pps: vec![],
            width: 320,
            height: 240,
            frame_rate: None,
            record: Bytes::new(),
        };
        let t = TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H265(hevc));
        let enc = TsEncryption::sample_aes(ContentKey([1; 16]), Iv::from_sequence(0));
        let opts = TsMuxerOptions {
            encryption: enc.clone(),
            ..TsMuxerOptions::default()
        };
        let e = TsMuxer::new(std::slice::from_ref(&t), opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let mut mux = TsMuxer::new(&[t], TsMuxerOptions::default()).unwrap();
        assert_eq!(
            mux.set_encryption(enc).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(mux.pmt_version(), 0);
        assert!(!mux.options().encryption.is_encrypted());
    }
}
