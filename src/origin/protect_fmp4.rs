//! Just-in-time CENC for the origin's CMAF side: `/live/{stream}/cenc/...` and
//! `/live/{stream}/cbcs/...` serve the stream's DASH MPD, fMP4 HLS playlists, init
//! segments and fragments protected with ISO/IEC 23001-7 scheme `cenc` or `cbcs`, made
//! per request from the clear fragments in the store and the sample tables the live
//! stream kept ([`LiveStream::fragment_table`]): the clear bytes are not parsed again.
//!
//! * `manifest.mpd`: the dynamic MPD with, in every AdaptationSet, the mp4protection
//!   descriptor (`cenc:default_KID`), the W3C Clear Key descriptor (its `pssh` and
//!   `dashif:Laurl` naming the licence endpoint) and one per host system
//!   ([`Protection::with_system`]); segment templates carry the request's token.
//! * `cmaf.m3u8`, `{rendition}/media.m3u8`: fMP4 HLS with `EXT-X-KEY`
//!   `METHOD=SAMPLE-AES` (`cbcs`) or `SAMPLE-AES-CTR` (`cenc`): the identity key at the
//!   key endpoint, and Widevine / PlayReady `KEYFORMAT`s with their `pssh` data as
//!   `data:` URIs when the host signals them.
//! * `{rendition}/init.mp4`: the protected init segment (`encv`/`enca`, `sinf`, `pssh`).
//! * `{rendition}/{n}.m4s`: the protected fragment (`senc`, `saiz`, `saio`).
//!
//! One key per stream serves both schemes: the provider's key for crypto period 0
//! (CENC key rotation, which needs sample groups or new periods, is not done here).
//! `cenc` IVs are derived per sample from the fragment number, the track and the sample
//! index, XORed with a seed from the stream name and its availability start time, so a
//! stream started again under the same key does not repeat IVs. The `cbcs` constant IV
//! is the provider's IV when it gives one, else derived from the key id.

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use super::live::LiveStream;
use super::protect::{ok, with_suffix, Protection, KEYS_PREFIX, LICENCE_PREFIX};
use super::router::{
    text, Origin, Route, FRAGMENT_TYPE, INIT_CACHE, MPD_TYPE, PLAYLIST_CACHE, PLAYLIST_TYPE,
    SEGMENT_CACHE,
};
use super::store::{CmafKey, SegmentStore};
use super::Response;
use crate::container::fmp4::{
    protect_fragment, write_protected_init_segment, ProtectionInfo, PsshBox,
};
use crate::crypto::key::StreamKey;
use crate::crypto::{base64, Scheme, PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID};
use crate::error::Result;
use crate::media::MediaKind;
use crate::package::dash::ContentProtection;
use crate::package::hls::{Key, KeyMethod, KEYFORMAT_PLAYREADY, KEYFORMAT_WIDEVINE};

/// The key and the protection of `stream` under `scheme` (`cenc` or `cbcs`).
fn fmp4_protection(
    p: &Protection,
    stream: &str,
    scheme: Scheme,
    epoch: i64,
) -> Result<(StreamKey, ProtectionInfo)> {
    let k = p.keys().key(stream, 0)?;
    let info = if scheme == Scheme::Cbcs {
        let iv = k.iv.map(|iv| iv.to_block()).unwrap_or_else(|| {
            let d = Sha256::new()
                .chain_update(b"strom cbcs constant iv")
                .chain_update(k.kid.as_bytes())
                .finalize();
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&d[..16]);
            iv
        });
        ProtectionInfo::cbcs(k.kid, iv)
    } else {
        let d = Sha256::new()
            .chain_update(b"strom cenc iv seed")
            .chain_update(stream.as_bytes())
            .chain_update(epoch.to_be_bytes())
            .finalize();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&d[..8]);
        ProtectionInfo::cenc(k.kid).with_iv_seed(u64::from_be_bytes(seed))
    };
    let mut info = info.with_pssh(PsshBox::clearkey(vec![k.kid]));
    for system in p.systems() {
        info = info.with_pssh(system.clone());
    }
    Ok((k, info))
}

/// The `EXT-X-KEY` set of fMP4 HLS under `scheme`: a `data:` URI key per signalled
/// Widevine or PlayReady system, and the identity key at the key endpoint.
fn hls_keys(p: &Protection, stream: &str, scheme: Scheme, k: &StreamKey) -> Result<Vec<Key>> {
    let method = if scheme == Scheme::Cbcs {
        KeyMethod::SampleAes
    } else {
        KeyMethod::SampleAesCtr
    };
    let mut keys = Vec::new();
    for system in p.systems() {
        if system.system_id == WIDEVINE_SYSTEM_ID {
            let mut b = BytesMut::new();
            system.write(&mut b)?;
            keys.push(
                Key::new(
                    method,
                    format!("data:text/plain;base64,{}", base64::standard(&b)),
                )
                .with_keyformat(KEYFORMAT_WIDEVINE, &[1]),
            );
        } else if system.system_id == PLAYREADY_SYSTEM_ID {
            keys.push(
                Key::new(
                    method,
                    format!(
                        "data:text/plain;charset=UTF-16;base64,{}",
                        base64::standard(&system.data)
                    ),
                )
                .with_keyformat(KEYFORMAT_PLAYREADY, &[1]),
            );
        }
    }
    keys.push(Key::new(
        method,
        format!("{KEYS_PREFIX}{stream}/{}.key", k.kid),
    ));
    Ok(keys)
}

impl<S: SegmentStore> Origin<S> {
    /// A `cenc`/`cbcs` request for the CMAF object `route` of `stream` (see the module
    /// docs). `None` when the object does not exist (404); `Some(Err)` when it cannot be
    /// protected (500).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_fmp4_protected(
        &self,
        p: &Protection,
        scheme: Scheme,
        stream: &str,
        live: &LiveStream,
        route: Route<'_>,
        suffix: &str,
        head: bool,
        now: i64,
    ) -> Option<Result<Response>> {
        let epoch = live.availability_start_time()?;
        let pres = live.cmaf()?;
        match route {
            Route::Mpd(_) => {
                let mut mpd = live.mpd_model(now)?;
                Some((|| {
                    let (k, info) = fmp4_protection(p, stream, scheme, epoch)?;
                    let licence = format!(
                        "{}{LICENCE_PREFIX}{stream}{suffix}",
                        p.base_url().unwrap_or("")
                    );
                    let mut descriptors = vec![ContentProtection::mp4_protection(scheme, k.kid)?];
                    for (i, pssh) in info.pssh.iter().enumerate() {
                        let d = ContentProtection::for_system(pssh)?;
                        // The first box is Clear Key's: its licence server is ours.
                        descriptors.push(if i == 0 {
                            d.with_license_url(licence.clone())
                        } else {
                            d
                        });
                    }
                    for set in mpd.periods.iter_mut().flat_map(|p| &mut p.adaptation_sets) {
                        set.content_protection = descriptors.clone();
                        for rep in &mut set.representations {
                            let t = &mut rep.segment_template;
                            t.initialization.push_str(suffix);
                            t.media.push_str(suffix);
                        }
                    }
                    Ok(ok(
                        MPD_TYPE,
                        PLAYLIST_CACHE,
                        Bytes::from(mpd.write()?),
                        head,
                    ))
                })())
            }
            Route::CmafMultivariant(_) => live.cmaf_multivariant_playlist_bytes().map(|t| {
                let t = with_suffix(&String::from_utf8_lossy(&t), suffix);
                Ok(ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head))
            }),
            Route::RenditionMedia(_, r) => {
                let rendition = pres.rendition(r)?;
                let mut pl = rendition.media_playlist().clone();
                if pl.segments.is_empty() {
                    return None;
                }
                Some((|| {
                    let (k, _) = fmp4_protection(p, stream, scheme, epoch)?;
                    let keys = hls_keys(p, stream, scheme, &k)?;
                    for seg in &mut pl.segments {
                        seg.keys = keys.clone();
                    }
                    let t = with_suffix(&pl.write()?, suffix);
                    Ok(ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head))
                })())
            }
            Route::Init(_, r) => {
                let track = pres.rendition(r)?.track();
                // Only renditions whose clear init segment is out are served.
                self.store
                    .get_cmaf(stream, CmafKey::Init { rendition: r })?;
                Some((|| {
                    let (_, info) = fmp4_protection(p, stream, scheme, epoch)?;
                    let mut out = BytesMut::with_capacity(1024);
                    write_protected_init_segment(track, &info, &mut out)?;
                    let ctype = if track.kind == MediaKind::Audio {
                        "audio/mp4"
                    } else {
                        "video/mp4"
                    };
                    Ok(ok(ctype, INIT_CACHE, out.freeze(), head))
                })())
            }
            Route::Fragment(_, r, number) => {
                let track = pres.rendition(r)?.track();
                let table = live.fragment_table(r, number)?;
                let clear = self.store.get_cmaf(
                    stream,
                    CmafKey::Fragment {
                        rendition: r,
                        number,
                    },
                )?;
                Some((|| {
                    let (k, info) = fmp4_protection(p, stream, scheme, epoch)?;
                    let mut out =
                        BytesMut::with_capacity(clear.len() + 256 + 64 * table.samples.len());
                    protect_fragment(&clear, &table, track, &info, &k.key, &mut out)?;
                    Ok(ok(FRAGMENT_TYPE, SEGMENT_CACHE, out.freeze(), head))
                })())
            }
            _ => Some(Ok(text(404, "not served with this scheme\n", head))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::auth::TokenAuthorizer;
    use crate::bitstream::aac::build_asc;
    use crate::container::fmp4::Fmp4Reader;
    use crate::crypto::key::{HmacKeyProvider, KeyProvider};
    use crate::crypto::{ContentKey, Scheme};
    use crate::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, TrackInfo};
    use crate::origin::{MemoryStore, Origin, Protection, Request};
    use crate::time::{Timescale, Timestamp};

    const NOW: i64 = 1_800_000_000_000;

    /// An audio-only live stream (CMAF on) with 30 s of AAC frames whose payloads
    /// differ, behind tokens.
    fn origin() -> (Origin<MemoryStore>, TokenAuthorizer, HmacKeyProvider) {
        let keys = HmacKeyProvider::new(b"a key derivation secret of some length").unwrap();
        let tokens = TokenAuthorizer::new(b"playback".to_vec());
        let mut o = Origin::new(MemoryStore::default(), Default::default()).with_protection(
            Protection::new(Arc::new(keys.clone()))
                .with_tokens(tokens.clone())
                .with_base_url("http://127.0.0.1:8080/"),
        );
        o.publish("cam", NOW).unwrap();
        let scale = Timescale::new(48_000).unwrap();
        let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
        let track = TrackInfo::new(2, scale, CodecConfig::Aac(aac));
        o.push("cam", Event::TrackAdded(track).into(), NOW).unwrap();
        for i in 0..30 * 48_000 / 1024 {
            let t = Timestamp::new(i * 1024, scale);
            let payload: Vec<u8> = (0..37 + (i % 50) as usize)
                .map(|j| (i as usize * 7 + j) as u8)
                .collect();
            let f = Frame::new(2, t, t, Bytes::from(payload)).with_flags(FrameFlags::KEYFRAME);
            o.push("cam", f.into(), NOW + t.as_millis()).unwrap();
        }
        (o, tokens, keys)
    }

    fn body(o: &Origin<MemoryStore>, path: &str, now: i64) -> String {
        let r = o.handle(&Request::get(path), now);
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    /// Both schemes: the MPD signals the scheme, the key id and the licence URL (with
    /// the token); every listed fragment, protected per request, decrypts with the
    /// stream's key to the clear fragment's samples, and its payloads differ from them.
    #[test]
    fn cenc_and_cbcs_fragments_decrypt_to_the_clear_ones() {
        let (o, tokens, keys) = origin();
        let now = NOW + 31_000;
        let token = tokens.token("cam", now / 1000 + 60);
        let k = keys.key("cam", 0).unwrap();
        let clear_mpd = body(&o, "/live/cam/manifest.mpd", now);
        assert!(!clear_mpd.contains("ContentProtection"));
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let base = format!("/live/cam/{}", scheme.as_str());
            assert_eq!(
                o.handle(&Request::get(format!("{base}/manifest.mpd")), now)
                    .status,
                403
            );
            // HEAD: headers only, refusals included.
            let h = o.handle(
                &Request::new(crate::origin::Method::Head, format!("{base}/manifest.mpd")),
                now,
            );
            assert_eq!((h.status, h.body.len()), (403, 0));
            let mpd = body(&o, &format!("{base}/manifest.mpd?token={token}"), now);
            assert!(
                mpd.contains(&format!(
                    "schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"{}\" cenc:default_KID=\"{}\"",
                    scheme.as_str(),
                    k.kid.uuid()
                )),
                "{mpd}"
            );
            assert!(
                mpd.contains(&format!(
                    "<dashif:Laurl>http://127.0.0.1:8080/licence/cam?token={token}</dashif:Laurl>"
                )),
                "{mpd}"
            );
            assert!(
                mpd.contains(&format!("$Number$.m4s?token={token}\"")),
                "{mpd}"
            );
            let init = o.handle(
                &Request::get(format!("{base}/a2/init.mp4?token={token}")),
                now,
            );
            assert_eq!(init.status, 200, "{:?}", init.body);
            let clear_init = o.handle(&Request::get("/live/cam/a2/init.mp4"), now).body;
            let mut reader = Fmp4Reader::new(init.body.clone()).unwrap();
            let enc = reader.encryption(2).expect("protected track");
            assert_eq!(enc.key_id, k.kid);
            let mut clear_reader = Fmp4Reader::new(clear_init).unwrap();
            let pl = body(&o, &format!("{base}/a2/media.m3u8?token={token}"), now);
            let method = if scheme == Scheme::Cbcs {
                "SAMPLE-AES"
            } else {
                "SAMPLE-AES-CTR"
            };
            assert!(
                pl.contains(&format!(
                    "#EXT-X-KEY:METHOD={method},URI=\"/keys/cam/{}.key?token={token}\"",
                    k.kid
                )),
                "{pl}"
            );
            assert!(
                pl.contains(&format!("URI=\"init.mp4?token={token}\"")),
                "{pl}"
            );
            let numbers: Vec<u64> = pl
                .lines()
                .filter_map(|l| l.strip_suffix(&format!(".m4s?token={token}")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(numbers.len() >= 3, "{pl}");
            let wrong = [(k.kid, ContentKey([0; 16]))];
            for n in numbers {
                let p = o.handle(
                    &Request::get(format!("{base}/a2/{n}.m4s?token={token}")),
                    now,
                );
                assert_eq!(p.status, 200);
                let c = o.handle(&Request::get(format!("/live/cam/a2/{n}.m4s")), now);
                let clear = clear_reader.read_segment(c.body.clone()).unwrap();
                let mut wrong_reader = Fmp4Reader::new(init.body.clone()).unwrap();
                let garbled = wrong_reader
                    .read_segment_decrypted(p.body.clone(), &wrong)
                    .unwrap();
                let plain = reader
                    .read_segment_decrypted(p.body.clone(), &[(k.kid, k.key.clone())])
                    .unwrap();
                assert_eq!(plain.len(), clear.len());
                let mut changed = 0;
                for ((a, b), g) in plain.iter().zip(&clear).zip(&garbled) {
                    assert_eq!((a.dts, a.pts, &a.data), (b.dts, b.pts, &b.data), "{n}");
                    changed += usize::from(g.data != b.data);
                }
                // cbcs leaves an audio sample's partial last block clear: samples
                // shorter than 16 bytes would stay clear; these are all longer.
                assert_eq!(changed, clear.len(), "{scheme:?} fragment {n}");
            }
        }
        // The same request gives the same bytes (deterministic IVs).
        let a = o.handle(
            &Request::get(format!("/live/cam/cenc/a2/3.m4s?token={token}")),
            now,
        );
        let b = o.handle(
            &Request::get(format!("/live/cam/cenc/a2/3.m4s?token={token}")),
            now,
        );
        assert_eq!(a.body, b.body);
        // Gone from the window, or never written.
        assert_eq!(
            o.handle(
                &Request::get(format!("/live/cam/cenc/a2/999.m4s?token={token}")),
                now
            )
            .status,
            404
        );
    }
}
