//! JUnit XML, the report format every CI system reads: `sluice component
//! check --junit` writes one suite per component, `sluice test --junit`
//! one per pipeline.

use std::time::Duration;

/// One test case of a suite.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    /// The group it belongs to (JUnit's `classname`), e.g.
    /// `sluice.component.check`.
    pub classname: &'a str,
    /// Its name within the group.
    pub name: &'a str,
    /// How it ended.
    pub outcome: Outcome<'a>,
    /// How long it took, if measured.
    pub time: Option<Duration>,
    /// What it printed (JUnit's `system-err`), if anything.
    pub stderr: Option<&'a str>,
}

/// How a [`Case`] ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// It passed.
    Passed,
    /// It failed, for this reason.
    Failed(&'a str),
    /// It did not run, for this reason.
    Skipped(&'a str),
}

/// A `<testsuite>` called `name` holding `cases`, as a whole XML document.
pub fn suite(name: &str, cases: &[Case<'_>]) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
        .count();
    let total = cases
        .iter()
        .any(|c| c.time.is_some())
        .then(|| cases.iter().filter_map(|c| c.time).sum());
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\"{}>\n",
        escape(name),
        cases.len(),
        time_attribute(total)
    );
    for c in cases {
        let open = format!(
            "  <testcase classname=\"{}\" name=\"{}\"{}",
            escape(c.classname),
            escape(c.name),
            time_attribute(c.time)
        );
        let mut body = match c.outcome {
            Outcome::Passed => String::new(),
            Outcome::Failed(why) => format!(
                "    <failure message=\"{}\">{}</failure>\n",
                escape(first_line(why)),
                escape(why)
            ),
            Outcome::Skipped(why) => format!("    <skipped message=\"{}\"/>\n", escape(why)),
        };
        if let Some(err) = c.stderr.filter(|s| !s.is_empty()) {
            body.push_str(&format!("    <system-err>{}</system-err>\n", escape(err)));
        }
        if body.is_empty() {
            xml.push_str(&format!("{open}/>\n"));
        } else {
            xml.push_str(&format!("{open}>\n{body}  </testcase>\n"));
        }
    }
    xml.push_str("</testsuite>\n");
    xml
}

fn time_attribute(time: Option<Duration>) -> String {
    time.map(|t| format!(" time=\"{:.3}\"", t.as_secs_f64()))
        .unwrap_or_default()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// `text` as XML character data or an attribute value: the five special
/// characters escaped, and characters XML 1.0 forbids (most control
/// characters, which a step's stderr may hold) written as `\u{…}`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_counts_its_cases_and_escapes_what_xml_forbids() {
        let cases = [
            Case {
                classname: "sluice.test",
                name: "step \"a\"",
                outcome: Outcome::Passed,
                time: Some(Duration::from_millis(1500)),
                stderr: None,
            },
            Case {
                classname: "sluice.test",
                name: "b",
                outcome: Outcome::Failed("a <b> & c\nsecond line"),
                time: Some(Duration::from_millis(250)),
                stderr: Some("bell \u{7} here"),
            },
            Case {
                classname: "sluice.test",
                name: "c",
                outcome: Outcome::Skipped("why"),
                time: None,
                stderr: None,
            },
        ];
        let xml = suite("p & q", &cases);
        assert!(xml.contains(
            "<testsuite name=\"p &amp; q\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.750\">"
        ));
        assert!(xml.contains(
            "<testcase classname=\"sluice.test\" name=\"step &quot;a&quot;\" time=\"1.500\"/>"
        ));
        assert!(xml.contains(
            "<failure message=\"a &lt;b&gt; &amp; c\">a &lt;b&gt; &amp; c\nsecond line</failure>"
        ));
        assert!(xml.contains("<system-err>bell \\u{7} here</system-err>"));
        assert!(xml.contains("<skipped message=\"why\"/>"));
        assert!(xml.ends_with("</testsuite>\n"));
    }
}
