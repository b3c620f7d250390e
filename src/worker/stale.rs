//! What the worker does with a stale event before its handler runs: the route's
//! [`StalePolicy`] over the ordering watermark and the maximum event age.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ordering::StalePolicy;
use crate::store::Leased;

/// The worker's ordering settings.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Staleness {
    pub(super) policy: StalePolicy,
    /// Events whose position, read as an event time, is older than this are stale too.
    pub(super) max_age: Option<Duration>,
}

/// Run the handler (marked stale or not), or skip the event with a reason.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Run {
        stale: bool,
    },
    /// The reason, and why in one word: `stale` (the watermark) or `too_old` (the age).
    Skip(String, &'static str),
}

impl Staleness {
    /// Judges a leased event at `now`.
    pub(super) fn judge(&self, leased: &Leased, now: SystemTime) -> Verdict {
        let Some((reason, why)) = self.why_stale(leased, now) else {
            return Verdict::Run { stale: false };
        };
        match self.policy {
            StalePolicy::Skip => Verdict::Skip(reason, why),
            StalePolicy::Mark => Verdict::Run { stale: true },
            StalePolicy::Run => Verdict::Run { stale: false },
        }
    }

    fn why_stale(&self, leased: &Leased, now: SystemTime) -> Option<(String, &'static str)> {
        let ordering = leased.event.ordering.as_ref()?;
        let position = ordering.position()?;
        if let Some(watermark) = leased.watermark.filter(|_| leased.is_stale()) {
            let reason = format!(
                "stale: position {position} is older than {watermark}, already applied for its key"
            );
            return Some((reason, "stale"));
        }
        let max_age = self.max_age?;
        let age = now.duration_since(self.event_time(leased)?).ok()?;
        (age > max_age).then(|| {
            let reason = format!(
                "stale: the event is {}s old, over the maximum age of {}s",
                age.as_secs(),
                max_age.as_secs()
            );
            (reason, "too_old")
        })
    }

    /// The event's time, where this worker reads positions as event times (a maximum age is
    /// set).
    pub(super) fn event_time(&self, leased: &Leased) -> Option<SystemTime> {
        self.max_age?;
        let position = leased.event.ordering.as_ref()?.position()?;
        UNIX_EPOCH.checked_add(Duration::from_micros(u64::try_from(position).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering::OrderingKey;
    use crate::store::{Lease, LeaseToken, MessageId};
    use crate::RawEvent;

    fn leased(key: Option<OrderingKey>, watermark: Option<i64>) -> Leased {
        let mut event = RawEvent::new("stripe", "evt_1", UNIX_EPOCH, "{}");
        event.ordering = key;
        let lease = Lease {
            message: MessageId(1),
            token: LeaseToken(1),
            expires_at: UNIX_EPOCH,
        };
        Leased::new(lease, event, 1, 5).with_watermark(watermark)
    }

    #[test]
    fn each_policy_over_the_watermark() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let old = leased(Some(OrderingKey::new("cus").version(5)), Some(9));
        let new = leased(Some(OrderingKey::new("cus").version(9)), Some(9));
        let unkeyed = leased(None, None);
        let unpositioned = leased(Some(OrderingKey::new("cus")), Some(9));
        let skip = Staleness::default();
        assert!(
            matches!(skip.judge(&old, now), Verdict::Skip(r, "stale") if r.contains("position 5 is older than 9"))
        );
        for fresh in [&new, &unkeyed, &unpositioned] {
            assert_eq!(skip.judge(fresh, now), Verdict::Run { stale: false });
        }
        let mark = Staleness {
            policy: StalePolicy::Mark,
            max_age: None,
        };
        assert_eq!(mark.judge(&old, now), Verdict::Run { stale: true });
        let run = Staleness {
            policy: StalePolicy::Run,
            max_age: None,
        };
        assert_eq!(run.judge(&old, now), Verdict::Run { stale: false });
    }

    #[test]
    fn the_maximum_age_reads_the_position_as_a_time() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let at = |secs: u64| {
            leased(
                Some(OrderingKey::new("o").at(UNIX_EPOCH + Duration::from_secs(secs))),
                None,
            )
        };
        let policy = Staleness {
            policy: StalePolicy::Skip,
            max_age: Some(Duration::from_secs(3_600)),
        };
        assert!(
            matches!(policy.judge(&at(1_000), now), Verdict::Skip(r, "too_old") if r.contains("maximum age"))
        );
        assert_eq!(policy.judge(&at(9_000), now), Verdict::Run { stale: false });
        // In the future (clock skew): not stale.
        assert_eq!(
            policy.judge(&at(20_000), now),
            Verdict::Run { stale: false }
        );
    }
}
