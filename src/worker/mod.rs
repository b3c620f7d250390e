//! The worker side: what a handler receives ([`Event`]), how it reports failure
//! ([`HandlerError`]), typed decoding ([`DecodeJsonLayer`]), and the retry schedule
//! ([`RetryPolicy`]).
//!
//! A handler is any `tower::Service<Event<T>>` whose error converts into [`HandlerError`]:
//! failures are retryable by default, [`HandlerError::permanent`] sends the event straight to
//! the dead letters, and a panic is caught and treated as retryable.

mod decode;
mod error;
mod event;
mod retry;

pub use decode::{DecodeError, DecodeFuture, DecodeJson, DecodeJsonLayer};
pub use error::{BoxError, ErrorKind, HandlerError};
pub use event::Event;
pub use retry::{RetryPolicy, RetryPolicyBuilder};
