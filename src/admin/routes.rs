//! The handlers of the admin routes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::query;
use crate::clock::SharedClock;
use crate::reconcile::{PassOutcome, PassReport, ReconcileError, Reconciler};
use crate::store::{
    EventFilter, EventLog, EventStatus, LogCounts, LogEntry, LogPage, Queue, QueueStats, ReplayJob,
    ReplayJobId, Replayer, StoreError,
};
use crate::worker::{Worker, WorkerStats};

/// What every handler shares.
#[derive(Clone)]
pub(super) struct Ctx {
    pub(super) log: Arc<dyn EventLog>,
    pub(super) worker: Option<Worker>,
    pub(super) reconciliation: Option<Reconciler>,
    pub(super) replayer: Replayer,
    pub(super) clock: SharedClock,
    /// Jobs a task of this process is running now (so a resume does not start a second one).
    pub(super) running: Arc<Mutex<HashSet<ReplayJobId>>>,
}

type Answer = Result<Response, ApiError>;

fn path<T>(extracted: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    extracted
        .map(|Path(value)| value)
        .map_err(|e| ApiError::BadRequest(format!("bad path: {}", e.body_text())))
}

fn job_id(text: &str) -> Result<ReplayJobId, ApiError> {
    text.parse()
        .map(ReplayJobId)
        .map_err(|_| ApiError::BadRequest(format!("{text:?} is not a replay job id")))
}

#[derive(serde::Serialize)]
struct StatsBody<'a> {
    log: &'a LogCounts,
    /// How long the oldest waiting event has waited, now.
    oldest_pending_age_ms: Option<u64>,
    queue: QueueStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<WorkerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reconciliation: Option<Vec<SourceReport>>,
}

/// A source's last reconciliation report and its recovery rate.
#[derive(serde::Serialize)]
struct SourceReport {
    #[serde(flatten)]
    report: PassReport,
    recovery_rate: f64,
}

/// `GET /stats?<filter>`: the log's counts (by source, type and status) of the matching
/// events, the age of the oldest waiting one, the queue's counts, and the worker's totals
/// when configured.
pub(super) async fn stats(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Answer {
    let filter = query::filter(q.as_deref())?;
    let counts = ctx.log.counts(&filter).await?;
    let queue = ctx.log.stats().await?;
    let age = counts
        .oldest_pending_age(ctx.clock.now())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(Json(StatsBody {
        log: &counts,
        oldest_pending_age_ms: age,
        queue,
        worker: ctx.worker.as_ref().map(Worker::stats),
        reconciliation: match &ctx.reconciliation {
            Some(reconciler) => Some(
                reconciler
                    .stored_reports()
                    .await?
                    .into_iter()
                    .map(|report| SourceReport {
                        recovery_rate: report.recovery_rate(),
                        report,
                    })
                    .collect(),
            ),
            None => None,
        },
    })
    .into_response())
}

#[derive(serde::Serialize)]
struct PageBody<'a> {
    entries: &'a [LogEntry],
    next: Option<crate::store::MessageId>,
    /// The page size used (the `limit` asked for, clamped to `MAX_PAGE`).
    limit: usize,
}

fn page(page: &LogPage, filter: &EventFilter) -> Response {
    Json(PageBody {
        entries: &page.entries,
        next: page.next,
        limit: filter.page_size(),
    })
    .into_response()
}

/// `GET /events?<filter>`: one page, newest first.
pub(super) async fn events(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Answer {
    let filter = query::filter(q.as_deref())?;
    let listed = ctx.log.list(&filter).await?;
    Ok(page(&listed, &filter))
}

/// The filter with its status set to dead; a `status` other than dead is refused.
fn dead_only(filter: EventFilter, parameter: &str) -> Result<EventFilter, ApiError> {
    match filter.status {
        None | Some(EventStatus::Dead) => Ok(filter.status(EventStatus::Dead)),
        Some(other) => Err(ApiError::parameter(
            parameter,
            format!("dead letters have status dead, not {other}"),
        )),
    }
}

/// `GET /dead?<filter>`: the dead letters, as `/events?status=dead`.
pub(super) async fn dead(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Answer {
    let filter = dead_only(query::filter(q.as_deref())?, "status")?;
    let listed = ctx.log.list(&filter).await?;
    Ok(page(&listed, &filter))
}

#[derive(serde::Serialize)]
struct Header {
    name: String,
    value: String,
}

/// `GET /events/{source}/{id}`: the entry and the stored headers.
pub(super) async fn show(
    State(ctx): State<Ctx>,
    key: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let (source, id) = path(key)?;
    let logged = ctx
        .log
        .get(&source, &id)
        .await?
        .ok_or_else(|| not_found(&source, &id))?;
    let headers: Vec<Header> = logged
        .event
        .headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect();
    Ok(Json(serde_json::json!({
        "entry": logged.entry,
        "headers": headers,
        "body_bytes": logged.event.body.len(),
    }))
    .into_response())
}

fn not_found(source: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "the log holds no event {id:?} from source {source:?}"
    ))
}

/// `GET /events/{source}/{id}/body`: the raw bytes as received, under the stored
/// `content-type` (else `application/octet-stream`), as a download that no browser renders
/// (the bytes are whatever the sender chose).
pub(super) async fn body(
    State(ctx): State<Ctx>,
    key: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let (source, id) = path(key)?;
    let logged = ctx
        .log
        .get(&source, &id)
        .await?
        .ok_or_else(|| not_found(&source, &id))?;
    let content_type = logged
        .event
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
        ],
        logged.event.body,
    )
        .into_response())
}

/// `POST /events/{source}/{id}/replay?mode=dedupe|forced`: replays one event now (a job of
/// one, run to its end) and answers the job: `replayed: 1`, or `skipped: 1` when the event
/// was not settled (it runs anyway).
pub(super) async fn replay_one(
    State(ctx): State<Ctx>,
    key: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Answer {
    let (source, id) = path(key)?;
    let mode = query::mode_query(q.as_deref())?;
    if ctx.log.get(&source, &id).await?.is_none() {
        return Err(not_found(&source, &id));
    }
    let job = ctx
        .replayer
        .start(&EventFilter::event(source.as_str(), id.as_str()), mode)
        .await?;
    let job = ctx.replayer.run(job.id, &mut |_| {}).await?;
    tracing::info!(%source, id = %id, mode = mode.as_str(), job = %job.id, replayed = job.replayed, "admin: event replayed");
    Ok(Json(job).into_response())
}

/// `POST /reconcile/{source}`: runs a reconciliation pass over `source` now and answers its
/// report; `404` for a source the reconciler does not have (or no reconciler), `409` when
/// another process leads the source.
pub(super) async fn reconcile(
    State(ctx): State<Ctx>,
    source: Result<Path<String>, PathRejection>,
) -> Answer {
    let source = path(source)?;
    let Some(reconciler) = &ctx.reconciliation else {
        return Err(ApiError::NotFound("no reconciler is configured".into()));
    };
    match reconciler.run_once(&source).await {
        Ok(PassOutcome::Ran(report)) => {
            tracing::info!(%source, recovered = report.recovered, "admin: reconciliation pass run");
            Ok(Json(SourceReport {
                recovery_rate: report.recovery_rate(),
                report,
            })
            .into_response())
        }
        Ok(_) => Err(ApiError::Conflict(format!(
            "another process leads the reconciliation of {source:?}"
        ))),
        Err(ReconcileError::UnknownSource(name)) => Err(ApiError::NotFound(format!(
            "no reconciliation source named {name:?}"
        ))),
        Err(ReconcileError::Store(error)) => Err(error.into()),
    }
}

/// Starts a durable job and runs it in the background; `202` with the job as created.
async fn start_job(ctx: &Ctx, filter: &EventFilter, mode: crate::store::ReplayMode) -> Answer {
    let job = ctx.replayer.start(filter, mode).await?;
    tracing::info!(job = %job.id, mode = mode.as_str(), total = job.total, "admin: replay job started");
    spawn_run(ctx, job.id);
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// Runs `job` to its end in a task of its own, unless this process already runs it.
/// Returns whether a task was started.
pub(super) fn spawn_run(ctx: &Ctx, job: ReplayJobId) -> bool {
    let Ok(mut running) = ctx.running.lock() else {
        return false;
    };
    if !running.insert(job) {
        return false;
    }
    drop(running);
    let guard = Running {
        set: Arc::clone(&ctx.running),
        job,
    };
    let replayer = ctx.replayer.clone();
    tokio::spawn(async move {
        let _guard = guard;
        match replayer.run(job, &mut |_| {}).await {
            Ok(done) => tracing::info!(
                job = %done.id,
                state = done.state.as_str(),
                replayed = done.replayed,
                skipped = done.skipped,
                "admin: replay job over"
            ),
            Err(error) => tracing::warn!(
                %job,
                %error,
                "admin: replay job stopped; it is still running in the store and resumes with \
                 Admin::resume_replays"
            ),
        }
    });
    true
}

/// Takes a job out of the running set when its task ends, however it ends.
struct Running {
    set: Arc<Mutex<HashSet<ReplayJobId>>>,
    job: ReplayJobId,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.job);
        }
    }
}

/// `POST /replays` with `{ "filter": EventFilter, "mode": "dedupe" | "forced" }`.
pub(super) async fn start_replay(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    query::no_query(q.as_deref())?;
    let (filter, mode) = query::replay_body(&body)?;
    let filter = filter.ok_or_else(|| {
        ApiError::BadRequest(
            "the body needs a filter: {\"filter\": {...}, \"mode\": ...} ({} selects every event)"
                .into(),
        )
    })?;
    start_job(&ctx, &filter, mode).await
}

/// `POST /dead/replay` with an optional `{ "filter": ..., "mode": ... }`: every dead letter
/// matching the filter (all of them without one), through dedupe unless told otherwise.
pub(super) async fn dead_replay(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    query::no_query(q.as_deref())?;
    let (filter, mode) = query::replay_body(&body)?;
    let filter = filter.unwrap_or_default();
    let filter = match filter.status {
        None | Some(EventStatus::Dead) => filter.status(EventStatus::Dead),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dead letters have status dead, not {other}: use POST /replays for other events"
            )))
        }
    };
    start_job(&ctx, &filter, mode).await
}

/// `GET /replays?running=true|false`: every job (or the running ones), newest first.
pub(super) async fn list_jobs(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Answer {
    let running = query::running_query(q.as_deref())?;
    let jobs = ctx.log.replay_jobs(running).await?;
    Ok(Json(serde_json::json!({ "jobs": jobs })).into_response())
}

fn job_not_found(id: ReplayJobId) -> ApiError {
    ApiError::NotFound(format!("no replay job {id}"))
}

/// `GET /replays/{id}`: one job and its progress.
pub(super) async fn get_job(
    State(ctx): State<Ctx>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = job_id(&path(id)?)?;
    let job: Option<ReplayJob> = ctx.log.replay_job(id).await?;
    Ok(Json(job.ok_or_else(|| job_not_found(id))?).into_response())
}

/// `POST /replays/{id}/cancel`: stops a running job (its task ends at its next step).
pub(super) async fn cancel_job(
    State(ctx): State<Ctx>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = job_id(&path(id)?)?;
    let job = ctx.log.cancel_replay(id).await?;
    let job = job.ok_or_else(|| job_not_found(id))?;
    tracing::info!(job = %id, "admin: replay job cancelled");
    Ok(Json(job).into_response())
}

/// Starts a task for every job the store still has running and this process does not run;
/// returns their ids.
pub(super) async fn resume(ctx: &Ctx) -> Result<Vec<ReplayJobId>, StoreError> {
    let jobs = ctx.log.replay_jobs(true).await?;
    Ok(jobs
        .into_iter()
        .filter(|job| spawn_run(ctx, job.id))
        .map(|job| job.id)
        .collect())
}
