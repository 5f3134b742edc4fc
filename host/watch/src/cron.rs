//! Five-field cron schedules (minute, hour, day of month, month, day of
//! week; UTC), as in crontab: `*`, lists `1,15`, ranges `1-5`, steps `*/15`
//! and `10-50/20`. When both day fields are restricted, a day matching
//! either counts, as in Vixie cron.

use std::fmt;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule `{text}`: {reason}")]
pub struct CronError {
    text: String,
    reason: String,
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let err = |reason: String| CronError {
            text: text.to_string(),
            reason,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields[..] else {
            return Err(err(format!(
                "has {} field(s); a schedule has five: minute hour day-of-month month day-of-week (e.g. `0 3 * * *`, daily at 03:00 UTC)",
                fields.len()
            )));
        };
        let field = |f: &str, name: &str, lo: u32, hi: u32| {
            parse_field(f, lo, hi).map_err(|r| err(format!("{name} `{f}`: {r}")))
        };
        let mut weekdays = field(dow, "day of week", 0, 7)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            text: text.to_string(),
            minutes: field(m, "minute", 0, 59)?,
            hours: field(h, "hour", 0, 23)?,
            days: field(dom, "day of month", 1, 31)?,
            months: field(mon, "month", 1, 12)?,
            weekdays,
            any_day: dom == "*",
            any_weekday: dow == "*",
        })
    }
}

fn parse_field(f: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("step `{s}` is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a, lo, hi)?, number(b, lo, hi)?)
        } else {
            let a = number(range, lo, hi)?;
            (a, if step > 1 { hi } else { a })
        };
        if a > b {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        for v in (a..=b).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn number(s: &str, lo: u32, hi: u32) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|v| (lo..=hi).contains(v))
        .ok_or_else(|| format!("`{s}` is not a number from {lo} to {hi}"))
}

impl Cron {
    fn matches(&self, t: &Civil) -> bool {
        let day = self.days & (1 << t.day) != 0;
        let weekday = self.weekdays & (1 << t.weekday) != 0;
        let day_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => weekday,
            (false, true) => day,
            (false, false) => day || weekday,
        };
        self.minutes & (1 << t.minute) != 0
            && self.hours & (1 << t.hour) != 0
            && self.months & (1 << t.month) != 0
            && day_ok
    }

    /// The first minute strictly after `after` (Unix seconds) that the
    /// schedule names, as Unix seconds; `None` if none within ~5 years.
    pub fn next_after(&self, after: u64) -> Option<u64> {
        let mut t = (after / 60 + 1) * 60;
        for _ in 0..(5 * 366 * 24 * 60) {
            if self.matches(&Civil::of(t)) {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

/// A UTC time broken into the fields cron reads.
struct Civil {
    minute: u32,
    hour: u32,
    day: u32,
    month: u32,
    weekday: u32,
}

impl Civil {
    fn of(secs: u64) -> Civil {
        let (_, month, day, hour, minute, _) = sluice_pipeline::execute::civil(secs);
        // 1970-01-01 was a Thursday (4).
        let weekday = ((secs / 86_400 + 4) % 7) as u32;
        Civil {
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2025-11-25T14:15:57Z, a Tuesday.
    const T: u64 = 1_764_080_157;

    #[test]
    fn next_times_follow_crontab_semantics() {
        let daily: Cron = "0 3 * * *".parse().unwrap();
        // Next 03:00 is 2025-11-26T03:00:00Z.
        assert_eq!(daily.next_after(T), Some(1_764_126_000));
        let quarter: Cron = "*/15 * * * *".parse().unwrap();
        assert_eq!(quarter.next_after(T), Some(1_764_081_000));
        let every_minute: Cron = "* * * * *".parse().unwrap();
        assert_eq!(every_minute.next_after(T), Some(1_764_080_160));
        // Mondays at 09:30: 2025-12-01.
        let monday: Cron = "30 9 * * 1".parse().unwrap();
        assert_eq!(monday.next_after(T), Some(1_764_581_400));
        let sunday7: Cron = "0 0 * * 7".parse().unwrap();
        let sunday0: Cron = "0 0 * * 0".parse().unwrap();
        assert_eq!(sunday7.next_after(T), sunday0.next_after(T));
        // The 1st, or any Friday (either day field matches).
        let either: Cron = "0 12 1 * 5".parse().unwrap();
        assert_eq!(either.next_after(T), Some(1_764_331_200)); // Fri 2025-11-28 12:00
    }

    #[test]
    fn bad_schedules_say_which_field_is_wrong() {
        let e = "0 3 * *".parse::<Cron>().unwrap_err().to_string();
        assert!(e.contains("has 4 field(s)"), "{e}");
        let e = "61 * * * *".parse::<Cron>().unwrap_err().to_string();
        assert!(e.contains("minute `61`"), "{e}");
        let e = "*/0 * * * *".parse::<Cron>().unwrap_err().to_string();
        assert!(e.contains("step `0`"), "{e}");
        let e = "0 5-2 * * *".parse::<Cron>().unwrap_err().to_string();
        assert!(e.contains("backwards"), "{e}");
    }
}
