//! W3C Clear Key licence messages (Encrypted Media Extensions §9.1.3 "License Request
//! Format" and §9.1.4 "License Format"): the JSON a Clear Key CDM posts and the JSON
//! key set the licence server answers with.
//!
//! A request is `{"kids":["<base64url KID>",...],"type":"temporary"}`; the answer is
//! a JSON Web Key set `{"keys":[{"kty":"oct","kid":"<base64url>","k":"<base64url>"}],
//! "type":"temporary"}`. Key ids and keys are base64url without padding (RFC 7515
//! Appendix C); decoding also accepts padding and the standard alphabet, which some
//! players send.
//!
//! ```
//! use strom::crypto::{ContentKey, KeyId};
//! use strom::origin::clearkey::{licence_response, parse_licence_request};
//! let req = br#"{"kids":["q7onHovPVSu9LoakNKml2Q"],"type":"temporary"}"#;
//! let kids = parse_licence_request(req).unwrap();
//! assert_eq!(kids[0], KeyId::from_hex("abba271e8bcf552bbd2e86a434a9a5d9").unwrap());
//! let key = ContentKey::from_hex("69eaa802a6763af979e8d1940fb88392").unwrap();
//! let json = licence_response(&[(kids[0], key)]);
//! assert_eq!(
//!     json,
//!     r#"{"keys":[{"kty":"oct","kid":"q7onHovPVSu9LoakNKml2Q","k":"aeqoAqZ2Ovl56NGUD7iDkg"}],"type":"temporary"}"#
//! );
//! ```

use crate::crypto::{ContentKey, KeyId};
use crate::error::{Error, Result};

/// Largest licence request body accepted, in bytes.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// Most key ids one request may ask for.
pub const MAX_KIDS: usize = 64;

/// base64url without padding (RFC 4648 §5), as JSON Web Keys use it.
pub fn base64url(bytes: &[u8]) -> String {
    crate::crypto::base64::url(bytes)
}

/// Decodes base64url or standard base64, with or without `=` padding, into exactly
/// 16 bytes (a key id). `None` for anything else.
fn decode16(s: &str) -> Option<[u8; 16]> {
    let s = s.trim_end_matches('=');
    if s.len() != 22 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut n = 0usize;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // 22 characters carry 132 bits: 128 of key id and 4 that must be zero.
    (n == 16 && acc == 0).then_some(out)
}

/// A cursor over the request JSON (RFC 8259), enough for the licence request: objects,
/// arrays, strings (escapes are refused: key ids never need them), numbers, literals.
struct Json<'a> {
    s: &'a [u8],
    pos: usize,
    depth: u32,
}

const MAX_DEPTH: u32 = 16;

impl<'a> Json<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn err(&self, msg: &'static str) -> Error {
        Error::malformed(msg).context(format!("licence request at byte {}", self.pos))
    }

    fn string(&mut self) -> Result<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match self.s.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => return Err(self.err("escapes are not expected here")),
                Some(c) if *c < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.pos])
            .map_err(|_| self.err("string is not UTF-8"))?;
        self.pos += 1;
        Ok(text)
    }

    /// Skips any value.
    fn skip(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(|j, _| j.skip()),
            Some(b'[') => self.array(|j| j.skip()),
            Some(b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                while let Some(c) = self.s.get(self.pos) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    if !c.is_ascii_alphanumeric() && !matches!(c, b'-' | b'+' | b'.') {
                        return Err(self.err("bad literal"));
                    }
                    self.pos += 1;
                }
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn nest(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::limit("licence request nested too deep"));
        }
        Ok(())
    }

    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Result<()>) -> Result<()> {
        self.nest()?;
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            member(self, name)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected , or }")),
            }
        }
    }

    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.nest()?;
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected , or ]")),
            }
        }
    }
}

/// The key ids a Clear Key licence request asks for (EME §9.1.3), in order, without
/// duplicates.
///
/// Errors: [`Error::malformed`] for a body that is not such a JSON object, has no
/// `kids` array, or a key id that is not 16 bytes of base64url; [`Error::limit`]
/// beyond [`MAX_REQUEST_LEN`] bytes or [`MAX_KIDS`] key ids.
pub fn parse_licence_request(body: &[u8]) -> Result<Vec<KeyId>> {
    if body.len() > MAX_REQUEST_LEN {
        return Err(Error::limit("licence request too long"));
    }
    let mut j = Json {
        s: body,
        pos: 0,
        depth: 0,
    };
    let mut kids: Option<Vec<KeyId>> = None;
    j.object(|j, name| {
        if name != "kids" {
            return j.skip();
        }
        let mut list = Vec::new();
        j.array(|j| {
            let s = j.string()?;
            let kid = decode16(s).ok_or_else(|| j.err("key id is not 16 bytes of base64url"))?;
            if list.len() >= MAX_KIDS {
                return Err(Error::limit("too many key ids in a licence request"));
            }
            if !list.contains(&KeyId(kid)) {
                list.push(KeyId(kid));
            }
            Ok(())
        })?;
        kids = Some(list);
        Ok(())
    })?;
    if j.peek().is_some() {
        return Err(j.err("trailing bytes after the request"));
    }
    kids.ok_or_else(|| Error::malformed("licence request without kids"))
}

/// The Clear Key licence (EME §9.1.4): a JSON Web Key set with one `oct` key per
/// `(kid, key)`, `"type":"temporary"`.
pub fn licence_response(keys: &[(KeyId, ContentKey)]) -> String {
    let mut out = String::with_capacity(32 + keys.len() * 80);
    out.push_str("{\"keys\":[");
    for (i, (kid, key)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"kty\":\"oct\",\"kid\":\"");
        out.push_str(&base64url(kid.as_bytes()));
        out.push_str("\",\"k\":\"");
        out.push_str(&base64url(key.as_bytes()));
        out.push_str("\"}");
    }
    out.push_str("],\"type\":\"temporary\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10, in the URL-safe alphabet without padding.
        for (clear, coded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(clear.as_bytes()), coded);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        let all: Vec<u8> = (0..16).map(|i| i * 17).collect();
        let coded = base64url(&all);
        assert_eq!(decode16(&coded).unwrap().to_vec(), all);
        assert_eq!(decode16(&format!("{coded}==")).unwrap().to_vec(), all);
        let standard = coded.replace('-', "+").replace('_', "/");
        assert_eq!(decode16(&standard).unwrap().to_vec(), all);
        // Non-zero trailing bits, wrong lengths, bad characters.
        assert_eq!(decode16("AAAAAAAAAAAAAAAAAAAAAB"), None);
        assert_eq!(decode16("AAAA"), None);
        assert_eq!(decode16("AAAAAAAAAAAAAAAAAAAA*A"), None);
    }

    #[test]
    fn requests_parse_and_refuse() {
        let kid = KeyId([0xab; 16]);
        let b = base64url(kid.as_bytes());
        let ok = format!(
            " {{ \"kids\" : [ \"{b}\", \"{b}\" ] , \"type\":\"temporary\", \"x\":[1,{{\"y\":null}},true] }} "
        );
        assert_eq!(parse_licence_request(ok.as_bytes()).unwrap(), vec![kid]);
        assert_eq!(
            parse_licence_request(br#"{"kids":[]}"#).unwrap(),
            Vec::<KeyId>::new()
        );
        for bad in [
            &b""[..],
            b"[]",
            b"{}",
            br#"{"kids":"x"}"#,
            br#"{"kids":["AAAA"]}"#,
            br#"{"kids":["AAAAAAAAAAAAAAAAAAAAAA"]} x"#,
            br#"{"kids":["AAAAAAAAAAAAAAAAAAAAAA"]"#,
            br#"{"kids":["AA\u0041"]}"#,
            br#"{"kids" "x"}"#,
        ] {
            let e = parse_licence_request(bad).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::Malformed,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            parse_licence_request(deep.as_bytes()).unwrap_err().kind(),
            ErrorKind::Limit
        );
        let many: Vec<String> = (0..=MAX_KIDS as u8)
            .map(|i| format!("\"{}\"", base64url(&[i; 16])))
            .collect();
        let many = format!("{{\"kids\":[{}]}}", many.join(","));
        assert_eq!(
            parse_licence_request(many.as_bytes()).unwrap_err().kind(),
            ErrorKind::Limit
        );
        assert_eq!(
            parse_licence_request(&vec![b' '; MAX_REQUEST_LEN + 1])
                .unwrap_err()
                .kind(),
            ErrorKind::Limit
        );
    }
}
