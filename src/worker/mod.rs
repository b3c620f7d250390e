//! The worker: leases events and runs the handler with retries, dead letters and graceful shutdown. (In progress.)
