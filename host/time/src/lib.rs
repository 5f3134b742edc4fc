//! Timestamps as sluice records them: RFC 3339 in UTC with milliseconds
//! (`2026-11-25T14:15:57.123Z`), which sort as text in time order. Every
//! crate that writes a time into the metadata, a document or a log file
//! (the store, the edge runtime's request log) uses these, so the format
//! exists once; the calendar maths is chrono's.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::SystemTime;

/// `at` as an RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time as [`rfc3339`] writes it.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Parses an RFC 3339 timestamp (any offset) back to a time; `None` when
/// it is not one.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&Utc)))
}

/// `YYYYMMDD-HHMMSS` in UTC: the sortable time part of a run id.
pub fn compact(at: SystemTime) -> String {
    DateTime::<Utc>::from(at)
        .format("%Y%m%d-%H%M%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_616_157_042);
        assert_eq!(rfc3339(t), "2026-11-25T14:15:57.042Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(compact(leap), "20000229-000000");
    }

    #[test]
    fn parsing_inverts_formatting_and_rejects_other_text() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_616_157_042);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(
            parse_rfc3339("2026-11-25T15:15:57.042+01:00"),
            Some(t),
            "offsets are honoured"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
