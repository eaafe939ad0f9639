//! Base64 (RFC 4648 §4, padded) and base64url (§5, unpadded) encoders, for the places
//! protection metadata travels as text: `cenc:pssh` in a DASH MPD, `data:` key URIs in
//! HLS, key ids in Clear Key licences.
//!
//! ```
//! use strom::crypto::base64;
//!
//! assert_eq!(base64::standard(b"foob"), "Zm9vYg==");
//! assert_eq!(base64::url(&[0xfb, 0xff]), "-_8");
//! ```

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(alphabet[(n >> (18 - 6 * i) & 63) as usize]));
        }
        if pad {
            for _ in chars..4 {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with `=` padding (RFC 4648 §4).
pub fn standard(bytes: &[u8]) -> String {
    encode(bytes, STANDARD, true)
}

/// base64url without padding (RFC 4648 §5), as JSON Web Keys use it.
pub fn url(bytes: &[u8]) -> String {
    encode(bytes, URL, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 §10.
        for (clear, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(standard(clear.as_bytes()), coded);
            assert_eq!(url(clear.as_bytes()), coded.trim_end_matches('='));
        }
        assert_eq!(standard(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(url(&[0xfb, 0xff, 0xbf]), "-_-_");
    }
}
