//! Time input: RFC 3339 with any offset, or a plain `YYYY-MM-DD` (midnight UTC).

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

/// Parses an API time value. Stored times are truncated to milliseconds so the store,
/// the index (millisecond fast fields) and the JSON output always agree.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(truncate_to_millis(time.with_timezone(&Utc)));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight always exists");
        return Ok(midnight.and_utc());
    }
    Err("must be an RFC 3339 time (2026-11-02T10:00:00Z) or a date (2026-11-02)".into())
}

pub fn truncate_to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_offsets_and_plain_dates() {
        let t = parse_time("2026-11-02T12:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-02T10:00:00+00:00");
        let d = parse_time("2027-03-01").unwrap();
        assert_eq!(d.to_rfc3339(), "2027-03-01T00:00:00+00:00");
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2027-02-30").is_err());
    }
}
