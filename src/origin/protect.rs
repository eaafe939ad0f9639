//! Just-in-time protection in the [`Origin`]: the key endpoint of HLS
//! (`METHOD=AES-128` / `SAMPLE-AES` key URIs), the W3C Clear Key licence endpoint of
//! DASH and fMP4 HLS, and playback tokens.
//!
//! Content is stored clear once; the scheme is chosen per request and keys come from the
//! host's [`KeyProvider`] ([`Protection::new`]). With [`Protection::with_tokens`] every
//! key and licence request must carry a valid playback token (`?token=EXPIRY-HMAC`, the
//! [`TokenAuthorizer`] format, naming the stream); without one the answer is 403.
//!
//! Routes:
//! * `GET /keys/{stream}/{kid}.key?token=T`: the 16 key bytes of `kid` (32 hex
//!   digits), `application/octet-stream`, `Cache-Control: private, no-store`; 404
//!   when the provider has no such key for the stream.
//! * `POST /licence/{stream}?token=T` with a Clear Key licence request (EME §9.1.3):
//!   the JSON Web Key set of the requested key ids the provider knows for the stream
//!   (`application/json`); 400 for a malformed request, 404 when it knows none.
//! * `/live/{stream}/aes128/index.m3u8`, `.../aes128/media.m3u8` and
//!   `.../aes128/{sequence}.ts`: the stream's MPEG-TS HLS with every segment
//!   encrypted on the way out (HLS `METHOD=AES-128`, RFC 8216bis §4.4.4.4): the media
//!   playlist gets an `EXT-X-KEY` per crypto period pointing at the key endpoint, and
//!   the segments stored clear are encrypted per request under the period's key and
//!   IV (the provider's, else the media sequence number). Protected routes need the
//!   token too, and every URI the origin writes in them carries the request's token.
//!
//! * `/live/{stream}/sample-aes/index.m3u8`, `.../media.m3u8`, `.../{sequence}.ts`:
//!   the same as HLS `METHOD=SAMPLE-AES` MPEG-TS, each segment muxed again per request
//!   from the stored CMAF fragments of that number and their kept sample tables
//!   (H.264 NAL units and AAC frames encrypted as Apple's sample encryption specifies).
//!
//! `cenc` and `cbcs` paths answer 404 until served.
//!
//! ```
//! use std::sync::Arc;
//! use strom::auth::TokenAuthorizer;
//! use strom::crypto::key::{StaticKeyProvider, StreamKey};
//! use strom::crypto::{ContentKey, KeyId};
//! use strom::origin::{MemoryStore, Origin, Protection, Request};
//!
//! let kid = KeyId([0x11; 16]);
//! let keys = StaticKeyProvider::new(StreamKey::new(kid, ContentKey([0x22; 16])));
//! let tokens = TokenAuthorizer::new(b"playback secret".to_vec());
//! let origin = Origin::new(MemoryStore::default(), Default::default())
//!     .with_protection(Protection::new(Arc::new(keys)).with_tokens(tokens.clone()));
//! let now_ms = 1_800_000_000_000;
//! let url = format!("/keys/cam1/{kid}.key");
//! assert_eq!(origin.handle(&Request::get(url.clone()), now_ms).status, 403);
//! let token = tokens.token("cam1", 1_800_000_600);
//! let r = origin.handle(&Request::get(format!("{url}?token={token}")), now_ms);
//! assert_eq!(r.status, 200);
//! assert_eq!(&r.body[..], &[0x22; 16]);
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use bytes::BytesMut;

use super::clearkey::{licence_response, parse_licence_request};
use super::http::{Method, Request, Response};
use super::router::{
    route, text, valid_stream_name, Origin, Route, PLAYLIST_CACHE, PLAYLIST_TYPE, SEGMENT_CACHE,
    SEGMENT_TYPE,
};
use super::store::{CmafKey, SegmentStore};
use crate::auth::TokenAuthorizer;
use crate::container::fmp4::PsshBox;
use crate::container::ts::{write_sample_aes_segment, TsMuxerOptions};
use crate::crypto::aes128::{encrypt_segment, encrypted_len, segment_iv};
use crate::crypto::key::{KeyProvider, KeyRotation, StreamKey};
use crate::crypto::{Iv, KeyId, Scheme};
use crate::error::Error;
use crate::media::{Frame, FrameFlags};
use crate::package::hls::{Key, KeyMethod};
use crate::package::Segment;
use crate::time::{Rounding, Timescale, Timestamp};
use crate::ErrorKind;

/// Path prefix of the key endpoint.
pub const KEYS_PREFIX: &str = "/keys/";
/// Path prefix of the Clear Key licence endpoint.
pub const LICENCE_PREFIX: &str = "/licence/";

/// How an [`Origin`](super::Origin) protects content: where keys come from, how often
/// they rotate, and whether key and licence requests need a playback token.
#[derive(Clone)]
pub struct Protection {
    keys: Arc<dyn KeyProvider + Send + Sync>,
    tokens: Option<TokenAuthorizer>,
    rotation: KeyRotation,
    systems: Vec<PsshBox>,
    base_url: Option<String>,
}

impl fmt::Debug for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protection")
            .field("tokens", &self.tokens)
            .field("rotation", &self.rotation)
            .field("systems", &self.systems.len())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// Keys from `keys`, no token needed, no rotation.
    pub fn new(keys: Arc<dyn KeyProvider + Send + Sync>) -> Self {
        Protection {
            keys,
            tokens: None,
            rotation: KeyRotation::default(),
            systems: Vec::new(),
            base_url: None,
        }
    }

    /// Key and licence requests (and, once served, protected playlists and segments)
    /// need a token `tokens` accepts for the stream.
    #[must_use]
    pub fn with_tokens(mut self, tokens: TokenAuthorizer) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// A new key every so many segments.
    #[must_use]
    pub fn with_rotation(mut self, rotation: KeyRotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Signals one more DRM system in `cenc`/`cbcs` content: its `pssh` box (a Widevine
    /// `WidevinePsshData`, a PlayReady Object... from the host's DRM vendor) goes into
    /// every protected init segment, a `ContentProtection` with it into the MPD, and an
    /// `EXT-X-KEY` with it as a `data:` URI into the fMP4 HLS playlists (Widevine and
    /// PlayReady `KEYFORMAT`s). W3C Clear Key is always signalled.
    #[must_use]
    pub fn with_system(mut self, pssh: PsshBox) -> Self {
        self.systems.push(pssh);
        self
    }

    /// The origin's public address (`https://origin.example`, no trailing slash), for
    /// the absolute licence URL the MPD names (EME licence requests are not resolved
    /// against the MPD's URL, so a relative one would go to the page's host). Default:
    /// none, and the MPD names `/licence/{stream}` relative to the host.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        let mut b: String = base_url.into();
        while b.ends_with('/') {
            b.pop();
        }
        self.base_url = Some(b);
        self
    }

    /// The DRM systems signalled besides Clear Key ([`with_system`](Self::with_system)).
    pub fn systems(&self) -> &[PsshBox] {
        &self.systems
    }

    /// The public address set by [`with_base_url`](Self::with_base_url).
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// The key provider.
    pub fn keys(&self) -> &(dyn KeyProvider + Send + Sync) {
        self.keys.as_ref()
    }

    /// The key rotation.
    pub fn rotation(&self) -> &KeyRotation {
        &self.rotation
    }

    /// Whether `query` (without `?`) carries a token valid for `stream` at `now`
    /// (Unix ms); always true without tokens. `Err` is the 403 answer.
    pub(super) fn authorize(&self, stream: &str, query: &str, now: i64) -> Result<(), Response> {
        let Some(t) = &self.tokens else {
            return Ok(());
        };
        t.check(stream, query, now.div_euclid(1000))
            .map_err(|e| plain(403, format!("playback token refused: {e}\n")))
    }

    /// The answer to a request under [`KEYS_PREFIX`] or [`LICENCE_PREFIX`], or `None`
    /// for any other path.
    pub(super) fn handle(&self, req: &Request, now: i64) -> Option<Response> {
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        if let Some(rest) = path.strip_prefix(KEYS_PREFIX) {
            return Some(self.key(req, rest, query, now));
        }
        let stream = path.strip_prefix(LICENCE_PREFIX)?;
        Some(self.licence(req, stream, query, now))
    }

    fn key(&self, req: &Request, rest: &str, query: &str, now: i64) -> Response {
        let head = match req.method {
            Method::Get => false,
            Method::Head => true,
            _ => return plain(405, "method not allowed\n").with_header("allow", "GET, HEAD"),
        };
        let Some((stream, file)) = rest.split_once('/') else {
            return plain(404, "not found\n");
        };
        let kid = file
            .strip_suffix(".key")
            .filter(|h| h.len() == 32)
            .and_then(|h| KeyId::from_hex(h).ok());
        let (true, Some(kid)) = (valid_stream_name(stream), kid) else {
            return plain(400, "bad request\n");
        };
        if let Err(r) = self.authorize(stream, query, now) {
            return r;
        }
        match self.keys.key_by_id(stream, &kid) {
            Ok(Some(k)) => {
                let body = Bytes::copy_from_slice(k.as_bytes());
                let r = Response::new(200)
                    .with_header("access-control-allow-origin", "*")
                    .with_header("content-type", "application/octet-stream")
                    .with_header("content-length", "16")
                    .with_header("cache-control", "private, no-store");
                Response {
                    body: if head { Bytes::new() } else { body },
                    ..r
                }
            }
            Ok(None) => plain(404, "unknown key\n"),
            Err(e) => plain(500, format!("key provider: {e}\n")),
        }
    }

    fn licence(&self, req: &Request, stream: &str, query: &str, now: i64) -> Response {
        if req.method != Method::Post {
            return plain(405, "method not allowed\n").with_header("allow", "POST, OPTIONS");
        }
        if !valid_stream_name(stream) {
            return plain(400, "bad request\n");
        }
        if let Err(r) = self.authorize(stream, query, now) {
            return r;
        }
        let kids = match parse_licence_request(&req.body) {
            Ok(k) => k,
            Err(e) if e.kind() == ErrorKind::Limit => {
                return plain(413, format!("licence request: {e}\n"))
            }
            Err(e) => return plain(400, format!("licence request: {e}\n")),
        };
        let mut found = Vec::with_capacity(kids.len());
        for kid in kids {
            match self.keys.key_by_id(stream, &kid) {
                Ok(Some(k)) => found.push((kid, k)),
                Ok(None) => {}
                Err(e) => return plain(500, format!("key provider: {e}\n")),
            }
        }
        if found.is_empty() {
            return plain(404, "no key for these key ids\n");
        }
        let body = licence_response(&found);
        let r = Response::new(200)
            .with_header("access-control-allow-origin", "*")
            .with_header("content-type", "application/json")
            .with_header("content-length", body.len().to_string())
            .with_header("cache-control", "private, no-store");
        Response {
            body: Bytes::from(body),
            ..r
        }
    }
}

/// The `token` parameter of `query` as a query string to append to URIs (`?token=T`),
/// or empty without one.
fn token_suffix(query: &str) -> String {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(|t| format!("?token={t}"))
        .unwrap_or_default()
}

/// `playlist` with `suffix` appended to every URI line and every `URI="..."`
/// attribute (the origin's own playlists: URIs carry no query of their own).
pub(super) fn with_suffix(playlist: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        return playlist.to_string();
    }
    let mut out = String::with_capacity(playlist.len() + 64 * suffix.len());
    for line in playlist.lines() {
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(line);
            out.push_str(suffix);
        } else if let Some(at) = line
            .find("URI=\"")
            .filter(|&at| !line[at + 5..].starts_with("data:"))
        {
            let start = at + 5;
            match line[start..].find('"') {
                Some(len) => {
                    out.push_str(&line[..start + len]);
                    out.push_str(suffix);
                    out.push_str(&line[start + len..]);
                }
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A 200 answer.
pub(super) fn ok(ctype: &str, cache: &str, body: Bytes, head: bool) -> Response {
    let r = Response::new(200)
        .with_header("access-control-allow-origin", "*")
        .with_header("content-type", ctype)
        .with_header("content-length", body.len().to_string())
        .with_header("cache-control", cache);
    Response {
        body: if head { Bytes::new() } else { body },
        ..r
    }
}

impl<S: SegmentStore> Origin<S> {
    /// A request for `/live/{stream}/{scheme}/...` (see the module docs), or `None`
    /// when the path does not name a scheme.
    pub(super) fn handle_protected(
        &self,
        p: &Protection,
        req: &Request,
        now: i64,
    ) -> Option<Response> {
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        let mut parts = path.strip_prefix("/live/")?.splitn(3, '/');
        let stream = parts.next()?;
        let scheme = Scheme::parse(parts.next()?)?;
        let file = parts.next()?;
        let head = match req.method {
            Method::Get => false,
            Method::Head => true,
            _ => {
                return Some(
                    text(405, "method not allowed\n", false)
                        .with_header("allow", "GET, HEAD, OPTIONS"),
                )
            }
        };
        // The clear path names the same object; it also validates the request target.
        let clear_path = format!("/live/{stream}/{file}");
        let clear = match route(&clear_path) {
            Ok(Some(r)) => r,
            Ok(None) => return Some(text(404, "not found\n", head)),
            Err(()) => return Some(text(400, "bad request\n", head)),
        };
        if let Err(r) = p.authorize(stream, query, now) {
            return Some(r);
        }
        let Some(live) = self.streams.get(stream) else {
            return Some(text(404, "unknown stream\n", head));
        };
        let suffix = token_suffix(query);
        let answer = match (scheme, clear) {
            (Scheme::Aes128 | Scheme::SampleAes, Route::Multivariant(_)) => {
                live.multivariant_playlist_bytes().map(|t| {
                    let t = with_suffix(&String::from_utf8_lossy(&t), &suffix);
                    Ok(ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head))
                })
            }
            (Scheme::Aes128 | Scheme::SampleAes, Route::Media(_)) => live
                .media_playlist_bytes()
                .map(|_| {
                    let method = if scheme == Scheme::Aes128 {
                        KeyMethod::Aes128
                    } else {
                        KeyMethod::SampleAes
                    };
                    keyed_playlist(p, method, stream, live.playlist(), &suffix)
                })
                .map(|r| r.map(|t| ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head))),
            (Scheme::Aes128, Route::Segment(_, seq)) => self.store.get(stream, seq).map(|clear| {
                let k = p.keys().key(stream, p.rotation().period(seq))?;
                let mut out = BytesMut::with_capacity(encrypted_len(clear.len()));
                encrypt_segment(&k.key, &segment_iv(k.iv, seq), &clear, &mut out)?;
                Ok(ok(SEGMENT_TYPE, SEGMENT_CACHE, out.freeze(), head))
            }),
            (Scheme::SampleAes, Route::Segment(_, seq)) => {
                self.segment_from_fragments(stream, live, seq).map(|seg| {
                    let seg = seg?;
                    let k = p.keys().key(stream, p.rotation().period(seq))?;
                    let mut out = BytesMut::with_capacity(seg.payload_len() * 11 / 10 + 4096);
                    write_sample_aes_segment(
                        &seg,
                        &k.key,
                        &sample_aes_iv(p, &k, seq),
                        &TsMuxerOptions::default(),
                        &mut out,
                    )?;
                    Ok(ok(SEGMENT_TYPE, SEGMENT_CACHE, out.freeze(), head))
                })
            }
            (Scheme::Cenc | Scheme::Cbcs, route) => {
                self.handle_fmp4_protected(p, scheme, stream, live, route, &suffix, head, now)
            }
            _ => return Some(text(404, "not served with this scheme\n", head)),
        };
        Some(match answer {
            Some(Ok(r)) => r,
            Some(Err(e)) => plain(500, format!("protection: {e}\n")),
            None => text(404, "not found\n", head),
        })
    }
}

impl<S: SegmentStore> Origin<S> {
    /// Segment `seq` of `stream` as frames again, from the stored CMAF fragments of
    /// that number and their kept sample tables (no parsing): payloads are slices of
    /// the stored bytes, times and key flags come from the tables. `None` when no
    /// rendition has that fragment (or CMAF is off).
    fn segment_from_fragments(
        &self,
        stream: &str,
        live: &super::LiveStream,
        seq: u64,
    ) -> Option<crate::Result<Segment>> {
        let pres = live.cmaf()?;
        let mut tracks = Vec::new();
        let mut frames = Vec::new();
        for r in pres.renditions() {
            let Some(table) = live.fragment_table(r.name(), seq) else {
                continue;
            };
            let key = CmafKey::Fragment {
                rendition: r.name(),
                number: seq,
            };
            let data = self.store.get_cmaf(stream, key)?;
            let t = r.track();
            for s in &table.samples {
                let end = s.offset.checked_add(s.size as usize)?;
                if end > data.len() {
                    return Some(Err(Error::malformed("sample outside its stored fragment")
                        .context(format!("{stream} {}/{seq}", r.name()))));
                }
                let dts = i64::try_from(s.dts).ok()?;
                let mut f = Frame::new(
                    t.id,
                    Timestamp::new(dts, t.timescale),
                    Timestamp::new(dts + i64::from(s.composition_offset), t.timescale),
                    data.slice(s.offset..end),
                )
                .with_duration(Timestamp::new(i64::from(s.duration), t.timescale));
                if s.keyframe {
                    f = f.with_flags(FrameFlags::KEYFRAME);
                }
                frames.push(f);
            }
            tracks.push(t.clone());
        }
        if tracks.is_empty() {
            return None;
        }
        // One decode order across the tracks, as the segmenter hands frames out.
        frames.sort_by_key(|f| f.dts.rescale(Timescale::MPEG, Rounding::Down).ticks());
        let start = frames
            .iter()
            .map(|f| f.pts)
            .min_by_key(|t| t.rescale(Timescale::MPEG, Rounding::Down).ticks())?;
        Some(Ok(Segment {
            sequence: seq,
            start,
            duration: Timestamp::new(0, start.scale()),
            discontinuity: false,
            tracks,
            frames,
            events: Vec::new(),
        }))
    }
}

/// The IV of SAMPLE-AES segment `seq` under `k`: the provider's, else the media
/// sequence number of the first segment of its crypto period, one IV per key. The
/// playlist always writes it: hls.js does not fall back to the media sequence number
/// for SAMPLE-AES, and demuxers that finish a segment's last access unit while reading
/// the next segment (ffmpeg) decrypt it right only when both share the IV.
fn sample_aes_iv(p: &Protection, k: &StreamKey, seq: u64) -> Iv {
    k.iv.unwrap_or_else(|| {
        let period = p.rotation().period(seq);
        Iv::from_sequence(p.rotation().period_start(period))
    })
}

/// The live media playlist `clear` with keys of `method`: one `EXT-X-KEY` per crypto
/// period, its URI the key endpoint, its IV the provider's when it gives one.
fn keyed_playlist(
    p: &Protection,
    method: KeyMethod,
    stream: &str,
    clear: &crate::package::hls::MediaPlaylist,
    suffix: &str,
) -> crate::Result<String> {
    let mut pl = clear.clone();
    let mut current: Option<(u64, StreamKey)> = None;
    for (i, seg) in pl.segments.iter_mut().enumerate() {
        let seq = clear.media_sequence + i as u64;
        let period = p.rotation().period(seq);
        let k = match &current {
            Some((at, k)) if *at == period => k.clone(),
            _ => {
                let k = p.keys().key(stream, period)?;
                current = Some((period, k.clone()));
                k
            }
        };
        let mut key = Key::new(
            method,
            format!("{KEYS_PREFIX}{stream}/{}.key{suffix}", k.kid),
        );
        if method == KeyMethod::SampleAes {
            key = key.with_iv(sample_aes_iv(p, &k, seq));
        } else if let Some(iv) = k.iv {
            key = key.with_iv(iv);
        }
        seg.keys = vec![key];
        seg.uri.push_str(suffix);
    }
    pl.write()
}

/// A short `text/plain` answer with CORS.
fn plain(status: u16, body: impl Into<String>) -> Response {
    let body: String = body.into();
    let r = Response::new(status)
        .with_header("access-control-allow-origin", "*")
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_header("content-length", body.len().to_string())
        .with_header("cache-control", "no-cache");
    Response {
        body: Bytes::from(body),
        ..r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key::HmacKeyProvider;
    use crate::origin::clearkey::base64url;
    use crate::origin::{MemoryStore, Origin};

    const NOW: i64 = 1_800_000_000_000;

    fn origin() -> (Origin<MemoryStore>, TokenAuthorizer, HmacKeyProvider) {
        let keys = HmacKeyProvider::new(b"a key derivation secret of some length").unwrap();
        let tokens = TokenAuthorizer::new(b"playback".to_vec());
        let o = Origin::new(MemoryStore::default(), Default::default()).with_protection(
            Protection::new(Arc::new(keys.clone()))
                .with_tokens(tokens.clone())
                .with_rotation(KeyRotation::every(5)),
        );
        (o, tokens, keys)
    }

    #[test]
    fn key_endpoint_needs_a_token_for_the_stream() {
        let (o, tokens, keys) = origin();
        let k = keys.key("cam", 3).unwrap();
        let url = format!("/keys/cam/{}.key", k.kid);
        let good = tokens.token("cam", NOW / 1000 + 60);
        let get = |path: String| o.handle(&Request::get(path), NOW);
        let r = get(format!("{url}?token={good}"));
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], k.key.as_bytes());
        assert_eq!(r.header("cache-control"), Some("private, no-store"));
        // No token, another stream's token, an expired one, a forged one: 403.
        assert_eq!(get(url.clone()).status, 403);
        let other = tokens.token("other", NOW / 1000 + 60);
        assert_eq!(get(format!("{url}?token={other}")).status, 403);
        let expired = tokens.token("cam", NOW / 1000 - 1);
        assert_eq!(get(format!("{url}?token={expired}")).status, 403);
        let forged = format!("{}0", &good[..good.len() - 1]);
        assert_eq!(get(format!("{url}?token={forged}")).status, 403);
        // A KID of another stream is unknown here; malformed paths are 400.
        let foreign = keys.key("other", 3).unwrap().kid;
        assert_eq!(
            get(format!("/keys/cam/{foreign}.key?token={good}")).status,
            404
        );
        assert_eq!(get(format!("/keys/cam/xyz.key?token={good}")).status, 400);
        assert_eq!(get(format!("/keys/c%2e/{}.key", k.kid)).status, 400);
        let head = o.handle(&Request::head(format!("{url}?token={good}")), NOW);
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert_eq!(
            o.handle(&Request::post(format!("{url}?token={good}"), ""), NOW)
                .status,
            405
        );
    }

    #[test]
    fn clear_key_licence_answers_known_kids_only() {
        let (o, tokens, keys) = origin();
        let a = keys.key("cam", 0).unwrap();
        let b = keys.key("cam", 1).unwrap();
        let foreign = keys.key("other", 0).unwrap();
        let good = tokens.token("cam", NOW / 1000 + 60);
        let body = format!(
            r#"{{"kids":["{}","{}","{}"],"type":"temporary"}}"#,
            base64url(a.kid.as_bytes()),
            base64url(foreign.kid.as_bytes()),
            base64url(b.kid.as_bytes())
        );
        let post = |q: &str, body: &str| {
            o.handle(
                &Request::post(format!("/licence/cam{q}"), body.to_string()),
                NOW,
            )
        };
        let r = post(&format!("?token={good}"), &body);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            licence_response(&[(a.kid, a.key.clone()), (b.kid, b.key.clone())])
        );
        assert_eq!(post("", &body).status, 403);
        assert_eq!(post(&format!("?token={good}"), "{").status, 400);
        let only_foreign = format!(r#"{{"kids":["{}"]}}"#, base64url(foreign.kid.as_bytes()));
        assert_eq!(post(&format!("?token={good}"), &only_foreign).status, 404);
        let big = " ".repeat(super::super::clearkey::MAX_REQUEST_LEN + 1);
        assert_eq!(post(&format!("?token={good}"), &big).status, 413);
        assert_eq!(o.handle(&Request::get("/licence/cam"), NOW).status, 405);
    }

    #[test]
    fn aes128_hls_encrypts_the_stored_segments_per_period() {
        use crate::bitstream::aac::build_asc;
        use crate::crypto::aes128::decrypt_segment;
        use crate::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, TrackInfo};
        use crate::time::{Timescale, Timestamp};
        let (mut o, tokens, keys) = origin();
        o.publish("cam", NOW).unwrap();
        let scale = Timescale::new(48_000).unwrap();
        let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
        let track = TrackInfo::new(2, scale, CodecConfig::Aac(aac));
        o.push("cam", Event::TrackAdded(track).into(), NOW).unwrap();
        for i in 0..30 * 48_000 / 1024 {
            let t = Timestamp::new(i * 1024, scale);
            let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
                .with_flags(FrameFlags::KEYFRAME);
            o.push("cam", f.into(), NOW + t.as_millis()).unwrap();
        }
        let now = NOW + 30_000;
        let token = tokens.token("cam", now / 1000 + 60);
        let get = |path: &str| o.handle(&Request::get(path), now);
        assert_eq!(get("/live/cam/aes128/media.m3u8").status, 403);
        let pl = get(&format!("/live/cam/aes128/media.m3u8?token={token}"));
        assert_eq!(pl.status, 200);
        let pl = std::str::from_utf8(&pl.body).unwrap().to_string();
        let clear = std::str::from_utf8(&get("/live/cam/media.m3u8").body)
            .unwrap()
            .to_string();
        assert!(!clear.contains("EXT-X-KEY"), "{clear}");
        // Rotation every 5 segments: a key line per period, each URI with the token.
        let key_lines: Vec<&str> = pl.lines().filter(|l| l.starts_with("#EXT-X-KEY")).collect();
        let seqs: Vec<u64> = pl
            .lines()
            .filter_map(|l| l.strip_suffix(&format!(".ts?token={token}")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(seqs.len() >= 6, "{pl}");
        let periods: std::collections::BTreeSet<u64> = seqs.iter().map(|s| s / 5).collect();
        assert_eq!(key_lines.len(), periods.len(), "{pl}");
        for (line, period) in key_lines.iter().zip(&periods) {
            let kid = keys.key("cam", *period).unwrap().kid;
            assert_eq!(
                *line,
                format!("#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/cam/{kid}.key?token={token}\"")
            );
        }
        for seq in seqs {
            let enc = get(&format!("/live/cam/aes128/{seq}.ts?token={token}"));
            assert_eq!(enc.status, 200);
            let plain_ts = o.store().get("cam", seq).unwrap();
            assert_ne!(enc.body, plain_ts);
            let k = keys.key("cam", seq / 5).unwrap();
            let mut out = BytesMut::new();
            decrypt_segment(
                &k.key,
                &crate::crypto::Iv::from_sequence(seq),
                &enc.body,
                &mut out,
            )
            .unwrap();
            assert_eq!(out, plain_ts, "segment {seq}");
        }
        let mv = get(&format!("/live/cam/aes128/index.m3u8?token={token}"));
        let mv = std::str::from_utf8(&mv.body).unwrap();
        assert!(
            mv.contains(&format!("\nmedia.m3u8?token={token}\n")),
            "{mv}"
        );
        // Unknown objects, schemes that do not apply, bad paths.
        assert_eq!(
            get(&format!("/live/cam/cenc/manifest.mpd?token={token}")).status,
            200
        );
        assert_eq!(
            get(&format!("/live/cam/cenc/index.m3u8?token={token}")).status,
            404
        );
        assert_eq!(
            get(&format!("/live/cam/aes128/manifest.mpd?token={token}")).status,
            404
        );
        assert_eq!(
            get(&format!("/live/cam/aes128/999.ts?token={token}")).status,
            404
        );
        assert_eq!(
            get(&format!("/live/cam/aes128/../x.ts?token={token}")).status,
            400
        );
        assert_eq!(
            get(&format!("/live/nope/aes128/0.ts?token={token}")).status,
            403
        );
    }

    #[test]
    fn without_tokens_keys_are_open_and_other_paths_are_untouched() {
        let keys = HmacKeyProvider::new(b"a key derivation secret of some length").unwrap();
        let k = keys.key("cam", 0).unwrap();
        let o = Origin::new(MemoryStore::default(), Default::default())
            .with_protection(Protection::new(Arc::new(keys)));
        let r = o.handle(&Request::get(format!("/keys/cam/{}.key", k.kid)), NOW);
        assert_eq!(r.status, 200);
        // Without protection the endpoints do not exist.
        let plain = Origin::new(MemoryStore::default(), Default::default());
        let r = plain.handle(&Request::get(format!("/keys/cam/{}.key", k.kid)), NOW);
        assert_eq!(r.status, 404);
        assert_eq!(
            plain
                .handle(&Request::post("/licence/cam", "{}"), NOW)
                .status,
            405
        );
    }
}
