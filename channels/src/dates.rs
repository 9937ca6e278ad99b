//! Calendar dates in UTC, through humantime (RFC 3339): the one place handoff turns an instant into a
//! date and a date into an instant (dated folders for stored payloads, `ls -l` dates read back). Both
//! directions refuse what RFC 3339 cannot hold (before 1970, after 9999) instead of panicking.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `yyyy-mm-dd` of an instant (UTC); `None` before 1970 or after 9999.
pub fn utc_date(t: SystemTime) -> Option<String> {
    t.duration_since(UNIX_EPOCH).ok()?;
    let mut s = String::new();
    // humantime's Display fails (it does not pad) past 9999: that is the None, never a panic
    write!(s, "{}", humantime::format_rfc3339_seconds(t)).ok()?;
    s.truncate(10);
    Some(s)
}

/// The instant of a UTC date and time of day; `None` for one that does not exist (February 30th, month
/// 13, hour 24) or that lies outside 1970–9999.
pub fn utc_instant(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> Option<SystemTime> {
    if !(1970..=9999).contains(&year) || month > 12 || day > 31 || hour > 23 || minute > 59 {
        return None;
    }
    humantime::parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:00Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn day(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(n * 86_400)
    }

    #[test]
    fn dates_and_instants_round_trip() {
        assert_eq!(utc_date(UNIX_EPOCH).as_deref(), Some("1970-01-01"));
        assert_eq!(utc_date(day(19_723)).as_deref(), Some("2024-01-01"));
        assert_eq!(utc_date(day(19_782) + Duration::from_secs(86_399)).as_deref(), Some("2024-02-29"));
        assert_eq!(utc_instant(2024, 2, 29, 0, 0), Some(day(19_782)));
        assert_eq!(utc_instant(2024, 2, 29, 23, 59), Some(day(19_782) + Duration::from_secs(86_340)));
        for n in [0u64, 59, 365, 10_957, 19_782, 2_932_896] {
            let d = utc_date(day(n)).unwrap();
            let (y, m, dd) = (d[..4].parse().unwrap(), d[5..7].parse().unwrap(), d[8..].parse().unwrap());
            assert_eq!(utc_instant(y, m, dd, 0, 0), Some(day(n)), "{d}");
        }
    }

    #[test]
    fn impossible_or_unrepresentable_dates_are_none_not_a_panic() {
        assert_eq!(utc_instant(2025, 2, 29, 0, 0), None, "not a leap year");
        assert_eq!(utc_instant(2024, 13, 1, 0, 0), None);
        assert_eq!(utc_instant(2024, 4, 31, 0, 0), None);
        assert_eq!(utc_instant(2024, 1, 0, 0, 0), None);
        assert_eq!(utc_instant(2024, 1, 1, 24, 0), None);
        assert_eq!(utc_instant(10_000, 1, 1, 0, 0), None);
        assert_eq!(utc_instant(1969, 12, 31, 0, 0), None);
        assert_eq!(utc_instant(i64::MAX, u32::MAX, u32::MAX, 0, 0), None);
        // a UUIDv7 carries 48 bits of milliseconds: up to the year 10889
        assert_eq!(utc_date(UNIX_EPOCH + Duration::from_millis((1 << 48) - 1)), None);
        assert_eq!(utc_date(UNIX_EPOCH - Duration::from_secs(1)), None);
    }
}
