//! `hookdock export`: events as fixture files (the layout is in the [module docs](super)).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::clock::unix_millis;
use crate::store::{EventStatus, LoggedEvent, Origin};

/// The manifest's file name, in the export folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest format this version writes ([`Manifest::format`]).
pub const MANIFEST_FORMAT: u32 = 1;

/// What `hookdock export` wrote: `DIR/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The format's version: [`MANIFEST_FORMAT`].
    pub format: u32,
    /// When the export ran, in milliseconds since the Unix epoch.
    pub exported_at_ms: i64,
    /// Every exported event, sorted by path.
    pub events: Vec<ExportedEvent>,
}

/// One exported event in the [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ExportedEvent {
    /// The body file, relative to the export folder, `/`-separated:
    /// `<source>/<event type or "untyped">/<event id>.json` (or `.raw` for a body that is not
    /// JSON), each segment escaped as the module docs say.
    pub path: String,
    /// The event's source.
    pub source: String,
    /// The event's id within its source.
    pub event_id: String,
    /// The provider's event type, if the scheme read one.
    pub event_type: Option<String>,
    /// When the receiver got it, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// Where its last run came from.
    pub origin: Origin,
    /// Its status when exported.
    pub status: EventStatus,
    /// The headers the receiver kept, in order, as `[name, value]` (values that are not
    /// UTF-8 are written with U+FFFD in place of the bad bytes).
    pub headers: Vec<(String, String)>,
    /// The body's length in bytes.
    pub body_bytes: u64,
    /// The SHA-256 of the body, lowercase hex.
    pub body_sha256: String,
}

/// The longest path segment written as is; longer ones are cut and end with a hash.
const MAX_SEGMENT: usize = 120;

/// A name as one safe path segment: bytes other than ASCII letters, digits, `-`, `_` and
/// `.` (and a leading `.`) as `%XX`; cut with `~` and a hash past [`MAX_SEGMENT`] bytes.
pub(crate) fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        return "%00".to_owned();
    }
    if out.len() > MAX_SEGMENT {
        let hash = hex::encode(Sha256::digest(name.as_bytes()));
        out.truncate(MAX_SEGMENT - 17);
        out.push('~');
        out.push_str(&hash[..16]);
    }
    out
}

/// The manifest entry of `logged`, and the body file's path relative to the export folder.
pub(crate) fn entry(logged: &LoggedEvent) -> ExportedEvent {
    let event = &logged.event;
    let event_type = logged
        .entry
        .event_type
        .as_ref()
        .map(|t| t.as_str().to_owned());
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&event.body).is_ok();
    let path = format!(
        "{}/{}/{}.{}",
        segment(&event.source),
        event_type
            .as_deref()
            .map_or_else(|| "untyped".to_owned(), segment),
        segment(event.id.as_str()),
        if is_json { "json" } else { "raw" }
    );
    let headers = event
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    ExportedEvent {
        path,
        source: event.source.clone(),
        event_id: event.id.as_str().to_owned(),
        event_type,
        received_at_ms: unix_millis(event.received_at),
        origin: logged.entry.origin,
        status: logged.entry.status,
        headers,
        body_bytes: event.body.len() as u64,
        body_sha256: hex::encode(Sha256::digest(&event.body)),
    }
}

/// Where `relative` (a manifest path) lives under `dir`.
pub(crate) fn file_in(dir: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .fold(dir.to_path_buf(), |p, s| p.join(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_never_leave_their_folder() {
        assert_eq!(segment("github"), "github");
        assert_eq!(segment("invoice.paid"), "invoice.paid");
        // One segment: the slashes are escaped, and only a leading dot could mean anything.
        assert_eq!(segment("../../etc/passwd"), "%2E.%2F..%2Fetc%2Fpasswd");
        assert_eq!(segment(".."), "%2E.");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(segment(""), "%00");
        // Distinct names stay distinct.
        assert_ne!(segment("a/b"), segment("a%2Fb"));
        let long = "x".repeat(500);
        let cut = segment(&long);
        assert_eq!(cut.len(), MAX_SEGMENT);
        assert_ne!(cut, segment(&format!("{long}y")));
    }
}
