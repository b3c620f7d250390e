//! What the load benchmark's servers share: serve an axum app on `HOOKDOCK_ADDR` (default: any
//! free port on loopback), announce the address the way `run.sh` looks for it, and stop
//! gracefully on SIGTERM or Ctrl-C.

use axum::Router;

/// Serves `app` until SIGTERM or Ctrl-C; `what` names the server in its start-up line.
pub async fn serve(app: Router, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("HOOKDOCK_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{what} listening on http://{}", listener.local_addr()?);
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
