-- hookdock PostgreSQL schema, version 2: one record per key, claims on it, handled events
-- kept for the retention period, and every time in microseconds.
--
-- Names are unqualified (see 0001). Every time is a BIGINT of Unix microseconds, read from
-- the application's clock: to_timestamp(available_at / 1e6).

-- The delivery's time was nanoseconds, the others milliseconds.
ALTER TABLE hookdock_events RENAME COLUMN received_at_ns TO received_at;
UPDATE hookdock_events SET received_at = received_at / 1000, enqueued_at = enqueued_at * 1000;

-- hookdock_queue states: 0 waiting, 1 leased, 2 dead, 3 handled (remembered until
-- available_at, then forgotten), 4 a record holding only a claim (no event was stored under
-- its key; forgotten at available_at).
ALTER TABLE hookdock_queue DROP CONSTRAINT hookdock_queue_state_check;
ALTER TABLE hookdock_queue ADD CONSTRAINT hookdock_queue_state_check
    CHECK (state IN (0, 1, 2, 3, 4));
UPDATE hookdock_queue SET available_at = available_at * 1000, dead_at = dead_at * 1000;

-- The dedupe layer's claim lives on the record of its key.
ALTER TABLE hookdock_queue
    ADD COLUMN claim_token BIGINT,
    ADD COLUMN claim_done  BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN claim_until BIGINT,
    ADD COLUMN fingerprint BYTEA,
    ADD COLUMN result      BYTEA;

UPDATE hookdock_queue q
SET claim_token = i.token, claim_done = i.completed, claim_until = i.expires_at * 1000,
    fingerprint = i.fingerprint, result = i.result
FROM hookdock_events e, hookdock_idempotency i
WHERE e.id = q.id AND i.source = e.source AND i.event_id = e.event_id;

-- Claims of keys no event was stored under become records holding only the claim, forgotten
-- when the claim's retention ends (an abandoned claim: 72 hours after it expired).
WITH only_claims AS (
    SELECT i.* FROM hookdock_idempotency i
    WHERE NOT EXISTS (SELECT 1 FROM hookdock_events e
                      WHERE e.source = i.source AND e.event_id = i.event_id)
), records AS (
    INSERT INTO hookdock_events (source, event_id, received_at, headers, body, enqueued_at)
    SELECT source, event_id, 0, '', '', 0 FROM only_claims
    RETURNING id, source, event_id
)
INSERT INTO hookdock_queue (id, state, available_at, claim_token, claim_done, claim_until,
                            fingerprint, result)
SELECT r.id, 4,
       c.expires_at * 1000 + CASE WHEN c.completed THEN 0 ELSE 259200000000 END,
       c.token, c.completed, c.expires_at * 1000, c.fingerprint, c.result
FROM records r JOIN only_claims c ON c.source = r.source AND c.event_id = r.event_id;

DROP TABLE hookdock_idempotency;

-- What to forget next.
CREATE INDEX hookdock_queue_forget ON hookdock_queue (available_at) WHERE state >= 3;
