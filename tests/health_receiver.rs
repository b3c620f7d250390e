//! The receiver example serves the health routes: `GET /livez` and `GET /readyz` answer on a
//! real process over a real SQLite file, without a token, and readiness is a real probe
//! (once the database file is replaced under the receiver, it turns false).

mod support;

use support::Receiver;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let json = serde_json::from_str(&response.text().await.unwrap()).expect("a JSON answer");
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_serves_liveness_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("receiver.db");
    let receiver = Receiver::start(&db, "health-secret", &[("HOOKDOCK_WORKER", "off")]);
    let addr = receiver.addr;
    assert_eq!(
        get(addr, "/livez").await,
        (200, serde_json::json!({"status": "live"}))
    );
    assert_eq!(
        get(addr, "/readyz").await,
        (200, serde_json::json!({"status": "ready"}))
    );

    // Replace the database file under the running receiver: writes would go to a file
    // nobody reads again, so the store refuses them, and readiness says so (the cached
    // answer expires after a second; poll until the probe has run again).
    std::fs::rename(&db, dir.path().join("moved.db")).unwrap();
    std::fs::write(&db, b"").unwrap();
    let mut answer = get(addr, "/readyz").await;
    for _ in 0..100 {
        if answer.0 != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = get(addr, "/readyz").await;
    }
    assert_eq!(
        answer,
        (
            503,
            serde_json::json!({"status": "not_ready", "reason": "storage_unavailable"})
        )
    );
    assert_eq!(get(addr, "/livez").await.0, 200, "still live");
    receiver.stop();
}
