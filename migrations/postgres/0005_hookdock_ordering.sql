-- hookdock PostgreSQL schema, version 5: ordering keys.
--
-- An event's ordering key and position live with its identity in hookdock_events (set at
-- enqueue, never changed; NULL for none, and for every event stored before version 5).
-- Of a key's pending records (hookdock_queue.state < 2) exactly one is active: leased, or
-- waiting at its own available_at. The others wait with available_at = 9223372036854775807
-- (the largest BIGINT): never due, so the lease query is unchanged, and counted as
-- scheduled.

ALTER TABLE hookdock_events
    ADD COLUMN order_key TEXT,
    ADD COLUMN order_pos BIGINT;

-- A key's records in order: by position (none first), then arrival.
CREATE INDEX hookdock_events_order
    ON hookdock_events (source, order_key, order_pos NULLS FIRST, id)
    WHERE order_key IS NOT NULL;

-- One row per key seen, kept after its events are forgotten (the watermark must outlive
-- them). The row is the key's lock: every change to which of its records is active takes
-- it (FOR UPDATE, or the upsert that creates it) in the transaction making the change.
--   active:    the id of the key's active record (NULL: none pending);
--   watermark: the largest position acked.
CREATE TABLE hookdock_order_keys (
    source    TEXT   NOT NULL,
    order_key TEXT   NOT NULL,
    active    BIGINT,
    watermark BIGINT,
    PRIMARY KEY (source, order_key)
);
