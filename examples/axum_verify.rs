//! The verify layer in axum, on its own (no queue): both ways of mounting it.
//!
//! - `Router::route_layer`: only requests that match a route are verified; anything else
//!   gets axum's plain 404 without being read.
//! - `Router::layer`: every request reaching that router is verified, the fallback included.
//!
//! Run it, then paste the `curl` line it prints:
//!
//! ```sh
//! cargo run --example axum_verify
//! ```

use axum::body::Bytes;
use axum::routing::post;
use axum::{Extension, Router};
use hmac::{KeyInit, Mac};
use hookdock::scheme::{Preset, Verified};
use hookdock::serve::ServeConfig;
use hookdock::verify::VerifyLayer;

const SECRET: &str = "dev-github-secret";

async fn github(Extension(verified): Extension<Verified>, body: Bytes) -> String {
    // The body is exactly what GitHub signed; parse it only now that it is verified.
    format!(
        "verified {} delivery {} ({} bytes, event {:?})\n",
        verified.scheme,
        verified.id,
        body.len(),
        verified.event_type.as_deref().unwrap_or("?"),
    )
}

async fn standard(Extension(verified): Extension<Verified>) -> String {
    format!("verified {} message {}\n", verified.scheme, verified.id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hookdock=debug,info".into()),
        )
        .init();

    // Verified only on the matched route.
    let github_routes = Router::new()
        .route("/webhooks/github", post(github))
        .route_layer(VerifyLayer::new(Preset::github([SECRET])?).body_limit(256 * 1024));

    // Everything under this router is verified, its fallback included.
    let standard_routes = Router::new()
        .route("/webhooks/standard", post(standard))
        .layer(VerifyLayer::new(Preset::standard_webhooks([
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])?));

    let app = github_routes.merge(standard_routes);

    let addr = std::env::var("HOOKDOCK_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;

    let body = r#"{"zen":"Keep it logically awesome."}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())?;
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    println!("listening on http://{addr}");
    println!("try:");
    println!(
        "  curl -i http://{addr}/webhooks/github -H 'X-GitHub-Event: ping' \
         -H 'X-GitHub-Delivery: 1' -H 'X-Hub-Signature-256: sha256={signature}' \
         -H 'Content-Type: application/json' -d '{body}'"
    );
    println!("  (change one byte of the body to see the 401)");

    // Instead of `axum::serve(listener, app).with_graceful_shutdown(..)`: the same app with
    // header-read, idle and connection limits, an in-flight limit and a shutdown deadline
    // (the verify layer brings its own body limit and body timeout).
    let report = hookdock::serve::serve(listener, app, ServeConfig::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    println!("{report}");
    Ok(())
}
