-- hookdock PostgreSQL schema, version 4: the readiness probe's row.
--
-- Queue::check_writable updates this one row in a transaction of its own and waits for the
-- commit: a real write, refused by a read-only server or a standby and failing like an
-- enqueue when the server is out of space, without touching any event. Nothing reads it
-- but people: probed_at is the last probe's time, in Unix microseconds.

CREATE TABLE hookdock_health (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    probed_at BIGINT   NOT NULL
);
INSERT INTO hookdock_health (id, probed_at) VALUES (1, 0);
