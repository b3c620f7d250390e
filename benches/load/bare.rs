//! The baseline of the HTTP load benchmark (`benches/load/run.sh`): a bare axum handler on
//! the receiver's route, reading the body and answering `200` with no verification and no
//! storage. Same runtime, same server, same route as `examples/receiver.rs`.

#[path = "serve.rs"]
mod serve;

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
    serve::serve(app, "bare handler").await
}
