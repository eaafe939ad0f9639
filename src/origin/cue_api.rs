//! The operators' cue API: `POST /live/{stream}/cue` schedules an ad break on a live
//! stream, as an SCTE-35 cue from the publisher would.

use std::fmt::Write as _;

use bytes::Bytes;

use super::http::{Method, Request, Response};
use super::live::CueRequest;
use super::router::{cors, route, text, Route};
use super::{Origin, SegmentStore};
use crate::media::{CueKind, SpliceCue};
use crate::time::Timescale;

/// Last path component of the cue API: `/live/{stream}/cue`.
pub const CUE_NAME: &str = "cue";
/// Largest cue request body read, in bytes.
pub const MAX_CUE_BODY: usize = 4096;

impl<S: SegmentStore> Origin<S> {
    /// Answers one HTTP request at `now`, including those that change state: the
    /// cue API (`POST /live/{stream}/cue?key=KEY` with `duration`, `id`, `start`,
    /// `kind` in the query or the body, as a form or a flat JSON object; see
    /// [`CueRequest::parse`]), and server-side ad insertion (per-session playlists
    /// `/live/{stream}/ssai/{session}/...` and creatives' segments `/ads/...`, see
    /// [`Origin::set_ad_decider`]). Every other request goes to
    /// [`handle_counting`](Self::handle_counting).
    ///
    /// Cue answers: 202 with a JSON description of the scheduled cue; 400 for a bad
    /// request; 403 when [`OriginOptions::cue_key`](super::OriginOptions::cue_key) is
    /// unset or the key is wrong; 404 for an unknown stream; 409 when the stream has
    /// no publisher or no frame yet; 413 for a body over [`MAX_CUE_BODY`].
    pub fn handle_mut(&mut self, req: &Request, now: i64) -> Response {
        match (&req.method, route(&req.path)) {
            (Method::Post, Ok(Some(Route::Cue(name)))) => {
                let name = name.to_string();
                return self.handle_cue(&name, req, now);
            }
            (Method::Get | Method::Head, Ok(Some(Route::Ssai(name, session, file)))) => {
                let (name, session, file) =
                    (name.to_string(), session.to_string(), file.to_string());
                return self.handle_ssai(&name, &session, &file, req, now);
            }
            (Method::Get | Method::Head, Ok(Some(Route::Ad(creative, file)))) => {
                let (creative, file) = (creative.to_string(), file.to_string());
                return self.handle_ad(&creative, &file, req);
            }
            (Method::Get | Method::Head, Ok(Some(Route::AdCmaf(creative, rendition, file)))) => {
                let head = req.method == Method::Head;
                return self.handle_ad_cmaf(creative, rendition, file, head);
            }
            _ => {}
        }
        self.handle_counting(req, now)
    }

    fn handle_cue(&mut self, name: &str, req: &Request, now: i64) -> Response {
        let query = req.path.split_once('?').map_or("", |(_, q)| q);
        let key_ok = match &self.options().cue_key {
            None => false,
            Some(k) => query
                .split('&')
                .filter_map(|p| p.strip_prefix("key="))
                .any(|v| constant_time_eq(v.as_bytes(), k.as_bytes())),
        };
        if !key_ok {
            return text(403, "cue API: forbidden\n", false);
        }
        if req.body.len() > MAX_CUE_BODY {
            return text(413, "cue request too large\n", false);
        }
        let Ok(body) = std::str::from_utf8(&req.body) else {
            return text(400, "cue request is not UTF-8\n", false);
        };
        let parsed = CueRequest::parse(query).and_then(|q| {
            if body.trim().is_empty() {
                return Ok(q);
            }
            let b = CueRequest::parse(body)?;
            Ok(CueRequest {
                id: b.id.or(q.id),
                duration_ms: b.duration_ms.or(q.duration_ms),
                start: b.start.or(q.start),
                kind: if b.kind == CueKind::In {
                    b.kind
                } else {
                    q.kind
                },
            })
        });
        let cue_req = match parsed {
            Ok(r) => r,
            Err(_) => return text(400, "bad cue request\n", false),
        };
        if !self.streams.contains_key(name) {
            return text(404, "unknown stream\n", false);
        }
        match self.cue(name, &cue_req, now) {
            Ok(cue) => {
                let body = cue_json(name, &cue);
                let r = cors(Response::new(202))
                    .with_header("content-type", "application/json")
                    .with_header("content-length", body.len().to_string())
                    .with_header("cache-control", "no-store");
                Response {
                    body: Bytes::from(body),
                    ..r
                }
            }
            Err(e) if e.kind() == crate::ErrorKind::Usage => {
                text(409, "stream has no publisher or no frame yet\n", false)
            }
            Err(_) => text(400, "cue refused\n", false),
        }
    }
}

/// `{"stream":..,"id":..,"kind":"out","at_90k":..,"duration_ms":..,"scte35":"base64"}`.
fn cue_json(name: &str, cue: &SpliceCue) -> String {
    let mut s = String::with_capacity(160);
    let kind = match cue.kind {
        CueKind::Out => "out",
        CueKind::In => "in",
        _ => "other",
    };
    // `name` passed `valid_stream_name`: no character needs escaping.
    let _ = write!(
        s,
        "{{\"stream\":\"{name}\",\"id\":{},\"kind\":\"{kind}\",\"at_90k\":{}",
        cue.id,
        cue.at.ticks_in(Timescale::MPEG)
    );
    if let Some(d) = cue.duration {
        let _ = write!(s, ",\"duration_ms\":{}", d.as_millis());
    }
    let _ = write!(
        s,
        ",\"scte35\":\"{}\"}}",
        crate::crypto::base64::standard(&cue.raw)
    );
    s
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
