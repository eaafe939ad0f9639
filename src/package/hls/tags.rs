//! Text building blocks shared by the HLS writers: attribute value syntax (RFC 8216bis
//! §4.2), decimal formatting from integers, and ISO 8601 dates for
//! `EXT-X-PROGRAM-DATE-TIME` (§4.4.4.6). No floating point anywhere.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::package::civil::{civil_from_days, DAY_MS};
use crate::time::{Rounding, Timescale, Timestamp};

/// Milliseconds in `d`, rounded to nearest; negative durations are a usage error.
pub(crate) fn duration_millis(d: Timestamp) -> Result<i64> {
    let ms = d.rescale(Timescale::MILLIS, Rounding::Nearest).ticks();
    if ms < 0 {
        return Err(Error::usage("negative segment duration"));
    }
    Ok(ms)
}

/// `ms` (non-negative) as a decimal number of seconds with exactly three decimals:
/// `6006` -> `"6.006"` (the `decimal-floating-point` of RFC 8216bis §4.2).
pub(crate) fn secs_3(out: &mut String, ms: u64) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

/// Whole seconds of `ms`, halves rounded up: how a client rounds an `EXTINF` value
/// "to the nearest integer" when it checks it against `EXT-X-TARGETDURATION`
/// (RFC 8216bis §4.4.3.1).
pub(crate) fn round_half_up_secs(ms: u64) -> u64 {
    ms.saturating_add(500) / 1000
}

/// `num / den` with exactly three decimals, rounded half up (`FRAME-RATE`,
/// RFC 8216bis §4.4.6.2): `(30000, 1001)` -> `"29.970"`.
pub(crate) fn ratio_3(num: u32, den: u32) -> Result<String> {
    if den == 0 {
        return Err(Error::usage("frame rate with a zero denominator"));
    }
    let (num, den) = (num as u64, den as u64);
    let thousandths = (2 * num * 1000 + den) / (2 * den);
    let mut s = String::new();
    secs_3(&mut s, thousandths);
    Ok(s)
}

/// Appends `"value"` as a `quoted-string` (RFC 8216bis §4.2): it must not contain
/// a double quote, a carriage return or a line feed; there is no escape syntax.
pub(crate) fn quoted(out: &mut String, value: &str) -> Result<()> {
    if value.contains(['"', '\r', '\n']) {
        return Err(Error::usage(
            "HLS quoted-string cannot contain '\"', CR or LF",
        ));
    }
    out.push('"');
    out.push_str(value);
    out.push('"');
    Ok(())
}

/// Checks a URI line (RFC 8216bis §4.1): not empty, one line, not a tag or comment.
pub(crate) fn check_uri(uri: &str) -> Result<()> {
    if uri.is_empty() || uri.starts_with('#') || uri.contains(['\r', '\n']) {
        return Err(Error::usage(
            "HLS URI must be one non-empty line not starting with '#'",
        ));
    }
    Ok(())
}

/// `unix_ms` (milliseconds since 1970-01-01T00:00:00Z, leap seconds ignored as in
/// POSIX time) as an ISO 8601 / RFC 3339 `date-time` with milliseconds and `Z`:
/// `2024-02-29T12:34:56.789Z`, for `EXT-X-PROGRAM-DATE-TIME` (RFC 8216bis §4.4.4.6).
///
/// Errors: [`Error::usage`] outside years 0000..=9999, which need more than four digits.
pub(crate) fn iso8601_millis(out: &mut String, unix_ms: i64) -> Result<()> {
    // 0000-01-01 and 10000-01-01 as days since the epoch.
    const MIN_DAYS: i64 = -719_528;
    const MAX_DAYS: i64 = 2_932_897;
    let days = unix_ms.div_euclid(DAY_MS);
    if !(MIN_DAYS..MAX_DAYS).contains(&days) {
        return Err(Error::usage("program date-time outside years 0000..=9999"));
    }
    let ms_of_day = unix_ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(ms: i64) -> String {
        let mut s = String::new();
        iso8601_millis(&mut s, ms).unwrap();
        s
    }

    #[test]
    fn decimals_from_integers() {
        let s3 = |ms| {
            let mut s = String::new();
            secs_3(&mut s, ms);
            s
        };
        assert_eq!(s3(6006), "6.006");
        assert_eq!(s3(0), "0.000");
        assert_eq!(s3(10), "0.010");
        assert_eq!(s3(123_456_789), "123456.789");
        assert_eq!(ratio_3(30000, 1001).unwrap(), "29.970");
        assert_eq!(ratio_3(25, 1).unwrap(), "25.000");
        assert_eq!(ratio_3(2, 3).unwrap(), "0.667");
        assert_eq!(ratio_3(u32::MAX, 1).unwrap(), "4294967295.000");
        assert!(ratio_3(25, 0).is_err());
        // 6.006 s at 90 kHz, and a 1/3 ms remainder rounding down.
        assert_eq!(
            duration_millis(Timestamp::new(540_540, Timescale::MPEG)).unwrap(),
            6006
        );
        assert_eq!(
            duration_millis(Timestamp::new(30, Timescale::MPEG)).unwrap(),
            0
        );
        assert_eq!(
            duration_millis(Timestamp::new(45, Timescale::MPEG)).unwrap(),
            1
        );
        assert!(duration_millis(Timestamp::from_millis(-1)).is_err());
        assert_eq!(round_half_up_secs(6499), 6);
        assert_eq!(round_half_up_secs(6500), 7);
        assert_eq!(round_half_up_secs(u64::MAX), u64::MAX / 1000);
    }

    #[test]
    fn quoted_strings_and_uris() {
        let mut s = String::new();
        quoted(&mut s, "English (UK)").unwrap();
        assert_eq!(s, "\"English (UK)\"");
        for bad in ["a\"b", "a\nb", "a\rb"] {
            let e = quoted(&mut String::new(), bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Usage);
        }
        assert!(check_uri("seg-1.ts").is_ok());
        assert!(check_uri("https://cdn.example/a b.ts").is_ok());
        for bad in ["", "#EXTINF:1,", "a\nb.ts", "a.ts\r"] {
            assert!(check_uri(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn iso8601_with_millis() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(iso(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        for bad in [253_402_300_800_000, -62_167_219_200_001, i64::MIN, i64::MAX] {
            assert!(iso8601_millis(&mut String::new(), bad).is_err());
        }
    }
}
