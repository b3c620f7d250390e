//! Handshakes over real HTTP: an axum server on 127.0.0.1 with the verify layer in front of the
//! intake over a memory queue, driven by reqwest.
//!
//! For every provider: the genuine handshake is answered as the provider documents and stores
//! nothing; a forged or unsigned one is refused and stores nothing; an ordinary delivery on the
//! same route is still stored; and with the handshake turned off the challenge is no longer
//! answered by the layer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use hmac::{KeyInit, Mac};
use hookdock::intake::Intake;
use hookdock::queue::{MemoryQueue, Queue};
use hookdock::scheme::{MicrosoftGraph, Scheme};
use hookdock::verify::VerifyLayer;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// The fixed "now" of every route's clock.
const NOW: u64 = 1_700_000_000;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// One server: each route verifies with its scheme (handshakes on, or off for `*-off` routes)
/// and stores into the same queue.
struct Server {
    addr: SocketAddr,
    queue: Arc<MemoryQueue>,
    client: reqwest::Client,
}

impl Server {
    async fn start(routes: Vec<(&'static str, VerifyLayer<Box<dyn Scheme>>)>) -> Self {
        let queue = Arc::new(MemoryQueue::new());
        let mut app = Router::new();
        for (path, layer) in routes {
            let layer = layer.clock(|| UNIX_EPOCH + Duration::from_secs(NOW));
            app = app.route_service(
                path,
                ServiceBuilder::new()
                    .layer(layer)
                    .service(Intake::new(Arc::clone(&queue))),
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            queue,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Events stored so far.
    async fn stored(&self) -> u64 {
        self.queue.stats().await.expect("stats").depth()
    }
}

fn layer(scheme: impl Scheme) -> VerifyLayer<Box<dyn Scheme>> {
    VerifyLayer::new(Box::new(scheme) as Box<dyn Scheme>)
}

/// Status, content type and body of a response.
async fn read(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let body = response.text().await.expect("body");
    (status, content_type, body)
}

mod slack {
    use super::*;
    use hookdock::scheme::Preset;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn preset() -> Preset {
        Preset::slack([SECRET]).expect("valid secret")
    }

    async fn post(
        server: &Server,
        path: &str,
        body: &str,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let ts = NOW.to_string();
        let mut request = server
            .client
            .post(server.url(path))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", &ts)
            .body(body.to_owned());
        if let Some(secret) = secret {
            let sig = hmac_hex(
                secret.as_bytes(),
                &[b"v0:", ts.as_bytes(), b":", body.as_bytes()],
            );
            request = request.header("x-slack-signature", format!("v0={sig}"));
        }
        request.send().await.expect("request")
    }

    const CHALLENGE: &str = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;

    #[tokio::test]
    async fn url_verification_is_answered_only_when_signed() {
        let server = Server::start(vec![
            ("/slack", layer(preset())),
            ("/slack-off", layer(preset()).without_handshake()),
        ])
        .await;

        let (status, content_type, body) =
            read(post(&server, "/slack", CHALLENGE, Some(SECRET)).await).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
        assert_eq!(server.stored().await, 0, "a handshake is never stored");

        // Unsigned, and signed with another secret: refused, nothing stored, no challenge echoed.
        for secret in [None, Some("not-the-signing-secret")] {
            let (status, _, body) = read(post(&server, "/slack", CHALLENGE, secret).await).await;
            assert_eq!(status, 401, "{body}");
            assert!(!body.contains("3eZbrw1aBm2r"), "{body}");
        }
        assert_eq!(server.stored().await, 0);

        // A url_verification without its challenge cannot be answered.
        let empty = r#"{"token":"x","type":"url_verification"}"#;
        let (status, _, body) = read(post(&server, "/slack", empty, Some(SECRET)).await).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("bad_handshake"), "{body}");

        // An ordinary event on the same route is stored.
        let event =
            r#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention"}}"#;
        let (status, _, _) = read(post(&server, "/slack", event, Some(SECRET)).await).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);

        // With the handshake off, the signed challenge is a delivery like any other: stored,
        // and the challenge is not echoed.
        let (status, _, body) =
            read(post(&server, "/slack-off", CHALLENGE, Some(SECRET)).await).await;
        assert_eq!(status, 200);
        assert!(!body.contains("3eZbrw1aBm2r"), "{body}");
        assert_eq!(server.stored().await, 2);
    }
}

mod graph {
    use super::*;

    const STATE: &str = "secretClientValue";

    #[tokio::test]
    async fn validation_token_is_echoed_and_client_state_checked() {
        let server = Server::start(vec![
            (
                "/graph",
                layer(MicrosoftGraph::new([STATE]).expect("valid")),
            ),
            (
                "/graph-off",
                layer(MicrosoftGraph::new([STATE]).expect("valid")).without_handshake(),
            ),
        ])
        .await;
        let validate = |path: &str, token: &str| {
            server
                .client
                .post(server.url(&format!("{path}?validationToken={token}")))
                .header("content-type", "text/plain; charset=utf-8")
                .send()
        };

        // Graph's token is percent-encoded in the query; the decoded text comes back.
        let response = validate("/graph", "Validation%3A%20Testing%20client%20application")
            .await
            .expect("request");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let (status, content_type, body) = read(response).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, "Validation: Testing client application");
        assert_eq!(server.stored().await, 0);

        // An empty token is refused.
        let (status, _, body) = read(validate("/graph", "").await.expect("request")).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("bad_handshake"), "{body}");

        // Off: the validation request must then verify like a notification, and cannot.
        let (status, _, body) = read(validate("/graph-off", "abc").await.expect("request")).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("malformed_body"), "{body}");
        assert_eq!(server.stored().await, 0);

        let notify = |state: &str| {
            let body = format!(
                r#"{{"value":[{{"subscriptionId":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","subscriptionExpirationDateTime":"2016-11-20T18:23:45.9356913Z","clientState":"{state}","changeType":"created","resource":"Users/abc/Messages/def","tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95"}}]}}"#
            );
            server
                .client
                .post(server.url("/graph"))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        // A stranger's subscription (another clientState) is refused and stores nothing.
        let (status, _, body) = read(notify("guessed").await.expect("request")).await;
        assert_eq!(status, 401);
        assert!(body.starts_with("bad_signature"), "{body}");
        assert_eq!(server.stored().await, 0);
        // The right clientState: stored.
        let (status, _, _) = read(notify(STATE).await.expect("request")).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
    }
}

mod okta {
    use super::*;
    use hookdock::scheme::Preset;

    const SECRET: &str = "Basic b2t0YTpob29rZG9jay10ZXN0";

    async fn get(server: &Server, auth: Option<&str>, challenge: &str) -> reqwest::Response {
        let mut request = server
            .client
            .get(server.url("/okta"))
            .header("x-okta-verification-challenge", challenge);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send().await.expect("request")
    }

    #[tokio::test]
    async fn verification_challenge_is_answered_only_with_the_configured_authorization() {
        let server = Server::start(vec![(
            "/okta",
            layer(Preset::okta([SECRET]).expect("valid")),
        )])
        .await;

        let challenge = "rvu6iw5ZfQ6YPCqLbZhl0S5WNgkcLx9Y0JLaFHtY";
        let (status, content_type, body) = read(get(&server, Some(SECRET), challenge).await).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(answer, serde_json::json!({ "verification": challenge }));
        assert_eq!(server.stored().await, 0);

        // No Authorization, or another value: refused, the challenge is not echoed.
        for auth in [None, Some("Basic b2t0YTpndWVzc2Vk"), Some("")] {
            let (status, _, body) = read(get(&server, auth, challenge).await).await;
            assert_eq!(status, 401, "{auth:?}: {body}");
            assert!(!body.contains(challenge));
        }
        // Authorized, but no challenge in the header.
        let (status, _, body) = read(get(&server, Some(SECRET), "").await).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("bad_handshake"), "{body}");
        assert_eq!(server.stored().await, 0);

        // Event deliveries: stored only with the configured Authorization.
        let event = r#"{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://example.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3","eventId":"3o9jBzq1SmOGmmsDsqyyeQ","data":{"events":[{"uuid":"b627b9e7-50b8-11e9-9e6e-21b5ff5b2ea9","eventType":"user.session.start"}]},"eventTime":"2019-03-27T16:59:53.032Z","contentType":"application/json"}"#;
        let post = |auth: &'static str| {
            server
                .client
                .post(server.url("/okta"))
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(event)
                .send()
        };
        let (status, _, _) = read(post("Basic b2t0YTpndWVzc2Vk").await.expect("request")).await;
        assert_eq!(status, 401);
        assert_eq!(server.stored().await, 0);
        let (status, _, _) = read(post(SECRET).await.expect("request")).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
    }
}
