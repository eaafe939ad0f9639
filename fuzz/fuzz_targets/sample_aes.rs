//! HLS SAMPLE-AES on arbitrary bytes: the first 32 bytes of the input are the key
//! and IV, the rest is used as one NAL unit, an AAC frame, an Annex B stream, a
//! buffer of ADTS frames and a canonical H.264 frame. Checks:
//!
//! * `decrypt_h264_nal(encrypt_h264_nal(x)) == x` for any `x`, and an encrypted
//!   unit never holds `00 00 00`, `00 00 01` or `00 00 02` (start code emulation);
//! * `decrypt_aac_frame(encrypt_aac_frame(x)) == x`, lengths kept;
//! * the parsers of the decryption side (Annex B splitting, ADTS walking) and the
//!   SAMPLE-AES TS muxer take any input without panicking, and the muxer writes
//!   whole 188-byte packets or nothing.
#![no_main]

#[path = "shared/params.rs"]
mod params;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::container::ts::{TsEncryption, TsMuxer, TsMuxerOptions};
use strom::crypto::sample_aes::SampleAes;
use strom::crypto::{ContentKey, Iv};
use strom::media::{CodecConfig, Frame, H264Config, TrackInfo};
use strom::time::{Timescale, Timestamp};

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; 32];
    let n = data.len().min(32);
    head[..n].copy_from_slice(&data[..n]);
    let body = &data[n..];
    let mut key = [0u8; 16];
    key.copy_from_slice(&head[..16]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&head[16..]);
    let (key, iv) = (ContentKey(key), Iv::Iv16(iv));
    let sa = SampleAes::new(&key, &iv).unwrap();

    // One NAL unit.
    let mut wire = Vec::new();
    let encrypted = sa.encrypt_h264_nal(body, &mut wire);
    if encrypted {
        assert!(!wire.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
    } else {
        assert_eq!(wire, body);
    }
    let mut back = Vec::new();
    assert_eq!(sa.decrypt_h264_nal(&wire, &mut back), encrypted);
    assert_eq!(back, body);

    // One AAC frame.
    let mut frame = body.to_vec();
    sa.encrypt_aac_frame(&mut frame);
    assert_eq!(frame.len(), body.len());
    sa.decrypt_aac_frame(&mut frame);
    assert_eq!(frame, body);

    // Decryption-side parsers on anything.
    let mut out = Vec::new();
    sa.decrypt_h264_annexb(body, &mut out);
    let mut adts = body.to_vec();
    let _ = sa.decrypt_adts(&mut adts);
    let _ = sa.encrypt_adts(&mut adts);

    // The SAMPLE-AES muxer with the body as a canonical H.264 frame.
    let cfg = H264Config::from_parameter_sets(
        Bytes::from_static(params::SPS),
        Bytes::from_static(params::PPS),
    )
    .unwrap();
    let track = TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(cfg));
    let mut opts = TsMuxerOptions::default();
    opts.encryption = TsEncryption::sample_aes(key, iv);
    let mut mux = TsMuxer::new(&[track], opts).unwrap();
    let mut ts = BytesMut::new();
    mux.write_tables(&mut ts);
    let before = ts.len();
    let t = Timestamp::from_millis(0);
    let r = mux.write_frame(&Frame::new(1, t, t, Bytes::copy_from_slice(body)), &mut ts);
    assert_eq!(ts.len() % 188, 0);
    if r.is_err() {
        assert_eq!(ts.len(), before, "nothing written on error");
    }
});
