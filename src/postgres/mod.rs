//! PostgreSQL backend: queue and idempotency store for many receivers and workers. (In progress.)
