//! One pass over one source: resume or open a window, walk it a page at a time, store what
//! the push path missed, and move the checkpoint after each page.

use std::collections::HashSet;
use std::time::SystemTime;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::reconciler::Settings;
use super::report::{Gap, PassReport};
use super::source::{Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest};
use crate::event::RawEvent;
use crate::store::{
    codec, CheckpointStore, Enqueued, ErrorKind, EventLog, Leadership, Origin, StoreError,
};

/// The reconciler's checkpoint, stored as JSON: the window being walked and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Mark {
    /// Format version.
    v: u32,
    /// The window, in microseconds since the Unix epoch.
    since: i64,
    until: i64,
    /// The source's cursor.
    cursor: Option<String>,
    /// Whether the window's walk finished.
    done: bool,
}

impl Mark {
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_str::<Mark>(text).ok().filter(|m| m.v == 1)
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a pass needs from the reconciler.
pub(super) struct Pass<'a> {
    pub(super) source: &'a dyn ChangeSource,
    pub(super) log: &'a dyn EventLog,
    pub(super) checkpoints: &'a dyn CheckpointStore,
    pub(super) leadership: &'a dyn Leadership,
    pub(super) settings: &'a Settings,
}

impl Pass<'_> {
    /// Runs the pass. Errors after it started are in the report (`error`); only a failure to
    /// read or write the checkpoint before any work is an `Err`.
    pub(super) async fn run(self) -> Result<PassReport, StoreError> {
        let name = self.source.name();
        let now = self.settings.clock.now();
        let started = std::time::Instant::now();
        let mark = match self.checkpoints.checkpoint(name).await? {
            Some(text) => match Mark::parse(&text) {
                Some(mark) => Some(mark),
                None => {
                    tracing::warn!(
                        source = name,
                        "unreadable reconciliation checkpoint; starting a new window"
                    );
                    None
                }
            },
            None => None,
        };
        let (mut since, until, mut cursor) = match mark {
            Some(m) if !m.done => (
                codec::from_micros(m.since),
                codec::from_micros(m.until),
                m.cursor,
            ),
            Some(m) => {
                let since = codec::from_micros(m.until)
                    .checked_sub(self.settings.overlap)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (since, now.max(codec::from_micros(m.until)), m.cursor)
            }
            None => (
                now.checked_sub(self.settings.first_window)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                now,
                None,
            ),
        };
        let mut report = PassReport::start(name, now, since, until);
        let oldest = now
            .checked_sub(self.source.horizon())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if since < oldest {
            report.gaps.push(Gap {
                from: since,
                to: oldest,
            });
            since = oldest;
            cursor = None;
            report.since = since;
        }
        let mut mark = Mark {
            v: 1,
            since: codec::to_micros(since),
            until: codec::to_micros(until),
            cursor,
            done: false,
        };
        self.checkpoints.save_checkpoint(name, &mark.text()).await?;

        let mut redelivered: HashSet<String> = HashSet::new();
        let mut failures = 0u32;
        let mut rate_waits = 0u32;
        let mut restarts = 0u32;
        loop {
            if !self.leadership.holds().await {
                report.error = Some("lost the leadership".into());
                break;
            }
            let request = PollRequest::new(
                since,
                until,
                mark.cursor.as_deref(),
                self.settings.page_size,
            );
            let page = match self.source.poll(request).await {
                Ok(page) => page,
                Err(error) => match self
                    .handle_error(&mut report, error, &mut failures, &mut rate_waits)
                    .await
                {
                    Next::Again => continue,
                    Next::Restart => {
                        // The cursor aged out at the provider: walk the window again from
                        // its start (what was seen is absorbed by the dedupe). What lies
                        // before the provider's horizon now is a gap.
                        restarts += 1;
                        if mark.cursor.is_none() || restarts > 3 {
                            report.error =
                                Some("the provider says the window is beyond its horizon".into());
                            break;
                        }
                        let oldest = self
                            .settings
                            .clock
                            .now()
                            .checked_sub(self.source.horizon())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        if since < oldest {
                            report.gaps.push(Gap {
                                from: since,
                                to: oldest,
                            });
                            since = oldest;
                            report.since = since;
                            mark.since = codec::to_micros(since);
                        }
                        mark.cursor = None;
                        continue;
                    }
                    Next::Stop(message) => {
                        report.error = Some(message);
                        break;
                    }
                },
            };
            failures = 0;
            report.pages += 1;
            if let Err(message) = self.apply(&mut report, &page, &mut redelivered).await {
                report.error = Some(message);
                break;
            }
            mark.cursor = page.cursor;
            mark.done = page.done;
            if !self.leadership.holds().await {
                report.error = Some("lost the leadership".into());
                break;
            }
            if let Err(error) = self.checkpoints.save_checkpoint(name, &mark.text()).await {
                report.error = Some(format!("saving the checkpoint failed: {error}"));
                break;
            }
            if mark.done {
                break;
            }
        }
        report.duration = started.elapsed();
        Ok(report)
    }

    /// Stores or asks again for each change of a page; the page's events are all stored
    /// (or known) when this returns `Ok`.
    async fn apply(
        &self,
        report: &mut PassReport,
        page: &Page,
        redelivered: &mut HashSet<String>,
    ) -> Result<(), String> {
        // The page's events are stored together: the backend's group commit makes them one
        // transaction rather than a commit each.
        let events = page.changes.iter().filter_map(|c| match c {
            Change::Event(event) => Some(self.store(event)),
            _ => None,
        });
        for stored in futures_util::future::join_all(events).await {
            report.seen += 1;
            match stored? {
                Stored::New => report.recovered += 1,
                Stored::Known => report.known += 1,
                Stored::Refused => report.refused += 1,
            }
        }
        for change in &page.changes {
            let Change::Redeliver { id, handle } = change else {
                continue;
            };
            report.seen += 1;
            let known = self
                .retrying(|| self.log.get(self.source.name(), id))
                .await?;
            if known.is_some() {
                report.known += 1;
            } else if redelivered.insert(id.to_string()) {
                self.redeliver(report, handle).await?;
                report.redeliveries += 1;
            } else {
                report.seen -= 1;
            }
        }
        Ok(())
    }

    async fn store(&self, fetched: &FetchedEvent) -> Result<Stored, String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let event = RawEvent {
            id: fetched.id.clone(),
            source: self.source.name().to_owned(),
            received_at: self.settings.clock.now(),
            headers,
            body: fetched.body.clone(),
            event_type: fetched.event_type.clone(),
            origin: Origin::Reconciliation,
            ordering: self
                .settings
                .ordering
                .as_ref()
                .and_then(|extract| extract(fetched)),
        };
        let mut attempt = 0u32;
        loop {
            match self.log.enqueue(event.clone()).await {
                Ok(Enqueued::New(_)) => return Ok(Stored::New),
                Ok(Enqueued::Duplicate(_)) => return Ok(Stored::Known),
                Err(error) if error.kind() == ErrorKind::InvalidInput => {
                    tracing::warn!(source = self.source.name(), %error, "a fetched event was refused by the store; skipped");
                    return Ok(Stored::Refused);
                }
                Err(error) if error.is_transient() && attempt < self.settings.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(self.settings.backoff(attempt)).await;
                }
                Err(error) => return Err(format!("storing a fetched event failed: {error}")),
            }
        }
    }

    async fn redeliver(&self, report: &mut PassReport, handle: &str) -> Result<(), String> {
        let mut failures = 0u32;
        let mut rate_waits = 0u32;
        loop {
            match self.source.redeliver(handle).await {
                Ok(()) => return Ok(()),
                Err(error) => match self
                    .handle_error(report, error, &mut failures, &mut rate_waits)
                    .await
                {
                    Next::Again => continue,
                    Next::Restart => {
                        return Err("a redelivery was refused as beyond the horizon".into())
                    }
                    Next::Stop(message) => return Err(message),
                },
            }
        }
    }

    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < self.settings.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(self.settings.backoff(attempt)).await;
                }
                Err(error) => return Err(format!("reading the event log failed: {error}")),
            }
        }
    }

    /// Waits as a failure asks, or says to stop.
    async fn handle_error(
        &self,
        report: &mut PassReport,
        error: PollError,
        failures: &mut u32,
        rate_waits: &mut u32,
    ) -> Next {
        match error {
            PollError::RateLimited { retry_after } => {
                *rate_waits += 1;
                report.rate_limited += 1;
                if *rate_waits > self.settings.max_rate_limit_waits {
                    return Next::Stop("rate limited too many times in one pass".into());
                }
                let wait = retry_after
                    .unwrap_or_else(|| self.settings.backoff(*rate_waits))
                    .min(self.settings.max_wait);
                tracing::info!(
                    source = self.source.name(),
                    ?wait,
                    "rate limited by the provider; waiting as told"
                );
                tokio::time::sleep(wait).await;
                Next::Again
            }
            PollError::Transient(error) => {
                *failures += 1;
                if *failures > self.settings.max_retries {
                    return Next::Stop(format!("the provider kept failing: {error}"));
                }
                report.retries += 1;
                let wait = self.settings.backoff(*failures);
                tracing::warn!(source = self.source.name(), %error, ?wait, "a reconciliation request failed; backing off");
                tokio::time::sleep(wait).await;
                Next::Again
            }
            PollError::BeyondHorizon => Next::Restart,
            error @ PollError::Rejected { .. } => Next::Stop(error.to_string()),
        }
    }
}

enum Stored {
    New,
    Known,
    Refused,
}

enum Next {
    Again,
    Restart,
    Stop(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_a_foreign_one_is_ignored() {
        let mark = Mark {
            v: 1,
            since: 1,
            until: 2,
            cursor: Some("c".into()),
            done: true,
        };
        let back = Mark::parse(&mark.text()).expect("parses");
        assert_eq!(
            (back.since, back.until, back.cursor.as_deref(), back.done),
            (1, 2, Some("c"), true)
        );
        assert!(Mark::parse("{\"v\":9}").is_none());
        assert!(Mark::parse("not json").is_none());
    }
}
