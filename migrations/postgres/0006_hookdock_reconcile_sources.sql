-- hookdock PostgreSQL schema, version 6: where reconciliation is, one row per source.
--
-- checkpoint is the reconciler's opaque text, kept as bytes (BYTEA) so that any string,
-- even one holding a NUL, comes back exactly; report is the source's last PassReport as
-- JSON text. Times are Unix microseconds. The leadership of a source is no row here: it is a
-- session-level advisory lock held by the leader's own connection.

CREATE TABLE hookdock_reconcile_sources (
    name          TEXT PRIMARY KEY,
    checkpoint    BYTEA,
    checkpoint_at BIGINT,
    report        TEXT,
    report_at     BIGINT
);
