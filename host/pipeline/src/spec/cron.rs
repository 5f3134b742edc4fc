//! Cron schedules for `[triggers] schedule`: five fields (minute, hour, day
//! of month, month, day of week), evaluated in UTC, with the semantics of
//! Vixie cron (the crontab of most Unix systems).
//!
//! Parsing and the search for the next time are [croner]'s; this module
//! pins down the dialect:
//!
//! - Fields take `*`, numbers, lists `1,15`, ranges `1-5` and steps `*/15`
//!   or `10-50/20`; months and weekdays also take names (`jan`, `mon`), and
//!   weekday 7 is Sunday, as 0 is. The nicknames `@yearly`, `@annually`,
//!   `@monthly`, `@weekly`, `@daily` and `@hourly` stand for their usual
//!   five fields.
//! - **Day of month and day of week** follow Vixie's rule: a day field counts
//!   as *unrestricted* when its text starts with `*` (so `*/2` does too).
//!   When both are restricted, a day matching **either** counts (`0 0 1,15 *
//!   1`: the 1st, the 15th and every Monday); otherwise a day must match
//!   **both** (`0 0 */2 * 1`: Mondays that fall on an odd day of the month,
//!   exactly as Vixie's `find_jobs` tests `DOM_STAR || DOW_STAR`).
//! - Not accepted, with an error that says so: a sixth field (seconds or
//!   years — the watcher works to the minute), and the Quartz extensions
//!   croner knows but crontab does not (`?`, `L`, `W`, `#`, a `+` before the
//!   day of week), whose meaning would differ from what a crontab user
//!   expects.
//! - A schedule that can never fire (`0 0 30 2 *`) is an error, not a
//!   watcher that waits forever.

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use std::fmt;

/// A parsed schedule: five cron fields, or a nickname such as `@daily`, in
/// UTC. [`Display`](fmt::Display) gives the text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    schedule: croner::Cron,
}

/// The five fields, in order, with their names and ranges for messages.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat, 0 and 7 both Sunday"),
];

/// The nicknames croner expands (Vixie's, less `@reboot` and `@midnight`).
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not five fields.
    #[error(
        "schedule `{text}` has {found} field(s); a schedule has five: minute hour day-of-month month day-of-week"
    )]
    FieldCount {
        /// The schedule as written.
        text: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// One field is malformed or out of range.
    #[error("schedule `{text}`: {field} `{value}`: {reason} ({field} takes {range})")]
    Field {
        /// The schedule as written.
        text: String,
        /// Which field (`minute`, `day of week`, …).
        field: &'static str,
        /// The field's text.
        value: String,
        /// What is wrong with it.
        reason: String,
        /// The values the field takes.
        range: &'static str,
    },
    /// A croner/Quartz extension that crontab does not have.
    #[error("schedule `{text}`: {field} `{value}` uses `{extension}`, which is not crontab syntax")]
    Extension {
        /// The schedule as written.
        text: String,
        /// Which field.
        field: &'static str,
        /// The field's text.
        value: String,
        /// The offending character.
        extension: char,
    },
    /// An `@` word that is not a known nickname.
    #[error("schedule `{text}` is not a known nickname")]
    Nickname {
        /// The schedule as written.
        text: String,
    },
    /// The fields are valid but name no time that exists (e.g. 30 February).
    #[error("schedule `{text}` never fires: no date matches its day and month fields")]
    Never {
        /// The schedule as written.
        text: String,
    },
}

impl CronError {
    /// A hint for the user: the shape of a valid schedule.
    pub fn help(&self) -> String {
        match self {
            CronError::FieldCount { found: 6 | 7, .. } => {
                "seconds and years are not supported (the watcher works to the minute); write five fields such as \"0 3 * * *\" (daily at 03:00 UTC)".into()
            }
            CronError::Extension { .. } => {
                "write crontab syntax: `*`, numbers, lists `1,15`, ranges `1-5` and steps `*/15`; `?`, `L`, `W`, `#` and `+` are not supported".into()
            }
            CronError::Nickname { .. } => format!(
                "write five fields such as \"0 3 * * *\", or one of {}",
                NICKNAMES.join(", ")
            ),
            _ => "write five fields, minute hour day-of-month month day-of-week, in UTC: e.g. \"0 3 * * *\" (daily at 03:00) or \"*/15 * * * 1-5\" (every 15 minutes on weekdays)".into(),
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A croner parser for five fields, with day fields combined by `and`
/// (Vixie's rule when one day field starts with `*`) or `or`.
fn parser(and: bool) -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(and)
        .build()
}

/// croner's message without its prefix and full stop, starting in lower case.
fn reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let text = match e {
        E::ComponentError(m) | E::InvalidPattern(m) | E::IllegalCharacters(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let owned = || text.to_owned();
        let trimmed = text.trim();
        if trimmed.starts_with('@') {
            if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(trimmed)) {
                return Err(CronError::Nickname { text: owned() });
            }
            // Every nickname has a `*` day field: Vixie's `and`.
            let schedule = parser(true)
                .parse(trimmed)
                .map_err(|_| CronError::Nickname { text: owned() })?;
            return Cron::checked(text, schedule);
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let Ok(fields) = <[&str; 5]>::try_from(fields.as_slice()) else {
            return Err(CronError::FieldCount {
                text: owned(),
                found: fields.len(),
            });
        };
        for (i, value) in fields.iter().enumerate() {
            let extensions: &[char] = match i {
                2 => &['?', 'L', 'W', 'l', 'w'],
                4 => &['?', 'L', 'l', '#', '+'],
                _ => &[],
            };
            if let Some(extension) = value.chars().find(|c| extensions.contains(c)) {
                return Err(CronError::Extension {
                    text: owned(),
                    field: FIELDS[i].0,
                    value: (*value).to_owned(),
                    extension,
                });
            }
        }
        // Vixie: a day field starting with `*` sets DOM_STAR / DOW_STAR, and
        // then a day must match both fields; otherwise either.
        let and = fields[2].starts_with('*') || fields[4].starts_with('*');
        match parser(and).parse(trimmed) {
            Ok(schedule) => Cron::checked(text, schedule),
            Err(e) => Err(
                Cron::field_error(text, &fields).unwrap_or_else(|| CronError::Field {
                    text: owned(),
                    field: "schedule",
                    value: trimmed.to_owned(),
                    reason: reason(&e),
                    range: "five cron fields",
                }),
            ),
        }
    }
}

impl Cron {
    /// Names the first field that fails on its own (the others `*`).
    fn field_error(text: &str, fields: &[&str; 5]) -> Option<CronError> {
        (0..5).find_map(|i| {
            let mut probe = ["*"; 5];
            probe[i] = fields[i];
            let e = parser(true).parse(&probe.join(" ")).err()?;
            Some(CronError::Field {
                text: text.to_owned(),
                field: FIELDS[i].0,
                value: fields[i].to_owned(),
                reason: reason(&e),
                range: FIELDS[i].1,
            })
        })
    }

    /// `schedule` for `text`, unless it never fires. Day, month and weekday
    /// repeat every 28 years between 1901 and 2099, so a schedule without
    /// a time in 2001–2029 has none at all.
    fn checked(text: &str, schedule: croner::Cron) -> Result<Cron, CronError> {
        let cron = Cron {
            text: text.to_owned(),
            schedule,
        };
        let start = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        match cron.next_after_time(start) {
            Some(t) if t < end => Ok(cron),
            _ => Err(CronError::Never {
                text: text.to_owned(),
            }),
        }
    }

    /// The first time strictly after `after` that the schedule names.
    fn next_after_time(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.find_next_occurrence(&after, false).ok()
    }

    /// The first minute strictly after `after` (Unix seconds) that the
    /// schedule names, as Unix seconds; `None` past the year 5000.
    pub fn next_after(&self, after: u64) -> Option<u64> {
        let after = DateTime::<Utc>::from_timestamp(i64::try_from(after).ok()?, 0)?;
        let next = self.next_after_time(after)?;
        u64::try_from(next.timestamp()).ok()
    }

    /// Whether the schedule names the minute that contains `secs` (Unix
    /// seconds).
    pub fn matches(&self, secs: u64) -> bool {
        let minute = secs - secs % 60;
        minute
            .checked_sub(1)
            .and_then(|before| self.next_after(before))
            == Some(minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};

    // 2025-11-25T14:15:57Z, a Tuesday.
    const T: u64 = 1_764_080_157;

    fn cron(text: &str) -> Cron {
        text.parse()
            .unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
    }

    fn err(text: &str) -> CronError {
        text.parse::<Cron>()
            .expect_err(&format!("`{text}` should not parse"))
    }

    /// The first `n` times after `T`, as UTC date-times.
    fn next(text: &str, n: usize) -> Vec<DateTime<Utc>> {
        let c = cron(text);
        let mut t = T;
        (0..n)
            .map(|_| {
                t = c.next_after(t).expect("fires");
                DateTime::from_timestamp(t as i64, 0).unwrap()
            })
            .collect()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn next_times_follow_crontab_semantics() {
        assert_eq!(cron("0 3 * * *").next_after(T), Some(1_764_126_000));
        assert_eq!(cron("*/15 * * * *").next_after(T), Some(1_764_081_000));
        assert_eq!(cron("* * * * *").next_after(T), Some(1_764_080_160));
        // Strictly after: a time on the minute gives the next one.
        assert_eq!(
            cron("* * * * *").next_after(1_764_080_160),
            Some(1_764_080_220)
        );
        assert_eq!(next("30 9 * * 1", 1), [at(2025, 12, 1, 9, 30)]);
        assert_eq!(next("0 0 * * 7", 3), next("0 0 * * 0", 3));
        assert_eq!(next("0 0 * * sun", 3), next("0 0 * * 0", 3));
        assert_eq!(
            next("10-50/20 8 * jan *", 3)[..2],
            [at(2026, 1, 1, 8, 10), at(2026, 1, 1, 8, 30)]
        );
        assert_eq!(
            next("@daily", 2),
            [at(2025, 11, 26, 0, 0), at(2025, 11, 27, 0, 0)]
        );
        assert_eq!(next("@weekly", 1), [at(2025, 11, 30, 0, 0)]);
    }

    #[test]
    fn star_step_day_of_month_with_a_weekday_means_both() {
        // Vixie: `*/2` starts with `*`, so a day must be a Monday *and* odd.
        let got = next("0 0 */2 * 1", 6);
        assert!(
            got.iter().all(|t| t.weekday() == Weekday::Mon
                && t.day() % 2 == 1
                && (t.hour(), t.minute()) == (0, 0)),
            "{got:?}"
        );
        assert_eq!(
            got,
            [
                at(2025, 12, 1, 0, 0),
                at(2025, 12, 15, 0, 0),
                at(2025, 12, 29, 0, 0),
                at(2026, 1, 5, 0, 0),
                at(2026, 1, 19, 0, 0),
                at(2026, 2, 9, 0, 0),
            ]
        );
        // The same with a restricted weekday and `*` in day of month: every Monday.
        let mondays = next("0 0 * * 1", 4);
        assert_eq!(mondays[0], at(2025, 12, 1, 0, 0));
        assert!(mondays.windows(2).all(|w| (w[1] - w[0]).num_days() == 7));
        // And a `*`-prefixed weekday with a restricted day of month: both.
        let got = next("0 0 13 * */5", 3);
        assert!(
            got.iter()
                .all(|t| t.day() == 13 && matches!(t.weekday(), Weekday::Sun | Weekday::Fri)),
            "{got:?}"
        );
    }

    #[test]
    fn two_restricted_day_fields_mean_either() {
        let got = next("0 0 1,15 * 1", 6);
        assert_eq!(
            got,
            [
                at(2025, 12, 1, 0, 0),  // the 1st, a Monday
                at(2025, 12, 8, 0, 0),  // Monday
                at(2025, 12, 15, 0, 0), // the 15th, a Monday
                at(2025, 12, 22, 0, 0),
                at(2025, 12, 29, 0, 0),
                at(2026, 1, 1, 0, 0), // the 1st, a Thursday
            ]
        );
        // The 1st, or any Friday.
        assert_eq!(next("0 12 1 * 5", 1), [at(2025, 11, 28, 12, 0)]);
    }

    #[test]
    fn matches_names_the_minute() {
        let c = cron("0 0 */2 * 1");
        let monday = at(2025, 12, 1, 0, 0).timestamp() as u64;
        assert!(c.matches(monday) && c.matches(monday + 59));
        assert!(!c.matches(monday + 60));
        // 2025-12-08 is an even Monday.
        assert!(!c.matches(at(2025, 12, 8, 0, 0).timestamp() as u64));
        assert!(!c.matches(at(2025, 12, 3, 0, 0).timestamp() as u64));
    }

    #[test]
    fn bad_schedules_say_which_field_is_wrong() {
        let e = err("0 3 * *");
        assert!(matches!(e, CronError::FieldCount { found: 4, .. }), "{e}");
        assert!(e.to_string().contains("has 4 field(s)"), "{e}");
        let e = err("0 0 3 * * *");
        assert!(
            e.help().contains("seconds and years are not supported"),
            "{}",
            e.help()
        );
        let e = err("61 * * * *");
        assert_eq!(
            e.to_string(),
            "schedule `61 * * * *`: minute `61`: number out of bounds (minute takes 0-59)"
        );
        let e = err("0 24 * * *").to_string();
        assert!(e.contains("hour `24`"), "{e}");
        let e = err("*/0 * * * *").to_string();
        assert!(e.contains("minute `*/0`: step cannot be zero"), "{e}");
        let e = err("0 5-2 * * *").to_string();
        assert!(e.contains("hour `5-2`"), "{e}");
        let e = err("0 0 * 13 *").to_string();
        assert!(e.contains("month `13`"), "{e}");
        let e = err("0 0 * * 8").to_string();
        assert!(e.contains("day of week `8`"), "{e}");
        let e = err("0 0 x * *").to_string();
        assert!(e.contains("day of month `x`"), "{e}");
        let e = err("5/10 * * * *").to_string();
        assert!(e.contains("minute `5/10`"), "{e}");
    }

    #[test]
    fn extensions_nicknames_and_impossible_dates_are_refused() {
        for (text, c) in [("0 0 L * *", 'L'), ("0 0 15W * *", 'W'), ("0 0 ? * 1", '?')] {
            assert!(
                matches!(err(text), CronError::Extension { extension, field: "day of month", .. } if extension == c),
                "{text}"
            );
        }
        for text in ["0 0 * * 1#2", "0 0 * * 5L", "0 0 1 * +1"] {
            assert!(
                matches!(
                    err(text),
                    CronError::Extension {
                        field: "day of week",
                        ..
                    }
                ),
                "{text}"
            );
        }
        assert_eq!(
            err("@reboot").to_string(),
            "schedule `@reboot` is not a known nickname"
        );
        assert_eq!(
            err("0 0 30 2 *").to_string(),
            "schedule `0 0 30 2 *` never fires: no date matches its day and month fields"
        );
        // 29 February exists, if rarely.
        let leap = next("0 0 29 2 *", 1);
        assert_eq!(leap, [at(2028, 2, 29, 0, 0)]);
        assert!(err("").to_string().contains("has 0 field(s)"));
    }
}
