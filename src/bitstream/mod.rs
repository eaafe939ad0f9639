//! Codec bitstream helpers: bit reader with Exp-Golomb, NAL unit framing, H.264/H.265
//! parameter sets, AAC `AudioSpecificConfig` and ADTS.
//!
//! ```
//! use strom::bitstream::nal;
//! let lp = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 1, 0x65];
//! let units: Vec<&[u8]> = nal::iter_length_prefixed(&lp, 4).collect::<Result<_, _>>().unwrap();
//! assert_eq!(units, vec![&[0x09, 0xf0][..], &[0x65][..]]);
//! ```

pub mod aac;
pub mod bits;
pub mod h264;
pub mod h265;
pub mod nal;
#[cfg(test)]
pub(crate) mod test_vectors;
