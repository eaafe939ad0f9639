//! Subsample tables of NAL-structured video samples (ISO/IEC 23001-7 §9.5.2, CMAF
//! ISO/IEC 23000-19 §8.2.2.1).

use super::h264::{self, H264Slices};
use super::h265::{self, H265Slices};
use super::Subsample;
use crate::crypto::Scheme;
use crate::error::{Error, Result};
use crate::media::CodecConfig;

/// Size of the NAL length prefixes of the pipeline's samples.
const PREFIX: usize = 4;

#[derive(Debug, Clone)]
enum Slices {
    H264(H264Slices),
    H265(H265Slices),
}

/// Computes the subsample table of H.264 and H.265 samples (4-byte NAL length
/// prefixes, the pipeline's canonical form) for scheme `cenc` or `cbcs`.
///
/// Per NAL unit (ISO/IEC 23001-7 §9.5.2.2, §10.4.2): the length prefix, the NAL unit
/// header and the slice header of a coded slice stay clear and the slice data is
/// protected; other units (parameter sets, SEI, AUD, filler, data partitions) stay
/// wholly clear. The slice header length is parsed with the parameter sets of the
/// track configuration, updated by any SPS/PPS carried in the samples. For `cenc` the
/// protected part of each unit is shortened to a whole number of 16-byte blocks, the
/// remainder joining the clear bytes in front (CMAF §8.2.2.1, as Shaka Packager does);
/// for `cbcs` it starts right after the slice header. Clear runs longer than 65535 bytes
/// are split into clear-only entries; clear bytes after the last protected range end
/// the table as a clear-only entry.
///
/// ```
/// use bytes::Bytes;
/// use strom::crypto::cenc::{Subsample, SubsampleGenerator};
/// use strom::crypto::Scheme;
/// use strom::media::{AacConfig, CodecConfig};
///
/// // Audio is protected whole: no generator.
/// let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
/// assert!(SubsampleGenerator::new(&CodecConfig::Aac(aac), Scheme::Cenc).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct SubsampleGenerator {
    slices: Slices,
    align: bool,
}

impl SubsampleGenerator {
    /// A generator for a track of `config` protected with `scheme` ([`Scheme::Cenc`] or
    /// [`Scheme::Cbcs`]); `None` for audio, which is protected whole.
    ///
    /// Errors: another scheme ([`crate::ErrorKind::Usage`]); parameter sets that do not
    /// parse ([`crate::ErrorKind::Malformed`]).
    pub fn new(config: &CodecConfig, scheme: Scheme) -> Result<Option<Self>> {
        let align = match scheme {
            Scheme::Cenc => true,
            Scheme::Cbcs => false,
            _ => return Err(Error::usage("subsamples are for schemes cenc and cbcs")),
        };
        let slices = match config {
            CodecConfig::H264(c) => Slices::H264(H264Slices::new(
                c.sps.iter().map(|b| &b[..]),
                c.pps.iter().map(|b| &b[..]),
            )?),
            CodecConfig::H265(c) => Slices::H265(H265Slices::new(
                c.sps.iter().map(|b| &b[..]),
                c.pps.iter().map(|b| &b[..]),
            )?),
            _ => return Ok(None),
        };
        Ok(Some(SubsampleGenerator { slices, align }))
    }

    /// Appends the subsample table of `sample` (4-byte length-prefixed NAL units) to
    /// `out`. An empty sample has an empty table.
    ///
    /// Errors ([`crate::ErrorKind::Malformed`] unless said): length prefixes that do not
    /// cover the sample exactly, a slice header that runs past its unit or refers to an
    /// unknown parameter set, a parameter set that does not parse, an H.265 PPS with an
    /// extension this parser does not know ([`crate::ErrorKind::Unsupported`]). On error
    /// `out` is as it was.
    pub fn subsamples(&mut self, sample: &[u8], out: &mut Vec<Subsample>) -> Result<()> {
        let mut units = Vec::new();
        let mut pos = 0usize;
        while pos < sample.len() {
            let len = sample
                .get(pos..pos + PREFIX)
                .map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize)
                .ok_or_else(|| {
                    Error::malformed("truncated NAL length prefix").at_offset(pos as u64)
                })?;
            let end = (pos + PREFIX)
                .checked_add(len)
                .filter(|&e| e <= sample.len())
                .ok_or_else(|| {
                    Error::malformed("NAL unit length exceeds the sample").at_offset(pos as u64)
                })?;
            units.push((pos, len));
            pos = end;
        }
        self.subsamples_of_units(sample, units.into_iter(), out)
    }

    /// Like [`SubsampleGenerator::subsamples`] with the units already known: `(offset of
    /// the length prefix in the sample, unit length)`, in order, covering the sample (as a
    /// fragment's sample table keeps them).
    pub(crate) fn subsamples_of_units(
        &mut self,
        sample: &[u8],
        units: impl Iterator<Item = (usize, usize)>,
        out: &mut Vec<Subsample>,
    ) -> Result<()> {
        let mark = out.len();
        let r = self.units(sample, units, out);
        if r.is_err() {
            out.truncate(mark);
        }
        r
    }

    fn units(
        &mut self,
        sample: &[u8],
        units: impl Iterator<Item = (usize, usize)>,
        out: &mut Vec<Subsample>,
    ) -> Result<()> {
        let mut clear = 0usize;
        let mut covered = 0usize;
        for (i, (at, len)) in units.enumerate() {
            let ctx = || format!("NAL unit {i}");
            if at != covered {
                return Err(Error::malformed("NAL units do not cover the sample").context(ctx()));
            }
            let nal = sample
                .get(at + PREFIX..at + PREFIX + len)
                .ok_or_else(|| Error::malformed("NAL unit outside the sample").context(ctx()))?;
            covered = at + PREFIX + len;
            let header = self.slice_header_len(nal).map_err(|e| e.context(ctx()))?;
            let (mut c, mut p) = match header {
                Some(h) if h < len => (PREFIX + h, len - h),
                _ => (PREFIX + len, 0),
            };
            if self.align {
                let misaligned = p % 16;
                c += misaligned;
                p -= misaligned;
            }
            clear += c;
            if p == 0 {
                continue;
            }
            let protected =
                u32::try_from(p).map_err(|_| Error::limit("NAL unit larger than 4 GiB"))?;
            while clear > usize::from(u16::MAX) {
                out.push(Subsample::new(u16::MAX, 0));
                clear -= usize::from(u16::MAX);
            }
            out.push(Subsample::new(clear as u16, protected));
            clear = 0;
        }
        if covered != sample.len() {
            return Err(Error::malformed("NAL units do not cover the sample"));
        }
        while clear > 0 {
            let c = clear.min(usize::from(u16::MAX));
            out.push(Subsample::new(c as u16, 0));
            clear -= c;
        }
        Ok(())
    }

    /// Updates the parameter sets from `nal`; for a coded slice, the bytes of NAL unit
    /// header and slice header.
    fn slice_header_len(&mut self, nal: &[u8]) -> Result<Option<usize>> {
        match &mut self.slices {
            Slices::H264(s) => {
                if h264::is_slice(h264::nal_type(nal)) {
                    s.header_len(nal).map(Some)
                } else {
                    s.process(nal).map(|_| None)
                }
            }
            Slices::H265(s) => {
                if h265::is_slice(h265::nal_type(nal)) {
                    s.header_len(nal).map(Some)
                } else {
                    s.process(nal).map(|_| None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
    use crate::media::H264Config;
    use crate::ErrorKind;

    fn generator(scheme: Scheme) -> SubsampleGenerator {
        let c = H264Config::from_parameter_sets(
            Bytes::from_static(SPS_720P),
            Bytes::from_static(PPS_720P),
        )
        .unwrap();
        SubsampleGenerator::new(&CodecConfig::H264(c), scheme)
            .unwrap()
            .unwrap()
    }

    fn unit(out: &mut Vec<u8>, nal: &[u8]) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }

    /// An IDR slice of the 720p parameter sets whose header is 4 bytes long: first_mb 0
    /// (1), slice_type 7 (0001000), pps 0 (1), frame_num (4 bits), idr_pic_id 0 (1),
    /// poc lsb (6 bits), marking (2), qp delta 0 (1), deblocking 0,0,0 (111): 30 bits.
    fn idr(payload: usize) -> Vec<u8> {
        let s = H264Slices::new([SPS_720P], [PPS_720P]).unwrap();
        let mut nal = vec![0x65, 0b1000_1000, 0b1000_0100, 0b0000_0000, 0b0111_1111];
        nal.extend(std::iter::repeat_n(0x5a, payload));
        // Whatever the parameter sets say, the test checks what the parser returns.
        let h = s.header_len(&nal).unwrap();
        assert!(h <= 5, "{h}");
        nal
    }

    #[test]
    fn cenc_aligns_and_merges_clear_units() {
        let mut g = generator(Scheme::Cenc);
        let mut sample = Vec::new();
        unit(&mut sample, &[0x09, 0xf0]); // AUD
        unit(&mut sample, &[0x06; 30]); // SEI
        let slice = idr(100);
        unit(&mut sample, &slice);
        let mut out = Vec::new();
        g.subsamples(&sample, &mut out).unwrap();
        let h = H264Slices::new([SPS_720P], [PPS_720P])
            .unwrap()
            .header_len(&slice)
            .unwrap();
        let protected = (slice.len() - h) / 16 * 16;
        let clear = sample.len() - protected;
        assert_eq!(out, [Subsample::new(clear as u16, protected as u32)]);
        assert_eq!(
            out.iter().map(Subsample::len).sum::<u64>(),
            sample.len() as u64
        );

        // cbcs: no alignment, protected right after the header; a trailing SEI ends the
        // table with a clear-only entry.
        let mut g = generator(Scheme::Cbcs);
        unit(&mut sample, &[0x06; 10]);
        let mut out = Vec::new();
        g.subsamples(&sample, &mut out).unwrap();
        let lead = 4 + 2 + 4 + 30 + 4 + h;
        assert_eq!(
            out,
            [
                Subsample::new(lead as u16, (slice.len() - h) as u32),
                Subsample::new(14, 0)
            ]
        );
    }

    #[test]
    fn long_clear_runs_are_split() {
        let mut g = generator(Scheme::Cenc);
        let mut sample = Vec::new();
        unit(&mut sample, &vec![0x0c; 70_000]); // filler data
        unit(&mut sample, &idr(64));
        let mut out = Vec::new();
        g.subsamples(&sample, &mut out).unwrap();
        assert_eq!(out[0], Subsample::new(u16::MAX, 0));
        assert_eq!(out.len(), 2);
        assert_eq!(
            out.iter().map(Subsample::len).sum::<u64>(),
            sample.len() as u64
        );
        // Only clear: clear-only entries.
        let mut sample = Vec::new();
        unit(&mut sample, &vec![0x0c; 140_000]);
        let mut out = Vec::new();
        g.subsamples(&sample, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|s| s.protected == 0));
        assert_eq!(
            out.iter().map(Subsample::len).sum::<u64>(),
            sample.len() as u64
        );
    }

    #[test]
    fn broken_samples_are_errors_and_append_nothing() {
        let mut g = generator(Scheme::Cenc);
        let mut out = vec![Subsample::new(1, 1)];
        for bad in [
            &[0, 0, 0][..],
            &[0, 0, 0, 9, 0x65][..],
            &[0, 0, 0, 2, 0x65, 0x88][..], // slice header past the unit
            &[0, 0, 0, 1, 0x67][..],       // SPS that does not parse
        ] {
            let e = g.subsamples(bad, &mut out).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
            assert_eq!(out.len(), 1);
        }
        assert!(g.subsamples(&[], &mut out).is_ok());
        assert_eq!(out.len(), 1);
        assert_eq!(
            SubsampleGenerator::new(
                &CodecConfig::H264(
                    H264Config::from_parameter_sets(
                        Bytes::from_static(SPS_720P),
                        Bytes::from_static(PPS_720P)
                    )
                    .unwrap()
                ),
                Scheme::Aes128
            )
            .unwrap_err()
            .kind(),
            ErrorKind::Usage
        );
    }
}
