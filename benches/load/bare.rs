//! The baseline of the HTTP load benchmark (`benches/load/run.sh`): a bare axum handler on
//! the receiver's route, reading the body and answering `200` with no verification and no
//! storage. Same runtime, same server, same route as `examples/receiver.rs`.

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;

async fn bare(body: Bytes) -> &'static str {
    std::hint::black_box(body);
    "ok\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new().route("/webhooks/github", post(bare));
    let addr = std::env::var("HOOKDOCK_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "bare handler listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        })
        .await?;
    Ok(())
}
