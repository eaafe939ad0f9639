//! ISO/IEC 23001-7 (Common Encryption, 3rd/4th edition) sample encryption: scheme `cenc`
//! (AES-128-CTR, §10.1) and scheme `cbcs` (AES-128-CBC with a 1:9 pattern and a constant
//! IV, §10.4), applied in place to one sample at a time.
//!
//! * [`SampleCipher`]: one content key, ready to encrypt or decrypt samples of either
//!   scheme. A sample is protected whole, or by its [`Subsample`] table (clear bytes,
//!   then protected bytes, repeated, §7.2.2).
//! * [`SubsampleGenerator`]: the subsample table of an H.264 or H.265 sample (§9.5.2):
//!   NAL length prefixes, NAL headers and slice headers stay clear (the slice header
//!   length comes from the parameter sets), non-VCL units stay clear, and for `cenc` the
//!   protected part of each unit is shortened to a multiple of 16 bytes (as CMAF
//!   §8.2.2.1 and Shaka Packager do).
//! * [`derive_sample_iv`]: deterministic per-sample `cenc` IVs from the track, the
//!   fragment sequence number and the sample index, unique under one key.
//!
//! The container side (`encv`/`enca` + `sinf`, `senc`/`saiz`/`saio`, `pssh`) lives in
//! [`crate::container::fmp4`], which calls this module for every sample of a fragment.
//!
//! ```
//! use strom::crypto::cenc::{derive_sample_iv, Pattern, SampleCipher, Subsample};
//! use strom::crypto::{ContentKey, Iv, Scheme};
//!
//! let key = ContentKey([0x3c; 16]);
//! let clear: Vec<u8> = (0..100u8).collect();
//!
//! // `cenc`: AES-CTR over the protected ranges, one counter for the whole sample.
//! let cenc = SampleCipher::new(Scheme::Cenc, &key).unwrap();
//! let iv = derive_sample_iv(1, 7, 0, 0).unwrap();
//! let subsamples = [Subsample::new(4, 32), Subsample::new(20, 44)];
//! let mut sample = clear.clone();
//! cenc.encrypt(&mut sample, &iv, &subsamples, Pattern::NONE).unwrap();
//! assert_eq!(sample[..4], clear[..4]); // clear bytes stay clear
//! assert_ne!(sample[4..36], clear[4..36]);
//! cenc.decrypt(&mut sample, &iv, &subsamples, Pattern::NONE).unwrap();
//! assert_eq!(sample, clear);
//!
//! // `cbcs`: AES-CBC, 1 block in 10 encrypted, constant IV, partial blocks clear.
//! let cbcs = SampleCipher::new(Scheme::Cbcs, &key).unwrap();
//! let iv = Iv::Iv16([7; 16]);
//! let mut sample = clear.clone();
//! cbcs.encrypt(&mut sample, &iv, &[], Pattern::CBCS_VIDEO).unwrap();
//! assert_ne!(sample[..16], clear[..16]);
//! assert_eq!(sample[16..], clear[16..]); // 100 bytes: blocks 1..=5 skipped, tail clear
//!
//! // Subsamples that do not add up to the sample are a typed error, not a panic.
//! let e = cenc.decrypt(&mut sample, &iv, &[Subsample::new(0, 1000)], Pattern::NONE);
//! assert_eq!(e.unwrap_err().kind(), strom::ErrorKind::Malformed);
//! ```
//!
//! Performance: the AES work goes through the `aes` crate's block backends (AES-NI,
//! VAES), with the counter blocks of `cenc` generated and applied a whole parallel batch
//! at a time inside the backend (the same way the `ctr` crate works, without its
//! per-call buffering, which measured 20–40 % slower here), and `cbcs` chaining one
//! block per pattern step inside one backend call per sample.

mod bits;
mod h264;
mod h265;
mod subsample;

use aes::cipher::consts::U16;
use aes::cipher::{
    Array, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
};
use aes::{Aes128Dec, Aes128Enc};

pub use subsample::SubsampleGenerator;

use super::{ContentKey, Iv, Scheme};
use crate::error::{Error, Result};

type Block = Array<u8, U16>;

/// One entry of a sample's subsample table (ISO/IEC 23001-7 §7.2.2,
/// `BytesOfClearData` / `BytesOfProtectedData`): `clear` bytes left as they are, then
/// `protected` bytes encrypted. The entries of a sample cover it exactly, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Subsample {
    /// Bytes of clear data at the start of the entry.
    pub clear: u16,
    /// Bytes of protected data after them.
    pub protected: u32,
}

impl Subsample {
    /// An entry of `clear` then `protected` bytes.
    pub const fn new(clear: u16, protected: u32) -> Self {
        Subsample { clear, protected }
    }

    /// Bytes the entry covers.
    pub fn len(&self) -> u64 {
        u64::from(self.clear) + u64::from(self.protected)
    }

    /// Whether the entry covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pattern of pattern encryption (ISO/IEC 23001-7 §9.6, `tenc`
/// `default_crypt_byte_block` / `default_skip_byte_block`): within each protected range,
/// `crypt` 16-byte blocks are encrypted, then `skip` blocks left clear, repeated.
///
/// [`Pattern::NONE`] (0:0) encrypts every full block: `cenc`, and `cbcs` audio
/// (§10.4.1). [`Pattern::CBCS_VIDEO`] (1:9) is the `cbcs` pattern for video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pattern {
    /// Encrypted 16-byte blocks per repetition (0..=15).
    pub crypt: u8,
    /// Clear 16-byte blocks per repetition (0..=15).
    pub skip: u8,
}

impl Pattern {
    /// No pattern: every full block of a protected range is encrypted.
    pub const NONE: Pattern = Pattern { crypt: 0, skip: 0 };
    /// 1 encrypted block, 9 clear: the `cbcs` pattern for video (§10.4.1).
    pub const CBCS_VIDEO: Pattern = Pattern { crypt: 1, skip: 9 };

    /// A pattern of `crypt` encrypted then `skip` clear blocks.
    pub const fn new(crypt: u8, skip: u8) -> Self {
        Pattern { crypt, skip }
    }

    /// Whether every block is encrypted (0:0, or no clear blocks).
    pub fn is_none(self) -> bool {
        self.skip == 0
    }
}

/// Derives the 8-byte `cenc` IV of sample `sample_index` of fragment `sequence` of
/// track `track_id`: the same request gives the same bytes, and no two samples of
/// any tracks that share a key get the same IV while their fragment sequence numbers
/// do not repeat under that key.
///
/// The 64 bits are `sequence` (32) | `track_id` (12) | `sample_index` (20), XORed with
/// `seed`. A host that uses one key for several streams, or restarts sequence numbers
/// under the same key, gives each stream or restart its own `seed`: XOR with a constant
/// keeps the IVs of one seed distinct. Each sample's CTR counter then runs over its own
/// 2^64 blocks (ISO/IEC 23001-7 §9.2, §10.1).
///
/// Errors ([`crate::ErrorKind::Limit`]): `track_id` of 4096 or more, `sample_index` of
/// 2^20 or more (a fragment holds at most
/// [`MAX_SAMPLES_PER_FRAGMENT`](crate::container::fmp4::MAX_SAMPLES_PER_FRAGMENT)).
pub fn derive_sample_iv(track_id: u32, sequence: u32, sample_index: u32, seed: u64) -> Result<Iv> {
    if track_id >= 1 << 12 {
        return Err(Error::limit(
            "cenc IV derivation takes track ids below 4096",
        ));
    }
    if sample_index >= 1 << 20 {
        return Err(Error::limit(
            "cenc IV derivation takes sample indices below 2^20",
        ));
    }
    let v = (u64::from(sequence) << 32) | (u64::from(track_id) << 20) | u64::from(sample_index);
    Ok(Iv::Iv8((v ^ seed).to_be_bytes()))
}

/// One content key ready for CENC sample encryption and decryption (both key schedules
/// computed once). `Debug` does not show the key.
#[derive(Clone)]
pub struct SampleCipher {
    scheme: Scheme,
    enc: Aes128Enc,
    dec: Aes128Dec,
}

impl std::fmt::Debug for SampleCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleCipher")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl SampleCipher {
    /// A cipher for `scheme` ([`Scheme::Cenc`] or [`Scheme::Cbcs`]) with `key`.
    /// Errors: another scheme ([`crate::ErrorKind::Usage`]).
    pub fn new(scheme: Scheme, key: &ContentKey) -> Result<Self> {
        if !matches!(scheme, Scheme::Cenc | Scheme::Cbcs) {
            return Err(Error::usage(
                "CENC sample encryption is for schemes cenc and cbcs",
            ));
        }
        let k = Array::from(*key.as_bytes());
        Ok(SampleCipher {
            scheme,
            enc: Aes128Enc::new(&k),
            dec: Aes128Dec::new(&k),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Encrypts `sample` in place (ISO/IEC 23001-7 §9.5, §10.1, §10.4).
    ///
    /// `subsamples` empty protects the whole sample; otherwise their sizes must add up to
    /// `sample.len()`. `cenc`: AES-CTR from the counter block `iv` (an 8-byte IV is the
    /// high half, the low 64 bits count blocks and wrap), one keystream running on across
    /// the protected ranges of the sample; `pattern` must be [`Pattern::NONE`]. `cbcs`:
    /// AES-CBC, the chain restarting from `iv` at every protected range; within a range
    /// `pattern.crypt` full blocks are encrypted (fewer at the end if fewer remain), then
    /// `pattern.skip` left clear; bytes after the last full block stay clear.
    ///
    /// Errors: subsamples that do not add up to the sample ([`crate::ErrorKind::Malformed`]),
    /// a pattern with `cenc` or a pattern of 0 encrypted and some skipped blocks
    /// ([`crate::ErrorKind::Unsupported`]). On error `sample` is unchanged.
    pub fn encrypt(
        &self,
        sample: &mut [u8],
        iv: &Iv,
        subsamples: &[Subsample],
        pattern: Pattern,
    ) -> Result<()> {
        let one = [RunSample::new(sample.len(), *iv, subsamples)];
        self.encrypt_run(sample, &one, pattern)
    }

    /// Decrypts `sample` in place: the inverse of [`SampleCipher::encrypt`], with the
    /// same arguments and errors.
    pub fn decrypt(
        &self,
        sample: &mut [u8],
        iv: &Iv,
        subsamples: &[Subsample],
        pattern: Pattern,
    ) -> Result<()> {
        let one = [RunSample::new(sample.len(), *iv, subsamples)];
        self.decrypt_run(sample, &one, pattern)
    }

    /// Encrypts the clear `sample` into `out` (of the same length) as
    /// [`SampleCipher::encrypt`] would in place, in one pass over the bytes: `cenc`
    /// reads each protected byte from `sample` and writes it encrypted, clear ranges are
    /// copied; `cbcs` (a tenth of the blocks) copies, then encrypts in place.
    ///
    /// Errors: as [`SampleCipher::encrypt`], and lengths that differ
    /// ([`crate::ErrorKind::Usage`]). On error `out`'s content is unspecified.
    pub fn encrypt_from(
        &self,
        sample: &[u8],
        out: &mut [u8],
        iv: &Iv,
        subsamples: &[Subsample],
        pattern: Pattern,
    ) -> Result<()> {
        if sample.len() != out.len() {
            return Err(Error::usage("clear and protected samples differ in length"));
        }
        let one = [RunSample::new(sample.len(), *iv, subsamples)];
        self.check(sample.len(), &one, pattern)?;
        match self.scheme {
            Scheme::Cenc => self.enc.encrypt_with_backend(CtrCopyJob {
                src: sample,
                dst: out,
                sample: &one[0],
            }),
            _ => {
                out.copy_from_slice(sample);
                self.enc.encrypt_with_backend(CbcEncJob {
                    data: out,
                    samples: &one,
                    pattern,
                });
            }
        }
        Ok(())
    }

    /// Encrypts `samples` laid end to end in `data` (a fragment's `mdat` body), each as
    /// [`SampleCipher::encrypt`] does with its own IV and subsamples, in one pass: the
    /// key schedule is loaded into the cipher backend once for the run rather than once
    /// per sample (what makes small samples, such as audio frames, cheap).
    ///
    /// Errors: as [`SampleCipher::encrypt`], and sample sizes that do not add up to
    /// `data.len()` ([`crate::ErrorKind::Usage`]). On error `data` is unchanged.
    pub fn encrypt_run(
        &self,
        data: &mut [u8],
        samples: &[RunSample<'_>],
        pattern: Pattern,
    ) -> Result<()> {
        self.check(data.len(), samples, pattern)?;
        match self.scheme {
            Scheme::Cenc => self.enc.encrypt_with_backend(CtrJob { data, samples }),
            _ => self.enc.encrypt_with_backend(CbcEncJob {
                data,
                samples,
                pattern,
            }),
        }
        Ok(())
    }

    /// Decrypts `samples` laid end to end in `data`: the inverse of
    /// [`SampleCipher::encrypt_run`], with the same arguments and errors.
    pub fn decrypt_run(
        &self,
        data: &mut [u8],
        samples: &[RunSample<'_>],
        pattern: Pattern,
    ) -> Result<()> {
        self.check(data.len(), samples, pattern)?;
        match self.scheme {
            Scheme::Cenc => self.enc.encrypt_with_backend(CtrJob { data, samples }),
            _ => self.dec.decrypt_with_backend(CbcDecJob {
                data,
                samples,
                pattern,
            }),
        }
        Ok(())
    }

    fn check(&self, len: usize, samples: &[RunSample<'_>], pattern: Pattern) -> Result<()> {
        let mut total = 0u64;
        for (i, s) in samples.iter().enumerate() {
            if !s.subsamples.is_empty() {
                let covered: u64 = s.subsamples.iter().map(Subsample::len).sum();
                if covered != s.size as u64 {
                    return Err(Error::malformed(format!(
                        "subsamples cover {covered} bytes of a {}-byte sample",
                        s.size
                    ))
                    .context(format!("sample {i} of the run")));
                }
            }
            total += s.size as u64;
        }
        if total != len as u64 {
            return Err(Error::usage("sample sizes do not add up to the run"));
        }
        if self.scheme == Scheme::Cenc && pattern != Pattern::NONE {
            return Err(Error::unsupported(
                "pattern encryption with AES-CTR is scheme cens, not cenc",
            ));
        }
        if pattern.crypt == 0 && pattern.skip != 0 {
            return Err(Error::unsupported(
                "pattern with skipped but no encrypted blocks",
            ));
        }
        Ok(())
    }
}

/// One sample of a run laid end to end ([`SampleCipher::encrypt_run`]): its size, its IV
/// (the counter block for `cenc`, the CBC IV for `cbcs`) and its subsample table (empty:
/// the whole sample is protected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSample<'a> {
    /// Bytes of the sample.
    pub size: usize,
    /// Its IV.
    pub iv: Iv,
    /// Its subsample table.
    pub subsamples: &'a [Subsample],
}

impl<'a> RunSample<'a> {
    /// A sample of `size` bytes with `iv` and `subsamples`.
    pub fn new(size: usize, iv: Iv, subsamples: &'a [Subsample]) -> Self {
        RunSample {
            size,
            iv,
            subsamples,
        }
    }
}

/// Calls `f` with each sample of the run and its bytes. Sizes were checked.
#[inline(always)]
fn for_each_sample<'d>(
    data: &'d mut [u8],
    samples: &[RunSample<'_>],
    mut f: impl FnMut(&RunSample<'_>, &'d mut [u8]),
) {
    let mut rest = data;
    for s in samples {
        if s.size > rest.len() {
            return;
        }
        let (sample, tail) = std::mem::take(&mut rest).split_at_mut(s.size);
        f(s, sample);
        rest = tail;
    }
}

/// The protected ranges of a sample: the whole of it without subsamples, else the
/// protected part of every entry. Sizes were checked against the sample. Inlined into
/// the cipher backend (compiled with its AES/AVX target features).
#[inline(always)]
fn for_each_range(data: &mut [u8], subsamples: &[Subsample], mut f: impl FnMut(&mut [u8])) {
    if subsamples.is_empty() {
        f(data);
        return;
    }
    let mut pos = 0usize;
    for s in subsamples {
        let start = pos + usize::from(s.clear);
        let end = start + s.protected as usize;
        match data.get_mut(start..end) {
            Some(range) if !range.is_empty() => f(range),
            Some(_) => {}
            None => return,
        }
        pos = end;
    }
}

/// The AES-CTR keystream of one sample: counter block `hi || lo`, the low 64 bits
/// incrementing (and wrapping), and the unused tail of the last block generated.
struct Keystream {
    hi: [u8; 8],
    lo: u64,
    block: Block,
    used: usize,
}

impl Keystream {
    #[inline(always)]
    fn new(counter: [u8; 16]) -> Self {
        let mut hi = [0u8; 8];
        hi.copy_from_slice(&counter[..8]);
        let mut lo = [0u8; 8];
        lo.copy_from_slice(&counter[8..]);
        Keystream {
            hi,
            lo: u64::from_be_bytes(lo),
            block: Block::default(),
            used: 16,
        }
    }

    #[inline(always)]
    fn fill(&mut self, blocks: &mut [Block]) {
        for b in blocks {
            b[..8].copy_from_slice(&self.hi);
            b[8..].copy_from_slice(&self.lo.to_be_bytes());
            self.lo = self.lo.wrapping_add(1);
        }
    }

    /// XORs the next `data.len()` keystream bytes into `data`.
    #[inline(always)]
    fn apply<B: BlockCipherEncBackend<BlockSize = U16>>(
        &mut self,
        backend: &B,
        par: &mut ParBlocks<B>,
        data: &mut [u8],
    ) {
        let len = data.len();
        self.apply_with(backend, par, len, |at, ks| {
            xor(&mut data[at..at + ks.len()], ks)
        });
    }

    /// Writes `src` XOR the next `src.len()` keystream bytes into `dst` (as long).
    #[inline(always)]
    fn apply_from<B: BlockCipherEncBackend<BlockSize = U16>>(
        &mut self,
        backend: &B,
        par: &mut ParBlocks<B>,
        src: &[u8],
        dst: &mut [u8],
    ) {
        let len = src.len().min(dst.len());
        self.apply_with(backend, par, len, |at, ks| {
            let end = at + ks.len();
            xor_from(&mut dst[at..end], &src[at..end], ks)
        });
    }

    /// Hands out the next `len` keystream bytes in pieces, `f(offset, keystream)` in
    /// order, the pieces covering `0..len`.
    #[inline(always)]
    fn apply_with<B: BlockCipherEncBackend<BlockSize = U16>>(
        &mut self,
        backend: &B,
        par: &mut ParBlocks<B>,
        len: usize,
        mut f: impl FnMut(usize, &[u8]),
    ) {
        let mut at = 0usize;
        if self.used < 16 {
            let n = (16 - self.used).min(len);
            f(0, &self.block[self.used..self.used + n]);
            self.used += n;
            at = n;
        }
        if at == len {
            return;
        }
        let par_len = par.len();
        let chunk = par_len * 16;
        while len - at >= chunk {
            self.fill(par);
            backend.encrypt_par_blocks_inplace(par);
            f(at, Array::slice_as_flattened(par.as_slice()));
            at += chunk;
        }
        let rest = len - at;
        if rest == 0 {
            return;
        }
        let n = rest.div_ceil(16);
        let blocks = &mut par[..n];
        self.fill(blocks);
        if n == par_len {
            backend.encrypt_par_blocks_inplace(par);
        } else {
            backend.encrypt_tail_blocks_inplace(&mut par[..n]);
        }
        let ks = &par[..n];
        f(at, &Array::slice_as_flattened(ks)[..rest]);
        let tail = rest % 16;
        if tail != 0 {
            if let Some(last) = ks.last() {
                self.block = *last;
                self.used = tail;
            }
        }
    }
}

/// `data ^= ks` over `data.len()` bytes (`ks` is at least as long).
#[inline(always)]
fn xor(data: &mut [u8], ks: &[u8]) {
    for (d, k) in data.iter_mut().zip(ks) {
        *d ^= *k;
    }
}

/// `dst = src ^ ks` over `dst.len()` bytes (`src` and `ks` are at least as long).
#[inline(always)]
fn xor_from(dst: &mut [u8], src: &[u8], ks: &[u8]) {
    for ((d, s), k) in dst.iter_mut().zip(src).zip(ks) {
        *d = *s ^ *k;
    }
}

/// AES-CTR of one sample from `src` into `dst`: protected ranges encrypted on the way,
/// clear ranges copied. Lengths and subsamples were checked.
struct CtrCopyJob<'a> {
    src: &'a [u8],
    dst: &'a mut [u8],
    sample: &'a RunSample<'a>,
}

impl BlockSizeUser for CtrCopyJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CtrCopyJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut par = ParBlocks::<B>::default();
        let (src, dst, s) = (self.src, self.dst, self.sample);
        let mut ks = Keystream::new(s.iv.to_block());
        if s.subsamples.is_empty() {
            ks.apply_from(backend, &mut par, src, dst);
            return;
        }
        let mut pos = 0usize;
        for sub in s.subsamples {
            let start = pos + usize::from(sub.clear);
            let end = start + sub.protected as usize;
            let (Some(c), Some(cs)) = (dst.get_mut(pos..start), src.get(pos..start)) else {
                return;
            };
            c.copy_from_slice(cs);
            let (Some(p), Some(ps)) = (dst.get_mut(start..end), src.get(start..end)) else {
                return;
            };
            ks.apply_from(backend, &mut par, ps, p);
            pos = end;
        }
    }
}

/// AES-CTR over the protected ranges of a run of samples (both directions).
struct CtrJob<'a> {
    data: &'a mut [u8],
    samples: &'a [RunSample<'a>],
}

impl BlockSizeUser for CtrJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CtrJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut par = ParBlocks::<B>::default();
        let mut rest = self.data;
        for s in self.samples {
            if s.size > rest.len() {
                return;
            }
            let (sample, tail) = std::mem::take(&mut rest).split_at_mut(s.size);
            rest = tail;
            let mut ks = Keystream::new(s.iv.to_block());
            if s.subsamples.is_empty() {
                ks.apply(backend, &mut par, sample);
                continue;
            }
            let mut pos = 0usize;
            for sub in s.subsamples {
                let start = pos + usize::from(sub.clear);
                let end = start + sub.protected as usize;
                let Some(range) = sample.get_mut(start..end) else {
                    return;
                };
                ks.apply(backend, &mut par, range);
                pos = end;
            }
        }
    }
}

/// The full 16-byte blocks of a protected range that `pattern` encrypts, in order.
#[inline(always)]
fn pattern_blocks(range: &mut [u8], pattern: Pattern, mut f: impl FnMut(&mut Block)) {
    let (blocks, _partial) = Array::<u8, U16>::slice_as_chunks_mut(range);
    if pattern.is_none() {
        blocks.iter_mut().for_each(f);
        return;
    }
    let crypt = usize::from(pattern.crypt);
    let step = crypt + usize::from(pattern.skip);
    for group in blocks.chunks_mut(step) {
        let n = crypt.min(group.len());
        group[..n].iter_mut().for_each(&mut f);
    }
}

/// AES-CBC encryption of the pattern blocks of every protected range of a run.
struct CbcEncJob<'a> {
    data: &'a mut [u8],
    samples: &'a [RunSample<'a>],
    pattern: Pattern,
}

impl BlockSizeUser for CbcEncJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcEncJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let pattern = self.pattern;
        for_each_sample(self.data, self.samples, |s, sample| {
            let iv = Block::from(s.iv.to_block());
            for_each_range(sample, s.subsamples, |range| {
                let mut chain = iv;
                pattern_blocks(range, pattern, |block| {
                    // The chain stays in a local (a register once inlined): no reload
                    // of the block just stored on the critical path.
                    for (c, b) in chain.iter_mut().zip(block.iter()) {
                        *c ^= *b;
                    }
                    backend.encrypt_block_inplace(&mut chain);
                    *block = chain;
                });
            });
        });
    }
}

/// AES-CBC decryption of the pattern blocks of every protected range of a run.
struct CbcDecJob<'a> {
    data: &'a mut [u8],
    samples: &'a [RunSample<'a>],
    pattern: Pattern,
}

impl BlockSizeUser for CbcDecJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherDecClosure for CbcDecJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherDecBackend<BlockSize = U16>>(self, backend: &B) {
        let pattern = self.pattern;
        for_each_sample(self.data, self.samples, |s, sample| {
            let iv = Block::from(s.iv.to_block());
            for_each_range(sample, s.subsamples, |range| {
                let mut chain = iv;
                pattern_blocks(range, pattern, |block| {
                    let cipher = *block;
                    backend.decrypt_block_inplace(block);
                    for (b, c) in block.iter_mut().zip(chain.iter()) {
                        *b ^= *c;
                    }
                    chain = cipher;
                });
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, StreamCipher};

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// The reference: the `ctr` crate over the concatenated protected ranges.
    fn ctr_reference(key: [u8; 16], iv: [u8; 16], sample: &mut [u8], subs: &[Subsample]) {
        let mut c = ctr::Ctr64BE::<aes::Aes128>::new(&key.into(), &iv.into());
        if subs.is_empty() {
            c.apply_keystream(sample);
            return;
        }
        let mut pos = 0;
        for s in subs {
            pos += s.clear as usize;
            c.apply_keystream(&mut sample[pos..pos + s.protected as usize]);
            pos += s.protected as usize;
        }
    }

    #[test]
    fn cenc_matches_the_ctr_crate_across_ranges_and_sizes() {
        let key = [0x2b; 16];
        let cipher = SampleCipher::new(Scheme::Cenc, &ContentKey(key)).unwrap();
        let iv = Iv::Iv8([1, 2, 3, 4, 5, 6, 7, 8]);
        for len in [
            0usize,
            1,
            15,
            16,
            17,
            100,
            1023,
            1024,
            1025,
            4096 + 7,
            20_000,
        ] {
            let clear = data(len, len as u8);
            // Whole sample.
            let mut ours = clear.clone();
            cipher.encrypt(&mut ours, &iv, &[], Pattern::NONE).unwrap();
            let mut reference = clear.clone();
            ctr_reference(key, iv.to_block(), &mut reference, &[]);
            assert_eq!(ours, reference, "len {len}");
            cipher.decrypt(&mut ours, &iv, &[], Pattern::NONE).unwrap();
            assert_eq!(ours, clear);
            // Uneven subsamples: the keystream continues mid-block across ranges.
            if len >= 40 {
                let a = (len / 3) as u32;
                let subs = [
                    Subsample::new(5, 3),
                    Subsample::new(0, 17),
                    Subsample::new(7, a),
                    Subsample::new(2, (len - 34) as u32 - a),
                ];
                let mut ours = clear.clone();
                cipher
                    .encrypt(&mut ours, &iv, &subs, Pattern::NONE)
                    .unwrap();
                let mut reference = clear.clone();
                ctr_reference(key, iv.to_block(), &mut reference, &subs);
                assert_eq!(ours, reference, "len {len} with subsamples");
                assert_eq!(ours[..5], clear[..5]);
                assert_eq!(ours[8..8], clear[8..8]);
            }
        }
    }

    #[test]
    fn cenc_counter_wraps_in_the_low_64_bits() {
        let key = [9; 16];
        let cipher = SampleCipher::new(Scheme::Cenc, &ContentKey(key)).unwrap();
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&[0xaa; 8]);
        block[8..].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        let iv = Iv::Iv16(block);
        let clear = data(5 * 16, 3);
        let mut ours = clear.clone();
        cipher.encrypt(&mut ours, &iv, &[], Pattern::NONE).unwrap();
        let mut reference = clear.clone();
        ctr_reference(key, block, &mut reference, &[]);
        assert_eq!(ours, reference);
    }

    /// The reference for `cbcs`: the `cbc` crate on each run of encrypted blocks, the
    /// chain carried by hand from run to run.
    fn cbcs_reference(key: [u8; 16], iv: [u8; 16], range: &mut [u8], p: Pattern) {
        let blocks = range.len() / 16;
        let (crypt, skip) = if p.is_none() {
            (blocks.max(1), 0)
        } else {
            (p.crypt as usize, p.skip as usize)
        };
        let mut chain = iv;
        let mut b = 0;
        while b < blocks {
            let n = crypt.min(blocks - b);
            let run = &mut range[b * 16..(b + n) * 16];
            let mut enc = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &chain.into());
            let (chunks, _) = Array::<u8, U16>::slice_as_chunks_mut(run);
            enc.encrypt_blocks(chunks);
            chain.copy_from_slice(&run[run.len() - 16..]);
            b += n + skip;
        }
    }

    #[test]
    fn cbcs_matches_the_cbc_crate_with_patterns() {
        let key = [0x7e; 16];
        let iv = [0x11; 16];
        let cipher = SampleCipher::new(Scheme::Cbcs, &ContentKey(key)).unwrap();
        for p in [
            Pattern::NONE,
            Pattern::CBCS_VIDEO,
            Pattern::new(5, 5),
            Pattern::new(10, 0),
        ] {
            for len in [0usize, 15, 16, 31, 160, 161, 500, 4000] {
                let clear = data(len, 9);
                let mut ours = clear.clone();
                cipher.encrypt(&mut ours, &Iv::Iv16(iv), &[], p).unwrap();
                let mut reference = clear.clone();
                cbcs_reference(key, iv, &mut reference, p);
                assert_eq!(ours, reference, "{p:?} len {len}");
                // The partial block at the end stays clear.
                let full = len / 16 * 16;
                assert_eq!(ours[full..], clear[full..]);
                cipher.decrypt(&mut ours, &Iv::Iv16(iv), &[], p).unwrap();
                assert_eq!(ours, clear);
            }
        }
    }

    #[test]
    fn cbcs_restarts_the_chain_at_every_subsample() {
        let key = [0x42; 16];
        let iv = [0x24; 16];
        let cipher = SampleCipher::new(Scheme::Cbcs, &ContentKey(key)).unwrap();
        let clear = data(7 + 200 + 3 + 50, 1);
        let subs = [Subsample::new(7, 200), Subsample::new(3, 50)];
        let mut ours = clear.clone();
        cipher
            .encrypt(&mut ours, &Iv::Iv16(iv), &subs, Pattern::CBCS_VIDEO)
            .unwrap();
        let mut reference = clear.clone();
        cbcs_reference(key, iv, &mut reference[7..207], Pattern::CBCS_VIDEO);
        cbcs_reference(key, iv, &mut reference[210..260], Pattern::CBCS_VIDEO);
        assert_eq!(ours, reference);
        // Decryption with cbc's decryptor on the first block of each range.
        let mut first = ours[7..23].to_vec();
        let mut dec = cbc::Decryptor::<aes::Aes128>::new(&key.into(), &iv.into());
        let (chunks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut first);
        dec.decrypt_blocks(chunks);
        assert_eq!(first, clear[7..23]);
    }

    #[test]
    fn bad_arguments_are_typed_errors_and_leave_the_sample() {
        let cenc = SampleCipher::new(Scheme::Cenc, &ContentKey([1; 16])).unwrap();
        let cbcs = SampleCipher::new(Scheme::Cbcs, &ContentKey([1; 16])).unwrap();
        let iv = Iv::Iv8([0; 8]);
        let mut s = data(50, 0);
        let before = s.clone();
        for (c, subs, p, kind) in [
            (
                &cenc,
                vec![Subsample::new(10, 39)],
                Pattern::NONE,
                ErrorKind::Malformed,
            ),
            (
                &cenc,
                vec![Subsample::new(u16::MAX, u32::MAX)],
                Pattern::NONE,
                ErrorKind::Malformed,
            ),
            (
                &cbcs,
                vec![Subsample::new(10, 41)],
                Pattern::NONE,
                ErrorKind::Malformed,
            ),
            (&cenc, vec![], Pattern::CBCS_VIDEO, ErrorKind::Unsupported),
            (&cbcs, vec![], Pattern::new(0, 9), ErrorKind::Unsupported),
        ] {
            assert_eq!(c.encrypt(&mut s, &iv, &subs, p).unwrap_err().kind(), kind);
            assert_eq!(c.decrypt(&mut s, &iv, &subs, p).unwrap_err().kind(), kind);
            assert_eq!(s, before);
        }
        assert_eq!(
            SampleCipher::new(Scheme::Aes128, &ContentKey([0; 16]))
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
        assert!(format!("{cenc:?}").contains("Cenc"));
    }

    #[test]
    fn encrypt_from_is_copy_then_encrypt() {
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let cipher = SampleCipher::new(scheme, &ContentKey([0x17; 16])).unwrap();
            let pattern = if scheme == Scheme::Cbcs {
                Pattern::CBCS_VIDEO
            } else {
                Pattern::NONE
            };
            let iv = Iv::Iv8([9, 8, 7, 6, 5, 4, 3, 2]);
            let iv = if scheme == Scheme::Cbcs {
                Iv::Iv16([3; 16])
            } else {
                iv
            };
            // Sizes around the parallel block width and odd tails, with and without
            // subsamples (clear runs, protected runs, a clear-only tail).
            for n in [0usize, 1, 15, 16, 17, 255, 256, 257, 1000, 4096 + 7, 70_001] {
                let clear = data(n, n as u8);
                let subs = if n >= 100 {
                    vec![
                        Subsample::new(5, 37),
                        Subsample::new(0, (n - 100) as u32),
                        Subsample::new(58, 0),
                    ]
                } else {
                    Vec::new()
                };
                let mut expect = clear.clone();
                cipher.encrypt(&mut expect, &iv, &subs, pattern).unwrap();
                let mut out = vec![0xee; n];
                cipher
                    .encrypt_from(&clear, &mut out, &iv, &subs, pattern)
                    .unwrap();
                assert_eq!(out, expect, "{scheme:?} {n}");
            }
            let mut short = vec![0; 3];
            let e = cipher
                .encrypt_from(&[1, 2, 3, 4], &mut short, &iv, &[], pattern)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
        }
    }

    #[test]
    fn a_run_is_its_samples_one_by_one() {
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let cipher = SampleCipher::new(scheme, &ContentKey([0x61; 16])).unwrap();
            let pattern = if scheme == Scheme::Cbcs {
                Pattern::CBCS_VIDEO
            } else {
                Pattern::NONE
            };
            let subs = [Subsample::new(3, 320), Subsample::new(1, 16)];
            let sizes = [1000usize, 340, 0, 17];
            let samples: Vec<RunSample<'_>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let s: &[Subsample] = if n == 340 { &subs } else { &[] };
                    RunSample::new(n, Iv::Iv16([i as u8; 16]), s)
                })
                .collect();
            let clear = data(sizes.iter().sum(), 5);
            let mut run = clear.clone();
            cipher.encrypt_run(&mut run, &samples, pattern).unwrap();
            let mut one_by_one = clear.clone();
            let mut pos = 0;
            for s in &samples {
                let part = &mut one_by_one[pos..pos + s.size];
                cipher.encrypt(part, &s.iv, s.subsamples, pattern).unwrap();
                pos += s.size;
            }
            assert_eq!(run, one_by_one, "{scheme:?}");
            cipher.decrypt_run(&mut run, &samples, pattern).unwrap();
            assert_eq!(run, clear);
            let e = cipher
                .encrypt_run(&mut run[1..], &samples, pattern)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
            assert_eq!(run, clear);
        }
    }

    #[test]
    fn derived_ivs_are_distinct_and_bounded() {
        let mut seen = std::collections::HashSet::new();
        for track in [1u32, 2, 4095] {
            for seq in [0u32, 1, u32::MAX] {
                for idx in [0u32, 1, (1 << 20) - 1] {
                    let iv = derive_sample_iv(track, seq, idx, 0x5eed).unwrap();
                    assert!(seen.insert(iv), "{track} {seq} {idx}");
                    assert_eq!(iv.as_bytes().len(), 8);
                }
            }
        }
        assert_eq!(
            derive_sample_iv(1, 2, 3, 0).unwrap(),
            Iv::Iv8([0, 0, 0, 2, 0, 0x10, 0, 3])
        );
        assert_eq!(
            derive_sample_iv(4096, 0, 0, 0).unwrap_err().kind(),
            ErrorKind::Limit
        );
        assert_eq!(
            derive_sample_iv(1, 0, 1 << 20, 0).unwrap_err().kind(),
            ErrorKind::Limit
        );
    }
}
