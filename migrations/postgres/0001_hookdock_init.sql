-- hookdock PostgreSQL schema, version 1: the queue and the idempotency store.
--
-- Names are unqualified: hookdock runs this file with `SET LOCAL search_path` set to the
-- configured schema (default `public`). To apply it with your own migration tool, set the
-- search_path the same way first, and record the version in `hookdock_migrations` (see
-- `hookdock::postgres::MIGRATIONS`) so `PgBackend::migrate` does not run it again.
--
-- Every time is a BIGINT: Unix milliseconds (`received_at_ns`: nanoseconds), read from the
-- application's clock, never from the server's now(), so all receivers and workers agree with
-- the clock they were given. To read them: to_timestamp(available_at / 1000.0).

-- The queue is two tables written together (one statement each for enqueue and ack):
--
-- hookdock_events: one row per stored event, from enqueue until ack (then deleted). Never
-- updated: the raw delivery, byte for byte.
CREATE TABLE hookdock_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source         TEXT     NOT NULL,
    event_id       TEXT     NOT NULL,
    received_at_ns BIGINT   NOT NULL,
    headers        BYTEA    NOT NULL,
    body           BYTEA    NOT NULL,
    enqueued_at    BIGINT   NOT NULL,
    CONSTRAINT hookdock_events_source_event_id_key UNIQUE (source, event_id)
) WITH (
    -- Insert-and-delete only: vacuum after a fixed number of dead rows, not a fraction of
    -- the table (the default 20% means "rarely" on a queue that drains to near-empty, and
    -- millions of dead rows on a large backlog).
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 50000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- hookdock_queue: the delivery state of each event in hookdock_events (same id), in small
-- rows, so that leasing, retrying and extending rewrite ~60 bytes rather than the whole
-- delivery (a 2-10x smaller write, and far less WAL, per lease).
--   state 0 = waiting (ready once available_at <= now),
--         1 = leased (lease expires at available_at; ready again after that),
--         2 = dead (in the dead letters, never leased until replayed).
CREATE TABLE hookdock_queue (
    id           BIGINT   PRIMARY KEY,
    state        SMALLINT NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),
    available_at BIGINT   NOT NULL,
    attempts     INTEGER  NOT NULL DEFAULT 0,
    lease_token  BIGINT   NOT NULL DEFAULT 0,
    last_error   TEXT,
    dead_reason  TEXT,
    dead_at      BIGINT
) WITH (
    -- Room on each page for the new row versions every lease and retry writes.
    fillfactor = 70,
    -- Every event updates its row at least once and deletes it: vacuum often, unthrottled.
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 50000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- What the lease query walks: messages not dead, by the time they become available.
CREATE INDEX hookdock_queue_due ON hookdock_queue (available_at, id) WHERE state < 2;
-- The dead letters, for listing and replay.
CREATE INDEX hookdock_queue_dead ON hookdock_queue (id) WHERE state = 2;

-- The idempotency store: one row per (source, event id) claimed.
--   completed = false: in progress until expires_at (then anyone may take it over);
--   completed = true: done; remembered until expires_at (the end of retention).
CREATE TABLE hookdock_idempotency (
    source       TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    fingerprint  BYTEA   NOT NULL,
    token        BIGINT  NOT NULL,
    completed    BOOLEAN NOT NULL DEFAULT false,
    expires_at   BIGINT  NOT NULL,
    completed_at BIGINT,
    result       BYTEA,
    PRIMARY KEY (source, event_id)
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- For the retention purge.
CREATE INDEX hookdock_idempotency_expires ON hookdock_idempotency (expires_at);

-- Fencing tokens for claims: never reused, even after a key is released and claimed again.
CREATE SEQUENCE hookdock_claim_token_seq AS BIGINT;
