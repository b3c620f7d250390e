//! The verify layer: limits the body, checks the signature over the exact raw bytes, and
//! passes the request on with its verified identity.
//!
//! [`VerifyLayer`] wraps any service taking `http::Request<Full<Bytes>>`. For each request
//! the [`Verify`] middleware:
//!
//! 1. refuses a declared `Content-Length` over the limit without reading the body
//!    (`413 Payload Too Large`);
//! 2. reads the body, refusing it as soon as the bytes read pass the same limit (`413`; this
//!    catches chunked bodies that declare no length), or when it has not arrived within the
//!    body timeout (`408`, [`DEFAULT_BODY_TIMEOUT`] unless set with
//!    [`VerifyLayer::body_timeout`]; this ends clients that send slowly or announce more
//!    bytes than they send);
//! 3. runs the [`Scheme`](crate::Scheme) over the method, URI, headers, raw body and the
//!    time from its [`Clock`](crate::Clock) (awaiting a key first for a scheme that fetches
//!    one, see [`Scheme::load_key`](crate::Scheme::load_key)); a provider's
//!    [`handshake`] is answered here, by the layer, and never reaches the inner
//!    service (before verification for the handshakes a provider does not sign, after it for
//!    the others);
//! 4. on success calls the inner service with the body byte for byte (`Full<Bytes>`, no copy
//!    for a body that arrived in one chunk) and the [`Verified`] identity in the request's
//!    extensions;
//! 5. otherwise answers with the rejection's status (`401` for a missing header, a bad
//!    signature or a timestamp outside the window; `400` for a malformed header or an
//!    unreadable body; `408` for a body that did not arrive in time; `413` for a body over
//!    the limit), a one-line `text/plain` body naming
//!    the [`RejectionKind`] (such as `bad_signature (x-hub-signature-256): ...`), and the
//!    typed [`Rejection`] in the response's extensions. The inner service is not called.
//!
//! Rejections are logged with [`tracing`]: bad signatures and timestamps outside the window
//! at `INFO`, the rest at `DEBUG`. Logs name the scheme, method, path, kind and header, never
//! a header value, a signature, a secret or the query string.
//!
//! Rejections are responses, so the middleware's error type is the inner service's
//! (`type Error = S::Error`) and it mounts anywhere a tower layer does: axum's
//! `Router::layer` and `Router::route_layer`, a `tower::ServiceBuilder`, or plain hyper
//! (see `examples/axum_verify.rs` and `examples/hyper_verify.rs`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use hookdock::scheme::{Preset, Rejection, RejectionKind, Verified};
//! use hookdock::verify::VerifyLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let handler = service_fn(|req: Request<Full<Bytes>>| async move {
//!     let id = req.extensions().get::<Verified>().map(|v| v.id.to_string());
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(id.unwrap_or_default()))))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(VerifyLayer::new(Preset::github(["It's a Secret to Everybody"])?))
//!     .service(handler);
//!
//! // GitHub's documented example delivery.
//! let signed = Request::post("/webhooks/github")
//!     .header("x-hub-signature-256",
//!             "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
//!     .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
//!     .body(Full::new(Bytes::from_static(b"Hello, World!")))?;
//! let response = svc.clone().oneshot(signed).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
//!
//! // One byte changed: refused, and the handler never runs.
//! let tampered = Request::post("/webhooks/github")
//!     .header("x-hub-signature-256",
//!             "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
//!     .body(Full::new(Bytes::from_static(b"Hello, World?")))?;
//! let response = svc.oneshot(tampered).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! let rejection = response.extensions().get::<Rejection>().unwrap();
//! assert_eq!(rejection.kind(), RejectionKind::BadSignature);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! [`Verified`]: crate::scheme::Verified
//! [`Rejection`]: crate::scheme::Rejection
//! [`RejectionKind`]: crate::scheme::RejectionKind

mod body;
pub(crate) mod collect;
mod future;
pub mod handshake;
mod layer;
mod outcome;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{VerifyLayer, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT};
pub use service::Verify;
