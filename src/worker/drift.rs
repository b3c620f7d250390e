//! Schema drift (feature `schema-drift`): what a payload carries that its typed event does not
//! know, and what the type expected but the payload lacked; see [`Drift`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Most field paths kept per kind in one [`Drift`]; the rest are counted in
/// [`Drift::truncated`].
pub const MAX_DRIFT_PATHS: usize = 64;

/// Longest field path kept, in bytes; a longer one is cut and ends with `…`.
const MAX_PATH_LEN: usize = 200;

/// Distinct drift shapes a [`DriftReporter`] remembers by default (over every source and
/// event type); past them it stops warning about new ones (and says so once).
pub const DEFAULT_MAX_SHAPES: usize = 1024;

/// How one payload differs from the type it was decoded into: field paths only, never values.
///
/// A path names object keys joined by `.` from the payload's root, with `[]` for "an element
/// of this array" (indices are dropped, so a shape does not depend on a list's length):
/// `data.object.items[].price`.
///
/// - **Unknown**: keys in the payload that the type ignored while decoding (found by
///   [`serde_ignored`](https://docs.rs/serde_ignored)): a field the provider added, or one
///   the type never modelled. An ignored object is one path; what is inside it is not listed.
/// - **Missing**: keys the type expected but the payload lacked. Found by serializing the
///   decoded value (so `T: Serialize`) and listing the keys of that JSON which the payload
///   does not have, comparing arrays element by element. That catches fields filled in by
///   `#[serde(default)]` and `Option` fields that were absent (`null` in the payload counts as
///   present). It cannot see a field the type skips when serializing
///   (`skip_serializing`, `skip_serializing_if` on an absent `Option`), and a field read
///   under an `alias` or through a custom `Deserialize` that names keys differently from its
///   `Serialize` is reported missing even when the payload had it. A required field that is
///   missing is not drift but a decode error.
///
/// Map keys are part of a path: a type holding a map with keys chosen by the sender
/// (`HashMap<String, Item>`) would put those keys into the unknown paths of its items. Keep such
/// types out of drift reports, or model the map's values without unknown fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Drift {
    /// Paths in the payload the type did not know, sorted, at most [`MAX_DRIFT_PATHS`].
    pub unknown: Vec<String>,
    /// Paths the type expected but the payload lacked, sorted, at most [`MAX_DRIFT_PATHS`].
    pub missing: Vec<String>,
    /// Paths left out past [`MAX_DRIFT_PATHS`] (both kinds).
    pub truncated: usize,
}

impl Drift {
    /// True if the payload matched the type exactly.
    pub fn is_empty(&self) -> bool {
        self.unknown.is_empty() && self.missing.is_empty() && self.truncated == 0
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |paths: &[String]| {
            if paths.is_empty() {
                "none".to_owned()
            } else {
                paths.join(", ")
            }
        };
        write!(
            f,
            "unknown fields: {}; missing fields: {}",
            list(&self.unknown),
            list(&self.missing)
        )?;
        if self.truncated > 0 {
            write!(f, " (and {} more)", self.truncated)?;
        }
        Ok(())
    }
}

/// Decodes `body` as JSON into `T` and finds how it drifted from `T` (see [`Drift`]).
///
/// ```
/// use hookdock::worker::decode_with_drift;
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Push {
///     r#ref: String,
///     #[serde(default)]
///     forced: bool,
/// }
///
/// let (push, drift) = decode_with_drift::<Push>(br#"{"ref":"main","pusher":{"name":"o"}}"#)?;
/// assert_eq!(push.r#ref, "main");
/// assert_eq!(drift.unknown, ["pusher"]);
/// assert_eq!(drift.missing, ["forced"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// # Errors
///
/// The `serde_json` error when the body is not JSON or does not decode into `T`.
pub fn decode_with_drift<T>(body: &[u8]) -> Result<(T, Drift), serde_json::Error>
where
    T: DeserializeOwned + Serialize,
{
    let payload: Value = serde_json::from_slice(body)?;
    let mut unknown = Paths::default();
    let value: T = serde_ignored::deserialize(&payload, |path| unknown.push(path_of(&path)))?;
    let mut missing = Paths::default();
    // A value that does not serialize back to JSON (a map with non-string keys, say) shows
    // no missing fields rather than failing the event.
    if let Ok(expected) = serde_json::to_value(&value) {
        missing_paths(&expected, &payload, &mut String::new(), &mut missing);
    }
    let (unknown, cut_unknown) = unknown.finish();
    let (missing, cut_missing) = missing.finish();
    Ok((
        value,
        Drift {
            unknown,
            missing,
            truncated: cut_unknown + cut_missing,
        },
    ))
}

/// A bounded, de-duplicated set of paths.
#[derive(Default)]
struct Paths {
    set: std::collections::BTreeSet<String>,
    cut: usize,
}

impl Paths {
    fn push(&mut self, path: String) {
        if self.set.contains(&path) {
            return;
        }
        if self.set.len() >= MAX_DRIFT_PATHS {
            self.cut += 1;
        } else {
            self.set.insert(path);
        }
    }

    fn finish(self) -> (Vec<String>, usize) {
        (self.set.into_iter().collect(), self.cut)
    }
}

fn path_of(path: &serde_ignored::Path<'_>) -> String {
    let mut out = String::new();
    write_path(path, &mut out);
    cut(out)
}

fn write_path(path: &serde_ignored::Path<'_>, out: &mut String) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, .. } => {
            write_path(parent, out);
            out.push_str("[]");
        }
        Path::Map { parent, key } => {
            write_path(parent, out);
            join(out, key);
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => write_path(parent, out),
    }
}

fn join(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

fn cut(mut path: String) -> String {
    if path.len() > MAX_PATH_LEN {
        let mut end = MAX_PATH_LEN;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
        path.push('…');
    }
    path
}

/// Keys of `expected` (the decoded value, serialized) that `payload` lacks.
fn missing_paths(expected: &Value, payload: &Value, prefix: &mut String, out: &mut Paths) {
    match (expected, payload) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let len = prefix.len();
                join(prefix, key);
                match have.get(key) {
                    None => out.push(cut(prefix.clone())),
                    Some(got) => missing_paths(value, got, prefix, out),
                }
                prefix.truncate(len);
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            let len = prefix.len();
            prefix.push_str("[]");
            for (value, got) in want.iter().zip(have) {
                missing_paths(value, got, prefix, out);
            }
            prefix.truncate(len);
        }
        _ => {}
    }
}

/// One event's drift, as a [`DriftReporter`] hands it to its [hook](DriftHook).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriftReport {
    /// The event's source.
    pub source: String,
    /// The event's type, where the scheme read one.
    pub event_type: Option<String>,
    /// The Rust type it was decoded into.
    pub target: &'static str,
    /// How it drifted.
    pub drift: Drift,
    /// True the first time this reporter saw this shape of drift for this source, event type
    /// and target (the time it logs a warning).
    pub new_shape: bool,
}

/// Receives every [`DriftReport`]: to count drift as a metric, alert, or collect it in a
/// test. Closures `Fn(&DriftReport)` are hooks.
///
/// With the `metrics` feature the reporter itself records the counters
/// `hookdock_schema_drift_events_total{source, event_type, kind}` (`kind` = `unknown` or
/// `missing`, once per drifted event and kind) and
/// `hookdock_schema_drift_shapes_total{source, event_type}` (once per `new_shape`), hook or
/// not; a path is never a label (paths are for logs).
pub trait DriftHook: Send + Sync + 'static {
    /// Called for each event whose payload drifted, on the worker's task: keep it quick.
    fn report(&self, report: &DriftReport);
}

impl<F: Fn(&DriftReport) + Send + Sync + 'static> DriftHook for F {
    fn report(&self, report: &DriftReport) {
        self(report)
    }
}

/// Reports schema drift for [`DecodeJsonLayer::report_drift`](super::DecodeJsonLayer::report_drift):
/// a `tracing` warning once per new shape per (source, event type, target), with the field
/// paths (never values), and every drifted event to an optional [hook](Self::hook).
///
/// Cheap to clone; clones share what they have seen, so one reporter over several layers
/// warns once per shape across all of them.
#[derive(Clone)]
pub struct DriftReporter {
    inner: Arc<ReporterInner>,
}

struct ReporterInner {
    hook: Option<Arc<dyn DriftHook>>,
    max_shapes: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    shapes: HashMap<(String, Option<String>, &'static str), HashSet<u64>>,
    total: usize,
    full_warned: bool,
}

impl fmt::Debug for DriftReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriftReporter")
            .field("hook", &self.inner.hook.is_some())
            .field("max_shapes", &self.inner.max_shapes)
            .finish_non_exhaustive()
    }
}

impl Default for DriftReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl DriftReporter {
    /// A reporter that warns once per new shape and has no hook.
    pub fn new() -> Self {
        Self::build(None, DEFAULT_MAX_SHAPES)
    }

    fn build(hook: Option<Arc<dyn DriftHook>>, max_shapes: usize) -> Self {
        Self {
            inner: Arc::new(ReporterInner {
                hook,
                max_shapes,
                seen: Mutex::new(Seen::default()),
            }),
        }
    }

    /// Hands every drifted event's report to `hook` (builder style; a reporter starts over
    /// with no shapes seen).
    pub fn hook(self, hook: impl DriftHook) -> Self {
        Self::build(Some(Arc::new(hook)), self.inner.max_shapes)
    }

    /// Remembers at most `n` distinct shapes (default [`DEFAULT_MAX_SHAPES`]), so memory stays
    /// bounded whatever senders send; past them new shapes are still handed to the hook, with
    /// `new_shape: false`, and not logged (builder style; a reporter starts over with no
    /// shapes seen).
    pub fn max_shapes(self, n: usize) -> Self {
        Self::build(self.inner.hook.clone(), n)
    }

    /// Records one decoded event's drift: nothing if it is empty, else a warning if its shape
    /// is new, and the hook.
    pub fn observe(
        &self,
        source: &str,
        event_type: Option<&str>,
        target: &'static str,
        drift: Drift,
    ) {
        if drift.is_empty() {
            return;
        }
        let new_shape = self.remember(source, event_type, target, &drift);
        crate::metrics_shim::drifted(
            source,
            event_type,
            !drift.unknown.is_empty(),
            !drift.missing.is_empty(),
            new_shape,
        );
        if new_shape {
            tracing::warn!(
                source,
                event_type = event_type.unwrap_or(""),
                target,
                unknown = ?drift.unknown,
                missing = ?drift.missing,
                truncated = drift.truncated,
                "hookdock: schema drift: a new payload shape for this event type"
            );
        }
        if let Some(hook) = &self.inner.hook {
            hook.report(&DriftReport {
                source: source.to_owned(),
                event_type: event_type.map(str::to_owned),
                target,
                drift,
                new_shape,
            });
        }
    }

    fn remember(
        &self,
        source: &str,
        event_type: Option<&str>,
        target: &'static str,
        drift: &Drift,
    ) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        drift.hash(&mut hasher);
        let shape = hasher.finish();
        let mut seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (source.to_owned(), event_type.map(str::to_owned), target);
        if seen.shapes.get(&key).is_some_and(|s| s.contains(&shape)) {
            return false;
        }
        if seen.total >= self.inner.max_shapes {
            if !seen.full_warned {
                seen.full_warned = true;
                tracing::warn!(
                    max_shapes = self.inner.max_shapes,
                    "hookdock: schema drift: too many distinct shapes; new ones are no longer logged"
                );
            }
            return false;
        }
        seen.total += 1;
        seen.shapes.entry(key).or_default().insert(shape)
    }
}

/// A decoder that also finds drift: [`decode_with_drift`] for one `T`.
pub(super) type DriftDecoder<T> = fn(&[u8]) -> Result<(T, Drift), serde_json::Error>;

/// What [`DecodeJsonLayer::report_drift`](super::DecodeJsonLayer::report_drift) keeps: the
/// decoder (chosen where `T: Serialize` is known) and the reporter.
pub(super) struct Watch<T> {
    pub(super) decode: DriftDecoder<T>,
    pub(super) reporter: DriftReporter,
}

impl<T> Clone for Watch<T> {
    fn clone(&self) -> Self {
        Self {
            decode: self.decode,
            reporter: self.reporter.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct Item {
        sku: String,
        #[serde(default)]
        qty: u32,
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct Order {
        id: String,
        note: Option<String>,
        items: Vec<Item>,
        #[serde(default)]
        customer: Customer,
    }

    #[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
    struct Customer {
        email: String,
    }

    #[test]
    fn unknown_and_missing_paths_are_found_at_every_depth() {
        let body =
            br#"{"id":"o1","note":null,"items":[{"sku":"a","qty":1,"color":"red"},{"sku":"b"}],
            "customer":{"email":"x","vip":true},"channel":{"web":{"ua":"z"}}}"#;
        let (order, drift) = decode_with_drift::<Order>(body).unwrap();
        assert_eq!(order.items.len(), 2);
        assert_eq!(drift.unknown, ["channel", "customer.vip", "items[].color"]);
        assert_eq!(drift.missing, ["items[].qty"], "a null Option is present");
        assert!(!drift.to_string().contains("red"), "no values: {drift}");

        let (_, drift) = decode_with_drift::<Order>(br#"{"id":"o2","items":[]}"#).unwrap();
        assert_eq!(drift.unknown, Vec::<String>::new());
        assert_eq!(drift.missing, ["customer", "note"]);

        let (_, exact) = decode_with_drift::<Order>(
            br#"{"id":"o3","note":"n","items":[{"sku":"a","qty":2}],"customer":{"email":"e"}}"#,
        )
        .unwrap();
        assert!(exact.is_empty(), "{exact}");
        assert!(decode_with_drift::<Order>(br#"{"note":"no id"}"#).is_err());
        assert!(decode_with_drift::<Order>(b"not json").is_err());
    }

    #[test]
    fn paths_are_bounded() {
        let many: String = (0..200)
            .map(|i| format!(r#""extra{i}":{i}"#))
            .collect::<Vec<_>>()
            .join(",");
        let long_key = "k".repeat(1000);
        let body = format!(
            r#"{{"id":"o","items":[],"customer":{{"email":"e"}},"note":null,"{long_key}":1,{many}}}"#
        );
        let (_, drift) = decode_with_drift::<Order>(body.as_bytes()).unwrap();
        assert_eq!(drift.unknown.len(), MAX_DRIFT_PATHS);
        assert_eq!(drift.truncated, 201 - MAX_DRIFT_PATHS);
        assert!(drift
            .unknown
            .iter()
            .all(|p| p.len() <= MAX_PATH_LEN + '…'.len_utf8()));
    }

    #[test]
    fn a_shape_is_new_once_per_source_type_and_target() {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reports);
        let reporter = DriftReporter::new().hook(move |r: &DriftReport| {
            sink.lock()
                .unwrap()
                .push((r.source.clone(), r.event_type.clone(), r.new_shape));
        });
        let drift = |unknown: &[&str]| Drift {
            unknown: unknown.iter().map(|s| (*s).to_owned()).collect(),
            ..Drift::default()
        };
        reporter.observe("shop", Some("order.paid"), "Order", drift(&["a"]));
        reporter.observe("shop", Some("order.paid"), "Order", drift(&["a"]));
        reporter.observe("shop", Some("order.paid"), "Order", drift(&["b"]));
        reporter.observe("shop", Some("order.sent"), "Order", drift(&["a"]));
        reporter
            .clone()
            .observe("other", None, "Order", drift(&["a"]));
        reporter.observe("shop", Some("order.paid"), "Order", Drift::default());
        let new: Vec<bool> = reports.lock().unwrap().iter().map(|r| r.2).collect();
        assert_eq!(
            new,
            [true, false, true, true, true],
            "an exact payload is not reported"
        );

        let capped = DriftReporter::new().max_shapes(1);
        assert!(capped.remember("s", None, "T", &drift(&["a"])));
        assert!(
            !capped.remember("s", None, "T", &drift(&["b"])),
            "past the cap"
        );
        assert!(!capped.remember("s", None, "T", &drift(&["a"])));
    }
}
