//! [`VodPackager`]: frames in, VOD segments and manifests out: HLS with MPEG-TS
//! segments, HLS with CMAF (fMP4) segments, DASH, or any combination
//! ([`VodFormats`]).
//!
//! Composes the [`Segmenter`], the [`TsMuxer`] and a
//! [`CmafPresentation`](super::cmaf::CmafPresentation) and keeps the playlist
//! bookkeeping, so a host only moves bytes: it pushes [`Item`]s from any demuxer and
//! stores each [`VodOutput`] under its name. The segmenter runs once; each segment it
//! cuts feeds both the TS muxer and the CMAF writer. A TS segment is muxed as the host
//! polls, in pieces of about [`VodPackagerOptions::chunk_size`] bytes, and each frame
//! is released once muxed: memory stays at about one segment of input plus one piece
//! of output, and each piece is still in cache when the host writes it. CMAF
//! fragments come out whole, one per track and segment, as a header and the frames'
//! payloads by reference ([`VodOutput::parts`]). The playlists and manifests come out
//! last, after [`Stage::finish`], so a failed run never leaves a playlist that looks
//! complete.
//!
//! File layout (names relative to the top-level playlists; `/` separates folders):
//!
//! | format | files |
//! |---|---|
//! | [`VodFormats::HLS_TS`] | `segmentNNNNN.ts`, `media.m3u8`, `index.m3u8` |
//! | [`VodFormats::HLS_FMP4`] | `{rendition}/init.mp4`, `{rendition}/{n}.m4s`, `{rendition}/media.m3u8`, `cmaf.m3u8` |
//! | [`VodFormats::DASH`] | `{rendition}/init.mp4`, `{rendition}/{n}.m4s`, `manifest.mpd` |
//!
//! Renditions are named `v{track id}` and `a{track id}` (see [`super::cmaf`]).
//!
//! A protected package ([`VodPackagerOptions::encryption`], [`VodEncryption`]) has the
//! same files, encrypted: `aes128` or `sample-aes` TS segments, `cenc` or `cbcs` init
//! segments and fragments, the keys in the playlists and the MPD, and unless a key URI
//! is given the key itself as [`KEY_FILE`] beside the top-level playlists
//! ([`VodOutput::Key`]). Each scheme applies to its formats only (MPEG-TS for the first
//! two, CMAF for the others); another combination is a usage error from
//! [`VodPackager::new`].
//!
//! ```
//! use bytes::Bytes;
//! use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
//! use strom::package::{VodOutput, VodPackager, VodPackagerOptions};
//! use strom::pipeline::{drain, Stage};
//! use strom::time::{Timescale, Timestamp};
//!
//! let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
//! let track = TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(asc));
//! let mut p = VodPackager::new(VodPackagerOptions::default()).unwrap();
//! p.push(Item::Event(Event::TrackAdded(track))).unwrap();
//! let mut names = Vec::new();
//! for i in 0..500 {
//!     let t = Timestamp::new(i * 1024, Timescale::new(48_000).unwrap());
//!     let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
//!         .with_flags(FrameFlags::KEYFRAME)
//!         .with_duration(Timestamp::new(1024, t.scale()));
//!     p.push(Item::Frame(f)).unwrap();
//!     names.extend(drain(&mut p).unwrap().iter().map(|o| o.name().to_string()));
//! }
//! p.finish().unwrap();
//! names.extend(drain(&mut p).unwrap().iter().map(|o| o.name().to_string()));
//! assert_eq!(names, ["segment00000.ts", "segment00001.ts", "media.m3u8", "index.m3u8"]);
//! ```
//!
//! A host appends the pieces of a segment in order; [`VodOutput::SegmentData`]'s
//! `first` says when to start a new file.
//!
//! The same audio as DASH and HLS fMP4 (one rendition, `a2`):
//!
//! ```
//! # use bytes::Bytes;
//! # use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
//! # use strom::package::{VodFormats, VodOutput, VodPackager, VodPackagerOptions};
//! # use strom::pipeline::{drain, Stage};
//! # use strom::time::{Timescale, Timestamp};
//! # let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
//! # let track = TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(asc));
//! let mut opts = VodPackagerOptions::default();
//! opts.formats = VodFormats::HLS_FMP4 | VodFormats::DASH;
//! let mut p = VodPackager::new(opts).unwrap();
//! p.push(Item::Event(Event::TrackAdded(track))).unwrap();
//! # let mut outs = Vec::new();
//! # for i in 0..500 {
//! #     let t = Timestamp::new(i * 1024, Timescale::new(48_000).unwrap());
//! #     let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
//! #         .with_flags(FrameFlags::KEYFRAME)
//! #         .with_duration(Timestamp::new(1024, t.scale()));
//! #     p.push(Item::Frame(f)).unwrap();
//! #     outs.extend(drain(&mut p).unwrap());
//! # }
//! p.finish().unwrap();
//! outs.extend(drain(&mut p).unwrap());
//! let names: Vec<&str> = outs.iter().map(|o| o.name()).collect();
//! assert_eq!(
//!     names,
//!     ["a2/init.mp4", "a2/1.m4s", "a2/2.m4s", "a2/media.m3u8", "cmaf.m3u8", "manifest.mpd"]
//! );
//! // A fragment is its header (styp, moof, mdat header) and the frames' payloads.
//! let VodOutput::Fragment { header, payloads, .. } = &outs[1] else { panic!() };
//! assert_eq!(&header[4..8], b"styp");
//! assert_eq!(outs[1].len(), header.len() + 3 * payloads.len());
//! ```

use std::collections::VecDeque;
use std::vec::IntoIter;

use bytes::{Bytes, BytesMut};

use super::cmaf_vod::{CmafProtection, CmafVod, Queued};
use super::dash::ContentProtection;
use super::hls::{
    BandwidthMeter, Key, KeyMethod, MediaPlaylist, MediaSegment, MultivariantPlaylist,
    PlaylistType, Variant, KEYFORMAT_IDENTITY,
};
use super::{Segment, Segmenter, SegmenterOptions, VodFormats};
use crate::container::fmp4::{ProtectionInfo, PsshBox};
use crate::container::ts::{TsEncryption, TsMuxer, TsMuxerOptions};
use crate::crypto::aes128::SegmentEncryptor;
use crate::crypto::{ContentKey, Iv, KeyId, Scheme};
use crate::error::{Error, Result};
use crate::media::{Item, MediaKind, TrackInfo};
use crate::pipeline::Stage;
use crate::time::Timestamp;

/// Options of a [`VodPackager`]. Each field's doc states its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VodPackagerOptions {
    /// Segmenter options (target duration: default 6 s).
    pub segmenter: SegmenterOptions,
    /// MPEG-TS muxer options (defaults of [`TsMuxerOptions`]).
    pub ts: TsMuxerOptions,
    /// Segment file names are this prefix, a 5-digit sequence number and `.ts`.
    /// Default: `"segment"`.
    pub segment_prefix: String,
    /// Name of the media playlist. Default: `"media.m3u8"`.
    pub media_playlist: String,
    /// Name of the multivariant playlist. Default: `"index.m3u8"`.
    pub multivariant_playlist: String,
    /// Target size of one [`VodOutput::SegmentData`] piece, in bytes. A piece ends at
    /// the first frame boundary at or past this size. Default: 256 KiB.
    pub chunk_size: usize,
    /// The outputs to write. Default: [`VodFormats::HLS_TS`].
    pub formats: VodFormats,
    /// Name of the HLS multivariant playlist of the CMAF renditions (with
    /// [`VodFormats::HLS_FMP4`]). Default: `"cmaf.m3u8"`.
    pub cmaf_playlist: String,
    /// Name of the DASH MPD (with [`VodFormats::DASH`]). Default: `"manifest.mpd"`.
    pub dash_manifest: String,
    /// Protect the package with one key ([`VodEncryption`]); `None` writes it in the
    /// clear. Default: `None`.
    pub encryption: Option<VodEncryption>,
}

impl Default for VodPackagerOptions {
    fn default() -> Self {
        VodPackagerOptions {
            segmenter: SegmenterOptions::default(),
            ts: TsMuxerOptions::default(),
            segment_prefix: "segment".into(),
            media_playlist: "media.m3u8".into(),
            multivariant_playlist: "index.m3u8".into(),
            chunk_size: 256 * 1024,
            formats: VodFormats::default(),
            cmaf_playlist: "cmaf.m3u8".into(),
            dash_manifest: "manifest.mpd".into(),
            encryption: None,
        }
    }
}

/// Name of the key file a protected package writes next to its top-level playlists
/// ([`VodOutput::Key`]) when [`VodEncryption::key_uri`] is `None`.
pub const KEY_FILE: &str = "key.bin";

/// How a [`VodPackager`] protects its output: one scheme and one key for the whole
/// presentation.
///
/// What each [`Scheme`] writes:
///
/// | scheme | formats | segments | manifests |
/// |---|---|---|---|
/// | [`Scheme::Aes128`] | [`VodFormats::HLS_TS`] only | each TS segment whole in AES-128-CBC with PKCS#7 ([`crate::crypto::aes128`]); IV: [`VodEncryption::iv`], else the segment's media sequence number | `#EXT-X-KEY:METHOD=AES-128,URI=..` (with `IV` when explicit), RFC 8216bis §4.4.4.4, §5.2 |
/// | [`Scheme::SampleAes`] | [`VodFormats::HLS_TS`] only | TS muxed in SAMPLE-AES mode ([`TsEncryption::SampleAes`]: H.264 and AAC) | `#EXT-X-KEY:METHOD=SAMPLE-AES,URI=..,IV=..`, always with the IV (hls.js needs it) |
/// | [`Scheme::Cenc`] | the CMAF formats only | ISO/IEC 23001-7 `cenc` (AES-CTR, subsamples) init segments (`encv`/`enca`, `sinf`/`tenc`, a Clear Key `pssh` with the key id) and fragments (`senc`, `saiz`, `saio`) | DASH: `ContentProtection` mp4protection (value `cenc`, `cenc:default_KID`) and Clear Key (its `pssh`, `dashif:Laurl` with a licence URL); HLS: `#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=..,KEYFORMAT="identity"` |
/// | [`Scheme::Cbcs`] | the CMAF formats only | ISO/IEC 23001-7 `cbcs` (AES-CBC, 1:9 pattern for video, constant IV) | as `cenc`, with value `cbcs` and `METHOD=SAMPLE-AES` |
///
/// An HLS identity key is the 16 raw key bytes at the key URI; the player takes the
/// key id of `cenc`/`cbcs` content from the init segment. Unless
/// [`VodEncryption::key_uri`] names where the host serves the key, the packager writes
/// it as [`KEY_FILE`] beside the top-level playlists ([`VodOutput::Key`]) and points
/// the playlists at it (`key.bin` from the TS media playlist, `../key.bin` from a
/// rendition's folder): the package then plays on its own, and anyone who can read it
/// can decrypt it. A real origin serves the key behind authorisation instead.
///
/// ```
/// use strom::crypto::{ContentKey, KeyId, Scheme};
/// use strom::package::{VodEncryption, VodFormats, VodPackager, VodPackagerOptions};
///
/// let kid = KeyId::from_hex("abba271e8bcf552bbd2e86a434a9a5d9").unwrap();
/// let key = ContentKey::from_hex("69eaa802a6763af979e8d1940fb88392").unwrap();
/// let mut opts = VodPackagerOptions::default();
/// opts.formats = VodFormats::DASH | VodFormats::HLS_FMP4;
/// opts.encryption = Some(
///     VodEncryption::new(Scheme::Cenc, kid, key.clone())
///         .with_licence_url("https://licence.example/clearkey?kid={kid}"),
/// );
/// assert!(VodPackager::new(opts.clone()).is_ok());
/// // AES-128 encrypts MPEG-TS segments only: a typed error says so.
/// opts.encryption = Some(VodEncryption::new(Scheme::Aes128, kid, key));
/// let e = VodPackager::new(opts).unwrap_err();
/// assert_eq!(e.kind(), strom::ErrorKind::Usage);
/// assert!(e.to_string().contains("hls-ts"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VodEncryption {
    /// The scheme: [`Scheme::Aes128`] or [`Scheme::SampleAes`] for
    /// [`VodFormats::HLS_TS`], [`Scheme::Cenc`] or [`Scheme::Cbcs`] for
    /// [`VodFormats::HLS_FMP4`] and [`VodFormats::DASH`].
    pub scheme: Scheme,
    /// The key id: `tenc` `default_KID`, the Clear Key `pssh`, DASH
    /// `cenc:default_KID`, and `{kid}` in the URIs. `aes128` and `sample-aes` write it
    /// nowhere else.
    pub key_id: KeyId,
    /// The AES-128 content key.
    pub key: ContentKey,
    /// An explicit IV. Default `None`:
    /// * `aes128`: 16 bytes, used for every segment and written as the `IV` attribute;
    ///   `None` gives each segment its media sequence number (not written).
    /// * `sample-aes`: 16 bytes, restarted at every NAL unit and AAC frame; `None`
    ///   uses the key id's 16 bytes. Always written.
    /// * `cbcs`: the 16-byte constant IV of `tenc`; `None` uses the key id's 16 bytes.
    /// * `cenc`: 8 bytes, XORed into every per-sample IV
    ///   ([`ProtectionInfo::iv_seed`]); `None` is 0.
    pub iv: Option<Iv>,
    /// The `URI` of the HLS `EXT-X-KEY` tags, `{kid}` replaced by the key id's 32 hex
    /// digits; a relative URI resolves against each media playlist (for CMAF renditions,
    /// in their folders). Default `None`: [`KEY_FILE`], written by the packager.
    pub key_uri: Option<String>,
    /// The Clear Key licence server URL of the DASH MPD (`dashif:Laurl`, where players
    /// POST licence requests), `{kid}` replaced by the key id's 32 hex digits. `cenc`
    /// and `cbcs` with [`VodFormats::DASH`] only. Default `None`: no URL (the player is
    /// given the key some other way).
    pub licence_url: Option<String>,
}

impl VodEncryption {
    /// `scheme` with `key_id` and `key`; default IV, key URI and licence URL.
    pub fn new(scheme: Scheme, key_id: KeyId, key: ContentKey) -> Self {
        VodEncryption {
            scheme,
            key_id,
            key,
            iv: None,
            key_uri: None,
            licence_url: None,
        }
    }

    /// Sets [`VodEncryption::iv`] (builder style).
    #[must_use]
    pub fn with_iv(mut self, iv: Iv) -> Self {
        self.iv = Some(iv);
        self
    }

    /// Sets [`VodEncryption::key_uri`] (builder style).
    #[must_use]
    pub fn with_key_uri(mut self, uri: impl Into<String>) -> Self {
        self.key_uri = Some(uri.into());
        self
    }

    /// Sets [`VodEncryption::licence_url`] (builder style).
    #[must_use]
    pub fn with_licence_url(mut self, url: impl Into<String>) -> Self {
        self.licence_url = Some(url.into());
        self
    }

    /// Checks that this protection applies to `formats`.
    ///
    /// Errors ([`Error::usage`], saying which formats a scheme takes): `aes128` or
    /// `sample-aes` with a CMAF format, `cenc` or `cbcs` with `hls-ts`; an IV of the
    /// wrong size for the scheme; a licence URL without `cenc`/`cbcs` DASH output; a
    /// key URI where no HLS playlist lists a key; an empty or multi-line URI or URL.
    pub fn check(&self, formats: VodFormats) -> Result<()> {
        let name = self.scheme.as_str();
        let cmaf = formats.has_cmaf();
        match self.scheme {
            Scheme::Aes128 | Scheme::SampleAes if cmaf => {
                return Err(Error::usage(
                    "this scheme protects HLS with MPEG-TS segments (hls-ts) only; the CMAF \
                     formats (hls-fmp4, dash) take cenc or cbcs",
                )
                .context(format!("scheme {name}, formats {formats}")));
            }
            Scheme::Cenc | Scheme::Cbcs if formats.contains(VodFormats::HLS_TS) => {
                return Err(Error::usage(
                    "this scheme protects the CMAF formats (hls-fmp4, dash) only; HLS with \
                     MPEG-TS segments (hls-ts) takes aes128 or sample-aes",
                )
                .context(format!("scheme {name}, formats {formats}")));
            }
            Scheme::Aes128 | Scheme::SampleAes | Scheme::Cenc | Scheme::Cbcs => {}
        }
        let iv_ok = match (self.scheme, self.iv) {
            (_, None) => true,
            (Scheme::Cenc, Some(iv)) => matches!(iv, Iv::Iv8(_)),
            (_, Some(iv)) => matches!(iv, Iv::Iv16(_)),
        };
        if !iv_ok {
            let want = if self.scheme == Scheme::Cenc {
                "cenc takes an 8-byte IV (the seed of its per-sample IVs)"
            } else {
                "aes128, sample-aes and cbcs take a 16-byte IV"
            };
            return Err(Error::usage(want).context(format!("scheme {name}")));
        }
        let cenc_family = matches!(self.scheme, Scheme::Cenc | Scheme::Cbcs);
        if let Some(url) = &self.licence_url {
            if !cenc_family || !formats.contains(VodFormats::DASH) {
                return Err(Error::usage(
                    "a licence URL is written in the DASH MPD of cenc or cbcs content only",
                )
                .context(format!("scheme {name}, formats {formats}")));
            }
            if url.is_empty() || url.contains(['\r', '\n']) {
                return Err(Error::usage("the licence URL is empty or has a line break"));
            }
        }
        if self.key_uri.is_some() && cenc_family && !formats.contains(VodFormats::HLS_FMP4) {
            return Err(Error::usage(
                "a key URI is written in HLS playlists only, and this package has none",
            )
            .context(format!("scheme {name}, formats {formats}")));
        }
        // The key tag as the playlists will have it: a bad URI fails here, not at the end.
        self.hls_key(false)
            .to_tag("EXT-X-KEY")
            .map_err(|e| e.context("HLS key URI"))?;
        Ok(())
    }

    /// `text` with `{kid}` replaced by the key id's hex digits.
    fn expand(&self, text: &str) -> String {
        text.replace("{kid}", &self.key_id.to_string())
    }

    /// The 16-byte IV of the CBC schemes: the explicit one or the key id's bytes.
    fn iv16(&self) -> Iv {
        self.iv.unwrap_or(Iv::Iv16(self.key_id.0))
    }

    /// The `EXT-X-KEY` of every segment, `nested` for a media playlist one folder
    /// below the key file.
    fn hls_key(&self, nested: bool) -> Key {
        let uri = match &self.key_uri {
            Some(u) => self.expand(u),
            None if nested => format!("../{KEY_FILE}"),
            None => KEY_FILE.to_string(),
        };
        match self.scheme {
            Scheme::Aes128 => {
                let k = Key::new(KeyMethod::Aes128, uri);
                match self.iv {
                    Some(iv) => k.with_iv(iv),
                    None => k,
                }
            }
            Scheme::SampleAes => Key::new(KeyMethod::SampleAes, uri).with_iv(self.iv16()),
            Scheme::Cenc => {
                Key::new(KeyMethod::SampleAesCtr, uri).with_keyformat(KEYFORMAT_IDENTITY, &[])
            }
            Scheme::Cbcs => {
                Key::new(KeyMethod::SampleAes, uri).with_keyformat(KEYFORMAT_IDENTITY, &[])
            }
        }
    }

    /// What the CMAF writer needs for `formats` (`cenc`/`cbcs` only).
    fn cmaf(&self, formats: VodFormats) -> Result<Option<CmafProtection>> {
        let info = match self.scheme {
            Scheme::Cenc => {
                let seed = match self.iv {
                    Some(Iv::Iv8(b)) => u64::from_be_bytes(b),
                    _ => 0,
                };
                ProtectionInfo::cenc(self.key_id).with_iv_seed(seed)
            }
            Scheme::Cbcs => ProtectionInfo::cbcs(self.key_id, self.iv16().to_block()),
            _ => return Ok(None),
        };
        let pssh = PsshBox::clearkey(vec![self.key_id]);
        let mut dash = Vec::new();
        if formats.contains(VodFormats::DASH) {
            dash.push(ContentProtection::mp4_protection(self.scheme, self.key_id)?);
            let mut ck = ContentProtection::for_system(&pssh)?;
            if let Some(url) = &self.licence_url {
                ck = ck.with_license_url(self.expand(url));
            }
            dash.push(ck);
        }
        let hls_key = formats
            .contains(VodFormats::HLS_FMP4)
            .then(|| self.hls_key(true));
        Ok(Some(CmafProtection::new(
            info.with_pssh(pssh),
            self.key.clone(),
            hls_key,
            dash,
        )))
    }

    /// Whether the packager writes [`KEY_FILE`]: no key URI given and a playlist
    /// that points at it.
    fn writes_key_file(&self, formats: VodFormats) -> bool {
        self.key_uri.is_none()
            && match self.scheme {
                Scheme::Aes128 | Scheme::SampleAes => formats.contains(VodFormats::HLS_TS),
                _ => formats.contains(VodFormats::HLS_FMP4),
            }
    }
}

/// One output of a [`VodPackager`]: bytes to store under a name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VodOutput {
    /// A piece of an MPEG-TS media segment. Pieces of one segment come in order and
    /// are appended to the file `name`; no other output comes between them.
    SegmentData {
        /// File name (relative to the playlists).
        name: String,
        /// Segment sequence number, from 0.
        sequence: u64,
        /// The first piece: start a new file.
        first: bool,
        /// The last piece: the segment is complete.
        last: bool,
        /// Exact segment duration.
        duration: Timestamp,
        /// TS packets (a whole number of 188-byte packets); with [`Scheme::Aes128`]
        /// their ciphertext: the pieces of a segment are one AES-128-CBC stream, the last
        /// piece ending with the PKCS#7 padding block.
        data: Bytes,
    },
    /// The init segment (`ftyp` + `moov`) of a CMAF rendition, emitted before the
    /// rendition's first [`VodOutput::Fragment`].
    InitSegment {
        /// File name: `{rendition}/init.mp4`.
        name: String,
        /// The rendition (`v1`, `a2`).
        rendition: String,
        /// The init segment.
        data: Bytes,
    },
    /// A CMAF media segment of one rendition (`styp` + `moof` + `mdat`): `header`
    /// then each of `payloads`, in order, make the file.
    Fragment {
        /// File name: `{rendition}/{number}.m4s`.
        name: String,
        /// The rendition (`v1`, `a2`).
        rendition: String,
        /// Number of the fragment in its rendition, from 1.
        number: u64,
        /// Duration as the manifests list it, in the track's timescale.
        duration: Timestamp,
        /// `styp`, `moof` and the `mdat` header (protected: with `senc`, `saiz`, `saio`).
        header: Bytes,
        /// The sample payloads: slices of the input, not copies; protected (`cenc`,
        /// `cbcs`), slices of the buffer the frames were encrypted into as they arrived.
        payloads: Vec<Bytes>,
    },
    /// The content key as an HLS identity key file (16 raw bytes), emitted at the end
    /// before the playlists when [`VodEncryption::key_uri`] is `None` and an HLS
    /// playlist points at it. `Debug` does not show the key.
    Key {
        /// File name: [`KEY_FILE`].
        name: String,
        /// The key.
        key: ContentKey,
    },
    /// A playlist or manifest, emitted at the end: the TS media playlist and its
    /// multivariant playlist, the CMAF renditions' media playlists, the fMP4
    /// multivariant playlist, the MPD (each when its format is chosen, in this order).
    Playlist {
        /// File name.
        name: String,
        /// Playlist text.
        text: String,
    },
}

impl VodOutput {
    /// The name to store this output under (a relative path; `/` separates folders).
    pub fn name(&self) -> &str {
        match self {
            VodOutput::SegmentData { name, .. }
            | VodOutput::InitSegment { name, .. }
            | VodOutput::Fragment { name, .. }
            | VodOutput::Key { name, .. }
            | VodOutput::Playlist { name, .. } => name,
        }
    }
    /// The bytes to store (or append, for a segment piece that is not `first`). A
    /// [`VodOutput::Fragment`] is copied into one buffer: [`VodOutput::parts`] avoids
    /// that.
    pub fn data(&self) -> Bytes {
        match self {
            VodOutput::SegmentData { data, .. } | VodOutput::InitSegment { data, .. } => {
                data.clone()
            }
            VodOutput::Fragment { .. } => {
                let mut b = BytesMut::with_capacity(self.len());
                for p in self.parts() {
                    b.extend_from_slice(p);
                }
                b.freeze()
            }
            VodOutput::Key { key, .. } => Bytes::copy_from_slice(key.as_bytes()),
            VodOutput::Playlist { text, .. } => Bytes::from(text.clone()),
        }
    }
    /// The bytes to store, as consecutive slices (one, but for a
    /// [`VodOutput::Fragment`]: its header, then its payloads), for vectored writes.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let (first, rest): (&[u8], &[Bytes]) = match self {
            VodOutput::SegmentData { data, .. } | VodOutput::InitSegment { data, .. } => {
                (data, &[])
            }
            VodOutput::Fragment {
                header, payloads, ..
            } => (header, payloads),
            VodOutput::Key { key, .. } => (key.as_bytes(), &[]),
            VodOutput::Playlist { text, .. } => (text.as_bytes(), &[]),
        };
        std::iter::once(first).chain(rest.iter().map(|b| &b[..]))
    }
    /// Length of [`VodOutput::data`] in bytes.
    pub fn len(&self) -> usize {
        self.parts().map(<[u8]>::len).sum()
    }
    /// Whether [`VodOutput::data`] is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Totals of a packaging run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VodSummary {
    /// Segments written completely (each is one TS segment and one fragment per CMAF
    /// rendition).
    pub segments: u64,
    /// Sum of the complete segments' durations in milliseconds.
    pub duration_ms: i64,
    /// Bytes of media written: TS segments, CMAF init segments and fragments.
    pub bytes: u64,
    /// CMAF renditions (0 without a CMAF format).
    pub renditions: u64,
    /// Frames the segmenter dropped (before the first keyframe, unknown tracks).
    pub dropped_frames: u64,
}

/// The segment being muxed, piece by piece.
#[derive(Debug)]
struct Writing {
    name: String,
    sequence: u64,
    duration: Timestamp,
    discontinuity: bool,
    frames: IntoIter<crate::media::Frame>,
    bytes: u64,
    first: bool,
    /// AES-128: the segment's CBC chain, fed each muxed piece.
    aes: Option<SegmentEncryptor>,
}

/// Packages a frame stream as VOD: HLS with MPEG-TS segments (one variant, all
/// tracks muxed together), and/or CMAF renditions (one per track) with their HLS and
/// DASH manifests, as [`VodPackagerOptions::formats`] says, in the clear or protected
/// ([`VodPackagerOptions::encryption`]). A [`Stage`]: push items, poll outputs, finish.
///
/// Protection costs one pass over the media bytes: a TS piece is encrypted (`aes128`)
/// or muxed encrypted (`sample-aes`) as it is made; with `cenc`/`cbcs` every frame is
/// encrypted as it is pushed, while its bytes are still in cache (IVs from the track and
/// a count of its frames, subsamples from its NAL units), and a fragment then only gets
/// its protection boxes (`senc`, `saiz`, `saio`) with the encrypted payloads following
/// by reference. A host that reads MP4 can do better still: encrypt each sample in its
/// read buffer, in place, before the demuxer sees it ([`VodPackager::encrypt_in_place`]
/// with [`Mp4Demuxer::read_samples`](crate::container::mp4::Mp4Demuxer::read_samples)),
/// which saves writing every media byte a second time; the package is byte for byte
/// the same.
#[derive(Debug)]
pub struct VodPackager {
    opts: VodPackagerOptions,
    segmenter: Segmenter,
    /// The CMAF writer, with a CMAF format.
    cmaf: Option<CmafVod>,
    muxer: Option<(Vec<TrackInfo>, TsMuxer)>,
    playlist: MediaPlaylist,
    meter: BandwidthMeter,
    /// Track set of the variant (first configuration seen), for CODECS/RESOLUTION.
    tracks: Vec<TrackInfo>,
    /// Segments cut and not yet muxed.
    pending: VecDeque<Segment>,
    writing: Option<Writing>,
    /// Outputs ready to hand out before the TS pieces: CMAF init segments and
    /// fragments, then at the end the playlists.
    queue: VecDeque<Queued>,
    summary: VodSummary,
    buf: BytesMut,
    /// The `EXT-X-KEY` of every TS segment (`aes128`, `sample-aes`).
    ts_key: Option<Key>,
    /// AES-128: the key and the explicit IV, if any.
    aes: Option<(ContentKey, Option<Iv>)>,
    /// AES-128 ciphertext of the pieces, reused.
    enc_buf: BytesMut,
    /// The key file to write at the end.
    key_file: Option<ContentKey>,
    finished: bool,
    playlists_made: bool,
    failed: bool,
}

impl VodPackager {
    /// A packager with `opts`. Errors: the segmenter options are invalid,
    /// [`Error::usage`] for empty [`VodPackagerOptions::formats`], an encryption that
    /// does not apply to the formats (see [`VodEncryption::check`]), and
    /// [`TsMuxerOptions::encryption`] set directly (protect through
    /// [`VodPackagerOptions::encryption`], which also writes the keys in the playlists).
    pub fn new(mut opts: VodPackagerOptions) -> Result<Self> {
        if opts.formats.is_empty() {
            return Err(Error::usage("VodPackager: no output format"));
        }
        if opts.ts.encryption.is_encrypted() {
            return Err(Error::usage(
                "VodPackager: protect with VodPackagerOptions::encryption, not \
                 ts.encryption (the playlists would not list the key)",
            ));
        }
        let segmenter = Segmenter::new(opts.segmenter.clone())?;
        let mut cmaf_protection = None;
        let (mut ts_key, mut aes, mut key_file) = (None, None, None);
        if let Some(e) = &opts.encryption {
            e.check(opts.formats)
                .map_err(|err| err.context("VodPackager encryption"))?;
            match e.scheme {
                Scheme::Aes128 => aes = Some((e.key.clone(), e.iv)),
                Scheme::SampleAes => {
                    opts.ts.encryption = TsEncryption::sample_aes(e.key.clone(), e.iv16());
                }
                _ => cmaf_protection = e.cmaf(opts.formats)?,
            }
            if opts.formats.contains(VodFormats::HLS_TS) {
                ts_key = Some(e.hls_key(false));
            }
            if e.writes_key_file(opts.formats) {
                key_file = Some(e.key.clone());
            }
        }
        let cmaf = opts.formats.has_cmaf().then(|| {
            CmafVod::new(
                opts.formats,
                &opts.cmaf_playlist,
                &opts.dash_manifest,
                cmaf_protection,
            )
        });
        Ok(VodPackager {
            opts,
            segmenter,
            cmaf,
            muxer: None,
            playlist: MediaPlaylist::new(PlaylistType::Vod),
            meter: BandwidthMeter::new(),
            tracks: Vec::new(),
            pending: VecDeque::new(),
            writing: None,
            queue: VecDeque::new(),
            summary: VodSummary::default(),
            buf: BytesMut::new(),
            ts_key,
            aes,
            enc_buf: BytesMut::new(),
            key_file,
            finished: false,
            playlists_made: false,
            failed: false,
        })
    }

    /// Totals so far.
    pub fn summary(&self) -> VodSummary {
        VodSummary {
            dropped_frames: self.segmenter.dropped_frames(),
            renditions: self.cmaf.as_ref().map_or(0, |c| c.renditions() as u64),
            ..self.summary
        }
    }

    /// Encrypts `sample`, the clear bytes of the next sample of `track` while they are
    /// still in the host's read buffer and in cache, in place: with `cenc` or `cbcs`
    /// protection, for a video or audio track the packager has seen added. The frame
    /// that later carries these very bytes (the same memory) must come flagged
    /// [`FrameFlags::TRANSFORMED`](crate::media::FrameFlags::TRANSFORMED), which is what
    /// [`Mp4Demuxer::read_samples`](crate::container::mp4::Mp4Demuxer::read_samples) and
    /// [`Mp4Demuxer::supply_transformed`](crate::container::mp4::Mp4Demuxer::supply_transformed)
    /// arrange; the packager then writes its protection boxes without touching its bytes
    /// again. Saves the copy that encrypting on arrival makes (one write of every media
    /// byte to other memory). Returns `Ok(false)`, bytes untouched, when there is nothing
    /// to do: no CENC protection, a track not protected or not added yet, an empty sample.
    ///
    /// Errors: those of encrypting on arrival (a slice header the parameter sets cannot
    /// parse, NAL units that do not cover the sample, a track id of 4096 or more with
    /// `cenc`); a flagged frame whose bytes this did not encrypt is an
    /// [`Error::usage`] when it is pushed.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use strom::container::mp4::Mp4Demuxer;
    /// use strom::package::VodPackager;
    /// use strom::pipeline::Stage;
    ///
    /// /// Feeds the MP4 `file` to `packager`, each sample encrypted where it was read.
    /// fn package(packager: &mut VodPackager, file: &[u8]) -> strom::Result<()> {
    ///     let mut demux = Mp4Demuxer::new(file.len() as u64);
    ///     loop {
    ///         while let Some(item) = demux.poll_item() {
    ///             packager.push(item?)?;
    ///         }
    ///         let Some(req) = demux.poll_read() else { break };
    ///         let start = req.offset as usize;
    ///         let mut buf = file[start..start + req.len].to_vec(); // the host's read
    ///         for s in demux.read_samples() {
    ///             packager.encrypt_in_place(s.track, &mut buf[s.range()])?;
    ///         }
    ///         demux.supply_transformed(req.offset, Bytes::from(buf))?;
    ///     }
    ///     packager.finish()
    /// }
    /// ```
    pub fn encrypt_in_place(
        &mut self,
        track: crate::media::TrackId,
        sample: &mut [u8],
    ) -> Result<bool> {
        if self.finished || self.failed {
            return Err(Error::usage(
                "VodPackager: encrypt_in_place after finish or failure",
            ));
        }
        match &mut self.cmaf {
            Some(c) => c.encrypt_in_place(track, sample),
            None => Ok(false),
        }
    }

    /// The formats written.
    pub fn formats(&self) -> VodFormats {
        self.opts.formats
    }

    /// Starts writing `seg`: its CMAF fragments are queued whole, its TS segment is
    /// muxed piece by piece as the host polls.
    fn start(&mut self, seg: Segment) -> Result<()> {
        if let Some(cmaf) = &mut self.cmaf {
            self.summary.bytes += cmaf.write_segment(&seg, &mut self.queue)?;
        }
        if self.opts.formats.contains(VodFormats::HLS_TS) {
            self.begin(seg)
        } else {
            self.summary.segments += 1;
            self.summary.duration_ms += seg.duration.as_millis();
            Ok(())
        }
    }

    /// Starts muxing `seg`: picks or updates the muxer and writes PAT/PMT.
    fn begin(&mut self, mut seg: Segment) -> Result<()> {
        // A new muxer when the track set changes; continuity counters restart, which
        // is fine: such a segment is marked discontinuous.
        let same = matches!(&self.muxer, Some((t, _)) if *t == seg.tracks);
        if !same {
            let reuse = match &mut self.muxer {
                Some((t, m)) if t.iter().map(|x| x.id).eq(seg.tracks.iter().map(|x| x.id)) => {
                    for tr in &seg.tracks {
                        m.update_track(tr)?;
                    }
                    t.clone_from(&seg.tracks);
                    true
                }
                _ => false,
            };
            if !reuse {
                let m = TsMuxer::new(&seg.tracks, self.opts.ts.clone())?;
                self.muxer = Some((seg.tracks.clone(), m));
            }
        }
        if self.tracks.is_empty() {
            self.tracks.clone_from(&seg.tracks);
        }
        let (_, muxer) = self.muxer.as_mut().ok_or(Error::usage("no muxer"))?;
        // The media sequence number this segment gets: its AES-128 IV unless explicit.
        let media_sequence = self.playlist.media_sequence + self.playlist.segments.len() as u64;
        let aes = match &self.aes {
            Some((key, iv)) => Some(SegmentEncryptor::new(
                key,
                &crate::crypto::aes128::segment_iv(*iv, media_sequence),
            )?),
            None => None,
        };
        self.buf.clear();
        muxer.write_tables(&mut self.buf);
        self.writing = Some(Writing {
            name: format!("{}{:05}.ts", self.opts.segment_prefix, seg.sequence),
            sequence: seg.sequence,
            duration: seg.duration,
            discontinuity: seg.discontinuity,
            frames: std::mem::take(&mut seg.frames).into_iter(),
            bytes: 0,
            first: true,
            aes,
        });
        Ok(())
    }

    /// Muxes frames of the segment being written until a piece is full; returns it.
    fn next_piece(&mut self) -> Result<VodOutput> {
        let (w, (_, muxer)) = match (self.writing.as_mut(), self.muxer.as_mut()) {
            (Some(w), Some(m)) => (w, m),
            _ => return Err(Error::usage("no segment is being written")),
        };
        let chunk = self.opts.chunk_size.max(188);
        let mut last = false;
        while self.buf.len() < chunk {
            match w.frames.next() {
                Some(f) => muxer
                    .write_frame(&f, &mut self.buf)
                    .map_err(|e| e.context(format!("segment {}", w.sequence)))?,
                None => {
                    muxer.flush(&mut self.buf)?;
                    last = true;
                    break;
                }
            }
        }
        if !last && w.frames.as_slice().is_empty() {
            muxer.flush(&mut self.buf)?;
            last = true;
        }
        let data = match w.aes.as_mut() {
            None => self.buf.split().freeze(),
            Some(enc) => {
                // The clear piece stays in `buf` (reused); its ciphertext goes out.
                self.enc_buf.reserve(self.buf.len() + 16);
                enc.update(&self.buf, &mut self.enc_buf);
                self.buf.clear();
                if last {
                    if let Some(enc) = w.aes.take() {
                        enc.finish(&mut self.enc_buf);
                    }
                }
                self.enc_buf.split().freeze()
            }
        };
        w.bytes += data.len() as u64;
        let out = VodOutput::SegmentData {
            name: w.name.clone(),
            sequence: w.sequence,
            first: std::mem::replace(&mut w.first, false),
            last,
            duration: w.duration,
            data,
        };
        if last {
            let w = self.writing.take().ok_or(Error::usage("no segment"))?;
            self.meter.record(w.bytes, w.duration);
            let keys = self.ts_key.iter().cloned().collect();
            self.playlist.push_segment(
                MediaSegment::new(w.name, w.duration)
                    .with_discontinuity(w.discontinuity)
                    .with_keys(keys),
            );
            self.summary.segments += 1;
            self.summary.duration_ms += w.duration.as_millis();
        }
        self.summary.bytes += out.len() as u64;
        Ok(out)
    }

    fn step(&mut self) -> Result<Option<VodOutput>> {
        loop {
            match self.queue.pop_front() {
                Some(Queued::Ready(o)) => return Ok(Some(o)),
                Some(Queued::Protect(f)) => {
                    let cmaf = self.cmaf.as_mut().ok_or(Error::usage("no CMAF writer"))?;
                    let o = cmaf.protect(*f)?;
                    self.summary.bytes += o.len() as u64;
                    return Ok(Some(o));
                }
                None => {}
            }
            if self.writing.is_some() {
                return self.next_piece().map(Some);
            }
            if let Some(seg) = self.pending.pop_front() {
                self.start(seg)?;
                continue;
            }
            if self.finished && !self.playlists_made {
                self.playlists_made = true;
                if let Some(key) = self.key_file.take() {
                    self.queue.push_back(Queued::Ready(VodOutput::Key {
                        name: KEY_FILE.to_string(),
                        key,
                    }));
                }
                if self.opts.formats.contains(VodFormats::HLS_TS) {
                    self.make_playlists()?;
                }
                if let Some(cmaf) = &mut self.cmaf {
                    cmaf.manifests(&mut self.queue)?;
                }
                continue;
            }
            return Ok(None);
        }
    }

    /// The TS media and multivariant playlists.
    fn make_playlists(&mut self) -> Result<()> {
        if self.playlist.segments.is_empty() {
            return Err(Error::malformed(
                "no segment could be made: the input has no decodable frames",
            ));
        }
        self.playlist.ended = true;
        let media = self.playlist.write()?;
        let codecs: Vec<String> = self
            .tracks
            .iter()
            .map(|t| t.config.codecs_string())
            .collect();
        let mut v = Variant::new(
            self.opts.media_playlist.clone(),
            self.meter.peak(),
            codecs.join(","),
        );
        v.average_bandwidth = Some(self.meter.average());
        if let Some(video) = self.tracks.iter().find(|t| t.kind == MediaKind::Video) {
            v.resolution = video.config.resolution();
            v.frame_rate = video.config.frame_rate();
        }
        let mut mv = MultivariantPlaylist::new();
        mv.variants.push(v);
        let multi = mv.write()?;
        self.queue.push_back(Queued::Ready(VodOutput::Playlist {
            name: self.opts.media_playlist.clone(),
            text: media,
        }));
        self.queue.push_back(Queued::Ready(VodOutput::Playlist {
            name: self.opts.multivariant_playlist.clone(),
            text: multi,
        }));
        Ok(())
    }

    fn collect(&mut self) -> Result<()> {
        while let Some(seg) = self.segmenter.poll() {
            self.pending.push_back(seg?);
        }
        Ok(())
    }
}

impl Stage for VodPackager {
    type In = Item;
    type Out = VodOutput;

    fn push(&mut self, item: Item) -> Result<()> {
        if self.finished {
            return Err(Error::usage("VodPackager: push after finish"));
        }
        // CENC: frames are encrypted as they arrive (still in cache).
        let item = match &mut self.cmaf {
            Some(c) => c.on_item(item)?,
            None => item,
        };
        self.segmenter.push(item)?;
        self.collect()
    }

    /// The next piece of output. After an error the packager yields nothing more:
    /// the run has failed and no playlist will be made.
    fn poll(&mut self) -> Option<Result<VodOutput>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(o) => o.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.segmenter.finish()?;
        self.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags};
    use crate::pipeline::drain;
    use crate::time::Timescale;

    fn items() -> Vec<Item> {
        let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let scale = Timescale::new(48_000).unwrap();
        let track = TrackInfo::new(2, scale, CodecConfig::Aac(asc));
        let mut v = vec![Item::Event(Event::TrackAdded(track))];
        for i in 0..1000i64 {
            let t = Timestamp::new(i * 1024, scale);
            let payload: Vec<u8> = (0..300 + (i % 50) as usize)
                .map(|k| (k + i as usize) as u8)
                .collect();
            v.push(Item::Frame(
                Frame::new(2, t, t, Bytes::from(payload))
                    .with_flags(FrameFlags::KEYFRAME)
                    .with_duration(Timestamp::new(1024, scale)),
            ));
        }
        v
    }

    #[test]
    fn pieces_concatenate_to_the_whole_segment() {
        // Reference: the segmenter's segments written whole by one muxer.
        let mut seg = Segmenter::new(SegmenterOptions::default()).unwrap();
        let mut whole = Vec::new();
        for it in items() {
            seg.push(it).unwrap();
            whole.extend(drain(&mut seg).unwrap());
        }
        seg.finish().unwrap();
        whole.extend(drain(&mut seg).unwrap());
        let mut mux = TsMuxer::new(&whole[0].tracks, TsMuxerOptions::default()).unwrap();
        let expected: Vec<Bytes> = whole
            .iter()
            .map(|s| {
                let mut b = BytesMut::new();
                mux.write_segment(s, &mut b).unwrap();
                b.freeze()
            })
            .collect();

        let opts = VodPackagerOptions {
            chunk_size: 188 * 7,
            ..VodPackagerOptions::default()
        };
        let mut p = VodPackager::new(opts).unwrap();
        let mut outs = Vec::new();
        for it in items() {
            p.push(it).unwrap();
            outs.extend(drain(&mut p).unwrap());
        }
        p.finish().unwrap();
        outs.extend(drain(&mut p).unwrap());
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut open = false;
        for o in &outs {
            if let VodOutput::SegmentData {
                first, last, data, ..
            } = o
            {
                assert_eq!(*first, !open, "first piece starts a segment");
                if *first {
                    got.push(Vec::new());
                }
                assert!(data.len() % 188 == 0 && !data.is_empty());
                got.last_mut().unwrap().extend_from_slice(data);
                open = !*last;
            }
        }
        assert!(!open);
        assert!(
            outs.len() > expected.len() * 3,
            "segments came in several pieces"
        );
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!(g[..] == e[..], "pieces differ from the whole segment");
        }
        let names: Vec<&str> = outs[outs.len() - 2..].iter().map(|o| o.name()).collect();
        assert_eq!(names, ["media.m3u8", "index.m3u8"]);
        assert_eq!(p.summary().segments, expected.len() as u64);
        assert_eq!(
            p.summary().bytes,
            expected.iter().map(|b| b.len() as u64).sum::<u64>()
        );
    }

    /// Video (25 fps, keyframe every 2 s) and two audio languages, as items.
    fn av_items(secs: i64) -> Vec<Item> {
        use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P as SPS};
        use crate::media::H264Config;
        let h264 =
            H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                .unwrap();
        let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let v = Timescale::new(90_000).unwrap();
        let a = Timescale::new(48_000).unwrap();
        let mut items = vec![Item::Event(Event::TrackAdded(TrackInfo::new(
            1,
            v,
            CodecConfig::H264(h264),
        )))];
        for (id, lang) in [(2, "eng"), (3, "fra")] {
            items.push(Item::Event(Event::TrackAdded(
                TrackInfo::new(id, a, CodecConfig::Aac(asc.clone())).with_language(lang),
            )));
        }
        let mut audio_t = 0i64;
        for i in 0..secs * 25 {
            let t = Timestamp::new(i * 3600, v);
            let mut f = Frame::new(1, t, t, Bytes::from(vec![0, 0, 0, 2, 0x65, i as u8]))
                .with_duration(Timestamp::new(3600, v));
            if i % 50 == 0 {
                f = f.with_flags(FrameFlags::KEYFRAME);
            }
            items.push(Item::Frame(f));
            while audio_t * 1024 * 90_000 < (i + 1) * 3600 * 48_000 {
                for id in [2, 3] {
                    let t = Timestamp::new(audio_t * 1024, a);
                    items.push(Item::Frame(
                        Frame::new(id, t, t, Bytes::from(vec![0x21, id as u8, audio_t as u8]))
                            .with_flags(FrameFlags::KEYFRAME)
                            .with_duration(Timestamp::new(1024, a)),
                    ));
                }
                audio_t += 1;
            }
        }
        items
    }

    fn run(opts: VodPackagerOptions, items: Vec<Item>) -> (Vec<VodOutput>, VodSummary) {
        let mut p = VodPackager::new(opts).unwrap();
        let mut outs = Vec::new();
        for it in items {
            p.push(it).unwrap();
            outs.extend(drain(&mut p).unwrap());
        }
        p.finish().unwrap();
        outs.extend(drain(&mut p).unwrap());
        (outs, p.summary())
    }

    #[test]
    fn all_formats_from_one_segmenter_pass() {
        use crate::package::cmaf::{CmafOptions, CmafPresentation};
        let ts_opts = VodPackagerOptions {
            segmenter: SegmenterOptions {
                target_duration: Timestamp::from_secs(2),
                ..SegmenterOptions::default()
            },
            ..VodPackagerOptions::default()
        };
        let (ts_only, ts_summary) = run(ts_opts.clone(), av_items(8));
        let (all, summary) = run(
            VodPackagerOptions {
                formats: VodFormats::ALL,
                ..ts_opts.clone()
            },
            av_items(8),
        );
        // The TS output is the same with or without the CMAF formats.
        let ts_of = |outs: &[VodOutput]| -> Vec<(String, Bytes)> {
            outs.iter()
                .filter(|o| {
                    matches!(o, VodOutput::SegmentData { .. }) || o.name().ends_with("m3u8")
                })
                .filter(|o| !o.name().contains('/') && o.name() != "cmaf.m3u8")
                .map(|o| (o.name().to_string(), o.data()))
                .collect()
        };
        assert_eq!(ts_of(&ts_only), ts_of(&all));
        assert_eq!(summary.segments, 4);
        assert_eq!(summary.segments, ts_summary.segments);
        assert_eq!(summary.duration_ms, 8000);
        assert_eq!(summary.renditions, 3);
        assert_eq!(ts_summary.renditions, 0);
        let total: u64 = all
            .iter()
            .filter(|o| !matches!(o, VodOutput::Playlist { .. }))
            .map(|o| o.len() as u64)
            .sum();
        assert_eq!(summary.bytes, total);

        // The CMAF files are what a presentation makes of the segmenter's segments.
        let mut seg = Segmenter::new(ts_opts.segmenter.clone()).unwrap();
        let mut cmaf = CmafPresentation::new(CmafOptions::default());
        let mut expected: Vec<(String, Bytes)> = Vec::new();
        let mut feed = |s: Segment, expected: &mut Vec<(String, Bytes)>| {
            for f in cmaf.write_segment(&s, None).unwrap() {
                if f.number == 1 {
                    let init = cmaf.rendition(&f.rendition).unwrap().init_segment();
                    expected.push((format!("{}/init.mp4", f.rendition), init));
                }
                expected.push((format!("{}/{}.m4s", f.rendition, f.number), f.data));
            }
        };
        for it in av_items(8) {
            seg.push(it).unwrap();
            for s in drain(&mut seg).unwrap() {
                feed(s, &mut expected);
            }
        }
        seg.finish().unwrap();
        for s in drain(&mut seg).unwrap() {
            feed(s, &mut expected);
        }
        let got: Vec<(String, Bytes)> = all
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    VodOutput::InitSegment { .. } | VodOutput::Fragment { .. }
                )
            })
            .map(|o| (o.name().to_string(), o.data()))
            .collect();
        assert_eq!(got.len(), 3 + 3 * 4);
        assert!(got == expected, "CMAF files differ");
        // Fragments of a segment come before its TS pieces; manifests last.
        let first_ts = all
            .iter()
            .position(|o| o.name() == "segment00000.ts")
            .unwrap();
        assert_eq!(first_ts, 6, "three inits and three fragments first");
        let names: Vec<&str> = all[all.len() - 7..].iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "media.m3u8",
                "index.m3u8",
                "v1/media.m3u8",
                "a2/media.m3u8",
                "a3/media.m3u8",
                "cmaf.m3u8",
                "manifest.mpd"
            ]
        );
        cmaf.set_ended();
        let mpd = cmaf.static_mpd().unwrap().write().unwrap();
        assert_eq!(all.last().unwrap().data(), Bytes::from(mpd));

        // DASH alone: no HLS playlist, the same fragments.
        let (dash, s) = run(
            VodPackagerOptions {
                formats: VodFormats::DASH,
                ..ts_opts
            },
            av_items(8),
        );
        assert_eq!(s.segments, 4);
        assert_eq!(s.duration_ms, 8000);
        let names: Vec<&str> = dash
            .iter()
            .filter(|o| matches!(o, VodOutput::Playlist { .. }))
            .map(|o| o.name())
            .collect();
        assert_eq!(names, ["manifest.mpd"]);
        assert_eq!(dash.len(), got.len() + 1);
    }

    #[test]
    fn a_changed_init_segment_is_refused_by_cmaf_vod() {
        let mut items = av_items(6);
        // Mid-stream, track 2 turns into mono: a different init segment.
        let at = items.len() / 2;
        let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x88])).unwrap();
        let mono = TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(asc))
            .with_language("eng");
        items.insert(at, Item::Event(Event::TrackChanged(mono)));
        let opts = VodPackagerOptions {
            formats: VodFormats::DASH,
            ..VodPackagerOptions::default()
        };
        let mut p = VodPackager::new(opts).unwrap();
        let mut err = None;
        'feed: for it in items {
            p.push(it).unwrap();
            while let Some(o) = p.poll() {
                if let Err(e) = o {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
        if err.is_none() {
            p.finish().unwrap();
            err = drain(&mut p).err();
        }
        let e = err.expect("a changed init segment is an error");
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{e}");
        assert!(p.poll().is_none());
        assert_eq!(
            VodPackager::new(VodPackagerOptions {
                formats: VodFormats::parse("hls-ts").unwrap().union(VodFormats::DASH),
                ..VodPackagerOptions::default()
            })
            .unwrap()
            .formats(),
            VodFormats::HLS_TS | VodFormats::DASH
        );
    }

    #[test]
    fn no_playlist_without_segments_and_nothing_after_an_error() {
        let mut p = VodPackager::new(VodPackagerOptions::default()).unwrap();
        p.finish().unwrap();
        let e = p.poll().unwrap().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
        assert!(p.poll().is_none());
        assert_eq!(
            p.push(items().remove(0)).unwrap_err().kind(),
            crate::ErrorKind::Usage
        );
    }

    const KEY: ContentKey = ContentKey(*b"vod-package-key!");
    const KID: KeyId = KeyId([0x4b; 16]);

    fn with(formats: VodFormats, e: VodEncryption) -> VodPackagerOptions {
        VodPackagerOptions {
            formats,
            encryption: Some(e),
            ..VodPackagerOptions::default()
        }
    }

    #[test]
    fn encryption_applies_to_its_formats_only() {
        use crate::ErrorKind;
        let cmaf = VodFormats::HLS_FMP4 | VodFormats::DASH;
        let e = |s| VodEncryption::new(s, KID, KEY.clone());
        let refused = [
            (VodFormats::DASH, e(Scheme::Aes128), "hls-ts"),
            (VodFormats::HLS_FMP4, e(Scheme::SampleAes), "hls-ts"),
            (VodFormats::ALL, e(Scheme::Aes128), "cenc or cbcs"),
            (VodFormats::HLS_TS, e(Scheme::Cenc), "aes128 or sample-aes"),
            (VodFormats::ALL, e(Scheme::Cbcs), "aes128 or sample-aes"),
            (
                VodFormats::HLS_TS,
                e(Scheme::Aes128).with_iv(Iv::Iv8([1; 8])),
                "16-byte",
            ),
            (
                VodFormats::HLS_TS,
                e(Scheme::SampleAes).with_iv(Iv::Iv8([1; 8])),
                "16-byte",
            ),
            (cmaf, e(Scheme::Cenc).with_iv(Iv::Iv16([1; 16])), "8-byte"),
            (
                VodFormats::HLS_FMP4,
                e(Scheme::Cenc).with_licence_url("https://l.example/"),
                "DASH",
            ),
            (
                VodFormats::HLS_TS,
                e(Scheme::Aes128).with_licence_url("https://l.example/"),
                "DASH",
            ),
            (
                VodFormats::DASH,
                e(Scheme::Cbcs).with_key_uri("https://k.example/"),
                "HLS",
            ),
            (
                VodFormats::DASH,
                e(Scheme::Cenc).with_licence_url(""),
                "empty",
            ),
            (
                VodFormats::HLS_TS,
                e(Scheme::Aes128).with_key_uri("a\"b"),
                "key URI",
            ),
        ];
        for (formats, enc, says) in refused {
            let what = format!("{} with {formats}", enc.scheme.as_str());
            let err = VodPackager::new(with(formats, enc)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Usage, "{what}: {err}");
            assert!(err.to_string().contains(says), "{what}: {err}");
        }
        let accepted = [
            (
                VodFormats::HLS_TS,
                e(Scheme::Aes128).with_iv(Iv::from_sequence(9)),
            ),
            (VodFormats::HLS_TS, e(Scheme::SampleAes)),
            (cmaf, e(Scheme::Cenc).with_iv(Iv::Iv8([1; 8]))),
            (
                VodFormats::DASH,
                e(Scheme::Cbcs).with_licence_url("https://l/{kid}"),
            ),
            (
                VodFormats::HLS_FMP4,
                e(Scheme::Cbcs).with_key_uri("skd://{kid}"),
            ),
        ];
        for (formats, enc) in accepted {
            let what = format!("{} with {formats}", enc.scheme.as_str());
            VodPackager::new(with(formats, enc)).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        // SAMPLE-AES set on the muxer directly would leave the playlist without a key.
        let mut opts = VodPackagerOptions::default();
        opts.ts.encryption = TsEncryption::sample_aes(KEY, Iv::from_sequence(0));
        let err = VodPackager::new(opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
    }

    #[test]
    fn aes128_pieces_decrypt_to_the_clear_segments() {
        use crate::crypto::aes128::decrypt_segment;
        let base = VodPackagerOptions {
            chunk_size: 188 * 5,
            ..VodPackagerOptions::default()
        };
        let (clear, _) = run(base.clone(), items());
        let enc = VodEncryption::new(Scheme::Aes128, KID, KEY.clone());
        let opts = VodPackagerOptions {
            encryption: Some(enc),
            ..base.clone()
        };
        let (outs, summary) = run(opts, items());
        let segments = |outs: &[VodOutput]| -> Vec<(u64, Vec<u8>)> {
            let mut v: Vec<(u64, Vec<u8>)> = Vec::new();
            for o in outs {
                if let VodOutput::SegmentData {
                    sequence,
                    first,
                    data,
                    ..
                } = o
                {
                    if *first {
                        v.push((*sequence, Vec::new()));
                    }
                    v.last_mut().unwrap().1.extend_from_slice(data);
                }
            }
            v
        };
        let (c, e) = (segments(&clear), segments(&outs));
        assert_eq!(c.len(), e.len());
        assert!(e.len() >= 2);
        let pieces = outs
            .iter()
            .filter(|o| matches!(o, VodOutput::SegmentData { .. }))
            .count();
        assert!(pieces > 4 * e.len(), "segments came in pieces");
        for ((seq, clear), (_, enc)) in c.iter().zip(&e) {
            assert_ne!(&enc[..188], &clear[..188]);
            let mut plain = BytesMut::new();
            decrypt_segment(&KEY, &Iv::from_sequence(*seq), enc, &mut plain).unwrap();
            assert!(plain[..] == clear[..], "segment {seq}");
        }
        assert_eq!(
            summary.bytes,
            e.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
        );
        // The key file, then the playlists: one key for every segment, no IV written.
        let names: Vec<&str> = outs[outs.len() - 3..].iter().map(|o| o.name()).collect();
        assert_eq!(names, [KEY_FILE, "media.m3u8", "index.m3u8"]);
        let key_out = &outs[outs.len() - 3];
        assert_eq!(key_out.data(), Bytes::from_static(b"vod-package-key!"));
        assert!(
            !format!("{key_out:?}").contains("vod-package"),
            "{key_out:?}"
        );
        let media = outs[outs.len() - 2].data();
        let media = std::str::from_utf8(&media).unwrap();
        assert_eq!(media.matches("#EXT-X-KEY:").count(), 1, "{media}");
        assert!(media.contains("#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n"));

        // An explicit IV and key URI: every segment under that IV, no key file.
        let iv = Iv::Iv16([0xa5; 16]);
        let enc = VodEncryption::new(Scheme::Aes128, KID, KEY.clone())
            .with_iv(iv)
            .with_key_uri("https://keys.example/{kid}");
        let (outs, _) = run(
            VodPackagerOptions {
                encryption: Some(enc),
                ..base
            },
            items(),
        );
        assert!(outs.iter().all(|o| !matches!(o, VodOutput::Key { .. })));
        for ((_, clear), (_, enc)) in c.iter().zip(&segments(&outs)) {
            let mut plain = BytesMut::new();
            decrypt_segment(&KEY, &iv, enc, &mut plain).unwrap();
            assert!(plain[..] == clear[..]);
        }
        let media = outs[outs.len() - 2].data();
        let media = std::str::from_utf8(&media).unwrap();
        let line =
            format!("#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/{KID}\",IV={iv}\n");
        assert!(media.contains(&line), "{media}");
    }

    #[test]
    fn encrypt_in_place_and_the_transformed_flag_must_agree() {
        let formats = VodFormats::HLS_FMP4;
        // An AAC track (2) and its frames.
        let items = items();
        let frame = |i: usize| items[i].as_frame().unwrap().clone();
        // Clear: nothing to encrypt in place.
        let mut clear = VodPackager::new(VodPackagerOptions {
            formats,
            ..VodPackagerOptions::default()
        })
        .unwrap();
        assert!(!clear.encrypt_in_place(2, &mut [1, 2, 3]).unwrap());
        let enc = VodEncryption::new(Scheme::Cenc, KID, KEY.clone());
        let mut p = VodPackager::new(with(formats, enc)).unwrap();
        // Before its track is added, another track, empty: untouched.
        let mut bytes = frame(1).data.to_vec();
        assert!(!p.encrypt_in_place(2, &mut bytes).unwrap());
        assert_eq!(bytes, frame(1).data);
        p.push(items[0].clone()).unwrap();
        assert!(!p.encrypt_in_place(9, &mut bytes).unwrap());
        assert!(!p.encrypt_in_place(2, &mut []).unwrap());
        // A frame encrypted where it lies, then pushed flagged: taken as it is.
        let f = frame(1);
        let mut buf = f.data.to_vec();
        assert!(p.encrypt_in_place(2, &mut buf).unwrap());
        assert_ne!(buf, f.data, "encrypted");
        let data = Bytes::from(buf);
        let at = data.as_ptr();
        let mut g = f.clone();
        g.data = data;
        g.flags = g.flags.union(FrameFlags::TRANSFORMED);
        p.push(Item::Frame(g)).unwrap();
        // Flagged, but not encrypted by the packager: refused, not written clear.
        let mut h = frame(2);
        assert_ne!(h.data.as_ptr(), at);
        h.flags = h.flags.union(FrameFlags::TRANSFORMED);
        let e = p.push(Item::Frame(h)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage, "{e}");
    }

    #[test]
    fn cenc_fragments_decrypt_to_the_clear_frames() {
        use crate::container::fmp4::Fmp4Reader;
        let formats = VodFormats::HLS_FMP4 | VodFormats::DASH;
        let (clear, _) = run(
            VodPackagerOptions {
                formats,
                ..VodPackagerOptions::default()
            },
            items(),
        );
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let enc = VodEncryption::new(scheme, KID, KEY.clone())
                .with_licence_url("https://licence.example/ck?kid={kid}");
            let (outs, summary) = run(with(formats, enc), items());
            // Same files, in the same order, the key file before the playlists.
            let names = |o: &[VodOutput]| -> Vec<String> {
                o.iter()
                    .map(|x| x.name().to_string())
                    .filter(|n| n != KEY_FILE)
                    .collect()
            };
            assert_eq!(names(&outs), names(&clear));
            let at = outs.iter().position(|o| o.name() == KEY_FILE).unwrap();
            assert!(matches!(outs[at + 1], VodOutput::Playlist { .. }));
            assert!(outs[..at]
                .iter()
                .all(|o| !matches!(o, VodOutput::Playlist { .. })));
            let media_bytes: u64 = outs
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        VodOutput::InitSegment { .. } | VodOutput::Fragment { .. }
                    )
                })
                .map(|o| o.len() as u64)
                .sum();
            assert_eq!(summary.bytes, media_bytes);
            // The reader decrypts every fragment to the clear fragment's frames.
            let init = outs[0].data();
            let mut reader = Fmp4Reader::new(init).unwrap();
            assert_eq!(Some(reader.encryption(2).unwrap().scheme), scheme.fourcc());
            let mut clear_reader = Fmp4Reader::new(clear[0].data()).unwrap();
            let mut n = 0;
            for (e, c) in outs.iter().zip(&clear).skip(1) {
                let VodOutput::Fragment { payloads, .. } = e else {
                    break;
                };
                // Encrypted as the frames arrived: a new header, the payloads by reference.
                assert!(!payloads.is_empty(), "payloads by reference");
                assert_ne!(e.data(), c.data());
                let got = reader
                    .read_segment_decrypted(e.data(), &[(KID, KEY.clone())])
                    .unwrap();
                let want = clear_reader.read_segment(c.data()).unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((g.dts, g.pts, &g.data), (w.dts, w.pts, &w.data));
                }
                n += 1;
            }
            assert!(n >= 2, "{n} fragments");
            // The manifests carry the key.
            let text = |name: &str| {
                let o = outs.iter().find(|o| o.name() == name).unwrap();
                String::from_utf8(o.data().to_vec()).unwrap()
            };
            let method = if scheme == Scheme::Cenc {
                "SAMPLE-AES-CTR"
            } else {
                "SAMPLE-AES"
            };
            let line =
                format!("#EXT-X-KEY:METHOD={method},URI=\"../key.bin\",KEYFORMAT=\"identity\"\n");
            assert!(
                text("a2/media.m3u8").contains(&line),
                "{}",
                text("a2/media.m3u8")
            );
            let mpd = text("manifest.mpd");
            let value = format!(
                "value=\"{}\" cenc:default_KID=\"{}\"",
                scheme.as_str(),
                KID.uuid()
            );
            assert!(mpd.contains(&value), "{mpd}");
            assert!(mpd.contains(&format!(
                "<dashif:Laurl>https://licence.example/ck?kid={KID}</dashif:Laurl>"
            )));
        }
    }
}
