//! Event-time helpers: RFC 3339 parsing and formatting, UTC days, half-life decay.
//!
//! Times are `i64` microseconds since the Unix epoch (UTC): enough range for any RFC 3339
//! year and finer than any real tracking system stamps events.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// Microseconds in one UTC day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Parses an RFC 3339 timestamp with offset (`2026-11-28T10:00:00Z`, `...+02:00`).
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Formats a time as RFC 3339 in UTC with a `Z` suffix; fractional seconds only when present.
pub fn format_rfc3339(t: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(t) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => t.to_string(),
    }
}

/// The UTC calendar day (days since 1970-01-01) a time falls on.
pub fn utc_day(t: Micros) -> i32 {
    t.div_euclid(MICROS_PER_DAY) as i32
}

/// Wall-clock now.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// `2^(-dt / half_life)`, both in microseconds; `half_life == None` means no decay.
#[inline]
pub fn decay_factor(dt: Micros, half_life: Option<Micros>) -> f64 {
    match half_life {
        // In-order events (dt = 0) are the common case; 2^-0 is exactly 1.
        None => 1.0,
        Some(_) if dt == 0 => 1.0,
        Some(h) => (-(dt as f64) / (h as f64)).exp2(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-28T10:00:00Z").unwrap();
        let plus2 = parse_rfc3339("2026-11-28T12:00:00+02:00").unwrap();
        assert_eq!(z, plus2);
        let frac = parse_rfc3339("2026-11-28T10:00:00.25Z").unwrap();
        assert_eq!(frac - z, 250_000);
        assert!(parse_rfc3339("2026-11-28 10:00").is_none());
        assert!(
            parse_rfc3339("2026-11-28T10:00:00").is_none(),
            "offset is required"
        );
    }

    #[test]
    fn formats_utc_z() {
        let t = parse_rfc3339("2026-11-28T12:00:00+02:00").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-28T10:00:00Z");
        assert_eq!(format_rfc3339(t + 500_000), "2026-11-28T10:00:00.500Z");
    }

    #[test]
    fn utc_day_boundaries() {
        let a = parse_rfc3339("2026-11-28T23:59:59Z").unwrap();
        let b = parse_rfc3339("2026-11-29T00:00:00Z").unwrap();
        assert_eq!(utc_day(a) + 1, utc_day(b));
        let before_epoch = parse_rfc3339("1969-12-31T23:00:00Z").unwrap();
        assert_eq!(utc_day(before_epoch), -1);
    }

    #[test]
    fn half_life_halves() {
        let h = 7 * MICROS_PER_DAY;
        assert_eq!(decay_factor(h, Some(h)), 0.5);
        assert_eq!(decay_factor(2 * h, Some(h)), 0.25);
        assert_eq!(decay_factor(12345, None), 1.0);
        assert_eq!(decay_factor(0, Some(h)), 1.0);
    }
}
