//! The timestamps the store writes into rows.
//!
//! The host writes them, not the database, so that SQLite and PostgreSQL
//! store the same text. The format is fixed-width RFC 3339 UTC with
//! milliseconds (`2024-05-01T12:00:00.000Z`), so text order is time order
//! and rows written by earlier versions sort with new ones.

use time::OffsetDateTime;

/// The current time as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`.
pub(super) fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats `at` in UTC as `YYYY-MM-DDThh:mm:ss.mmmZ` (milliseconds truncated).
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}
