//! Schema regression tests over captured payloads (features `test-util` and `schema-drift`):
//! run a typed decoder over a folder written by `hookdock export` and fail, with a report
//! naming each file and field, on decode errors, unknown fields and missing fields.
//!
//! Capture real deliveries once (`hookdock --sqlite hookdock.db export --dir
//! tests/fixtures/github --source github`), commit the folder, and keep one test per typed
//! event:
//!
//! ```
//! use hookdock::testing::schema::FixtureCheck;
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Push {
//!     r#ref: String,
//!     after: String,
//!     repository: Repository,
//! }
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Repository {
//!     full_name: String,
//! }
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::create_dir_all(dir.path().join("github/push")).unwrap();
//! # std::fs::write(dir.path().join("github/push/d-1.json"),
//! #     r#"{"ref":"refs/heads/main","after":"abc","repository":{"full_name":"o/r"}}"#).unwrap();
//! # std::fs::write(dir.path().join("manifest.json"), r#"{"format":1,"exported_at_ms":0,"events":[
//! #     {"path":"github/push/d-1.json","source":"github","event_id":"d-1","event_type":"push"}]}"#).unwrap();
//! # let fixtures = dir.path();
//! // In a test: `let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/github");`
//! FixtureCheck::new(fixtures)
//!     .source("github")
//!     .event_type("push")
//!     .run::<Push>()
//!     .assert_clean();
//! ```
//!
//! What counts as unknown and missing, and the limits of the method, are on
//! [`Drift`]. A type that deliberately models only part of a payload can
//! [`allow_unknown`](FixtureCheck::allow_unknown) fields; then only decode errors and missing
//! fields fail.
//!
//! The folder is read through its `manifest.json` (format 1, as `hookdock export` writes
//! it): each entry's `path`, `source` and `event_type` select the body files. The other
//! fields (headers, the body's hash) are not checked, so a fixture can be edited by hand to
//! try a provider's announced change.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::worker::{decode_with_drift, Drift};

/// The manifest format read: the one `hookdock export` writes (`cli::MANIFEST_FORMAT`).
const MANIFEST_FORMAT: u32 = 1;

/// The fields of `hookdock export`'s manifest this check needs.
#[derive(serde::Deserialize)]
struct Manifest {
    format: u32,
    events: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    path: String,
    source: String,
    #[serde(default)]
    event_type: Option<String>,
}

/// Which fixtures of a folder to decode, and what to tolerate. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct FixtureCheck {
    dir: PathBuf,
    source: Option<String>,
    event_type: Option<String>,
    allow_unknown: bool,
    allow_missing: bool,
}

impl FixtureCheck {
    /// Every fixture listed in `dir/manifest.json`.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            source: None,
            event_type: None,
            allow_unknown: false,
            allow_missing: false,
        }
    }

    /// Only fixtures of this source (builder style).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Only fixtures of this event type (builder style).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Unknown fields are not problems (builder style).
    pub fn allow_unknown(mut self) -> Self {
        self.allow_unknown = true;
        self
    }

    /// Missing fields are not problems (builder style).
    pub fn allow_missing(mut self) -> Self {
        self.allow_missing = true;
        self
    }

    /// Decodes every selected fixture into `T` and reports what went wrong. A folder without
    /// a readable manifest, a selection that matches no fixture and a file that cannot be read
    /// are problems too: a regression test that checks nothing must not pass.
    pub fn run<T: DeserializeOwned + Serialize>(&self) -> SchemaReport {
        let mut report = SchemaReport {
            dir: self.dir.clone(),
            target: std::any::type_name::<T>(),
            checked: 0,
            problems: Vec::new(),
        };
        let manifest = match self.manifest() {
            Ok(m) => m,
            Err(why) => {
                report
                    .problems
                    .push(FixtureProblem::folder(Problem::Manifest(why)));
                return report;
            }
        };
        for entry in &manifest.events {
            let selected = self.source.as_ref().is_none_or(|s| *s == entry.source)
                && self
                    .event_type
                    .as_ref()
                    .is_none_or(|t| Some(t) == entry.event_type.as_ref());
            if selected {
                self.check::<T>(entry, &mut report);
            }
        }
        if report.checked == 0 && report.problems.is_empty() {
            report
                .problems
                .push(FixtureProblem::folder(Problem::NothingSelected {
                    source: self.source.clone(),
                    event_type: self.event_type.clone(),
                }));
        }
        report
    }

    fn manifest(&self) -> Result<Manifest, String> {
        let path = self.dir.join("manifest.json");
        let text =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not an export manifest: {e}", path.display()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(format!(
                "{} has format {}; this version reads format {MANIFEST_FORMAT}",
                path.display(),
                manifest.format
            ));
        }
        Ok(manifest)
    }

    fn check<T: DeserializeOwned + Serialize>(&self, entry: &Entry, report: &mut SchemaReport) {
        let problem = |problem| FixtureProblem {
            path: Some(entry.path.clone()),
            source: Some(entry.source.clone()),
            event_type: entry.event_type.clone(),
            problem,
        };
        let Some(file) = file_in(&self.dir, &entry.path) else {
            report.problems.push(problem(Problem::Unreadable(
                "the path leaves the fixture folder".to_owned(),
            )));
            return;
        };
        let body = match std::fs::read(&file) {
            Ok(body) => body,
            Err(e) => {
                report
                    .problems
                    .push(problem(Problem::Unreadable(e.to_string())));
                return;
            }
        };
        report.checked += 1;
        match decode_with_drift::<T>(&body) {
            Err(e) => report
                .problems
                .push(problem(Problem::Decode(e.to_string()))),
            Ok((_, drift)) => {
                let Drift {
                    unknown, missing, ..
                } = drift;
                if !self.allow_unknown && !unknown.is_empty() {
                    report.problems.push(problem(Problem::Unknown(unknown)));
                }
                if !self.allow_missing && !missing.is_empty() {
                    report.problems.push(problem(Problem::Missing(missing)));
                }
            }
        }
    }
}

/// Where a manifest path (`/`-separated, relative) lives under `dir`; `None` if a segment
/// would leave it.
fn file_in(dir: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = dir.to_path_buf();
    for segment in relative.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.contains('\\') {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

/// Shorthand: checks every fixture in `dir` against `T` and panics with the report if anything
/// is wrong (see [`FixtureCheck`] to select a source or event type).
///
/// # Panics
///
/// With [`SchemaReport`]'s text when any fixture has a problem.
pub fn check_fixtures<T: DeserializeOwned + Serialize>(dir: impl AsRef<Path>) {
    FixtureCheck::new(dir).run::<T>().assert_clean();
}

/// What [`FixtureCheck::run`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SchemaReport {
    /// The fixture folder.
    pub dir: PathBuf,
    /// The type decoded into.
    pub target: &'static str,
    /// How many fixtures were decoded.
    pub checked: usize,
    /// What went wrong, in manifest order.
    pub problems: Vec<FixtureProblem>,
}

impl SchemaReport {
    /// True if no fixture had a problem.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Panics with this report, one line per problem, unless it is clean.
    ///
    /// # Panics
    ///
    /// When [`is_clean`](Self::is_clean) is false.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "{self}");
    }
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schema check of `{}` over {}: {} fixture(s) decoded, {} problem(s)",
            self.target,
            self.dir.display(),
            self.checked,
            self.problems.len()
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// One problem of one fixture (or of the folder).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FixtureProblem {
    /// The body file, relative to the folder, as the manifest names it; `None` for the folder.
    pub path: Option<String>,
    /// The fixture's source.
    pub source: Option<String>,
    /// The fixture's event type.
    pub event_type: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl FixtureProblem {
    fn folder(problem: Problem) -> Self {
        Self {
            path: None,
            source: None,
            event_type: None,
            problem,
        }
    }
}

impl fmt::Display for FixtureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(
                f,
                "{path} ({}, {}): {}",
                self.source.as_deref().unwrap_or("?"),
                self.event_type.as_deref().unwrap_or("untyped"),
                self.problem
            ),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// What is wrong with a fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The folder has no readable manifest of a known format.
    Manifest(String),
    /// The selection matched no fixture.
    NothingSelected {
        /// The source selected.
        source: Option<String>,
        /// The event type selected.
        event_type: Option<String>,
    },
    /// The body file could not be read.
    Unreadable(String),
    /// The body did not decode (the `serde_json` error, with line and column).
    Decode(String),
    /// Fields in the body the type does not know.
    Unknown(Vec<String>),
    /// Fields the type expected but the body lacks.
    Missing(Vec<String>),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manifest(why) => write!(f, "no fixtures: {why}"),
            Self::NothingSelected { source, event_type } => write!(
                f,
                "no fixture matched source {} and event type {}",
                source.as_deref().unwrap_or("(any)"),
                event_type.as_deref().unwrap_or("(any)")
            ),
            Self::Unreadable(why) => write!(f, "cannot read the body: {why}"),
            Self::Decode(why) => write!(f, "does not decode: {why}"),
            Self::Unknown(paths) => write!(f, "unknown fields: {}", paths.join(", ")),
            Self::Missing(paths) => write!(f, "missing fields: {}", paths.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "cli")]
    #[test]
    fn reads_the_format_export_writes() {
        assert_eq!(MANIFEST_FORMAT, crate::cli::MANIFEST_FORMAT);
    }

    #[test]
    fn paths_stay_in_the_folder() {
        let dir = Path::new("/fixtures");
        assert_eq!(
            file_in(dir, "github/push/d-1.json"),
            Some(PathBuf::from("/fixtures/github/push/d-1.json"))
        );
        for bad in ["../etc/passwd", "github//x", "/abs", "a/./b", "a\\..\\b"] {
            assert_eq!(file_in(dir, bad), None, "{bad}");
        }
    }

    #[test]
    fn an_empty_or_missing_selection_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let report = FixtureCheck::new(dir.path()).run::<serde_json::Value>();
        assert!(
            matches!(report.problems[0].problem, Problem::Manifest(_)),
            "{report}"
        );
        std::fs::write(
            dir.path().join("manifest.json"),
            r#"{"format":1,"exported_at_ms":0,"events":[]}"#,
        )
        .unwrap();
        let report = FixtureCheck::new(dir.path())
            .source("github")
            .run::<serde_json::Value>();
        assert_eq!(
            report.problems[0].problem,
            Problem::NothingSelected {
                source: Some("github".into()),
                event_type: None
            }
        );
        assert!(report
            .to_string()
            .contains("no fixture matched source github"));
        std::fs::write(
            dir.path().join("manifest.json"),
            r#"{"format":2,"events":[]}"#,
        )
        .unwrap();
        let report = FixtureCheck::new(dir.path()).run::<serde_json::Value>();
        assert!(report.to_string().contains("format 2"), "{report}");
    }
}
