//! Publish authorisation: the host decides who may publish; [`TokenAuthorizer`] is
//! the default decision, an HMAC-SHA256 token with an expiry carried in the stream
//! URL (`rtmp://host/live/NAME?token=T`).
//!
//! A token is `EXPIRY-HEX` where `EXPIRY` is a Unix time in seconds and `HEX` is the
//! lower-case hex HMAC-SHA256, under the configured secret, of `NAME` + `"\n"` +
//! `EXPIRY`. It names one stream and stops working at its expiry.
//!
//! ```
//! use strom::auth::{Denied, TokenAuthorizer};
//! let auth = TokenAuthorizer::new(b"s3cret".to_vec());
//! let t = auth.token("cam1", 1_900_000_000);
//! let query = format!("token={t}");
//! assert_eq!(auth.check("cam1", &query, 1_800_000_000), Ok(()));
//! assert_eq!(auth.check("cam2", &query, 1_800_000_000), Err(Denied::BadSignature));
//! assert_eq!(auth.check("cam1", &query, 1_900_000_001), Err(Denied::Expired));
//! assert_eq!(auth.check("cam1", "", 0), Err(Denied::Missing));
//! ```

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The query has no `token` parameter.
    #[error("no token")]
    Missing,
    /// The token is not `EXPIRY-HEX`.
    #[error("malformed token")]
    Malformed,
    /// The token's expiry is in the past.
    #[error("token expired")]
    Expired,
    /// The signature does not match this stream name and expiry.
    #[error("token signature does not match")]
    BadSignature,
}

/// Checks publish tokens: HMAC-SHA256 over the stream name and an expiry.
#[derive(Clone)]
pub struct TokenAuthorizer {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAuthorizer { secret: <redacted> }")
    }
}

const MAX_TOKEN_LEN: usize = 128;

impl TokenAuthorizer {
    /// An authorizer for tokens made with `secret`.
    pub fn new(secret: Vec<u8>) -> Self {
        TokenAuthorizer { secret }
    }

    fn mac(&self, stream: &str, expires: i64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(stream.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The token that lets `stream` be published until `expires_unix_s`.
    pub fn token(&self, stream: &str, expires_unix_s: i64) -> String {
        let tag = self.mac(stream, expires_unix_s).finalize().into_bytes();
        let mut s = format!("{expires_unix_s}-");
        for b in tag.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Checks the `token` parameter of `query` (`a=b&token=T`, no leading `?`) for
    /// `stream` at `now_unix_s`. The comparison is constant-time.
    pub fn check(&self, stream: &str, query: &str, now_unix_s: i64) -> Result<(), Denied> {
        let token = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .ok_or(Denied::Missing)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(Denied::Malformed);
        }
        let (exp, hex) = token.split_once('-').ok_or(Denied::Malformed)?;
        let expires: i64 = exp.parse().map_err(|_| Denied::Malformed)?;
        if hex.len() != 64 {
            return Err(Denied::Malformed);
        }
        let mut tag = [0u8; 32];
        for (i, out) in tag.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or(Denied::Malformed)?;
            *out = u8::from_str_radix(pair, 16).map_err(|_| Denied::Malformed)?;
        }
        self.mac(stream, expires)
            .verify_slice(&tag)
            .map_err(|_| Denied::BadSignature)?;
        if now_unix_s > expires {
            return Err(Denied::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let a = TokenAuthorizer::new(b"k".to_vec());
        let t = a.token("s", 100);
        assert!(t.starts_with("100-") && t.len() == 4 + 64);
        assert_eq!(a.check("s", &format!("x=1&token={t}"), 100), Ok(()));
        assert_eq!(
            a.check("s", &format!("token={t}"), 101),
            Err(Denied::Expired)
        );
        // Changing the expiry breaks the signature.
        let forged = t.replacen("100-", "999-", 1);
        assert_eq!(
            a.check("s", &format!("token={forged}"), 0),
            Err(Denied::BadSignature)
        );
        let other = TokenAuthorizer::new(b"other".to_vec());
        assert_eq!(
            other.check("s", &format!("token={t}"), 0),
            Err(Denied::BadSignature)
        );
        for bad in [
            "token=",
            "token=abc",
            "token=1-zz",
            "token=x-00",
            &format!("token={}", "1".repeat(500)),
        ] {
            assert_eq!(a.check("s", bad, 0), Err(Denied::Malformed), "{bad}");
        }
        assert_eq!(a.check("s", "tok=1", 0), Err(Denied::Missing));
    }
}
