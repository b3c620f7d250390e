//! What the tool prints: aligned tables, times, and text made safe for a terminal.

use std::io::Write;
use std::time::SystemTime;

use super::error::CliResult;

/// `s` with every control character (newlines, escapes that would drive the terminal)
/// written as an escape, so that stored text cannot forge or hide output.
pub(crate) fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` cleaned and cut to `max` characters (ending with `…` when cut).
pub(crate) fn cut(s: &str, max: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A time as RFC 3339 in UTC, to the second.
pub(crate) fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An optional time, `-` when absent.
pub(crate) fn opt_time(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// How long ago `t` was, rounded to a readable unit (`3m 20s`).
pub(crate) fn age(now: SystemTime, t: SystemTime) -> String {
    let d = now.duration_since(t).unwrap_or_default();
    // Whole seconds are plenty for a person.
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

/// A table whose columns are as wide as their widest cell, kept across pages so that a
/// listing printed a page at a time stays aligned as far as it can.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    /// Right-aligned columns (numbers).
    right: Vec<bool>,
    widths: Vec<usize>,
    rows: Vec<Vec<String>>,
    printed_header: bool,
}

impl Table {
    /// A table with these column headers; a header starting with `>` is right-aligned
    /// (the `>` is not printed).
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        let right = headers.iter().map(|h| h.starts_with('>')).collect();
        let headers: Vec<&'static str> =
            headers.iter().map(|h| h.trim_start_matches('>')).collect();
        let widths = headers.iter().map(|h| h.chars().count()).collect();
        Self {
            headers,
            right,
            widths,
            rows: Vec::new(),
            printed_header: false,
        }
    }

    /// Adds a row (cells already cleaned).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        for (w, c) in self.widths.iter_mut().zip(&cells) {
            *w = (*w).max(c.chars().count());
        }
        self.rows.push(cells);
    }

    /// Writes the header (the first time) and the rows added since the last flush.
    pub(crate) fn flush(&mut self, out: &mut impl Write) -> CliResult {
        if !self.printed_header {
            let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
            self.line(out, &header)?;
            self.printed_header = true;
        }
        let rows = std::mem::take(&mut self.rows);
        for row in &rows {
            self.line(out, row)?;
        }
        Ok(())
    }

    fn line(&self, out: &mut impl Write, cells: &[String]) -> CliResult {
        let mut line = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            let width = self.widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            if self.right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i != last {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if i != last {
                line.push_str("  ");
            }
        }
        writeln!(out, "{}", line.trim_end())?;
        Ok(())
    }
}

/// Writes `value` as one pretty JSON document and a newline.
pub(crate) fn json(out: &mut impl Write, value: &impl serde::Serialize) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_numbers_go_right() {
        let mut t = Table::new(&["NAME", ">COUNT", "NOTE"]);
        t.row(vec!["github".into(), "7".into(), "ok".into()]);
        t.row(vec!["x".into(), "1200".into(), "".into()]);
        let mut out = Vec::new();
        t.flush(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME    COUNT  NOTE\ngithub      7  ok\nx        1200\n"
        );
    }

    #[test]
    fn stored_text_cannot_drive_the_terminal() {
        assert_eq!(clean("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
