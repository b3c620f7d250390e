//! Progress bars on stderr, drawn only for a person watching a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps (a spinner if unknown) labelled `what`; hidden unless `enabled` (not
/// `--json`) and stderr is a terminal.
pub(crate) fn bar(enabled: bool, len: Option<u64>, what: &str) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (pb, template) = match len {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {msg} {pos} ({per_sec})",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_owned());
    if len.is_none() {
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    pb
}
