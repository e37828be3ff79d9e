//! Reading what `confab report calls|ims --csv` lists (Lync's Monitoring reports):
//! rows as field maps, and waiting for rows a test expects (the monitoring writer
//! stores what it saw about once a second).

use std::collections::HashMap;
use std::time::Duration;

use crate::{ConfabServer, Error, Result, wait_for};

/// One CSV row of a report, by column name.
pub type Row = HashMap<String, String>;

/// Splits one CSV line (fields quoted with `"` when they hold a comma).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The rows of `confab report KIND --csv [extra...]` (`KIND`: `calls` or `ims`).
pub fn report(server: &ConfabServer, kind: &str, extra: &[&str]) -> Result<Vec<Row>> {
    let mut args = vec!["report", kind, "--csv"];
    args.extend_from_slice(extra);
    let text = server.cli(&args)?;
    let mut lines = text.lines();
    let header = fields(lines.next().unwrap_or_default());
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| header.iter().cloned().zip(fields(l)).collect())
        .collect())
}

/// Waits (up to `timeout`) until `want` accepts the rows of the report; returns
/// them, or an error showing the last rows and the server's log.
pub fn wait_report(
    server: &ConfabServer,
    kind: &str,
    extra: &[&str],
    timeout: Duration,
    what: &str,
    want: impl Fn(&[Row]) -> bool,
) -> Result<Vec<Row>> {
    let mut last = Vec::new();
    let got = wait_for(timeout, Duration::from_millis(250), || {
        let rows = report(server, kind, extra).ok()?;
        if want(&rows) {
            Some(rows)
        } else {
            last = rows;
            None
        }
    });
    got.ok_or_else(|| {
        Error(format!(
            "confab report {kind} {extra:?}: {what} not listed; rows: {last:#?}\n{}",
            server.context()
        ))
    })
}

/// The value of one series of Prometheus text, named with its labels as the
/// server writes them (e.g. `confab_monitoring_records_written_total{kind="call"}`).
pub fn metric_value(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.trim().parse().ok())?
    })
}

/// The monitoring writers' counters an operator reads to see drops.
pub const RECORD_DROPS: [&str; 6] = [
    "confab_monitoring_records_dropped_total{kind=\"call\",reason=\"queue_full\"}",
    "confab_monitoring_records_dropped_total{kind=\"call\",reason=\"write_failed\"}",
    "confab_monitoring_records_dropped_total{kind=\"call\",reason=\"too_many_open\"}",
    "confab_monitoring_records_dropped_total{kind=\"im_session\",reason=\"write_failed\"}",
    "confab_monitoring_records_dropped_total{kind=\"im_session\",reason=\"too_many_open\"}",
    "confab_monitoring_activity_dropped_total",
];

/// Waits (up to `timeout`) until `want` accepts the text `fetch` returns (a
/// `/metrics` page; the writers count a batch once it is committed); returns it,
/// or an error with the last text's monitoring series.
pub fn wait_metrics(
    timeout: Duration,
    fetch: impl Fn() -> Result<String>,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> Result<String> {
    let mut last = String::new();
    let got = wait_for(timeout, Duration::from_millis(250), || {
        let text = fetch().ok()?;
        if want(&text) {
            return Some(text);
        }
        last = text;
        None
    });
    got.ok_or_else(|| {
        let series: Vec<&str> = last
            .lines()
            .filter(|l| l.starts_with("confab_monitoring") || l.starts_with("confab_trunk"))
            .collect();
        Error(format!(
            "/metrics: {what}; last seen:\n{}",
            series.join("\n")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn csv_fields() {
        assert_eq!(fields("a,\"b,c\",\"d\"\"e\","), ["a", "b,c", "d\"e", ""]);
    }
}
