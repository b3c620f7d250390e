//! SQLite backend: durable queue and idempotency store sharing one writer thread with group commit. (In progress.)
