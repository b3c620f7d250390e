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
use hookdock::scheme::{MicrosoftGraph, Scheme};
use hookdock::store::{MemoryQueue, Queue};
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

/// A verify layer over `scheme` whose clock reads [`NOW`].
fn layer(scheme: impl Scheme) -> VerifyLayer<Box<dyn Scheme>> {
    VerifyLayer::new(Box::new(scheme) as Box<dyn Scheme>)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
}

/// POSTs `body` signed the `v0` way Slack and Zoom share, at [`NOW`]: the timestamp in
/// `timestamp_header` and, unless `secret` is `None`, `v0=<hex HMAC-SHA256 of "v0:<ts>:<body>">`
/// in `signature_header`.
async fn post_v0(
    server: &Server,
    path: &str,
    (signature_header, timestamp_header): (&str, &str),
    body: &str,
    secret: Option<&str>,
) -> reqwest::Response {
    let ts = NOW.to_string();
    let mut request = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .header(timestamp_header, &ts)
        .body(body.to_owned());
    if let Some(secret) = secret {
        let sig = hmac_hex(
            secret.as_bytes(),
            &[b"v0:", ts.as_bytes(), b":", body.as_bytes()],
        );
        request = request.header(signature_header, format!("v0={sig}"));
    }
    request.send().await.expect("request")
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
        let headers = ("x-slack-signature", "x-slack-request-timestamp");
        post_v0(server, path, headers, body, secret).await
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

mod sns {
    use super::*;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::SystemTime;

    use base64::Engine as _;
    use hookdock::scheme::sns::AwsSns;
    use hookdock::testing::{RecordingConfirmer, SnsSigner, StaticCertificates};

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";
    const CERT_URL: &str =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem";
    const ROGUE_URL: &str =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-rogue.pem";
    const CN_URL: &str = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-cn.pem";
    const SUBSCRIBE_URL: &str = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:orders&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736";

    /// A CA, a signing certificate it issued, and a self-signed "rogue" certificate, made with
    /// the `openssl` command line once per test run, valid from now for two days.
    struct Pki {
        dir: tempfile::TempDir,
        ca: String,
        leaf: String,
        leaf_key: String,
        rogue: String,
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("the openssl command line (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pki() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let d = dir.path();
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=hookdock test SNS CA",
                ],
            );
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "leaf.key",
                    "-out",
                    "leaf.csr",
                    "-subj",
                    "/CN=sns.amazonaws.com",
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "leaf.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-sha256",
                    "-days",
                    "2",
                    "-out",
                    "leaf.pem",
                ],
            );
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "rogue.key",
                    "-out",
                    "rogue.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=sns.amazonaws.com",
                ],
            );
            let read = |name: &str| std::fs::read_to_string(d.join(name)).expect("PKI file");
            Pki {
                ca: read("ca.pem"),
                leaf: read("leaf.pem"),
                leaf_key: read("leaf.key"),
                rogue: read("rogue.pem"),
                dir,
            }
        })
    }

    /// The canonical string, written here from AWS's documentation (independently of the
    /// crate's own).
    fn string_to_sign(fields: &serde_json::Value) -> String {
        let names: &[&str] = if fields["Type"] == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        let mut out = String::new();
        for name in names {
            if let Some(value) = fields[*name].as_str() {
                out.push_str(&format!("{name}\n{value}\n"));
            }
        }
        out
    }

    /// Signs `fields` with `openssl dgst` and the key file `key` (an independent signer),
    /// version 1 (SHA1withRSA) or 2 (SHA256withRSA), and returns the body.
    fn openssl_signed(mut fields: serde_json::Value, key: &str, version: u8) -> String {
        let dir = pki().dir.path();
        let n = fastrand::u64(..);
        let (data, sig) = (format!("data-{n}"), format!("sig-{n}"));
        std::fs::write(dir.join(&data), string_to_sign(&fields)).expect("write");
        let digest = if version == 1 { "-sha1" } else { "-sha256" };
        openssl(dir, &["dgst", digest, "-sign", key, "-out", &sig, &data]);
        let signature = std::fs::read(dir.join(&sig)).expect("signature");
        fields["SignatureVersion"] = version.to_string().into();
        fields["Signature"] = base64::engine::general_purpose::STANDARD
            .encode(signature)
            .into();
        fields.to_string()
    }

    fn notification(id: &str, cert_url: &str, topic: &str) -> serde_json::Value {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": topic,
            "Subject": "Order placed",
            "Message": "{\"order\":\"A-1042\",\"total\":\"19.90\"}\nsecond line",
            "Timestamp": "2026-01-02T03:04:05.678Z",
            "SigningCertURL": cert_url,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
        })
    }

    fn confirmation(kind: &str, subscribe_url: &str) -> serde_json::Value {
        serde_json::json!({
            "Type": kind,
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:orders.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": subscribe_url,
            "Timestamp": "2026-01-02T03:04:05.678Z",
            "SigningCertURL": CERT_URL,
        })
    }

    fn source() -> Arc<StaticCertificates> {
        let pki = pki();
        Arc::new(
            StaticCertificates::new()
                .with(CERT_URL, pki.leaf.clone())
                .with(CN_URL, pki.leaf.clone())
                .with(ROGUE_URL, pki.rogue.clone()),
        )
    }

    fn scheme(
        source: &Arc<StaticCertificates>,
        confirmer: Option<&Arc<RecordingConfirmer>>,
    ) -> AwsSns {
        let mut builder = AwsSns::builder([TOPIC])
            .certificates(Arc::clone(source))
            .trust_anchors([&pki().ca]);
        if let Some(confirmer) = confirmer {
            builder = builder.confirm_subscriptions(Arc::clone(confirmer));
        }
        builder.build().expect("valid SNS scheme")
    }

    /// An SNS route: the certificates were issued for two days from now.
    fn sns_layer(scheme: AwsSns) -> VerifyLayer<Box<dyn Scheme>> {
        layer(scheme).clock(SystemTime::now)
    }

    async fn post(server: &Server, path: &str, kind: &str, body: String) -> reqwest::Response {
        server
            .client
            .post(server.url(path))
            .header("x-amz-sns-message-type", kind)
            .header("x-amz-sns-topic-arn", TOPIC)
            .header("content-type", "text/plain; charset=UTF-8")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    #[tokio::test]
    async fn subscriptions_are_confirmed_only_when_signed_and_configured() {
        let source = source();
        let confirmer = Arc::new(RecordingConfirmer::new());
        let server = Server::start(vec![
            ("/sns", sns_layer(scheme(&source, Some(&confirmer)))),
            ("/sns-pending", sns_layer(scheme(&source, None))),
        ])
        .await;
        let key = "leaf.key";
        let signed = || {
            openssl_signed(
                confirmation("SubscriptionConfirmation", SUBSCRIBE_URL),
                key,
                2,
            )
        };

        // Signed, with a confirmer: the SubscribeURL is visited, then 200; nothing stored.
        let (status, _, _) =
            read(post(&server, "/sns", "SubscriptionConfirmation", signed()).await).await;
        assert_eq!(status, 200);
        assert_eq!(confirmer.visited(), [SUBSCRIBE_URL]);
        assert_eq!(server.stored().await, 0);

        // Signed, without a confirmer: 200, left pending, nothing visited or stored.
        let (status, _, _) = read(
            post(
                &server,
                "/sns-pending",
                "SubscriptionConfirmation",
                signed(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(confirmer.visited().len(), 1);
        assert_eq!(server.stored().await, 0);

        // Forged: the token changed after signing. Refused, never visited.
        let forged = signed().replace("Token=2336412f37", "Token=9999412f37");
        let (status, _, body) =
            read(post(&server, "/sns", "SubscriptionConfirmation", forged).await).await;
        assert_eq!(status, 401);
        assert!(body.starts_with("bad_signature"), "{body}");
        // Unsigned: the signature of another message.
        let mut unsigned: serde_json::Value = serde_json::from_str(&signed()).expect("JSON");
        unsigned["Signature"] = "AAAA".into();
        let (status, _, body) = read(
            post(
                &server,
                "/sns",
                "SubscriptionConfirmation",
                unsigned.to_string(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(confirmer.visited().len(), 1);

        // A SubscribeURL that is not SNS's, even signed, is never visited.
        let elsewhere = openssl_signed(
            confirmation(
                "SubscriptionConfirmation",
                "https://attacker.example/?Action=ConfirmSubscription",
            ),
            key,
            1,
        );
        let (status, _, body) =
            read(post(&server, "/sns", "SubscriptionConfirmation", elsewhere).await).await;
        assert_eq!(status, 401);
        assert!(body.starts_with("untrusted_key"), "{body}");
        assert_eq!(confirmer.visited().len(), 1);

        // AWS unreachable while confirming: 503 with Retry-After, so SNS tries again.
        confirmer.fail(true);
        let response = post(&server, "/sns", "SubscriptionConfirmation", signed()).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "10");
        confirmer.fail(false);

        // UnsubscribeConfirmation: acknowledged, not stored.
        let unsubscribe = openssl_signed(
            confirmation("UnsubscribeConfirmation", SUBSCRIBE_URL),
            key,
            2,
        );
        let (status, _, _) =
            read(post(&server, "/sns", "UnsubscribeConfirmation", unsubscribe).await).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 0);
        // One certificate, fetched once by each route's scheme for all of the above.
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test]
    async fn notifications_are_stored_only_when_signed_with_an_issued_certificate() {
        let source = source();
        let server = Server::start(vec![("/sns", sns_layer(scheme(&source, None)))]).await;
        let rust_signer = SnsSigner::new(&pki().leaf_key, CERT_URL).expect("key");

        // Version 1 and 2 by openssl, version 2 and 1 by the crate's test signer: all stored.
        for (i, body) in [
            openssl_signed(notification("n-1", CERT_URL, TOPIC), "leaf.key", 1),
            openssl_signed(notification("n-2", CERT_URL, TOPIC), "leaf.key", 2),
            rust_signer.notification(TOPIC, "n-3", "hello", None),
            SnsSigner::new(&pki().leaf_key, CN_URL)
                .expect("key")
                .version1()
                .notification(TOPIC, "n-4", "from the China regions", Some("cn")),
        ]
        .into_iter()
        .enumerate()
        {
            let (status, _, body) = read(post(&server, "/sns", "Notification", body).await).await;
            assert_eq!(status, 200, "message {i}: {body}");
            assert_eq!(server.stored().await, i as u64 + 1);
        }
        let stored = server.stored().await;

        let signed = openssl_signed(notification("n-5", CERT_URL, TOPIC), "leaf.key", 2);
        // The message changed after signing.
        let changed = signed.replace("A-1042", "A-9999");
        let (status, _, body) = read(post(&server, "/sns", "Notification", changed).await).await;
        assert_eq!(status, 401);
        assert!(body.starts_with("bad_signature"), "{body}");
        // The header says another type than the body.
        let (status, _, body) =
            read(post(&server, "/sns", "SubscriptionConfirmation", signed.clone()).await).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("malformed_header"), "{body}");
        // No message type header at all.
        let response = server
            .client
            .post(server.url("/sns"))
            .body(signed.clone())
            .send()
            .await
            .expect("request");
        let (status, _, body) = read(response).await;
        assert_eq!(status, 401);
        assert!(body.starts_with("missing_header"), "{body}");
        // Signed by a certificate the trust anchor did not issue (on an SNS URL all the same).
        let rogue = openssl_signed(notification("n-6", ROGUE_URL, TOPIC), "rogue.key", 2);
        let (status, _, body) = read(post(&server, "/sns", "Notification", rogue).await).await;
        assert_eq!(status, 401);
        assert!(body.starts_with("untrusted_key"), "{body}");
        // Genuinely signed, but for another account's topic.
        let other = "arn:aws:sns:us-east-1:999999999999:not-yours";
        let foreign = openssl_signed(notification("n-7", CERT_URL, other), "leaf.key", 2);
        let (status, _, body) = read(post(&server, "/sns", "Notification", foreign).await).await;
        assert_eq!(status, 403);
        assert!(body.starts_with("sender_not_allowed"), "{body}");
        assert_eq!(server.stored().await, stored, "nothing refused was stored");
        // Each certificate URL fetched once: the two good ones and the rogue.
        assert_eq!(source.fetches(), 3);
    }

    #[tokio::test]
    async fn certificate_urls_outside_sns_are_refused_without_being_fetched() {
        let source = source();
        let server = Server::start(vec![("/sns", sns_layer(scheme(&source, None)))]).await;
        for url in [
            "https://attacker.example/SimpleNotificationService-1.pem",
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
            "https://sns.us-east-1.amazonaws.com.attacker.example/SimpleNotificationService-1.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
            "https://s3.amazonaws.com/bucket/SimpleNotificationService-1.pem",
            "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
        ] {
            let body = openssl_signed(notification("n-1", url, TOPIC), "leaf.key", 2);
            let (status, _, text) = read(post(&server, "/sns", "Notification", body).await).await;
            assert_eq!(status, 401, "{url}: {text}");
            assert!(text.starts_with("untrusted_key"), "{url}: {text}");
        }
        assert_eq!(
            source.fetches(),
            0,
            "no certificate URL outside SNS was fetched"
        );
        assert_eq!(server.stored().await, 0);
    }

    #[tokio::test]
    async fn an_unreachable_certificate_source_is_503_and_retried() {
        let source = source();
        let server = Server::start(vec![("/sns", sns_layer(scheme(&source, None)))]).await;
        let body = openssl_signed(notification("n-1", CERT_URL, TOPIC), "leaf.key", 2);
        source.fail(true);
        let response = post(&server, "/sns", "Notification", body.clone()).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "10");
        assert!(read(response).await.2.starts_with("key_unavailable"));
        assert_eq!(server.stored().await, 0);
        // SNS retries once AWS answers again: the failure was not cached.
        source.fail(false);
        let (status, _, _) = read(post(&server, "/sns", "Notification", body).await).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
        assert_eq!(source.fetches(), 2);
    }
}

mod zoom {
    use super::*;
    use hookdock::scheme::Preset;

    const OLD: &str = "wvvAqk4KQUSBB9rJW5OxEw";
    const NEW: &str = "k1ZpZ0eoQ3uS1m6xJm2Jxg";

    async fn post(server: &Server, body: &str, secret: Option<&str>) -> reqwest::Response {
        let headers = ("x-zm-signature", "x-zm-request-timestamp");
        post_v0(server, "/zoom", headers, body, secret).await
    }

    #[tokio::test]
    async fn url_validation_is_answered_with_the_secret_that_signed_it() {
        let server = Server::start(vec![(
            "/zoom",
            layer(Preset::zoom([OLD, NEW]).expect("valid")),
        )])
        .await;
        let validation = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;

        for secret in [OLD, NEW] {
            let (status, content_type, body) =
                read(post(&server, validation, Some(secret)).await).await;
            assert_eq!(status, 200);
            assert_eq!(content_type, "application/json");
            let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            let expected = hmac_hex(secret.as_bytes(), &[b"qgg8vlvZRS6UYooatFL8Aw"]);
            assert_eq!(
                answer,
                serde_json::json!({ "plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected })
            );
        }
        assert_eq!(server.stored().await, 0);

        // Unsigned, or signed with another secret: refused; no encryptedToken is handed out
        // (it would let anyone prove to Zoom they own this endpoint).
        for secret in [None, Some("not-the-secret-token")] {
            let (status, _, body) = read(post(&server, validation, secret).await).await;
            assert_eq!(status, 401, "{body}");
            assert!(!body.contains("encryptedToken"));
        }
        let empty = r#"{"payload":{},"event":"endpoint.url_validation"}"#;
        let (status, _, body) = read(post(&server, empty, Some(NEW)).await).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("bad_handshake"), "{body}");
        assert_eq!(server.stored().await, 0);

        let event = r#"{"event":"meeting.started","payload":{"account_id":"AAAAAABBBBCCCC","object":{"id":"1234567890"}},"event_ts":1635885799302}"#;
        let (status, _, _) = read(post(&server, event, Some(NEW)).await).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
    }
}

mod twitch {
    use super::*;
    use hookdock::scheme::Preset;

    const SECRET: &str = "hey this is really secret";
    /// [`NOW`] in RFC 3339.
    const TIMESTAMP: &str = "2023-11-14T22:13:20.123456789Z";

    async fn post(
        server: &Server,
        kind: &str,
        id: &str,
        body: &str,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let mut request = server
            .client
            .post(server.url("/twitch"))
            .header("content-type", "application/json")
            .header("twitch-eventsub-message-id", id)
            .header("twitch-eventsub-message-timestamp", TIMESTAMP)
            .header("twitch-eventsub-message-type", kind)
            .header("twitch-eventsub-message-retry", "0")
            .header("twitch-eventsub-subscription-type", "channel.follow")
            .header("twitch-eventsub-subscription-version", "2")
            .body(body.to_owned());
        if let Some(secret) = secret {
            let sig = hmac_hex(
                secret.as_bytes(),
                &[id.as_bytes(), TIMESTAMP.as_bytes(), body.as_bytes()],
            );
            request = request.header("twitch-eventsub-message-signature", format!("sha256={sig}"));
        }
        request.send().await.expect("request")
    }

    const VERIFICATION: &str = r#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"webhook_callback_verification_pending","type":"channel.follow","version":"2","condition":{"broadcaster_user_id":"12826","moderator_user_id":"12826"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},"created_at":"2019-11-16T10:11:12.634234626Z","cost":0}}"#;

    #[tokio::test]
    async fn callback_verification_is_echoed_and_revocation_is_stored() {
        let server = Server::start(vec![(
            "/twitch",
            layer(Preset::twitch([SECRET]).expect("valid")),
        )])
        .await;
        let kind = "webhook_callback_verification";
        let (status, content_type, body) =
            read(post(&server, kind, "m-1", VERIFICATION, Some(SECRET)).await).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, "pogchamp-kappa-360noscope-vohiyo");
        assert_eq!(server.stored().await, 0);

        for secret in [None, Some("another secret")] {
            let (status, _, body) =
                read(post(&server, kind, "m-2", VERIFICATION, secret).await).await;
            assert_eq!(status, 401, "{body}");
            assert!(!body.contains("pogchamp"));
        }
        let (status, _, body) =
            read(post(&server, kind, "m-3", r#"{"subscription":{}}"#, Some(SECRET)).await).await;
        assert_eq!(status, 400);
        assert!(body.starts_with("bad_handshake"), "{body}");
        assert_eq!(server.stored().await, 0);

        // A revocation is signed like a notification, and stored: it is the only notice that
        // the subscription's events have stopped.
        let revocation = r#"{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"authorization_revoked","type":"channel.follow","version":"2","condition":{"broadcaster_user_id":"12826"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},"created_at":"2019-11-16T10:11:12.634234626Z","cost":0}}"#;
        let (status, _, _) = read(post(&server, "revocation", "m-4", revocation, None).await).await;
        assert_eq!(status, 401, "an unsigned revocation is refused");
        assert_eq!(server.stored().await, 0);
        let (status, _, _) =
            read(post(&server, "revocation", "m-4", revocation, Some(SECRET)).await).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
    }
}

mod discord {
    use super::*;
    use ed25519_dalek::Signer as _;
    use hookdock::scheme::Preset;

    /// RFC 8032 section 7.1, test 1.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn key() -> ed25519_dalek::SigningKey {
        let seed: [u8; 32] = hex::decode(SEED)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        ed25519_dalek::SigningKey::from_bytes(&seed)
    }

    async fn post(
        server: &Server,
        body: &str,
        key: Option<&ed25519_dalek::SigningKey>,
    ) -> reqwest::Response {
        let ts = NOW.to_string();
        let mut request = server
            .client
            .post(server.url("/discord"))
            .header("content-type", "application/json")
            .header("x-signature-timestamp", &ts)
            .body(body.to_owned());
        if let Some(key) = key {
            let message = [ts.as_bytes(), body.as_bytes()].concat();
            request = request.header(
                "x-signature-ed25519",
                hex::encode(key.sign(&message).to_bytes()),
            );
        }
        request.send().await.expect("request")
    }

    #[tokio::test]
    async fn pings_are_answered_only_when_signed() {
        let server = Server::start(vec![(
            "/discord",
            layer(Preset::discord([PUBLIC]).expect("valid")),
        )])
        .await;
        let key = key();
        let ping = r#"{"application_id":"123456789012345678","id":"987654321098765432","token":"aW50ZXJhY3Rpb246ZXhhbXBsZQ","type":1,"user":{"id":"111111111111111111","username":"example"},"version":1}"#;
        let (status, content_type, body) = read(post(&server, ping, Some(&key)).await).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        assert_eq!(body, r#"{"type":1}"#);

        // Webhook events' PING: 204.
        let webhook_ping = r#"{"version":1,"application_id":"123456789012345678","type":0}"#;
        let (status, _, body) = read(post(&server, webhook_ping, Some(&key)).await).await;
        assert_eq!(status, 204);
        assert!(body.is_empty());
        assert_eq!(server.stored().await, 0);

        // Unsigned, and signed by another key: refused, no PONG.
        let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        for signer in [None, Some(&other)] {
            let (status, _, body) = read(post(&server, ping, signer).await).await;
            assert_eq!(status, 401, "{body}");
        }
        assert_eq!(server.stored().await, 0);

        // A webhook event is type 1 too, with an `event`: a delivery, stored.
        let event = r#"{"version":1,"application_id":"123456789012345678","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2024-10-18T14:42:53.064834","data":{"integration_type":1,"scopes":["applications.commands"],"user":{"id":"111111111111111111"}}}}"#;
        let (status, _, _) = read(post(&server, event, Some(&key)).await).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
    }
}

mod meta {
    use super::*;
    use hookdock::scheme::Preset;
    use hookdock::verify::handshake::MetaSubscribe;

    const APP_SECRET: &str = "6c3a1f0e9b2d4a7c8e5f1b3d7a9c2e4f";
    const VERIFY_TOKEN: &str = "meatyhamhock";

    fn preset() -> Preset {
        Preset::meta([APP_SECRET]).expect("valid")
    }

    #[tokio::test]
    async fn hub_challenge_is_echoed_only_for_the_verify_token() {
        let server = Server::start(vec![
            (
                "/meta",
                layer(preset().with_handshake(MetaSubscribe::new([VERIFY_TOKEN]).expect("valid"))),
            ),
            ("/meta-no-token", layer(preset())),
        ])
        .await;
        let get = |path: &str, query: &str| {
            server
                .client
                .get(server.url(&format!("{path}?{query}")))
                .send()
        };

        let (status, content_type, body) = read(
            get(
                "/meta",
                "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
            )
            .await
            .expect("request"),
        )
        .await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, "1158201444");
        assert_eq!(server.stored().await, 0);

        for (query, status_expected, kind) in [
            (
                "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhocks",
                401,
                "bad_signature",
            ),
            (
                "hub.mode=subscribe&hub.challenge=1158201444",
                401,
                "bad_signature",
            ),
            (
                "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
                400,
                "bad_handshake",
            ),
            (
                "hub.mode=subscribe&hub.challenge=&hub.verify_token=meatyhamhock",
                400,
                "bad_handshake",
            ),
        ] {
            let (status, _, body) = read(get("/meta", query).await.expect("request")).await;
            assert_eq!(status, status_expected, "{query}: {body}");
            assert!(body.starts_with(kind), "{query}: {body}");
            assert!(!body.contains("1158201444"));
        }
        // Without a verify token configured, the GET is refused: it carries no signature.
        let (status, _, _) = read(
            get(
                "/meta-no-token",
                "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
            )
            .await
            .expect("request"),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(server.stored().await, 0);

        // Deliveries are checked with the app secret, not the verify token.
        let event = r#"{"object":"page","entry":[{"id":"1895382890692545","time":1486464322257,"messaging":[]}]}"#;
        let post = |secret: &str| {
            let sig = hmac_hex(secret.as_bytes(), &[event.as_bytes()]);
            server
                .client
                .post(server.url("/meta"))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", format!("sha256={sig}"))
                .body(event)
                .send()
        };
        let (status, _, _) = read(post(VERIFY_TOKEN).await.expect("request")).await;
        assert_eq!(status, 401);
        assert_eq!(server.stored().await, 0);
        let (status, _, _) = read(post(APP_SECRET).await.expect("request")).await;
        assert_eq!(status, 200);
        assert_eq!(server.stored().await, 1);
    }
}
