//! What a reconciliation pass did: [`PassReport`] and the [`Gap`]s it could not cover.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// What one pass over one source did, returned by
/// [`Reconciler::run_once`](super::Reconciler::run_once), logged, kept as the source's last
/// report in the [`CheckpointStore`](crate::store::CheckpointStore) and shown by the admin
/// stats.
///
/// A pass resumed after a crash counts what it saw since it resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PassReport {
    /// The source name.
    pub source: String,
    /// When the pass started.
    #[serde(with = "unix_micros")]
    pub started_at: SystemTime,
    /// How long it took.
    #[serde(with = "duration_millis")]
    pub duration: Duration,
    /// The window walked: changes from `since` ...
    #[serde(with = "unix_micros")]
    pub since: SystemTime,
    /// ... to `until`.
    #[serde(with = "unix_micros")]
    pub until: SystemTime,
    /// Pages fetched.
    pub pages: u64,
    /// Changes the source reported.
    pub seen: u64,
    /// Of them, events the store already knew (the push path got them).
    pub known: u64,
    /// Events the push path missed, now stored with origin `reconciliation`.
    pub recovered: u64,
    /// Deliveries the push path missed that the provider was asked to send again.
    pub redeliveries: u64,
    /// Stretches the provider no longer keeps: lost for good, never silent.
    pub gaps: Vec<Gap>,
    /// Times the provider said to slow down, and the pass waited as told.
    pub rate_limited: u64,
    /// Failed requests tried again.
    pub retries: u64,
    /// Fetched events the store refused as never storable (an id that breaks the
    /// [key rules](crate::store::key)); logged, counted in `seen`, not stored.
    #[serde(default)]
    pub refused: u64,
    /// Why the pass stopped early, if it did (the checkpoint keeps its place).
    pub error: Option<String>,
}

impl PassReport {
    pub(crate) fn start(
        source: &str,
        started_at: SystemTime,
        since: SystemTime,
        until: SystemTime,
    ) -> Self {
        Self {
            source: source.to_owned(),
            started_at,
            duration: Duration::ZERO,
            since,
            until,
            pages: 0,
            seen: 0,
            known: 0,
            recovered: 0,
            redeliveries: 0,
            gaps: Vec::new(),
            rate_limited: 0,
            retries: 0,
            refused: 0,
            error: None,
        }
    }

    /// The share of what the source reported that the push path had missed:
    /// `(recovered + redeliveries) / seen`, `0.0` when nothing was seen. This is the push
    /// path's unreliability; under 0.1% is healthy, over 1% worth an alert.
    pub fn recovery_rate(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            (self.recovered + self.redeliveries) as f64 / self.seen as f64
        }
    }

    /// Whether the pass walked its whole window.
    pub fn completed(&self) -> bool {
        self.error.is_none()
    }
}

/// A stretch of time whose changes the provider no longer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Its start.
    #[serde(with = "unix_micros")]
    pub from: SystemTime,
    /// Its end: the provider's horizon when the pass ran.
    #[serde(with = "unix_micros")]
    pub to: SystemTime,
}

mod unix_micros {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::store::codec::{from_micros, to_micros};

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(to_micros(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(from_micros(i64::deserialize(d)?))
    }
}

mod duration_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
