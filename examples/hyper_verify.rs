//! The verify layer in plain hyper (no framework): a `tower::ServiceBuilder` stack served by
//! hyper's HTTP/1 connection, one task per connection.
//!
//! ```sh
//! cargo run --example hyper_verify
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use hookdock::scheme::{Preset, Rejection, Verified};
use hookdock::verify::VerifyLayer;
use http::{Request, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::{service_fn, ServiceBuilder};

const SECRET: &str = "dev-github-secret";

/// The application: sees only verified requests, with the raw body and the identity.
async fn handle(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = match request.extensions().get::<Verified>() {
        Some(v) => format!("verified {} delivery {}\n", v.scheme, v.id),
        None => "unreachable: the verify layer lets only verified requests through\n".into(),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hookdock=debug,info".into()),
        )
        .init();

    let service = ServiceBuilder::new()
        .layer(VerifyLayer::new(Preset::github([SECRET])?))
        // A log line per response, reading the typed rejection the layer attached.
        .map_response(|response: Response<_>| {
            if let Some(rejection) = response.extensions().get::<Rejection>() {
                println!("refused: {} {}", response.status(), rejection.kind());
            }
            response
        })
        .service(service_fn(handle));

    let addr = std::env::var("HOOKDOCK_ADDR").unwrap_or_else(|_| "127.0.0.1:3002".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;

    let body = r#"{"zen":"Design for failure."}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())?;
    mac.update(body.as_bytes());
    println!("listening on http://{addr}");
    println!(
        "try:\n  curl -i http://{addr}/ -H 'X-GitHub-Delivery: 1' \
         -H 'X-Hub-Signature-256: sha256={}' -d '{body}'",
        hex::encode(mac.finalize().into_bytes())
    );

    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {err}");
            }
        });
    }
}
