//! Terminal output: colours when stderr/stdout is a terminal, live progress
//! lines per step, and aligned tables.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_pipeline::execute::{Observer, StepReport, StepState};
pub(crate) use sluice_runtime::outcome::duration;
use sluice_runtime::{CacheOutcome, StepEvent};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

fn color() -> bool {
    std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
}

pub(crate) fn paint(code: &str, s: &str) -> String {
    if color() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// `error:` in red.
pub(crate) fn error_label() -> String {
    paint("1;31", "error:")
}

/// Bold text.
pub(crate) fn bold(s: &str) -> String {
    paint("1", s)
}

/// How a component's native code was obtained, in words.
pub(crate) fn cache_outcome(o: &CacheOutcome) -> String {
    match o {
        CacheOutcome::Hit => "from the compiled cache".into(),
        CacheOutcome::Compiled => "compiled, now cached".into(),
        CacheOutcome::Recompiled(why) => format!("recompiled: cache entry was unusable ({why})"),
        CacheOutcome::Memory => "already loaded".into(),
        CacheOutcome::Uncached => "compiled, cache disabled".into(),
        CacheOutcome::Precompiled => "precompiled (a bundle's code)".into(),
    }
}

/// Prints rows as left-aligned columns; the first row is the header.
pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| visible_width(s)))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[c] - visible_width(cell) + 2));
            }
        }
        let line = line.trim_end().to_string();
        println!("{}", if i == 0 { bold(&line) } else { line });
    }
}

/// Width of `s` on screen: characters, not counting ANSI colour sequences.
fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// The state of a step as a coloured word.
pub(crate) fn state(s: StepState) -> String {
    let word = s.as_str();
    match s {
        StepState::Succeeded => paint("32", word),
        StepState::Cached => paint("36", word),
        StepState::Failed => paint("31", word),
        StepState::Skipped => paint("33", word),
    }
}

/// Live progress: one line per running step on a terminal, plain lines
/// otherwise (so logs of CI runs stay readable), nothing with `--quiet`.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    plain: bool,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        Progress {
            multi: (!quiet && tty)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
            plain: !quiet && !tty,
        }
    }
}

impl Observer for Progress {
    fn step_started(&self, step: &str, component: &str) {
        if let Some(multi) = &self.multi {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}",
                )
                .unwrap(),
            );
            bar.set_prefix(step.to_string());
            bar.set_message(format!("running {component}"));
            bar.enable_steady_tick(Duration::from_millis(80));
            self.bars.lock().unwrap().insert(step.to_string(), bar);
        } else if self.plain {
            eprintln!("running   {step} ({component})");
        }
    }

    fn step_event(&self, step: &str, event: &StepEvent) {
        if let StepEvent::Progress {
            done,
            total,
            message,
        } = event
            && let Some(bar) = self.bars.lock().unwrap().get(step)
        {
            let pct = if *total > 0 {
                format!(" {:>3}%", done * 100 / total)
            } else {
                String::new()
            };
            bar.set_message(format!("{message}{pct}"));
        }
    }

    fn step_waiting(&self, step: &str, holder: &str) {
        let line = format!(
            "{}    {step} — run {holder} is computing the same step; its outputs will be reused",
            paint("33", "waiting")
        );
        if let Some(multi) = &self.multi {
            let _ = multi.println(line);
        } else if self.plain {
            eprintln!("{line}");
        }
    }

    fn step_finished(&self, report: &StepReport) {
        let word = report.state.as_str();
        let line = format!(
            "{}{} {} {}{}",
            state(report.state),
            " ".repeat(9 - word.len()),
            report.name,
            duration(report.duration),
            if report.state.is_ok() {
                String::new()
            } else {
                format!(" — {}", report.message.as_deref().unwrap_or(""))
            }
        );
        if let Some(bar) = self.bars.lock().unwrap().remove(&report.name) {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.println(line);
        } else if self.plain {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_sequences_take_no_width() {
        assert_eq!(visible_width("\x1b[32msucceeded\x1b[0m"), 9);
        assert_eq!(visible_width("µs"), 2);
    }
}
