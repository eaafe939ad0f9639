//! Text helpers of the MPD writer: XML attribute escaping (XML 1.0 §2.4, §3.3.3),
//! `xs:duration` (XML Schema Part 2 §3.2.6) and `xs:dateTime` in UTC (§3.2.7), all from
//! integers.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::package::civil::{civil_from_days, DAY_MS};
use crate::time::Timestamp;

/// Appends ` name="value"` with `value` escaped for a double-quoted attribute.
///
/// `&`, `<`, `>`, `"` and `'` become entities; tab, CR and LF become character
/// references so attribute-value normalisation (XML 1.0 §3.3.3) keeps them. Other
/// C0 control characters and U+FFFE/U+FFFF cannot appear in XML 1.0 at all (§2.2):
/// [`Error::usage`].
pub(crate) fn attr(out: &mut String, name: &str, value: &str) -> Result<()> {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escaped(out, value).map_err(|e| e.context(format!("attribute {name}")))?;
    out.push('"');
    Ok(())
}

/// Appends `value` as element content or a double-quoted attribute value: the escaping
/// of [`attr`].
pub(crate) fn escaped(out: &mut String, value: &str) -> Result<()> {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(Error::usage("MPD text holds a character XML 1.0 forbids"));
            }
            c => out.push(c),
        }
    }
    Ok(())
}

/// Appends ` name="n"` for an integer (nothing to escape).
pub(crate) fn attr_num(out: &mut String, name: &str, n: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, " {name}=\"{n}\"");
}

/// `ms` milliseconds as an `xs:duration` in hours, minutes and seconds (`PT1H2M3.45S`).
///
/// Zero is `PT0S`; zero components are left out (`PT1M`, `PT2H0.5S`); the fraction has no trailing zeros (`PT2.5S`). Hours are not folded into
/// days, which `xs:duration` allows (`PT25H`).
pub(crate) fn duration_ms(out: &mut String, ms: u64) {
    out.push_str("PT");
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        let _ = write!(out, "{h}H");
    }
    if m > 0 {
        let _ = write!(out, "{m}M");
    }
    if s > 0 || frac > 0 || ms == 0 {
        let _ = write!(out, "{s}");
        if frac > 0 {
            let digits = format!("{frac:03}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push('S');
    }
}

/// `duration` rounded to the nearest millisecond as an `xs:duration`.
///
/// Errors: [`Error::usage`] for a negative duration (MPD durations are not signed).
pub(crate) fn duration(out: &mut String, duration: Timestamp, what: &'static str) -> Result<()> {
    let ms = duration.as_millis();
    if ms < 0 {
        return Err(Error::usage("negative duration in MPD").context(what));
    }
    duration_ms(out, ms as u64);
    Ok(())
}

/// `unix_ms` (milliseconds since 1970-01-01T00:00:00Z, POSIX time) as an `xs:dateTime`
/// in UTC: `2024-02-29T12:34:56Z`, with `.mmm` only when the milliseconds are not zero.
///
/// Errors: [`Error::usage`] outside years 0001..=9999 (`xs:dateTime` has no year 0 and
/// longer years need more than four digits).
pub(crate) fn date_time(out: &mut String, unix_ms: i64, what: &'static str) -> Result<()> {
    // 0001-01-01 and 10000-01-01 as days since the epoch.
    const MIN_DAYS: i64 = -719_162;
    const MAX_DAYS: i64 = 2_932_897;
    let days = unix_ms.div_euclid(DAY_MS);
    if !(MIN_DAYS..MAX_DAYS).contains(&days) {
        return Err(Error::usage("MPD date outside years 0001..=9999").context(what));
    }
    let ms_of_day = unix_ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if ms_of_day % 1000 != 0 {
        let _ = write!(out, ".{:03}", ms_of_day % 1000);
    }
    out.push('Z');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timescale;
    use crate::ErrorKind;

    fn dur(ms: u64) -> String {
        let mut s = String::new();
        duration_ms(&mut s, ms);
        s
    }

    fn date(ms: i64) -> String {
        let mut s = String::new();
        date_time(&mut s, ms, "test").unwrap();
        s
    }

    #[test]
    fn durations() {
        assert_eq!(dur(0), "PT0S");
        assert_eq!(dur(1), "PT0.001S");
        assert_eq!(dur(10), "PT0.01S");
        assert_eq!(dur(2000), "PT2S");
        assert_eq!(dur(2500), "PT2.5S");
        assert_eq!(dur(62_345), "PT1M2.345S");
        assert_eq!(dur(60_000), "PT1M");
        assert_eq!(dur(3_600_000), "PT1H");
        assert_eq!(dur(3_723_040), "PT1H2M3.04S");
        assert_eq!(dur(7_200_500), "PT2H0.5S");
        assert_eq!(dur(90_000_000), "PT25H");
        let mut s = String::new();
        duration(&mut s, Timestamp::new(540_540, Timescale::MPEG), "x").unwrap();
        assert_eq!(s, "PT6.006S");
        let e = duration(&mut s, Timestamp::from_millis(-1), "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01T00:00:00Z");
        assert_eq!(date(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(date(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(date(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(date(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(date(1_709_251_200_000), "2024-03-01T00:00:00Z");
        assert_eq!(date(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(date(-62_135_596_800_000), "0001-01-01T00:00:00Z");
        for bad in [253_402_300_800_000, -62_135_596_800_001, i64::MIN, i64::MAX] {
            assert!(date_time(&mut String::new(), bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        attr(&mut s, "value", "a&b<c>d\"e'f\tg\nh\ri é").unwrap();
        assert_eq!(
            s,
            " value=\"a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g&#10;h&#13;i é\""
        );
        for bad in ["\u{0}", "a\u{1b}b", "\u{FFFF}"] {
            let e = attr(&mut String::new(), "x", bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
        }
        let mut s = String::new();
        attr_num(&mut s, "bandwidth", 1234u64);
        assert_eq!(s, " bandwidth=\"1234\"");
    }
}
