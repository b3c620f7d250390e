-- hookdock PostgreSQL schema, version 3: the event log. Each record tells its history
-- (type, origin, attempt and settle times, replays), and replay jobs are stored.
--
-- Names are unqualified (see 0001). Times are BIGINT Unix microseconds from the
-- application's clock, like the others.
--
-- No index is added to hookdock_events or hookdock_queue: every index of those tables is
-- written by each enqueue (a random page for a random key), and the log's queries walk the
-- primary keys (newest first) or the partial indexes the queue already keeps.

-- The provider's event type, as intake read it: part of the immutable delivery.
ALTER TABLE hookdock_events ADD COLUMN event_type TEXT;

-- state 5: skipped as stale (the ordering work); settled, forgotten at available_at like 3.
-- The new rule is wider than the old one, which every row met, so it is added NOT VALID:
-- checked for every row written from now on, without a scan of the whole table under the
-- migration's lock (a table holding a week of events is large).
ALTER TABLE hookdock_queue DROP CONSTRAINT hookdock_queue_state_check;
ALTER TABLE hookdock_queue ADD CONSTRAINT hookdock_queue_state_check
    CHECK (state IN (0, 1, 2, 3, 4, 5)) NOT VALID;

-- The history of the current run (since stored or last replayed):
--   origin            0 push, 1 replay, 2 reconciliation;
--   first_attempt_at  when it was first leased;
--   last_attempt_at   when it was last leased;
--   done_at           when it was handled, dead-lettered or skipped as stale;
--   replays           how often it was replayed, forced_replays how many of those reset
--                     its completed claim.
-- Columns with a constant default are added without rewriting the table.
ALTER TABLE hookdock_queue
    ADD COLUMN origin           SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN first_attempt_at BIGINT,
    ADD COLUMN last_attempt_at  BIGINT,
    ADD COLUMN done_at          BIGINT,
    ADD COLUMN replays          INTEGER  NOT NULL DEFAULT 0,
    ADD COLUMN forced_replays   INTEGER  NOT NULL DEFAULT 0;

-- What schema 2 knew of settled records: a dead letter was done when it died.
UPDATE hookdock_queue SET done_at = dead_at WHERE state = 2;

-- Durable replay jobs: a filter (JSON of hookdock's EventFilter) walked oldest first, a
-- batch per transaction, from after (exclusive) up to through (inclusive).
--   state 0 running, 1 finished, 2 cancelled.
CREATE TABLE hookdock_replay_jobs (
    id         BIGSERIAL PRIMARY KEY,
    filter     TEXT     NOT NULL,
    forced     BOOLEAN  NOT NULL,
    state      SMALLINT NOT NULL CHECK (state IN (0, 1, 2)),
    through    BIGINT,
    after      BIGINT,
    total      BIGINT   NOT NULL,
    replayed   BIGINT   NOT NULL DEFAULT 0,
    skipped    BIGINT   NOT NULL DEFAULT 0,
    created_at BIGINT   NOT NULL,
    updated_at BIGINT   NOT NULL
);
