//! RTMP handshake, server side: C0/C1/C2 in, S0/S1/S2 out.
//!
//! Implements the plain handshake of the Adobe RTMP specification (1.0, §5.2: S2 echoes
//! C1) and the digest ("complex") handshake that Flash Player, Flash-era encoders and
//! FFmpeg's RTMP client use when C1 carries a non-zero version: C1 holds an
//! HMAC-SHA256 digest (key "Genuine Adobe Flash Player 001") at an offset given by
//! scheme 0 (bytes 8..12) or scheme 1 (bytes 772..776); the server answers with a
//! digest in S1 (key "Genuine Adobe Flash Media Server 001") and an S2 signed with a
//! key derived from the client's digest. FFmpeg validates that S2 when it plays.
//!
//! No randomness source is read: the "random" filler is a deterministic function of a
//! seed the host chooses ([`Handshake::new`]); it carries no security.

use bytes::{BufMut, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Error, Result};

/// Size of C1, C2, S1 and S2 (§5.2.3).
pub const PACKET_SIZE: usize = 1536;
/// The only protocol version this server speaks (C0/S0, §5.2.2).
pub const RTMP_VERSION: u8 = 3;
const DIGEST_LEN: usize = 32;

/// Client key: 30 bytes of text then 32 constant bytes. Digests in C1 use the first 30.
const FP_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
/// Server key: 36 bytes of text then the same 32 constant bytes. S1 digests use the
/// first 36; the S2 signing key is derived with all 68.
const FMS_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";

/// Which handshake the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeKind {
    /// Plain handshake: S2 echoes C1 (RTMP 1.0 §5.2).
    Plain,
    /// Digest handshake with the digest found at this scheme (0: offset base 8,
    /// 1: offset base 772).
    Digest {
        /// Scheme 0 or 1.
        scheme: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for C0 + C1.
    C0C1,
    /// S0/S1/S2 sent, waiting for C2.
    C2,
    /// Done.
    Done,
}

/// Server-side handshake state machine.
///
/// Drive it with [`Handshake::handle_input`]: it consumes what it needs from the
/// front of the buffer, appends S0+S1+S2 to `out` once C0+C1 are in, and returns `true`
/// once C2 has been consumed; bytes after C2 stay in the buffer (the first chunks).
#[derive(Debug, Clone)]
pub struct Handshake {
    state: State,
    kind: Option<HandshakeKind>,
    seed: u64,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // Any key length is valid for HMAC, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        mac.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Offset of the 32-byte digest in a 1536-byte packet for `scheme` (0 or 1).
fn digest_offset(packet: &[u8], scheme: u8) -> Option<usize> {
    let base = if scheme == 0 { 8 } else { 772 };
    let b = packet.get(base..base + 4)?;
    let sum: usize = b.iter().map(|&x| x as usize).sum();
    let off = sum % 728 + base + 4;
    (off + DIGEST_LEN <= PACKET_SIZE).then_some(off)
}

/// The digest over `packet` without its 32 digest bytes at `off`.
fn packet_digest(packet: &[u8], off: usize, key: &[u8]) -> Option<[u8; 32]> {
    let before = packet.get(..off)?;
    let after = packet.get(off + DIGEST_LEN..)?;
    Some(hmac_sha256(key, &[before, after]))
}

/// Finds a valid client digest in C1: `(scheme, offset)`.
fn find_client_digest(c1: &[u8]) -> Option<(u8, usize)> {
    for scheme in [0u8, 1] {
        let off = digest_offset(c1, scheme)?;
        let expect = packet_digest(c1, off, &FP_KEY[..30])?;
        if c1.get(off..off + DIGEST_LEN) == Some(&expect[..]) {
            return Some((scheme, off));
        }
    }
    None
}

fn fill_pseudo_random(buf: &mut [u8], seed: &mut u64) {
    for b in buf {
        // xorshift64*: filler only.
        let mut x = *seed | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *seed = x;
        *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
    }
}

impl Handshake {
    /// A handshake waiting for C0+C1. `seed` varies the filler bytes of S1/S2.
    pub fn new(seed: u64) -> Self {
        Handshake {
            state: State::C0C1,
            kind: None,
            seed,
        }
    }

    /// True once C2 has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The handshake the client chose, known once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Consumes handshake bytes from the front of `input`, appending replies to `out`.
    ///
    /// Returns `Ok(true)` when the handshake is complete (C2 consumed), `Ok(false)` when
    /// more bytes are needed. Errors: [`crate::ErrorKind::Unsupported`] when C0 asks for
    /// a version other than 3 (6 is RTMPE, encrypted). After completion it consumes
    /// nothing.
    pub fn handle_input(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::C0C1 => {
                    let Some(&c0) = input.first() else {
                        return Ok(false);
                    };
                    if c0 != RTMP_VERSION {
                        return Err(if c0 == 6 || c0 == 8 {
                            Error::unsupported("RTMPE (encrypted RTMP) handshake").at_offset(0)
                        } else {
                            Error::malformed("RTMP handshake: C0 version is not 3").at_offset(0)
                        });
                    }
                    if input.len() < 1 + PACKET_SIZE {
                        return Ok(false);
                    }
                    let c0c1 = input.split_to(1 + PACKET_SIZE);
                    let c1 = &c0c1[1..];
                    self.respond(c1, out);
                    self.state = State::C2;
                }
                State::C2 => {
                    if input.len() < PACKET_SIZE {
                        return Ok(false);
                    }
                    // C2 is not validated: clients differ in what they echo, and
                    // nothing in the session depends on it.
                    let _ = input.split_to(PACKET_SIZE);
                    self.state = State::Done;
                }
            }
        }
    }

    fn respond(&mut self, c1: &[u8], out: &mut BytesMut) {
        let mut seed = self.seed
            ^ u64::from_be_bytes([c1[0], c1[1], c1[2], c1[3], c1[8], c1[9], c1[10], c1[11]]);
        let client_version = &c1[4..8];
        let digest = if client_version != [0, 0, 0, 0] {
            find_client_digest(c1)
        } else {
            None
        };
        out.reserve(1 + 2 * PACKET_SIZE);
        out.put_u8(RTMP_VERSION);
        match digest {
            None => {
                self.kind = Some(HandshakeKind::Plain);
                // S1: time 0, zero, filler (§5.2.3).
                let mut s1 = [0u8; PACKET_SIZE];
                fill_pseudo_random(&mut s1[8..], &mut seed);
                out.put_slice(&s1);
                // S2: echo of C1 (§5.2.4).
                out.put_slice(c1);
            }
            Some((scheme, c_off)) => {
                self.kind = Some(HandshakeKind::Digest { scheme });
                let mut s1 = [0u8; PACKET_SIZE];
                // Server version 4.5.0.1: FFmpeg checks the major byte is >= 3.
                s1[4..8].copy_from_slice(&[4, 5, 0, 1]);
                fill_pseudo_random(&mut s1[8..], &mut seed);
                if let Some(off) = digest_offset(&s1, scheme) {
                    if let Some(d) = packet_digest(&s1, off, &FMS_KEY[..36]) {
                        s1[off..off + DIGEST_LEN].copy_from_slice(&d);
                    }
                }
                out.put_slice(&s1);
                let mut s2 = [0u8; PACKET_SIZE];
                fill_pseudo_random(&mut s2[..PACKET_SIZE - DIGEST_LEN], &mut seed);
                let key = hmac_sha256(&FMS_KEY, &[&c1[c_off..c_off + DIGEST_LEN]]);
                let sig = hmac_sha256(&key, &[&s2[..PACKET_SIZE - DIGEST_LEN]]);
                s2[PACKET_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
                out.put_slice(&s2);
            }
        }
        self.seed = seed;
    }
}

/// Builds a client C1 carrying a valid digest at `scheme` (tests and fuzzing).
#[cfg(test)]
pub(crate) fn client_c1_with_digest(scheme: u8) -> [u8; PACKET_SIZE] {
    let mut c1 = [0u8; PACKET_SIZE];
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    let mut seed = 7;
    fill_pseudo_random(&mut c1[8..], &mut seed);
    let off = digest_offset(&c1, scheme).unwrap_or(12);
    let d = packet_digest(&c1, off, &FP_KEY[..30]).unwrap_or([0; 32]);
    c1[off..off + DIGEST_LEN].copy_from_slice(&d);
    c1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn run(c1: &[u8]) -> (Handshake, BytesMut) {
        let mut hs = Handshake::new(42);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_slice(c1);
        let mut out = BytesMut::new();
        assert!(!hs.handle_input(&mut input, &mut out).unwrap());
        assert_eq!(out.len(), 1 + 2 * PACKET_SIZE);
        (hs, out)
    }

    #[test]
    fn plain_handshake_echoes_c1_and_keeps_trailing_bytes() {
        let mut c1 = [0u8; PACKET_SIZE];
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = i as u8;
        }
        let (mut hs, out) = run(&c1);
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
        assert_eq!(out[0], 3);
        assert_eq!(&out[1 + PACKET_SIZE..], &c1[..]);
        // C2 arrives in two pieces followed by chunk bytes.
        let mut input = BytesMut::from(&[0u8; 1000][..]);
        let mut out = BytesMut::new();
        assert!(!hs.handle_input(&mut input, &mut out).unwrap());
        assert_eq!(input.len(), 1000);
        input.put_slice(&[0u8; 536]);
        input.put_slice(&[0xAA, 0xBB]);
        assert!(hs.handle_input(&mut input, &mut out).unwrap());
        assert!(hs.is_done());
        assert_eq!(&input[..], &[0xAA, 0xBB]);
        assert!(out.is_empty());
    }

    #[test]
    fn digest_handshake_both_schemes_validate_like_ffmpeg() {
        for scheme in [0u8, 1] {
            let c1 = client_c1_with_digest(scheme);
            let (hs, out) = run(&c1);
            assert_eq!(hs.kind(), Some(HandshakeKind::Digest { scheme }));
            let s1 = &out[1..1 + PACKET_SIZE];
            let s2 = &out[1 + PACKET_SIZE..];
            assert!(s1[4] >= 3);
            // S1 digest, as a client checks it.
            let off = digest_offset(s1, scheme).unwrap();
            let d = packet_digest(s1, off, &FMS_KEY[..36]).unwrap();
            assert_eq!(&s1[off..off + 32], &d);
            // The other scheme does not validate (wrong offset).
            let other = digest_offset(s1, 1 - scheme).unwrap();
            let d2 = packet_digest(s1, other, &FMS_KEY[..36]).unwrap();
            assert_ne!(&s1[other..other + 32], &d2);
            // S2 signature (FFmpeg rtmp_handshake, is_input branch).
            let (_, c_off) = find_client_digest(&c1).unwrap();
            let key = hmac_sha256(&FMS_KEY, &[&c1[c_off..c_off + 32]]);
            let sig = hmac_sha256(&key, &[&s2[..PACKET_SIZE - 32]]);
            assert_eq!(&s2[PACKET_SIZE - 32..], &sig);
        }
    }

    #[test]
    fn versioned_c1_without_valid_digest_falls_back_to_plain() {
        let mut c1 = client_c1_with_digest(0);
        c1[100] ^= 0xFF;
        c1[1000] ^= 0xFF;
        let (hs, out) = run(&c1);
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
        assert_eq!(&out[1 + PACKET_SIZE..], &c1[..]);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(mac[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]);
    }

    #[test]
    fn bad_version_and_truncation() {
        let mut hs = Handshake::new(0);
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        let e = hs.handle_input(&mut input, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        let mut hs = Handshake::new(0);
        let e = hs
            .handle_input(&mut BytesMut::from(&[6u8][..]), &mut out)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let mut hs = Handshake::new(0);
        let mut input = BytesMut::from(&[3u8; 100][..]);
        assert!(!hs.handle_input(&mut input, &mut out).unwrap());
        assert!(out.is_empty());
        assert_eq!(input.len(), 100);
    }
}
