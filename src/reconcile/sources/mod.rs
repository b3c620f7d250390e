//! Ready [`ChangeSource`](super::ChangeSource)s for providers' APIs (feature `reconcile`),
//! over one HTTPS client (`reqwest` with rustls).
//!
//! | source | API | horizon | what it returns |
//! |---|---|---|---|
//!
//! Each source takes its API base URL (the provider's public one by default), so tests and
//! proxies can point it elsewhere; credentials are sent as sensitive headers and never
//! appear in `Debug` output, logs or errors.

mod client;
