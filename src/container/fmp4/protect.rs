//! Per-request CENC protection of CMAF tracks (ISO/IEC 23001-7, ISO/IEC 23000-19 §8.2):
//! a protected init segment ([`write_protected_init_segment`]) and a protected copy of a
//! clear fragment made from the sample table the writer kept ([`protect_fragment`]).

use bytes::BytesMut;

use super::fragment::{write_moof, FragmentInfo, NalRange, Row, SampleInfo};
use super::init::{write_init, InitProtection};
use super::pssh::PsshBox;
use super::senc::{write_saio, write_saiz, write_senc, SampleAux};
use super::Fmp4Writer;
use crate::crypto::cenc::{derive_sample_iv, Pattern, RunSample, SampleCipher, SubsampleGenerator};
use crate::crypto::{ContentKey, Iv, KeyId, Scheme};
use crate::error::{Error, Result};
use crate::media::{MediaKind, TrackInfo};

/// How a track is protected: the scheme, the key id, the IVs and the `pssh` boxes of the
/// init segment. The content key itself goes to [`protect_fragment`] only.
///
/// * [`Scheme::Cenc`] (ISO/IEC 23001-7 §10.1): AES-CTR; 8-byte per-sample IVs derived
///   with [`derive_sample_iv`] from the track id, the fragment sequence number, the sample
///   index and [`ProtectionInfo::iv_seed`]; `tenc` version 0.
/// * [`Scheme::Cbcs`] (§10.4): AES-CBC with the constant IV
///   [`ProtectionInfo::constant_iv`]; video with the 1:9 pattern, audio whole blocks
///   (pattern 0:0); `tenc` version 1.
///
/// ```
/// use bytes::Bytes;
/// use strom::container::fmp4::{ProtectionInfo, PsshBox};
/// use strom::crypto::{KeyId, Scheme};
///
/// let kid = KeyId([0x10; 16]);
/// let p = ProtectionInfo::cbcs(kid, [0x20; 16])
///     .with_pssh(PsshBox::clearkey(vec![kid]))
///     .with_pssh(PsshBox::widevine(Bytes::from_static(b"\x12\x10...")));
/// assert_eq!((p.scheme, p.key_id, p.pssh.len()), (Scheme::Cbcs, kid, 2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtectionInfo {
    /// [`Scheme::Cenc`] or [`Scheme::Cbcs`].
    pub scheme: Scheme,
    /// The `default_KID` of `tenc`.
    pub key_id: KeyId,
    /// `cbcs`: the constant IV of every sample (in `tenc`). Unused by `cenc`.
    pub constant_iv: [u8; 16],
    /// `cenc`: XORed into every derived IV (see [`derive_sample_iv`]); give each stream
    /// or restart that shares a key its own. Default 0. Unused by `cbcs`.
    pub iv_seed: u64,
    /// `pssh` boxes at the end of the init segment's `moov`, in order. Default none.
    pub pssh: Vec<PsshBox>,
}

impl ProtectionInfo {
    /// Scheme `cenc` with `key_id`, IV seed 0 and no `pssh`.
    pub fn cenc(key_id: KeyId) -> Self {
        ProtectionInfo {
            scheme: Scheme::Cenc,
            key_id,
            constant_iv: [0; 16],
            iv_seed: 0,
            pssh: Vec::new(),
        }
    }

    /// Scheme `cbcs` with `key_id`, `constant_iv` and no `pssh`.
    pub fn cbcs(key_id: KeyId, constant_iv: [u8; 16]) -> Self {
        ProtectionInfo {
            scheme: Scheme::Cbcs,
            key_id,
            constant_iv,
            iv_seed: 0,
            pssh: Vec::new(),
        }
    }

    /// Adds a `pssh` box (builder style).
    pub fn with_pssh(mut self, pssh: PsshBox) -> Self {
        self.pssh.push(pssh);
        self
    }

    /// Sets [`ProtectionInfo::iv_seed`] (builder style).
    pub fn with_iv_seed(mut self, seed: u64) -> Self {
        self.iv_seed = seed;
        self
    }

    /// The encryption pattern of a track of `kind`: 1:9 for `cbcs` video, none otherwise.
    pub fn pattern(&self, kind: MediaKind) -> Pattern {
        if self.scheme == Scheme::Cbcs && kind == MediaKind::Video {
            Pattern::CBCS_VIDEO
        } else {
            Pattern::NONE
        }
    }

    fn fourcc(&self) -> Result<[u8; 4]> {
        match self.scheme {
            Scheme::Cenc => Ok(*b"cenc"),
            Scheme::Cbcs => Ok(*b"cbcs"),
            _ => Err(Error::usage("fMP4 protection takes scheme cenc or cbcs")),
        }
    }

    fn iv_size(&self) -> u8 {
        if self.scheme == Scheme::Cenc {
            8
        } else {
            0
        }
    }
}

/// Appends a protected init segment for `track` to `out`: the clear init segment of
/// [`super::write_init_segment`] with the sample entry turned into `encv` (video) or
/// `enca` (audio) followed by a `sinf` (`frma` with the original type, `schm` with the
/// scheme at version 1.0, `schi`/`tenc` with the key id, IV size, pattern and constant
/// IV), and the `moov` ending with `protection`'s `pssh` boxes (ISO/IEC 23001-7 §4.2,
/// §8.1, §8.2; ISO/IEC 14496-12 §8.12).
///
/// Errors: a scheme other than `cenc` or `cbcs` ([`crate::ErrorKind::Usage`]), and what
/// [`super::write_init_segment`] refuses. On error `out` may hold part of the segment.
pub fn write_protected_init_segment(
    track: &TrackInfo,
    protection: &ProtectionInfo,
    out: &mut BytesMut,
) -> Result<()> {
    let start = out.len();
    let prot = InitProtection {
        scheme: protection.fourcc()?,
        key_id: protection.key_id,
        per_sample_iv_size: protection.iv_size(),
        constant_iv: (protection.scheme == Scheme::Cbcs).then_some(protection.constant_iv),
        pattern: protection.pattern(track.config.kind()),
        pssh: &protection.pssh,
    };
    let r = write_init(track, Some(&prot), out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

impl Fmp4Writer {
    /// Appends this track's protected init segment to `out`: see
    /// [`write_protected_init_segment`].
    pub fn protected_init_segment(
        &self,
        protection: &ProtectionInfo,
        out: &mut BytesMut,
    ) -> Result<()> {
        write_protected_init_segment(self.track(), protection, out)
    }
}

/// Appends a protected copy of a clear fragment to `out`: `styp` + `moof` + `mdat`, the
/// `moof` serialised again from `info` (the same `mfhd`, `tfhd`, `tfdt` and `trun`
/// entries, the `trun` data offset pointing at the new `mdat`) with `saiz`, `saio` and
/// `senc` added to the `traf` (ISO/IEC 23001-7 §7.1, §7.2; ISO/IEC 14496-12 §8.7.8,
/// §8.7.9), and the `mdat` holding the payloads encrypted with `key`.
///
/// `clear` is what [`Fmp4Writer::media_segment`] appended (or the header from
/// [`Fmp4Writer::media_segment_header`] followed by the payloads) and `info` what it
/// returned; the clear boxes are not parsed again. Video samples are protected by
/// subsamples ([`SubsampleGenerator`]: the kept NAL ranges, the slice headers parsed with
/// `track`'s parameter sets); `senc` then carries the subsample tables and `saiz` their
/// sizes. `cenc` IVs are derived per sample ([`derive_sample_iv`] with `info.sequence`
/// and [`ProtectionInfo::iv_seed`]), so the same request gives the same bytes. `cbcs`
/// uses the constant IV: audio samples then have no auxiliary information, and `senc`
/// lists them without `saiz`/`saio`, as Shaka Packager writes it. The payloads are copied
/// once, into `out`, and encrypted there.
///
/// Returns the info of the protected fragment (offsets into what was appended).
///
/// Errors: a scheme other than `cenc`/`cbcs`, `clear` shorter than `info.len`, a sample
/// outside `clear`, a video sample without NAL units in the table or whose NAL units do
/// not cover it ([`crate::ErrorKind::Usage`] / [`crate::ErrorKind::Malformed`]); a slice
/// header the parameter sets cannot parse; more than 40 subsamples in one sample (the
/// 255-byte limit of `saiz`) or a track id of 4096 or more with `cenc`
/// ([`crate::ErrorKind::Limit`]). On error nothing is appended.
pub fn protect_fragment(
    clear: &[u8],
    info: &FragmentInfo,
    track: &TrackInfo,
    protection: &ProtectionInfo,
    key: &ContentKey,
    out: &mut BytesMut,
) -> Result<FragmentInfo> {
    protect_fragment_parts(&[clear], info, track, protection, key, out)
}

/// [`protect_fragment`] with the clear fragment in pieces laid end to end: the header
/// from [`Fmp4Writer::media_segment_header`] followed by the sample payloads, as
/// [`crate::package::cmaf::CmafPresentation::write_segment_by_reference`] hands them
/// out. Nothing is copied to join the pieces: each sample is read where it lies (one
/// that spans two pieces is joined in a small scratch buffer), copied into `out` and
/// encrypted there while it is still in cache.
///
/// Errors: those of [`protect_fragment`], with `clear` the concatenation of `parts`.
pub fn protect_fragment_parts<P: AsRef<[u8]>>(
    parts: &[P],
    info: &FragmentInfo,
    track: &TrackInfo,
    protection: &ProtectionInfo,
    key: &ContentKey,
    out: &mut BytesMut,
) -> Result<FragmentInfo> {
    let start = out.len();
    let src = Source::new(parts);
    let r = protect(&src, info, track, protection, key, out);
    if r.is_err() {
        out.truncate(start);
    }
    r.map_err(|e| {
        e.context(format!(
            "protect fragment {} of track {}",
            info.sequence, track.id
        ))
    })
}

/// The clear fragment as pieces laid end to end.
struct Source<'a, P> {
    parts: &'a [P],
    /// Offset of each piece in the fragment.
    starts: Vec<usize>,
    len: usize,
}

impl<'a, P: AsRef<[u8]>> Source<'a, P> {
    fn new(parts: &'a [P]) -> Self {
        let mut starts = Vec::with_capacity(parts.len());
        let mut len = 0usize;
        for p in parts {
            starts.push(len);
            len = len.saturating_add(p.as_ref().len());
        }
        Source { parts, starts, len }
    }

    /// The bytes of `s`: a slice of the piece holding them, or, when they span pieces,
    /// their copy in `scratch`.
    fn sample<'b>(&'b self, s: &SampleInfo, scratch: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        let outside = || Error::usage("sample outside the clear fragment");
        let end = s
            .offset
            .checked_add(s.size as usize)
            .filter(|&e| e <= self.len)
            .ok_or_else(outside)?;
        // The last piece starting at or before the sample.
        let i = self
            .starts
            .partition_point(|&st| st <= s.offset)
            .saturating_sub(1);
        let first = self.parts.get(i).ok_or_else(outside)?.as_ref();
        let at = s.offset - self.starts[i];
        if let Some(b) = first.get(at..at + s.size as usize) {
            return Ok(b);
        }
        scratch.clear();
        let mut pos = s.offset;
        for (st, p) in self.starts[i..].iter().zip(&self.parts[i..]) {
            if pos >= end {
                break;
            }
            let p = p.as_ref();
            let from = pos - st;
            let take = (end - pos).min(p.len().saturating_sub(from));
            scratch.extend_from_slice(p.get(from..from + take).ok_or_else(outside)?);
            pos += take;
        }
        if pos != end {
            return Err(outside());
        }
        Ok(scratch)
    }
}

/// Bytes copied into the output before they are encrypted in one backend call: small
/// enough to be still in cache.
const ENCRYPT_BATCH: usize = 128 * 1024;

fn protect<P: AsRef<[u8]>>(
    src: &Source<'_, P>,
    info: &FragmentInfo,
    track: &TrackInfo,
    protection: &ProtectionInfo,
    key: &ContentKey,
    out: &mut BytesMut,
) -> Result<FragmentInfo> {
    protection.fourcc()?;
    if src.len < info.len {
        return Err(Error::usage("clear fragment shorter than its info says"));
    }
    let mut scratch = Vec::new();
    let cipher = SampleCipher::new(protection.scheme, key)?;
    let mut generator = SubsampleGenerator::new(&track.config, protection.scheme)?;
    let pattern = protection.pattern(track.config.kind());
    let constant = Iv::Iv16(protection.constant_iv);
    let cenc = protection.scheme == Scheme::Cenc;

    // The auxiliary information of every sample first: it sizes the moof.
    let mut aux = Vec::with_capacity(info.samples.len());
    let mut payload = 0u64;
    for (i, s) in info.samples.iter().enumerate() {
        let ctx = || format!("sample {i}");
        let data = src.sample(s, &mut scratch).map_err(|e| e.context(ctx()))?;
        let mut subsamples = Vec::new();
        if let Some(g) = generator.as_mut() {
            let nals = info.sample_nal_units(i);
            if nals.is_empty() && !data.is_empty() {
                return Err(
                    Error::malformed("video sample without NAL units in the table").context(ctx()),
                );
            }
            let mut units = Vec::with_capacity(nals.len());
            for n in nals {
                let at = n
                    .offset
                    .checked_sub(s.offset)
                    .ok_or_else(|| Error::malformed("NAL unit before its sample").context(ctx()))?;
                units.push((at, n.len as usize));
            }
            g.subsamples_of_units(data, units.into_iter(), &mut subsamples)
                .map_err(|e| e.context(ctx()))?;
        }
        let index = u32::try_from(i).map_err(|_| Error::limit("too many samples"))?;
        let iv = if cenc {
            Some(derive_sample_iv(
                track.id,
                info.sequence,
                index,
                protection.iv_seed,
            )?)
        } else {
            None
        };
        payload += u64::from(s.size);
        aux.push(SampleAux { iv, subsamples });
    }
    let base = out.len();
    let (moof, data_start) = write_header(info, track, &aux, generator.is_some(), payload, out)?;

    out.reserve(payload as usize);
    if cenc {
        // Payloads: AES-CTR reads each clear sample where it lies and writes it
        // protected, one pass (the zeroing is of a sample still in cache).
        for (s, a) in info.samples.iter().zip(&aux) {
            let clear = src.sample(s, &mut scratch)?;
            let at = out.len();
            out.resize(at + clear.len(), 0);
            let iv = a.iv.unwrap_or(constant);
            cipher.encrypt_from(clear, &mut out[at..], &iv, &a.subsamples, pattern)?;
        }
    } else {
        // Payloads: one copy into `out`, encrypted there batch by batch while in cache
        // (cbcs encrypts a tenth of the video blocks).
        let mut batch = out.len();
        let mut run = Vec::with_capacity(info.samples.len().min(1024));
        for (s, a) in info.samples.iter().zip(&aux) {
            out.extend_from_slice(src.sample(s, &mut scratch)?);
            let iv = a.iv.unwrap_or(constant);
            run.push(RunSample::new(s.size as usize, iv, &a.subsamples));
            if out.len() - batch >= ENCRYPT_BATCH {
                cipher.encrypt_run(&mut out[batch..], &run, pattern)?;
                run.clear();
                batch = out.len();
            }
        }
        if !run.is_empty() {
            cipher.encrypt_run(&mut out[batch..], &run, pattern)?;
        }
    }
    Ok(protected_info(info, base, moof, data_start))
}

/// Writes `styp`, the `moof` of `info` with `saiz`, `saio` and `senc` from `aux` added to
/// its `traf`, and the `mdat` header for `payload` bytes; returns the offsets of the
/// `moof` and of the payload in `out`.
fn write_header(
    info: &FragmentInfo,
    track: &TrackInfo,
    aux: &[SampleAux],
    use_subsamples: bool,
    payload: u64,
    out: &mut BytesMut,
) -> Result<(usize, usize)> {
    let sizes: Vec<usize> = aux.iter().map(|a| a.size(use_subsamples)).collect();
    let rows: Vec<Row> = info
        .samples
        .iter()
        .map(|s| Row {
            duration: s.duration,
            size: s.size,
            flags: s.flags,
            cto: s.composition_offset,
        })
        .collect();
    let extra = |out: &mut BytesMut, moof: usize| -> Result<()> {
        let saio_field = if sizes.iter().any(|&s| s > 0) {
            write_saiz(out, &sizes)?;
            Some(write_saio(out)?)
        } else {
            None
        };
        let first = write_senc(out, aux, use_subsamples)?;
        if let Some(field) = saio_field {
            // Relative to the moof: the traf's base (default-base-is-moof, §8.7.9).
            let offset =
                u32::try_from(first - moof).map_err(|_| Error::limit("moof larger than 4 GiB"))?;
            out[field..field + 4].copy_from_slice(&offset.to_be_bytes());
        }
        Ok(())
    };
    write_moof(
        track,
        info.sequence,
        info.base_decode_time,
        &rows,
        payload,
        Some(&extra),
        out,
    )
}

/// The info of the protected fragment written at `base` in the output, its `moof` at
/// `moof` and its payload from `data_start`: `info`'s samples and NAL units moved there.
fn protected_info(
    info: &FragmentInfo,
    base: usize,
    moof: usize,
    data_start: usize,
) -> FragmentInfo {
    let mut samples = Vec::with_capacity(info.samples.len());
    let mut nal_units = Vec::with_capacity(info.nal_units.len());
    let mut at = data_start;
    for (i, s) in info.samples.iter().enumerate() {
        let first_nal = nal_units.len() as u32;
        for n in info.sample_nal_units(i) {
            nal_units.push(NalRange {
                offset: n.offset - s.offset + at,
                len: n.len,
            });
        }
        samples.push(SampleInfo {
            offset: at,
            first_nal,
            nal_count: nal_units.len() as u32 - first_nal,
            ..*s
        });
        at += s.size as usize;
    }
    FragmentInfo {
        sequence: info.sequence,
        base_decode_time: info.base_decode_time,
        duration: info.duration,
        moof_offset: moof - base,
        data_offset: data_start,
        len: at,
        samples,
        nal_units,
    }
}

/// The protection of one sample decided when it was encrypted, before its fragment
/// existed: its IV (none with a constant IV) and its subsample table (empty: protected
/// whole). What [`write_protected_header`] writes into `senc`.
pub(crate) use super::senc::SampleAux as SampleProtection;

/// Appends `styp`, `moof` (with `saiz`, `saio` and `senc` from `aux`, one per sample of
/// `info`) and the `mdat` header of a fragment whose sample payloads were already
/// encrypted when they arrived: the payloads follow by reference, unchanged. Returns
/// the info of the protected fragment (offsets as if the payloads followed in `out`).
///
/// Errors: `aux` and `info` that differ in sample count ([`Error::usage`]); what
/// writing the boxes refuses. On error nothing is appended.
pub(crate) fn write_protected_header(
    info: &FragmentInfo,
    track: &TrackInfo,
    aux: &[SampleProtection],
    out: &mut BytesMut,
) -> Result<FragmentInfo> {
    if aux.len() != info.samples.len() {
        return Err(Error::usage("one protection per sample of the fragment"));
    }
    let start = out.len();
    let use_subsamples = matches!(
        track.config,
        crate::media::CodecConfig::H264(_) | crate::media::CodecConfig::H265(_)
    );
    let payload: u64 = info.samples.iter().map(|s| u64::from(s.size)).sum();
    match write_header(info, track, aux, use_subsamples, payload, out) {
        Ok((moof, data_start)) => Ok(protected_info(info, start, moof, data_start)),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}
