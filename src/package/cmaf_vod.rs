//! The CMAF side of the [`VodPackager`](super::VodPackager): [`VodFormats`] chooses the
//! outputs, and [`CmafVod`] turns each cut segment into init segments and fragments
//! (one CMAF rendition per track, with a [`CmafPresentation`]) and, at the end, into
//! the fMP4 HLS playlists and the DASH manifest that share those files.
//!
//! The segmenter runs once: the packager hands every [`Segment`] to the TS muxer and
//! to this writer, so a TS segment and the fragments cut from the same frames cover the
//! same media time.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::BitOr;

use bytes::{Bytes, BytesMut};

use super::cmaf::{CmafFragment, CmafOptions, CmafPresentation, INIT_SEGMENT, MEDIA_PLAYLIST};
use super::dash::ContentProtection;
use super::hls::Key;
use super::{Segment, VodOutput};
use crate::container::fmp4::{
    protect_fragment_parts, write_protected_header, write_protected_init_segment, ProtectionInfo,
    SampleProtection,
};
use crate::crypto::cenc::{derive_sample_iv, Pattern, SampleCipher, SubsampleGenerator};
use crate::crypto::{ContentKey, Iv, Scheme};
use crate::error::{Error, Result};
use crate::media::{Event, Frame, FrameFlags, Item, MediaKind, TrackId};
use crate::time::Timestamp;

/// The outputs a [`VodPackager`](super::VodPackager) writes: any combination of HLS
/// with MPEG-TS segments, HLS with CMAF (fMP4) segments and DASH. The two CMAF formats
/// share the same rendition files (ISO/IEC 23000-19 CMAF tracks); only their
/// manifests differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VodFormats(u8);

impl VodFormats {
    /// HLS with MPEG-TS segments (RFC 8216bis §3.3): `segmentNNNNN.ts`, `media.m3u8`,
    /// `index.m3u8`.
    pub const HLS_TS: VodFormats = VodFormats(1);
    /// HLS with CMAF segments (RFC 8216bis §3.3.2, `EXT-X-MAP`): the renditions'
    /// files, `{rendition}/media.m3u8` and `cmaf.m3u8`.
    pub const HLS_FMP4: VodFormats = VodFormats(2);
    /// DASH (ISO/IEC 23009-1, static MPD, `SegmentTemplate` + `SegmentTimeline`): the
    /// renditions' files and `manifest.mpd`.
    pub const DASH: VodFormats = VodFormats(4);
    /// All three.
    pub const ALL: VodFormats = VodFormats(7);
    /// The command-line names, in [`VodFormats::parse`] order.
    pub const NAMES: [(&'static str, VodFormats); 4] = [
        ("hls-ts", VodFormats::HLS_TS),
        ("hls-fmp4", VodFormats::HLS_FMP4),
        ("dash", VodFormats::DASH),
        ("all", VodFormats::ALL),
    ];

    /// Whether every format of `other` is chosen.
    pub const fn contains(self, other: VodFormats) -> bool {
        self.0 & other.0 == other.0
    }
    /// Both sets.
    #[must_use]
    pub const fn union(self, other: VodFormats) -> VodFormats {
        VodFormats(self.0 | other.0)
    }
    /// No format chosen (a [`VodPackager`](super::VodPackager) refuses it).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether a CMAF format (HLS fMP4 or DASH) is chosen.
    pub const fn has_cmaf(self) -> bool {
        self.0 & (VodFormats::HLS_FMP4.0 | VodFormats::DASH.0) != 0
    }

    /// Parses a comma-separated list of [`VodFormats::NAMES`] (`hls-ts`, `hls-fmp4`,
    /// `dash`, `all`), such as `"hls-ts,dash"`. Errors: [`Error::usage`] for an empty
    /// list or an unknown name.
    pub fn parse(list: &str) -> Result<VodFormats> {
        let mut out = VodFormats(0);
        for name in list.split(',').map(str::trim) {
            let (_, f) = VodFormats::NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    Error::usage("unknown output format (hls-ts, hls-fmp4, dash, all)")
                        .context(format!("{name:?}"))
                })?;
            out = out.union(*f);
        }
        if out.is_empty() {
            return Err(Error::usage("no output format"));
        }
        Ok(out)
    }
}

impl Default for VodFormats {
    /// [`VodFormats::HLS_TS`].
    fn default() -> Self {
        VodFormats::HLS_TS
    }
}

impl BitOr for VodFormats {
    type Output = VodFormats;
    fn bitor(self, rhs: VodFormats) -> VodFormats {
        self.union(rhs)
    }
}

impl fmt::Display for VodFormats {
    /// The chosen names joined by `+` (`hls-ts+dash`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, fmt) in &VodFormats::NAMES[..3] {
            if self.contains(*fmt) {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// CENC protection of the CMAF renditions (ISO/IEC 23001-7 `cenc` or `cbcs`): what the
/// init segments, the fragments and the manifests carry. Crate internal: built by
/// [`VodEncryption`](super::VodEncryption).
#[derive(Debug)]
pub(crate) struct CmafProtection {
    /// Scheme, key id, IVs and `pssh` boxes of the init segments.
    info: ProtectionInfo,
    key: ContentKey,
    /// The `EXT-X-KEY` of every segment of the fMP4 media playlists.
    hls_key: Option<Key>,
    /// The `ContentProtection` descriptors of every DASH AdaptationSet.
    dash: Vec<ContentProtection>,
    /// Protected fragments are written here; each goes out as a split of it, and the
    /// allocation is reused once the host has dropped them.
    out: BytesMut,
    /// The cipher of the frames encrypted on arrival ([`CmafVod::on_item`]).
    cipher: Option<SampleCipher>,
    /// Per track: its kind, its subsample generator (H.264/H.265) and how many frames
    /// were encrypted.
    tracks: Vec<(TrackId, MediaKind, Option<SubsampleGenerator>, u64)>,
    /// Encrypted payloads are written here, each frame's a split of it.
    arena: BytesMut,
    /// Every encrypted payload not yet in a fragment (encrypted on arrival, or in the
    /// host's read buffer by [`CmafProtection::encrypt_in_place`]), by the address of its
    /// bytes (unique while the payload lives). A frame flagged
    /// [`FrameFlags::TRANSFORMED`] must find its entry here when it arrives.
    pending: AddrMap<Encrypted>,
}

/// A payload encrypted and waiting for its fragment.
#[derive(Debug)]
struct Encrypted {
    track: TrackId,
    len: usize,
    protection: SampleProtection,
}

/// A map keyed by memory addresses, hashed by [`AddrHasher`].
type AddrMap<V> = HashMap<usize, V, BuildHasherDefault<AddrHasher>>;

/// Hashes the addresses that key encrypted payloads: the allocator, not the input,
/// chooses them, so a multiply-fold spreads them well at a fraction of SipHash's cost
/// (two lookups per sample).
#[derive(Debug, Default, Clone, Copy)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b) ^ self.0.rotate_left(8));
        }
    }
    fn write_u64(&mut self, n: u64) {
        let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

impl CmafProtection {
    pub(crate) fn new(
        info: ProtectionInfo,
        key: ContentKey,
        hls_key: Option<Key>,
        dash: Vec<ContentProtection>,
    ) -> Self {
        CmafProtection {
            info,
            key,
            hls_key,
            dash,
            out: BytesMut::new(),
            cipher: None,
            tracks: Vec::new(),
            arena: BytesMut::new(),
            pending: AddrMap::default(),
        }
    }

    /// The cipher, made on first use.
    fn cipher(&mut self) -> Result<&SampleCipher> {
        Ok(match &mut self.cipher {
            Some(c) => c,
            c => c.insert(SampleCipher::new(self.info.scheme, &self.key)?),
        })
    }

    /// The protection of the next sample of the track in slot `at`, whose clear bytes
    /// are `data` (not empty): cenc IVs derived from the track and a count of its
    /// samples (unique under the key), cbcs the constant IV and the track's pattern;
    /// video subsamples from its NAL units and slice headers. Returns the protection for
    /// the `senc`, the IV to encrypt with and the pattern.
    fn next_sample(&mut self, at: usize, data: &[u8]) -> Result<(SampleProtection, Iv, Pattern)> {
        let (track, kind, generator, count) = &mut self.tracks[at];
        let mut subsamples = Vec::new();
        if let Some(g) = generator {
            g.subsamples(data, &mut subsamples)?;
        }
        let n = *count;
        *count += 1;
        Ok(if self.info.scheme == Scheme::Cenc {
            let iv = derive_sample_iv(
                *track,
                (n >> 20) as u32,
                (n & 0xF_FFFF) as u32,
                self.info.iv_seed,
            )?;
            (
                SampleProtection {
                    iv: Some(iv),
                    subsamples,
                },
                iv,
                Pattern::NONE,
            )
        } else {
            (
                SampleProtection {
                    iv: None,
                    subsamples,
                },
                Iv::Iv16(self.info.constant_iv),
                self.info.pattern(*kind),
            )
        })
    }

    /// Encrypts `sample`, the clear bytes of the next sample of `track` still in the
    /// host's read buffer, in place, and keeps its protection for the frame that will
    /// carry these very bytes, flagged [`FrameFlags::TRANSFORMED`]. `Ok(false)` (bytes
    /// untouched) for a track this protection does not cover or an empty sample.
    fn encrypt_in_place(&mut self, track: TrackId, sample: &mut [u8]) -> Result<bool> {
        let Some(at) = self.tracks.iter().position(|t| t.0 == track) else {
            return Ok(false);
        };
        if sample.is_empty() {
            return Ok(false);
        }
        let (protection, iv, pattern) = self.next_sample(at, sample)?;
        self.cipher()?
            .encrypt(sample, &iv, &protection.subsamples, pattern)?;
        let entry = Encrypted {
            track,
            len: sample.len(),
            protection,
        };
        self.pending.insert(sample.as_ptr() as usize, entry);
        Ok(true)
    }

    /// `frame` with its payload encrypted now, while it is still in cache: cenc IVs
    /// derived from the track and a count of its frames (unique under the key), video
    /// subsamples from its NAL units and slice headers. The protection is kept until
    /// the fragment holding the payload is written ([`CmafVod::protect`]).
    fn encrypt_frame(&mut self, mut frame: Frame) -> Result<Frame> {
        let Some(at) = self.tracks.iter().position(|t| t.0 == frame.track) else {
            return Ok(frame);
        };
        if frame.flags.contains(FrameFlags::TRANSFORMED) && !frame.data.is_empty() {
            // Encrypted in the read buffer: its protection waits under its address.
            return match self.pending.get(&(frame.data.as_ptr() as usize)) {
                Some(e) if e.track == frame.track && e.len == frame.data.len() => Ok(frame),
                _ => Err(Error::usage(
                    "a frame transformed in place that VodPackager::encrypt_in_place did \
                     not encrypt",
                )),
            };
        }
        if frame.data.is_empty() {
            return Ok(frame);
        }
        self.cipher()?;
        let (protection, iv, pattern) = self.next_sample(at, &frame.data)?;
        let len = frame.data.len();
        if self.arena.capacity() < len {
            self.arena.reserve(len.max(ARENA_BLOCK));
        }
        self.arena.resize(len, 0);
        let cipher = self
            .cipher
            .as_ref()
            .ok_or(Error::usage("CENC cipher missing"))?;
        cipher.encrypt_from(
            &frame.data,
            &mut self.arena[..],
            &iv,
            &protection.subsamples,
            pattern,
        )?;
        let data = self.arena.split().freeze();
        let entry = Encrypted {
            track: frame.track,
            len,
            protection,
        };
        self.pending.insert(data.as_ptr() as usize, entry);
        frame.data = data;
        Ok(frame)
    }

    /// The protections of `f`'s payloads, in sample order, when every payload was
    /// encrypted on arrival; `None` when none was.
    fn take_pending(&mut self, f: &CmafFragment) -> Result<Option<Vec<SampleProtection>>> {
        if f.payloads.len() != f.info.samples.len() || f.payloads.is_empty() {
            return Ok(None);
        }
        let mut aux = Vec::with_capacity(f.payloads.len());
        let mut found = 0usize;
        for (b, s) in f.payloads.iter().zip(&f.info.samples) {
            if b.is_empty() {
                // Nothing to decrypt; cenc still lists an IV.
                let iv = (self.info.scheme == Scheme::Cenc).then_some(Iv::Iv8([0; 8]));
                aux.push(SampleProtection {
                    iv,
                    subsamples: Vec::new(),
                });
                continue;
            }
            match self.pending.remove(&(b.as_ptr() as usize)) {
                Some(e) if e.len == b.len() && b.len() == s.size as usize => {
                    found += 1;
                    aux.push(e.protection);
                }
                Some(_) => {
                    return Err(Error::usage(
                        "an encrypted payload does not match its sample's size",
                    ));
                }
                None => {
                    if found > 0 {
                        return Err(Error::usage(
                            "a sample of a protected rendition was not encrypted on arrival",
                        ));
                    }
                    return Ok(None);
                }
            }
        }
        Ok((found > 0).then_some(aux))
    }
}

/// Bytes the encrypted-payload arena grows by at least.
const ARENA_BLOCK: usize = 1 << 20;

/// An output of the [`VodPackager`](super::VodPackager)'s queue: ready, or a CMAF
/// fragment whose protection boxes are written when the host polls it
/// ([`CmafVod::protect`]; its payloads were encrypted on arrival, else it is protected
/// whole then, into a buffer reused once the host has dropped the previous output).
#[derive(Debug)]
pub(crate) enum Queued {
    /// Hand it out as it is.
    Ready(VodOutput),
    /// Protect it, then hand it out.
    Protect(Box<CmafFragment>),
}

/// Writes segments as CMAF renditions and makes their manifests at the end. Crate
/// internal: the [`VodPackager`](super::VodPackager) drives it.
#[derive(Debug)]
pub(crate) struct CmafVod {
    presentation: CmafPresentation,
    formats: VodFormats,
    hls_name: String,
    dash_name: String,
    /// The clear init segment stored for each rendition so far.
    inits: Vec<(String, Bytes)>,
    protection: Option<CmafProtection>,
}

impl CmafVod {
    /// A writer for the CMAF formats of `formats`; the fMP4 HLS multivariant playlist
    /// is named `hls_name`, the MPD `dash_name`; `protection` encrypts every init
    /// segment and fragment and adds the keys to the manifests.
    pub(crate) fn new(
        formats: VodFormats,
        hls_name: &str,
        dash_name: &str,
        protection: Option<CmafProtection>,
    ) -> Self {
        CmafVod {
            presentation: CmafPresentation::new(CmafOptions::default()),
            formats,
            hls_name: hls_name.to_string(),
            dash_name: dash_name.to_string(),
            inits: Vec::new(),
            protection,
        }
    }

    /// Renditions so far.
    pub(crate) fn renditions(&self) -> usize {
        self.presentation.renditions().len()
    }

    /// Writes `seg` as one fragment per track into `out` (each rendition's init
    /// segment before its first fragment); returns the bytes of the outputs queued
    /// ready. With protection, init segments are queued protected and fragments as
    /// [`Queued::Protect`], for [`CmafVod::protect`] when the host polls them.
    ///
    /// Errors: those of [`CmafPresentation::write_segment`] and
    /// [`write_protected_init_segment`], and [`Error::unsupported`] when a track's init
    /// segment changes mid-stream (a VOD rendition has one init segment; its older
    /// fragments would not decode with a new one).
    pub(crate) fn write_segment(
        &mut self,
        seg: &Segment,
        out: &mut VecDeque<Queued>,
    ) -> Result<u64> {
        let fragments = self.presentation.write_segment_by_reference(seg, None)?;
        let mut bytes = 0u64;
        for f in fragments {
            let rendition = self
                .presentation
                .rendition(&f.rendition)
                .ok_or(Error::usage("fragment of an unknown CMAF rendition"))?;
            let init = rendition.init_segment();
            let track = rendition.track();
            let scale = track.timescale;
            match self.inits.iter().find(|(n, _)| *n == f.rendition) {
                None => {
                    let data = match &self.protection {
                        None => init.clone(),
                        Some(p) => {
                            let mut b = BytesMut::with_capacity(init.len() + 256);
                            write_protected_init_segment(track, &p.info, &mut b)
                                .map_err(|e| e.context(format!("rendition {}", f.rendition)))?;
                            b.freeze()
                        }
                    };
                    bytes += data.len() as u64;
                    out.push_back(Queued::Ready(VodOutput::InitSegment {
                        name: format!("{}/{INIT_SEGMENT}", f.rendition),
                        rendition: f.rendition.clone(),
                        data,
                    }));
                    self.inits.push((f.rendition.clone(), init));
                }
                Some((_, old)) if f.new_init && *old != init => {
                    return Err(Error::unsupported(
                        "track configuration changes mid-stream: a CMAF VOD rendition has \
                         one init segment",
                    )
                    .context(format!(
                        "rendition {}, segment {}",
                        f.rendition, seg.sequence
                    )));
                }
                Some(_) => {}
            }
            if self.protection.is_some() {
                out.push_back(Queued::Protect(Box::new(f)));
                continue;
            }
            bytes += f.len() as u64;
            let duration = Timestamp::new(f.duration().min(i64::MAX as u64) as i64, scale);
            out.push_back(Queued::Ready(VodOutput::Fragment {
                name: format!("{}/{}.m4s", f.rendition, f.number),
                rendition: f.rendition,
                number: f.number,
                duration,
                header: f.data,
                payloads: f.payloads,
            }));
        }
        Ok(bytes)
    }

    /// [`CmafProtection::encrypt_in_place`] when protected; `Ok(false)` otherwise.
    pub(crate) fn encrypt_in_place(&mut self, track: TrackId, sample: &mut [u8]) -> Result<bool> {
        match self.protection.as_mut() {
            Some(p) => p
                .encrypt_in_place(track, sample)
                .map_err(|e| e.context("encrypting a sample in place")),
            None => Ok(false),
        }
    }

    /// An item on its way into the packager. With CENC, a frame of a video or audio
    /// track comes back with its payload encrypted now, while it is still in cache, and
    /// its protection kept for the fragment that will hold it; a track's arrival sets
    /// up its subsample generator. Anything else passes unchanged.
    ///
    /// Errors: a slice header the parameter sets cannot parse, NAL units that do not
    /// cover the frame ([`crate::ErrorKind::Malformed`]), a track id of 4096 or more
    /// with `cenc` ([`crate::ErrorKind::Limit`]).
    pub(crate) fn on_item(&mut self, item: Item) -> Result<Item> {
        let Some(p) = self.protection.as_mut() else {
            return Ok(item);
        };
        match item {
            Item::Frame(f) => p
                .encrypt_frame(f)
                .map(Item::Frame)
                .map_err(|e| e.context("encrypting a frame on arrival")),
            Item::Event(Event::TrackAdded(t)) => {
                if matches!(t.kind, MediaKind::Video | MediaKind::Audio) {
                    let generator = SubsampleGenerator::new(&t.config, p.info.scheme)?;
                    match p.tracks.iter_mut().find(|e| e.0 == t.id) {
                        Some(entry) => (entry.1, entry.2) = (t.kind, generator),
                        None => p.tracks.push((t.id, t.kind, generator, 0)),
                    }
                }
                Ok(Item::Event(Event::TrackAdded(t)))
            }
            other => Ok(other),
        }
    }

    /// The protected media segment of `f`, a fragment [`CmafVod::write_segment`] queued
    /// as [`Queued::Protect`] in the segment being handed out: its header and payloads
    /// read where they are and protected with the sample table the writer returned
    /// ([`protect_fragment_parts`]: one copy, encrypted in cache-sized batches) into a
    /// buffer that is reused once the host drops the previous output.
    ///
    /// Errors: those of [`protect_fragment_parts`]; [`Error::usage`] without protection or
    /// for an unknown rendition.
    pub(crate) fn protect(&mut self, f: CmafFragment) -> Result<VodOutput> {
        let p = self.protection.as_mut().ok_or(Error::usage(
            "CMAF fragment to protect without a protection",
        ))?;
        let track = self
            .presentation
            .rendition(&f.rendition)
            .ok_or(Error::usage("fragment of an unknown CMAF rendition"))?
            .track();
        // Payloads encrypted on arrival: only the boxes are new.
        if let Some(aux) = p.take_pending(&f)? {
            let mut header = BytesMut::with_capacity(f.data.len() + 64 + 64 * aux.len());
            write_protected_header(&f.info, track, &aux, &mut header).map_err(|e| {
                e.context(format!("rendition {}, fragment {}", f.rendition, f.number))
            })?;
            let duration =
                Timestamp::new(f.duration().min(i64::MAX as u64) as i64, track.timescale);
            return Ok(VodOutput::Fragment {
                name: format!("{}/{}.m4s", f.rendition, f.number),
                rendition: f.rendition,
                number: f.number,
                duration,
                header: header.freeze(),
                payloads: f.payloads,
            });
        }
        // The header and the payloads where they are: no copy to join them.
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + f.payloads.len());
        parts.push(&f.data);
        parts.extend(f.payloads.iter().map(|b| &b[..]));
        // senc, saiz and saio add at most 8 + 2 + 6 * 40 bytes per sample.
        p.out
            .reserve(f.len() + 1024 + 256 * f.info.samples.len().min(1 << 16));
        protect_fragment_parts(&parts, &f.info, track, &p.info, &p.key, &mut p.out)
            .map_err(|e| e.context(format!("rendition {}, fragment {}", f.rendition, f.number)))?;
        let duration = Timestamp::new(f.duration().min(i64::MAX as u64) as i64, track.timescale);
        Ok(VodOutput::Fragment {
            name: format!("{}/{}.m4s", f.rendition, f.number),
            rendition: f.rendition,
            number: f.number,
            duration,
            header: p.out.split().freeze(),
            payloads: Vec::new(),
        })
    }

    /// The manifests of the finished presentation, into `out`: with HLS fMP4 every
    /// rendition's media playlist then the multivariant playlist, with DASH the MPD.
    ///
    /// Errors: [`Error::malformed`] when no fragment was written.
    pub(crate) fn manifests(&mut self, out: &mut VecDeque<Queued>) -> Result<()> {
        if self.presentation.renditions().is_empty() {
            return Err(Error::malformed(
                "no segment could be made: the input has no decodable frames",
            ));
        }
        self.presentation.set_ended();
        let protection = self.protection.as_ref();
        if self.formats.contains(VodFormats::HLS_FMP4) {
            for r in self.presentation.renditions() {
                let text = match protection.and_then(|p| p.hls_key.as_ref()) {
                    None => r.media_playlist().write()?,
                    Some(key) => {
                        let mut pl = r.media_playlist().clone();
                        for s in &mut pl.segments {
                            s.keys = vec![key.clone()];
                        }
                        pl.write()?
                    }
                };
                out.push_back(Queued::Ready(VodOutput::Playlist {
                    name: format!("{}/{MEDIA_PLAYLIST}", r.name()),
                    text,
                }));
            }
            out.push_back(Queued::Ready(VodOutput::Playlist {
                name: self.hls_name.clone(),
                text: self.presentation.multivariant_playlist()?.write()?,
            }));
        }
        if self.formats.contains(VodFormats::DASH) {
            let mut mpd = self.presentation.static_mpd()?;
            if let Some(p) = protection {
                for set in mpd.periods.iter_mut().flat_map(|p| &mut p.adaptation_sets) {
                    set.content_protection.clone_from(&p.dash);
                }
            }
            out.push_back(Queued::Ready(VodOutput::Playlist {
                name: self.dash_name.clone(),
                text: mpd.write()?,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn formats_parse_and_print() {
        assert_eq!(VodFormats::parse("all").unwrap(), VodFormats::ALL);
        let f = VodFormats::parse("hls-ts, DASH").unwrap();
        assert_eq!(f, VodFormats::HLS_TS | VodFormats::DASH);
        assert!(f.has_cmaf() && !f.contains(VodFormats::HLS_FMP4));
        assert_eq!(f.to_string(), "hls-ts+dash");
        assert_eq!(VodFormats::ALL.to_string(), "hls-ts+hls-fmp4+dash");
        assert!(!VodFormats::default().has_cmaf());
        for bad in ["", "hls", "dash,,", "mp4"] {
            let e = VodFormats::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{bad:?}");
        }
    }
}
