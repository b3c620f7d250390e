//! The rules for an event's identity, `(source, event id)`, shared by every backend.
//!
//! An event is stored under its source and id exactly as received, byte for byte: ids are
//! never decoded lossily, trimmed or case-folded, so two ids that differ in any byte are two
//! events. What every backend can store and index is the same, and checked the same way
//! before anything is written ([`validate`]); an id that breaks a rule can never be stored,
//! so intake answers `400 invalid_event_id` (or `invalid_source`) rather than `503`, and the
//! sender stops retrying. A source or id is refused when it:
//!
//! - is empty;
//! - is longer than [`MAX_SOURCE_LEN`] or [`MAX_EVENT_ID_LEN`] bytes (PostgreSQL cannot index
//!   a key of more than about 2.7 KB; providers' ids are 20 to 70 bytes);
//! - is not valid UTF-8 (a header value with other bytes);
//! - holds a control character (`char::is_control`: NUL, tab, CR, LF, DEL, C1 controls),
//!   which PostgreSQL text cannot hold (NUL) or which would make logs and admin listings lie.
//!
//! ```
//! use hookdock::store::key;
//! use hookdock::EventId;
//!
//! assert!(key::validate("github", &EventId::new("72d3162e-cc78-11e3-81ab-4c9367dc0958")).is_ok());
//! let err = key::validate("github", &EventId::new("evt\u{0}1")).unwrap_err();
//! assert_eq!(err.reason(), "invalid_event_id");
//! assert!(key::validate("github", &EventId::new("x".repeat(key::MAX_EVENT_ID_LEN + 1))).is_err());
//! ```

use super::error::{InvalidInput, KeyPart, KeyProblem};
use crate::event::EventId;

/// The longest event id accepted, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 512;

/// The longest source name accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 128;

/// Checks `source` and `id` against the rules above.
pub fn validate(source: &str, id: &EventId) -> Result<(), InvalidInput> {
    validate_source(source)?;
    if !id.is_utf8() {
        return Err(InvalidInput::new(KeyPart::EventId, KeyProblem::NotUtf8));
    }
    check(KeyPart::EventId, id.as_str(), MAX_EVENT_ID_LEN)
}

/// The longest [ordering key](crate::ordering::OrderingKey) accepted, in bytes.
pub const MAX_ORDERING_KEY_LEN: usize = 512;

/// Checks everything of `event` a store keys on: its source, its id and its ordering key
/// (the same rules, with [`MAX_ORDERING_KEY_LEN`]). Every backend's enqueue calls it.
pub fn validate_event(event: &crate::RawEvent) -> Result<(), InvalidInput> {
    validate(&event.source, &event.id)?;
    match &event.ordering {
        Some(ordering) => validate_ordering(ordering),
        None => Ok(()),
    }
}

/// Checks an ordering key against the rules above, with [`MAX_ORDERING_KEY_LEN`].
pub fn validate_ordering(ordering: &crate::ordering::OrderingKey) -> Result<(), InvalidInput> {
    check(KeyPart::OrderingKey, ordering.key(), MAX_ORDERING_KEY_LEN)
}

/// Checks a source name against the rules above.
pub fn validate_source(source: &str) -> Result<(), InvalidInput> {
    check(KeyPart::Source, source, MAX_SOURCE_LEN)
}

fn check(part: KeyPart, text: &str, max: usize) -> Result<(), InvalidInput> {
    let problem = if text.is_empty() {
        KeyProblem::Empty
    } else if text.len() > max {
        KeyProblem::TooLong {
            len: text.len(),
            max,
        }
    } else if let Some((at, _)) = text.char_indices().find(|(_, c)| c.is_control()) {
        KeyProblem::ControlCharacter { at }
    } else {
        return Ok(());
    };
    Err(InvalidInput::new(part, problem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    type Found = Option<(KeyPart, KeyProblem)>;

    fn problem(source: &str, id: &EventId) -> Found {
        validate(source, id).err().map(|e| (e.part(), e.problem()))
    }

    #[test]
    fn the_rules_table() {
        let long = "x".repeat(MAX_EVENT_ID_LEN + 1);
        let not_utf8 = EventId::from(&HeaderValue::from_bytes(b"bad-\xff").unwrap());
        let cases: [(&str, EventId, Found); 11] = [
            (
                "github",
                EventId::new("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                None,
            ),
            ("github", EventId::new("caf\u{e9} ok with spaces"), None),
            ("github", EventId::new("x".repeat(MAX_EVENT_ID_LEN)), None),
            (
                "github",
                EventId::new(""),
                Some((KeyPart::EventId, KeyProblem::Empty)),
            ),
            (
                "github",
                EventId::new(long.clone()),
                Some((
                    KeyPart::EventId,
                    KeyProblem::TooLong {
                        len: long.len(),
                        max: MAX_EVENT_ID_LEN,
                    },
                )),
            ),
            (
                "github",
                EventId::new("evt\u{0}1"),
                Some((KeyPart::EventId, KeyProblem::ControlCharacter { at: 3 })),
            ),
            (
                "github",
                EventId::new("a\tb"),
                Some((KeyPart::EventId, KeyProblem::ControlCharacter { at: 1 })),
            ),
            (
                "github",
                EventId::new("a\u{85}"),
                Some((KeyPart::EventId, KeyProblem::ControlCharacter { at: 1 })),
            ),
            (
                "github",
                not_utf8,
                Some((KeyPart::EventId, KeyProblem::NotUtf8)),
            ),
            (
                "",
                EventId::new("a"),
                Some((KeyPart::Source, KeyProblem::Empty)),
            ),
            (
                "git\nhub",
                EventId::new("a"),
                Some((KeyPart::Source, KeyProblem::ControlCharacter { at: 3 })),
            ),
        ];
        for (source, id, expected) in cases {
            assert_eq!(problem(source, &id), expected, "{source:?} {id:?}");
        }
    }
}
