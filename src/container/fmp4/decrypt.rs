//! The reader side of CENC: protected sample entries (`encv`/`enca` + `sinf`) and `pssh`
//! boxes in the init segment, sample auxiliary information (`senc`, or `saiz` + `saio`)
//! in the fragments, and decryption of the samples (ISO/IEC 23001-7 §7, §8, §9, §10).

use bytes::{Bytes, BytesMut};

use super::pssh::PsshBox;
use super::senc::{
    parse_aux_entries, parse_saio, parse_saiz, parse_senc, SampleAux, PIFF_SENC_UUID,
};
use super::sinf::{parse_sinf, TrackEncryption};
use super::Fmp4Reader;
use crate::bitstream::nal;
use crate::container::mp4::{children, Child};
use crate::crypto::cenc::{Pattern, RunSample, SampleCipher};
use crate::crypto::{ContentKey, KeyId, Scheme};
use crate::error::{Error, Result};
use crate::media::{Frame, TrackId, TrackInfo};

/// Bytes of `SampleEntry` + `VisualSampleEntry` fields before child boxes.
const VISUAL_ENTRY_LEN: usize = 78;
/// The same for audio, by QuickTime sound description version.
const AUDIO_ENTRY_LEN: [usize; 3] = [28, 44, 64];

/// What the `moov` says about protection.
#[derive(Debug, Default)]
pub(crate) struct MoovProtection {
    /// The `moov` body with every `encv`/`enca` renamed to its original format, when
    /// there was any.
    pub body: Option<Bytes>,
    pub tracks: Vec<(TrackId, TrackEncryption)>,
    pub pssh: Vec<PsshBox>,
}

fn child(parent: &Child, kind: &[u8; 4]) -> Result<Option<Child>> {
    for c in parent.children() {
        let c = c?;
        if &c.header.kind == kind {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Finds the protected sample entries and `pssh` boxes of a `moov` body that starts at
/// `base` in the data.
pub(crate) fn moov_protection(body: &Bytes, base: u64) -> Result<MoovProtection> {
    let mut out = MoovProtection::default();
    let mut patches: Vec<(usize, [u8; 4])> = Vec::new();
    for c in children(body.clone(), base) {
        let c = c?;
        match &c.header.kind {
            b"pssh" => out
                .pssh
                .push(PsshBox::parse(&c.body).map_err(|e| e.at_offset(c.offset))?),
            b"trak" => {
                let Some(tkhd) = child(&c, b"tkhd")? else {
                    continue;
                };
                let at = if tkhd.body.first() == Some(&1) {
                    20
                } else {
                    12
                };
                let Some(id) = tkhd
                    .body
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    continue;
                };
                let mut node = c;
                for kind in [b"mdia", b"minf", b"stbl", b"stsd"] {
                    match child(&node, kind)? {
                        Some(n) => node = n,
                        None => break,
                    }
                }
                if &node.header.kind != b"stsd" {
                    continue;
                }
                let Some(entry) = node
                    .children_after(8)
                    .and_then(|mut c| c.next())
                    .transpose()?
                else {
                    continue;
                };
                let fixed = match &entry.header.kind {
                    b"encv" => VISUAL_ENTRY_LEN,
                    b"enca" => {
                        let v = entry
                            .body
                            .get(8..10)
                            .map(|v| u16::from_be_bytes([v[0], v[1]]))
                            .ok_or_else(|| Error::malformed("enca sample entry truncated"))?;
                        *AUDIO_ENTRY_LEN.get(usize::from(v)).ok_or_else(|| {
                            Error::unsupported("audio sample entry version above 2")
                        })?
                    }
                    _ => continue,
                };
                let kids = entry
                    .children_after(fixed)
                    .ok_or_else(|| Error::malformed("sample entry shorter than its fields"))?;
                let mut sinf = None;
                for k in kids {
                    let k = k?;
                    if &k.header.kind == b"sinf" {
                        sinf = Some(k);
                        break;
                    }
                }
                let sinf = sinf.ok_or_else(|| {
                    Error::malformed("protected sample entry without sinf").at_offset(entry.offset)
                })?;
                let enc = parse_sinf(&sinf).map_err(|e| e.context(format!("track {id}")))?;
                let at = (entry.offset - base) as usize + 4;
                patches.push((at, enc.original_format));
                out.tracks.push((id, enc));
            }
            _ => {}
        }
    }
    if !patches.is_empty() {
        let mut b = BytesMut::from(&body[..]);
        for (at, kind) in patches {
            if let Some(k) = b.get_mut(at..at + 4) {
                k.copy_from_slice(&kind);
            }
        }
        out.body = Some(b.freeze());
    }
    Ok(out)
}

/// The encryption boxes of one `traf`.
#[derive(Debug, Default)]
pub(crate) struct TrafAux {
    pub senc: Option<Child>,
    pub saiz: Option<Child>,
    pub saio: Option<Child>,
    /// A `sbgp` of grouping type `seig` (key rotation).
    pub seig: bool,
}

impl TrafAux {
    /// Takes note of `c` if it is one of the boxes this reader uses.
    pub(crate) fn see(&mut self, c: &Child) {
        match &c.header.kind {
            b"senc" => self.senc = Some(c.clone()),
            b"uuid" if c.header.usertype == Some(PIFF_SENC_UUID) && self.senc.is_none() => {
                self.senc = Some(c.clone())
            }
            b"saiz" => self.saiz = Some(c.clone()),
            b"saio" => self.saio = Some(c.clone()),
            // grouping_type after the FullBox header.
            b"sbgp" if c.body.get(4..8) == Some(&b"seig"[..]) => self.seig = true,
            _ => {}
        }
    }
}

/// Decrypts the frames of one `traf` (`count` samples, `frames` the ones read from it)
/// in place, then makes video payloads canonical (`nal_length_size`). `data` is the
/// call's input, `base` the traf's base data offset in it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decrypt_traf(
    data: &Bytes,
    base: u64,
    aux: &TrafAux,
    enc: &TrackEncryption,
    keys: &[(KeyId, ContentKey)],
    frames: &mut [Frame],
    count: u32,
    nal_length_size: Option<u8>,
) -> Result<()> {
    if aux.seig {
        return Err(Error::unsupported("key rotation (seig sample groups)"));
    }
    if frames.len() != count as usize {
        return Err(Error::usage("frames and samples of a traf differ"));
    }
    if !enc.protected {
        // tenc default_isProtected 0: the samples are clear.
        return canonical(frames, nal_length_size);
    }
    let scheme = match &enc.scheme {
        b"cenc" => Scheme::Cenc,
        b"cbcs" => Scheme::Cbcs,
        other => {
            return Err(Error::unsupported(format!(
                "protection scheme '{}'",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let entries: Option<Vec<SampleAux>> = if let Some(senc) = &aux.senc {
        // (A PIFF `uuid` box's body starts after its extended type already.)
        let body = &senc.body[..];
        Some(
            parse_senc(body, enc.per_sample_iv_size, count)
                .map_err(|e| e.at_offset(senc.offset))?,
        )
    } else if let (Some(saiz), Some(saio)) = (&aux.saiz, &aux.saio) {
        let sizes = parse_saiz(&saiz.body, count).map_err(|e| e.at_offset(saiz.offset))?;
        let offset = parse_saio(&saio.body).map_err(|e| e.at_offset(saio.offset))?;
        let start = base
            .checked_add(offset)
            .and_then(|s| usize::try_from(s).ok())
            .filter(|&s| s <= data.len())
            .ok_or_else(|| {
                Error::malformed("saio points outside the data").at_offset(saio.offset)
            })?;
        Some(parse_aux_entries(
            &data[start..],
            &sizes,
            enc.per_sample_iv_size,
        )?)
    } else {
        None
    };
    let key = keys
        .iter()
        .find(|(k, _)| *k == enc.key_id)
        .map(|(_, v)| v)
        .ok_or_else(|| Error::crypto(format!("no key for key id {}", enc.key_id)))?;
    let cipher = SampleCipher::new(scheme, key)?;
    let pattern = if scheme == Scheme::Cbcs {
        enc.pattern
    } else {
        Pattern::NONE
    };
    // One copy of the traf's payloads, decrypted in one pass, then sliced per frame.
    let total: usize = frames.iter().map(|f| f.data.len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    let mut run = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let entry = entries.as_ref().and_then(|e| e.get(i));
        let iv = entry
            .and_then(|e| e.iv)
            .or(enc.constant_iv)
            .ok_or_else(|| {
                Error::malformed("protected sample without an IV")
                    .context(format!("sample {}", i + 1))
            })?;
        let subsamples = entry.map_or(&[][..], |e| &e.subsamples[..]);
        buf.extend_from_slice(&f.data);
        run.push(RunSample::new(f.data.len(), iv, subsamples));
    }
    cipher.decrypt_run(&mut buf, &run, pattern)?;
    let mut buf = buf.freeze();
    for f in frames.iter_mut() {
        let n = f.data.len();
        f.data = buf.split_to(n);
    }
    canonical(frames, nal_length_size)
}

fn canonical(frames: &mut [Frame], nal_length_size: Option<u8>) -> Result<()> {
    if let Some(n) = nal_length_size {
        for (i, f) in frames.iter_mut().enumerate() {
            f.data = nal::to_canonical(f.data.clone(), n)
                .map_err(|e| e.context(format!("sample {}", i + 1)))?;
        }
    }
    Ok(())
}

/// Decrypts a protected fragment with its init segment: the tracks of `init` and the
/// clear frames of `fragment` (one or more `moof` + `mdat`), keys looked up by the key
/// ids of `tenc` (ISO/IEC 23001-7 §8.2). Schemes `cenc` and `cbcs`; clear tracks pass
/// through.
///
/// Errors: what [`Fmp4Reader::new`] and [`Fmp4Reader::read_segment_decrypted`] refuse.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::fmp4::{decrypt_fragment, protect_fragment, Fmp4Writer, ProtectionInfo};
/// use strom::crypto::{ContentKey, KeyId};
/// use strom::media::{AacConfig, CodecConfig, Frame, TrackInfo};
/// use strom::time::{Timescale, Timestamp};
///
/// let scale = Timescale::new(48_000).unwrap();
/// let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
/// let track = TrackInfo::new(1, scale, CodecConfig::Aac(aac));
/// let mut writer = Fmp4Writer::new(track.clone()).unwrap();
/// let frames: Vec<Frame> = (0..4)
///     .map(|i| {
///         let t = Timestamp::new(i * 1024, scale);
///         Frame::new(1, t, t, Bytes::from(vec![i as u8; 50]))
///     })
///     .collect();
/// let mut clear = BytesMut::new();
/// let info = writer.media_segment(&frames, 1, Some(Timestamp::new(4096, scale)), &mut clear).unwrap();
///
/// let (kid, key) = (KeyId([1; 16]), ContentKey([2; 16]));
/// let p = ProtectionInfo::cenc(kid);
/// let mut init = BytesMut::new();
/// writer.protected_init_segment(&p, &mut init).unwrap();
/// let mut protected = BytesMut::new();
/// protect_fragment(&clear, &info, &track, &p, &key, &mut protected).unwrap();
///
/// let (_, back) = decrypt_fragment(init.freeze(), protected.freeze(), &[(kid, key)]).unwrap();
/// assert_eq!(back.len(), 4);
/// assert!(back.iter().zip(&frames).all(|(b, f)| b.data == f.data));
/// ```
pub fn decrypt_fragment(
    init: Bytes,
    fragment: Bytes,
    keys: &[(KeyId, ContentKey)],
) -> Result<(Vec<TrackInfo>, Vec<Frame>)> {
    let mut reader = Fmp4Reader::new(init)?;
    let frames = reader.read_segment_decrypted(fragment, keys)?;
    Ok((reader.tracks().to_vec(), frames))
}
