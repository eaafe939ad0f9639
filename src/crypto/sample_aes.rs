//! HLS `METHOD=SAMPLE-AES` for MPEG-TS: H.264 NAL units and AAC frames encrypted one
//! by one as Apple's *MPEG-2 Stream Encryption Format for HTTP Live Streaming*
//! specifies (§2.1 to §2.3; RFC 8216bis §4.4.4.4 points to it for MPEG-TS segments).
//!
//! Each *protected block* (an H.264 NAL unit, an AAC frame) is encrypted with
//! AES-128 in CBC mode without padding; the CBC chain runs over the encrypted 16-byte
//! blocks of one protected block and restarts from the segment's IV at the next one
//! (§2.1).
//!
//! * **H.264** (§2.2, Listing 2-1): only NAL units of type 1 and 5 (coded slices)
//!   longer than [`H264_MAX_CLEAR_NAL`] (48) bytes are encrypted. The NAL header byte
//!   and the next 31 bytes stay clear ([`H264_CLEAR_LEADER`]); then, in each run of
//!   [`PATTERN_LEN`] (160) bytes, the first 16 are encrypted and the next 144 stay
//!   clear, except that a block is encrypted only when *more than* 16 bytes remain,
//!   so the last byte of a NAL unit is always clear. The NAL unit is encrypted as
//!   coded (with the encoder's own emulation prevention bytes), then start code
//!   emulation prevention (ISO/IEC 14496-10 §7.4.1) is applied to the whole
//!   encrypted unit, because ciphertext can contain `00 00 01`. A decryptor removes
//!   that layer, decrypts, and has the coded NAL unit back, byte for byte: this is
//!   what ffmpeg's and hls.js' decryptors do (they unescape the whole unit before
//!   decrypting and hand the result to the decoder unchanged), and it is the only
//!   order under which slices whose clear part holds emulation prevention bytes
//!   decode. Units that are not encrypted are not escaped again.
//! * **AAC** (§2.3.2, Listing 2-2): each ADTS frame keeps its header (7 or 9 bytes)
//!   and the next [`AAC_CLEAR_LEADER`] (16) bytes clear, then as many whole 16-byte
//!   blocks as fit are encrypted; the 0 to 15 bytes left stay clear.
//!
//! [`SampleAes`] holds the expanded key and the IV. Encryption of a NAL unit appends
//! it to one output buffer the caller owns (the Annex B payload being built), then
//! encrypts its blocks and escapes it in place there: one copy, one AES backend call
//! per unit (the key schedule is loaded once), and nothing allocated in the common
//! case. AAC frames are encrypted in place. The decryption functions exist for tests
//! and tools.
//!
//! ```
//! use strom::crypto::sample_aes::SampleAes;
//! use strom::crypto::{ContentKey, Iv};
//!
//! let sa = SampleAes::new(&ContentKey([7; 16]), &Iv::from_sequence(1)).unwrap();
//! // An IDR slice of 200 bytes: header, 31 clear bytes, one encrypted block, clear rest.
//! let mut nal = vec![0x65];
//! nal.extend((1..200u32).map(|i| (i % 251) as u8 | 0x10));
//! let mut wire = Vec::new();
//! assert!(sa.encrypt_h264_nal(&nal, &mut wire));
//! assert_eq!(wire[..32], nal[..32]);
//! assert_ne!(wire[32..48], nal[32..48]);
//! let mut back = Vec::new();
//! sa.decrypt_h264_nal(&wire, &mut back);
//! assert_eq!(back, nal);
//!
//! // An AAC frame (after its ADTS header): 16 clear bytes, 2 blocks, 3 clear bytes.
//! let raw: Vec<u8> = (0..51u8).collect();
//! let mut frame = raw.clone();
//! sa.encrypt_aac_frame(&mut frame);
//! assert_eq!((frame[..16] == raw[..16], frame[48..] == raw[48..]), (true, true));
//! sa.decrypt_aac_frame(&mut frame);
//! assert_eq!(frame, raw);
//! ```

use std::fmt;

use aes::cipher::consts::U16;
use aes::cipher::{
    Array, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};
use aes::Aes128;

use super::types::{ContentKey, Iv};
use crate::bitstream::{aac, h264};
use crate::error::{Error, Result};

/// The AES block size in bytes.
pub const BLOCK_LEN: usize = 16;
/// Clear bytes at the start of an encrypted H.264 NAL unit: the header byte and the
/// 31-byte `unencrypted_leader` (§2.2, Listing 2-1).
pub const H264_CLEAR_LEADER: usize = 32;
/// H.264 slice NAL units of at most this many bytes (as coded, before the extra
/// emulation prevention) are left clear: they have no room for an encrypted block.
pub const H264_MAX_CLEAR_NAL: usize = H264_CLEAR_LEADER + BLOCK_LEN;
/// Length of one encryption pattern run in an H.264 NAL unit: one encrypted 16-byte
/// block followed by up to 144 clear bytes (1:9 in blocks).
pub const PATTERN_LEN: usize = 160;
/// Clear bytes after the ADTS header of an encrypted AAC frame (§2.3.2, Listing 2-2).
pub const AAC_CLEAR_LEADER: usize = 16;

/// Whether SAMPLE-AES encrypts this H.264 NAL unit (as coded, without start code or
/// length prefix): `nal_unit_type` 1 or 5 and more than [`H264_MAX_CLEAR_NAL`] bytes.
pub fn h264_nal_is_protected(nal: &[u8]) -> bool {
    nal.len() > H264_MAX_CLEAR_NAL && {
        let t = h264::unit_type(nal);
        t == h264::nal_type::SLICE || t == h264::nal_type::IDR
    }
}

/// Bytes of an AAC frame of `raw_len` bytes (after its ADTS header) that SAMPLE-AES
/// encrypts: whole 16-byte blocks after the 16-byte clear leader.
pub fn aac_encrypted_len(raw_len: usize) -> usize {
    raw_len.saturating_sub(AAC_CLEAR_LEADER) / BLOCK_LEN * BLOCK_LEN
}

/// A SAMPLE-AES key and IV, ready to encrypt or decrypt protected blocks.
///
/// Cheap to clone (the expanded key schedule); `Debug` never shows the key.
#[derive(Clone)]
pub struct SampleAes {
    cipher: Aes128,
    iv: [u8; 16],
}

impl fmt::Debug for SampleAes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleAes")
            .field("iv", &Iv::Iv16(self.iv))
            .finish_non_exhaustive()
    }
}

impl SampleAes {
    /// A cipher for `key` and `iv` (the `EXT-X-KEY` `IV`, or the segment's media
    /// sequence number, [`Iv::from_sequence`]).
    ///
    /// Errors: [`Error::usage`] for an 8-byte IV (SAMPLE-AES uses 128-bit IVs).
    pub fn new(key: &ContentKey, iv: &Iv) -> Result<Self> {
        let Iv::Iv16(iv) = *iv else {
            return Err(Error::usage("SAMPLE-AES needs a 16-byte IV"));
        };
        Ok(SampleAes {
            cipher: Aes128::new(&Array::from(key.0)),
            iv,
        })
    }

    /// The IV every protected block starts from.
    pub fn iv(&self) -> Iv {
        Iv::Iv16(self.iv)
    }

    /// Appends one H.264 NAL unit (as coded: header byte first, the encoder's
    /// emulation prevention bytes in place, no start code or length prefix) to `out`
    /// as SAMPLE-AES writes it (§2.2): encrypted and escaped when
    /// [`h264_nal_is_protected`], unchanged otherwise. Returns whether it was
    /// encrypted. The caller writes the start code in front.
    ///
    /// The unit is copied once into `out` and encrypted and escaped there; `out`
    /// grows by its length plus one byte per emulation prevention byte inserted
    /// (the unit's own ones, and about one per 64 KiB of ciphertext). Nothing is
    /// allocated unless a unit needs more than 32 of them.
    pub fn encrypt_h264_nal(&self, nal: &[u8], out: &mut Vec<u8>) -> bool {
        if !h264_nal_is_protected(nal) {
            out.extend_from_slice(nal);
            return false;
        }
        // Copy, encrypt the pattern in place (one backend call: the key schedule is
        // loaded once per NAL unit), then escape in place; the escaping scan runs over
        // the whole unit in long strides and usually inserts nothing.
        let start = out.len();
        out.extend_from_slice(nal);
        self.cipher.encrypt_with_backend(InPlace {
            buf: &mut out[start..],
            layout: Layout::H264,
            iv: self.iv,
        });
        escape_in_place(out, start);
        true
    }

    /// The inverse of [`encrypt_h264_nal`](Self::encrypt_h264_nal), as a player
    /// does it: a NAL unit of type 1 or 5 longer than 48 bytes on the wire has one
    /// layer of emulation prevention removed and is decrypted; any other unit is
    /// appended unchanged. Returns whether it was decrypted.
    pub fn decrypt_h264_nal(&self, wire: &[u8], out: &mut Vec<u8>) -> bool {
        if !h264_nal_is_protected(wire) {
            out.extend_from_slice(wire);
            return false;
        }
        let start = out.len();
        unescape_into(wire, out);
        self.cipher.decrypt_with_backend(InPlace {
            buf: &mut out[start..],
            layout: Layout::H264,
            iv: self.iv,
        });
        true
    }

    /// Decrypts an H.264 Annex B byte stream (a PES payload: start codes of 3 or 4
    /// bytes between NAL units), appending the clear stream to `out` with the same
    /// start codes. Bytes before the first start code are copied unchanged.
    pub fn decrypt_h264_annexb(&self, data: &[u8], out: &mut Vec<u8>) {
        let mut pos = 0;
        while pos < data.len() {
            let Some((sc, sc_len)) = find_start_code(data, pos) else {
                out.extend_from_slice(&data[pos..]);
                return;
            };
            out.extend_from_slice(&data[pos..sc + sc_len]);
            let nal_start = sc + sc_len;
            let nal_end = find_start_code(data, nal_start).map_or(data.len(), |(s, _)| s);
            self.decrypt_h264_nal(&data[nal_start..nal_end], out);
            pos = nal_end;
        }
    }

    /// Encrypts one raw AAC frame in place (the bytes after its ADTS header, §2.3.2):
    /// the first 16 bytes stay clear, then [`aac_encrypted_len`] bytes are
    /// CBC-encrypted from the IV; the rest stays clear. Frames of less than 32 bytes
    /// are left unchanged.
    pub fn encrypt_aac_frame(&self, raw: &mut [u8]) {
        if aac_encrypted_len(raw.len()) > 0 {
            self.cipher.encrypt_with_backend(InPlace {
                buf: raw,
                layout: Layout::Aac,
                iv: self.iv,
            });
        }
    }

    /// The inverse of [`encrypt_aac_frame`](Self::encrypt_aac_frame), in place.
    pub fn decrypt_aac_frame(&self, raw: &mut [u8]) {
        if aac_encrypted_len(raw.len()) > 0 {
            self.cipher.decrypt_with_backend(InPlace {
                buf: raw,
                layout: Layout::Aac,
                iv: self.iv,
            });
        }
    }

    /// Encrypts, in place, every frame of a buffer of back-to-back ADTS frames (an
    /// AAC PES payload), each frame from the IV.
    ///
    /// Errors: [`Error::malformed`] (with the byte offset) when the buffer does not
    /// split into whole ADTS frames; frames before the bad one are encrypted.
    pub fn encrypt_adts(&self, data: &mut [u8]) -> Result<()> {
        self.each_adts_frame(data, |sa, raw| sa.encrypt_aac_frame(raw))
    }

    /// Decrypts, in place, every frame of a buffer of back-to-back ADTS frames.
    ///
    /// Errors: as [`encrypt_adts`](Self::encrypt_adts).
    pub fn decrypt_adts(&self, data: &mut [u8]) -> Result<()> {
        self.each_adts_frame(data, |sa, raw| sa.decrypt_aac_frame(raw))
    }

    fn each_adts_frame(&self, data: &mut [u8], f: impl Fn(&Self, &mut [u8])) -> Result<()> {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            let h = aac::parse_adts(rest)
                .map_err(|e| e.at_offset(pos as u64))?
                .ok_or_else(|| Error::malformed("truncated ADTS header").at_offset(pos as u64))?;
            let frame = data
                .get_mut(pos + h.header_len..pos + h.frame_len)
                .ok_or_else(|| {
                    Error::malformed("ADTS frame longer than the buffer").at_offset(pos as u64)
                })?;
            f(self, frame);
            pos += h.frame_len;
        }
        Ok(())
    }
}

/// Where the encrypted blocks of a protected block are.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// H.264 NAL unit: 32 clear bytes, then a block whenever more than 16 bytes
    /// remain, followed by up to 144 clear bytes.
    H264,
    /// AAC frame after its ADTS header: 16 clear bytes, then whole blocks.
    Aac,
}

impl Layout {
    /// Offset of the first encrypted block at or after `pos` in a protected block
    /// of `len` bytes, if any.
    #[inline]
    fn next_block(self, pos: usize, len: usize) -> Option<usize> {
        match self {
            Layout::H264 => {
                let p = pos.max(H264_CLEAR_LEADER);
                // Runs start at 32 + 160 k; `pos` is always at a run start here.
                (len.saturating_sub(p) > BLOCK_LEN).then_some(p)
            }
            Layout::Aac => {
                let p = pos.max(AAC_CLEAR_LEADER);
                (len.saturating_sub(p) >= BLOCK_LEN).then_some(p)
            }
        }
    }

    /// Where the next run starts after the block at `block`.
    #[inline]
    fn after(self, block: usize) -> usize {
        match self {
            Layout::H264 => block + PATTERN_LEN,
            Layout::Aac => block + BLOCK_LEN,
        }
    }
}

/// The 16 bytes at `pos` of `buf` as a cipher block.
#[inline]
fn load(buf: &[u8], pos: usize) -> Option<Array<u8, U16>> {
    let mut b = Array::<u8, U16>::default();
    b.copy_from_slice(buf.get(pos..pos + BLOCK_LEN)?);
    Some(b)
}

#[inline]
fn xor(a: &mut Array<u8, U16>, b: &Array<u8, U16>) {
    for (x, y) in a.iter_mut().zip(b.iter()) {
        *x ^= y;
    }
}

/// CBC over the encrypted blocks of one protected block, in place, in one backend
/// call (the key schedule loaded once). Encrypts with an encryption backend,
/// decrypts with a decryption backend.
struct InPlace<'a> {
    buf: &'a mut [u8],
    layout: Layout,
    iv: [u8; 16],
}

impl BlockSizeUser for InPlace<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for InPlace<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut chain = Array::from(self.iv);
        let mut pos = 0;
        while let Some(at) = self.layout.next_block(pos, self.buf.len()) {
            let Some(mut block) = load(self.buf, at) else {
                break;
            };
            xor(&mut block, &chain);
            backend.encrypt_block_inplace(&mut block);
            self.buf[at..at + BLOCK_LEN].copy_from_slice(&block);
            chain = block;
            pos = self.layout.after(at);
        }
    }
}

impl BlockCipherDecClosure for InPlace<'_> {
    fn call<B: BlockCipherDecBackend<BlockSize = U16>>(self, backend: &B) {
        let mut chain = Array::from(self.iv);
        let mut pos = 0;
        while let Some(at) = self.layout.next_block(pos, self.buf.len()) {
            let Some(mut block) = load(self.buf, at) else {
                break;
            };
            let cipher_text = block;
            backend.decrypt_block_inplace(&mut block);
            xor(&mut block, &chain);
            self.buf[at..at + BLOCK_LEN].copy_from_slice(&block);
            chain = cipher_text;
            pos = self.layout.after(at);
        }
    }
}

/// Start code emulation prevention (ISO/IEC 14496-10 §7.4.1) over `buf[start..]`,
/// in place: a `0x03` goes in wherever two zero bytes would be followed by a byte
/// `<= 0x03`. The positions are found first (kept on the stack up to 32 of them),
/// then the tail is moved right once per insertion, from the end.
fn escape_in_place(buf: &mut Vec<u8>, start: usize) {
    let mut small = [0usize; 32];
    let mut big: Vec<usize> = Vec::new();
    let mut n = 0;
    let data = &buf[start..];
    let len = data.len();
    let (mut i, mut zeros) = (0, 0u8);
    loop {
        if zeros < 2 {
            // Nothing can need escaping before two zero bytes in a row.
            match find_zero_pair(&data[i..], zeros >= 1) {
                Some(k) => {
                    i += k + 1;
                    zeros = 2;
                }
                None => break,
            }
        }
        let Some(&b) = data.get(i) else {
            break;
        };
        if b <= 3 {
            if n < small.len() {
                small[n] = i;
            } else {
                if big.is_empty() {
                    big.extend_from_slice(&small);
                }
                big.push(i);
            }
            n += 1;
            zeros = 0;
        }
        zeros = if b == 0 { (zeros + 1).min(2) } else { 0 };
        i += 1;
    }
    if n == 0 {
        return;
    }
    let pos: &[usize] = if n <= small.len() { &small[..n] } else { &big };
    buf.resize(start + len + n, 0);
    for (k, &from) in pos.iter().enumerate().rev() {
        let to = pos.get(k + 1).copied().unwrap_or(len);
        buf.copy_within(start + from..start + to, start + from + k + 1);
        buf[start + from + k] = 3;
    }
}

/// Offset of the first zero byte of `s` that follows a zero byte (`prev_zero`: the
/// byte before `s` was zero). Whole 64-byte chunks are tested with a branch-free
/// reduction the compiler turns into vector compares; the chunk with a hit, and
/// the tail, byte by byte.
#[inline]
fn find_zero_pair(s: &[u8], prev_zero: bool) -> Option<usize> {
    const CHUNK: usize = 64;
    let mut prev = prev_zero;
    let mut base = 0;
    for c in s.chunks_exact(CHUNK) {
        let inner = c
            .iter()
            .zip(&c[1..])
            .fold(0u8, |acc, (&x, &y)| acc | u8::from(x | y == 0));
        if inner != 0 || (prev && c[0] == 0) {
            break;
        }
        prev = c[CHUNK - 1] == 0;
        base += CHUNK;
    }
    for (k, &b) in s[base..].iter().enumerate() {
        if b == 0 && prev {
            return Some(base + k);
        }
        prev = b == 0;
    }
    None
}

/// Appends `src` with one layer of emulation prevention removed: the `0x03` of
/// every `00 00 03` is dropped.
fn unescape_into(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len());
    let mut zeros = 0u8;
    let mut copied = 0;
    for (i, &b) in src.iter().enumerate() {
        if zeros >= 2 && b == 3 {
            out.extend_from_slice(&src[copied..i]);
            copied = i + 1;
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { (zeros + 1).min(2) } else { 0 };
    }
    out.extend_from_slice(&src[copied..]);
}

/// The next Annex B start code at or after `from`: (offset, 3 or 4).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = data.get(from..)?;
    let i = rest.windows(3).position(|w| w == [0, 0, 1])?;
    let at = from + i;
    if at > from && data[at - 1] == 0 {
        Some((at - 1, 4))
    } else {
        Some((at, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// xorshift64* bytes, with zero runs sprinkled in when `zeros` is set.
    fn bytes(seed: u64, n: usize, zeros: bool) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|i| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                let b = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
                if zeros && i % 37 < 3 {
                    b & 0x03
                } else {
                    b
                }
            })
            .collect()
    }

    /// The textbook escaper, one byte at a time (the reference for `escape_in_place`).
    fn naive_escape(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in src {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    // NIST SP 800-38A F.2.1 CBC-AES128.Encrypt: key, IV, four plaintext blocks and
    // their ciphertext, an independent answer for the encrypted blocks.
    const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const IV: &str = "000102030405060708090a0b0c0d0e0f";
    const PLAIN: [&str; 4] = [
        "6bc1bee22e409f96e93d7e117393172a",
        "ae2d8a571e03ac9c9eb76fac45af8e51",
        "30c81c46a35ce411e5fbc1191a0a52ef",
        "f69f2445df4f9b17ad2b417be66c3710",
    ];
    const CIPHER: [&str; 4] = [
        "7649abac8119b246cee98e9b12e9197d",
        "5086cb9b507219ee95db113a917678b2",
        "73bed6b8e3c1743b7116e69e22229516",
        "3ff1caa1681fac09120eca307586e1a7",
    ];

    fn nist() -> SampleAes {
        let key = ContentKey(hex(KEY).try_into().unwrap());
        SampleAes::new(&key, &Iv::from_hex(IV).unwrap()).unwrap()
    }

    /// An IDR slice laid out so that its three encrypted blocks are NIST's first
    /// three plaintext blocks: 32 clear, P1, 144 clear, P2, 144 clear, P3, 4 clear.
    /// The clear leader holds an emulation prevention byte (`00 00 03 01`).
    fn nist_nal() -> (Vec<u8>, Vec<u8>) {
        let clear = bytes(9, 32 + 144 + 144 + 4, false)
            .into_iter()
            .map(|b| b | 0x10)
            .collect::<Vec<u8>>();
        let mut nal = vec![0x65];
        nal.extend_from_slice(&clear[1..10]);
        nal.extend_from_slice(&[0, 0, 3, 1]);
        nal.extend_from_slice(&clear[14..32]);
        let mut expect = nal.clone();
        for (i, p) in PLAIN[..3].iter().enumerate() {
            nal.extend(hex(p));
            expect.extend(hex(CIPHER[i]));
            let run = if i < 2 {
                &clear[32 + i * 144..32 + (i + 1) * 144]
            } else {
                &clear[320..]
            };
            nal.extend_from_slice(run);
            expect.extend_from_slice(run);
        }
        assert_eq!(nal.len(), 32 + 160 + 160 + 20);
        (nal, expect)
    }

    #[test]
    fn h264_known_answer_from_sp800_38a() {
        let sa = nist();
        let (nal, unescaped) = nist_nal();
        let mut wire = Vec::new();
        assert!(sa.encrypt_h264_nal(&nal, &mut wire));
        // The leader's `00 00 03 01` gains a second 0x03; nothing else needs escaping.
        let expect = naive_escape(&unescaped);
        assert_eq!(expect.len(), unescaped.len() + 1);
        assert_eq!(&expect[10..15], &[0, 0, 3, 3, 1]);
        assert_eq!(wire, expect);
        let mut back = Vec::new();
        assert!(sa.decrypt_h264_nal(&wire, &mut back));
        assert_eq!(back, nal);
    }

    #[test]
    fn aac_known_answer_from_sp800_38a() {
        let sa = nist();
        let mut raw: Vec<u8> = (0..16).collect();
        for p in PLAIN {
            raw.extend(hex(p));
        }
        raw.extend_from_slice(&[9, 8, 7, 6, 5]);
        let mut expect: Vec<u8> = (0..16).collect();
        for c in CIPHER {
            expect.extend(hex(c));
        }
        expect.extend_from_slice(&[9, 8, 7, 6, 5]);
        let mut frame = raw.clone();
        sa.encrypt_aac_frame(&mut frame);
        assert_eq!(frame, expect);
        sa.decrypt_aac_frame(&mut frame);
        assert_eq!(frame, raw);
        // Whole ADTS frames: the IV restarts at every frame.
        let cfg =
            crate::media::AacConfig::from_asc(bytes::Bytes::from_static(&[0x11, 0x90])).unwrap();
        let mut adts = Vec::new();
        for _ in 0..3 {
            adts.extend(aac::adts_header(&cfg, raw.len()).unwrap());
            adts.extend_from_slice(&raw);
        }
        sa.encrypt_adts(&mut adts).unwrap();
        for f in adts.chunks(7 + raw.len()) {
            assert_eq!(&f[7..], &expect[..]);
        }
        sa.decrypt_adts(&mut adts).unwrap();
        assert!(adts.chunks(7 + raw.len()).all(|f| f[7..] == raw[..]));
        assert!(sa.decrypt_adts(&mut adts[..50]).is_err());
        assert!(sa.decrypt_adts(&mut [0x12; 9]).is_err());
    }

    #[test]
    fn pattern_boundaries() {
        let sa = nist();
        // (length, encrypted block offsets) from the spec's loop.
        for (len, blocks) in [
            (48usize, vec![]),
            (49, vec![32]),
            (64, vec![32]),
            (192, vec![32]),
            (208, vec![32]),
            (209, vec![32, 192]),
            (400, vec![32, 192, 352]),
        ] {
            let mut nal = vec![0x41];
            nal.extend(std::iter::repeat_n(0x55u8, len - 1));
            let mut wire = Vec::new();
            assert_eq!(sa.encrypt_h264_nal(&nal, &mut wire), len > 48, "{len}");
            let mut unescaped = Vec::new();
            unescape_into(&wire, &mut unescaped);
            let wire = if len > 48 { unescaped } else { wire };
            assert_eq!(wire.len(), len);
            let changed: Vec<usize> = (0..len)
                .step_by(16)
                .filter(|&o| wire[o..(o + 16).min(len)] != nal[o..(o + 16).min(len)])
                .collect();
            assert_eq!(changed, blocks, "NAL of {len} bytes");
            assert_eq!(wire.last(), nal.last(), "the last byte is clear");
        }
        // Other NAL types and short slices pass through untouched (and unescaped).
        let sa2 = nist();
        for nal in [
            [&[0x67u8][..], &[0, 0, 3, 1][..], &[0x11; 60][..]].concat(),
            [&[0x06u8][..], &[0x22; 100][..]].concat(),
            [&[0x65u8][..], &[0, 0, 3, 0], &[0x33; 43]].concat(),
        ] {
            let mut wire = Vec::new();
            assert!(!sa2.encrypt_h264_nal(&nal, &mut wire));
            assert_eq!(wire, nal);
        }
        assert_eq!(aac_encrypted_len(31), 0);
        assert_eq!(aac_encrypted_len(32), 16);
        assert_eq!(aac_encrypted_len(0), 0);
        assert_eq!(aac_encrypted_len(16 + 16 * 20 + 15), 320);
    }

    #[test]
    fn escaping_matches_the_textbook_one() {
        for seed in 1..300u64 {
            let data = bytes(seed, (seed as usize * 37) % 700, seed % 2 == 1);
            let mut out = vec![0xee, 0, 0];
            out.extend_from_slice(&data);
            escape_in_place(&mut out, 3);
            assert_eq!(&out[..3], &[0xee, 0, 0], "bytes before start untouched");
            assert_eq!(&out[3..], &naive_escape(&data)[..], "seed {seed}");
            let mut back = Vec::new();
            unescape_into(&out[3..], &mut back);
            assert_eq!(back, data, "seed {seed}");
            assert!(!out[3..]
                .windows(3)
                .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
        }
        // More insertions than the stack keeps: 40 runs of `00 00 00`.
        let data: Vec<u8> = std::iter::repeat_n([0u8, 0, 0, 0x55], 40)
            .flatten()
            .collect();
        let mut out = data.clone();
        escape_in_place(&mut out, 0);
        assert_eq!(out, naive_escape(&data));
        assert_eq!(out.len(), data.len() + 40);
        let mut out = vec![0, 0];
        escape_in_place(&mut out, 0);
        assert_eq!(out, [0, 0]);
        let mut out = vec![0, 0, 1, 0, 0, 0, 0, 3];
        escape_in_place(&mut out, 0);
        assert_eq!(out, [0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 3]);
    }

    #[test]
    fn find_zero_pair_agrees_with_a_byte_loop() {
        let naive = |s: &[u8], prev: bool| {
            (0..s.len()).find(|&k| s[k] == 0 && if k == 0 { prev } else { s[k - 1] == 0 })
        };
        for seed in 0..600u64 {
            let mut v = bytes(seed, (seed as usize * 7) % 90, false);
            for b in &mut v {
                *b |= 1;
            }
            // Zeros alone, in pairs, across word boundaries, at the ends.
            for j in 0..(seed % 4) {
                if !v.is_empty() {
                    let at = (seed as usize * 13 + j as usize * 29) % v.len();
                    v[at] = 0;
                    if seed % 3 == 0 && at + 1 < v.len() {
                        v[at + 1] = 0;
                    }
                }
            }
            for prev in [false, true] {
                assert_eq!(
                    find_zero_pair(&v, prev),
                    naive(&v, prev),
                    "seed {seed} {v:?}"
                );
            }
        }
    }

    #[test]
    fn round_trips_on_random_units() {
        let key = ContentKey(bytes(1, 16, false).try_into().unwrap());
        let sa = SampleAes::new(&key, &Iv::from_sequence(42)).unwrap();
        let mut stream = Vec::new();
        let mut units = Vec::new();
        for seed in 0..300u64 {
            let len = 1 + (seed as usize * 97) % 3000;
            let mut nal = bytes(seed + 100, len, seed % 3 == 0);
            nal[0] = [0x65, 0x41, 0x01, 0x06, 0x68][seed as usize % 5];
            // A coded NAL unit has no start code emulation and does not end in 0x00.
            let mut coded = naive_escape(&nal);
            if coded.last() == Some(&0) {
                coded.push(0x80);
            }
            stream.extend_from_slice(&[0, 0, 0, 1]);
            let mut wire = Vec::new();
            let enc = sa.encrypt_h264_nal(&coded, &mut wire);
            assert_eq!(enc, h264_nal_is_protected(&coded));
            assert!(!wire.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
            stream.extend_from_slice(&wire);
            units.push(coded);
        }
        let mut clear = Vec::new();
        sa.decrypt_h264_annexb(&stream, &mut clear);
        let mut expect = Vec::new();
        for u in &units {
            expect.extend_from_slice(&[0, 0, 0, 1]);
            expect.extend_from_slice(u);
        }
        assert_eq!(clear, expect);
        // Another key does not give the clear stream back.
        let other = SampleAes::new(&ContentKey([0; 16]), &Iv::from_sequence(42)).unwrap();
        let mut wrong = Vec::new();
        other.decrypt_h264_annexb(&stream, &mut wrong);
        assert_ne!(wrong, expect);
    }

    #[test]
    fn bad_iv_and_debug() {
        let e = SampleAes::new(&ContentKey([1; 16]), &Iv::Iv8([0; 8])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        let sa = SampleAes::new(&ContentKey([0xab; 16]), &Iv::from_sequence(5)).unwrap();
        let d = format!("{sa:?}");
        assert!(!d.contains("ab, ") && !d.contains("abab"), "{d}");
        assert_eq!(sa.iv(), Iv::from_sequence(5));
        // Junk in front of the first start code and a lone start code are kept.
        let mut out = Vec::new();
        sa.decrypt_h264_annexb(&[9, 9, 0, 0, 1], &mut out);
        assert_eq!(out, [9, 9, 0, 0, 1]);
    }
}
