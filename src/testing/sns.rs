//! AWS SNS test support (features `test-util` and `aws-sns`): certificates served from memory,
//! a confirmer that records, and a signer.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};

use crate::error::ConfigError;
use crate::scheme::sns::message::Message;
use crate::scheme::sns::{CertificateSource, FetchError, SnsUrl, SubscriptionConfirmer};

/// A [`CertificateSource`] serving PEM certificates from memory by URL, counting every fetch
/// (so a test can assert that a URL was never fetched). A URL it does not hold answers `404`;
/// [`fail`](Self::fail) makes every fetch fail, as an unreachable AWS would.
#[derive(Default)]
pub struct StaticCertificates {
    certificates: HashMap<String, Bytes>,
    fetches: AtomicUsize,
    failing: AtomicBool,
}

impl StaticCertificates {
    /// A source holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `pem` at `url` (builder style).
    pub fn with(mut self, url: impl Into<String>, pem: impl Into<Bytes>) -> Self {
        self.certificates.insert(url.into(), pem.into());
        self
    }

    /// How many fetches were asked for, served or not.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Makes every later fetch fail (`true`) or be served again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl CertificateSource for StaticCertificates {
    async fn fetch(&self, url: &SnsUrl) -> Result<Bytes, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(FetchError::Transport("the test source is failing".into()));
        }
        self.certificates
            .get(url.as_str())
            .cloned()
            .ok_or(FetchError::Status(404))
    }
}

impl fmt::Debug for StaticCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCertificates")
            .field("urls", &self.certificates.keys().collect::<Vec<_>>())
            .field("fetches", &self.fetches())
            .finish()
    }
}

/// A [`SubscriptionConfirmer`] that records the URLs it is asked to visit instead of visiting
/// them; [`fail`](Self::fail) makes it fail, as an unreachable AWS would.
#[derive(Debug, Default)]
pub struct RecordingConfirmer {
    visited: Mutex<Vec<String>>,
    failing: AtomicBool,
}

impl RecordingConfirmer {
    /// A confirmer that succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The URLs visited so far, in order.
    pub fn visited(&self) -> Vec<String> {
        self.visited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes every later visit fail (`true`) or succeed (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl SubscriptionConfirmer for RecordingConfirmer {
    async fn confirm(&self, url: &SnsUrl) -> Result<(), FetchError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(FetchError::Status(500));
        }
        self.visited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(url.as_str().to_owned());
        Ok(())
    }
}

/// Signs SNS messages as AWS does, for tests: the body of a `Notification`,
/// `SubscriptionConfirmation` or `UnsubscribeConfirmation`, signed (version 2 by default, or 1)
/// over the canonical string the [`AwsSns`](crate::scheme::sns::AwsSns) scheme checks, with
/// the private key of the certificate a test serves at `cert_url`.
pub struct SnsSigner {
    key: rsa::PrivateKey,
    cert_url: String,
    version: u8,
}

impl SnsSigner {
    /// A signer with an RSA private key (PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`) whose
    /// certificate is served at `cert_url`.
    pub fn new(private_key_pem: &str, cert_url: impl Into<String>) -> Result<Self, ConfigError> {
        let key = rsa::PrivateKey::from_pkcs8_pem(private_key_pem).map_err(|_| {
            ConfigError::UndecodableSecret {
                index: 0,
                reason: "not a PKCS#8 PEM RSA private key",
            }
        })?;
        Ok(Self {
            key,
            cert_url: cert_url.into(),
            version: 2,
        })
    }

    /// Signs with `SignatureVersion` 1 (SHA1withRSA) instead of 2 (builder style).
    pub fn version1(mut self) -> Self {
        self.version = 1;
        self
    }

    /// A signed `Notification` body.
    pub fn notification(
        &self,
        topic_arn: &str,
        message_id: &str,
        message: &str,
        subject: Option<&str>,
    ) -> String {
        let mut fields = self.common("Notification", topic_arn, message_id, message);
        if let Some(subject) = subject {
            fields.insert("Subject".into(), subject.into());
        }
        self.sign(fields)
    }

    /// A signed `SubscriptionConfirmation` (or, with `unsubscribe`, `UnsubscribeConfirmation`)
    /// body.
    pub fn confirmation(
        &self,
        unsubscribe: bool,
        topic_arn: &str,
        message_id: &str,
        token: &str,
        subscribe_url: &str,
    ) -> String {
        let kind = if unsubscribe {
            "UnsubscribeConfirmation"
        } else {
            "SubscriptionConfirmation"
        };
        let message = format!("You have chosen to subscribe to the topic {topic_arn}.");
        let mut fields = self.common(kind, topic_arn, message_id, &message);
        fields.insert("Token".into(), token.into());
        fields.insert("SubscribeURL".into(), subscribe_url.into());
        self.sign(fields)
    }

    fn common(
        &self,
        kind: &str,
        topic_arn: &str,
        message_id: &str,
        message: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        for (name, value) in [
            ("Type", kind),
            ("MessageId", message_id),
            ("TopicArn", topic_arn),
            ("Message", message),
            ("Timestamp", "2026-01-02T03:04:05.678Z"),
            ("SigningCertURL", &self.cert_url),
        ] {
            fields.insert(name.into(), value.into());
        }
        fields.insert("SignatureVersion".into(), self.version.to_string().into());
        fields.insert("Signature".into(), "".into());
        fields
    }

    /// Fills in `Signature`: the canonical string comes from the scheme's own rule.
    fn sign(&self, mut fields: serde_json::Map<String, serde_json::Value>) -> String {
        let unsigned = serde_json::Value::Object(fields.clone()).to_string();
        let to_sign = Message::parse(unsigned.as_bytes())
            .and_then(|m| m.string_to_sign())
            .unwrap_or_default();
        let signature = if self.version == 1 {
            rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(&to_sign)
                .to_vec()
        } else {
            rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
                .sign(&to_sign)
                .to_vec()
        };
        fields.insert(
            "Signature".into(),
            crate::scheme::parse::BASE64.encode(signature).into(),
        );
        serde_json::Value::Object(fields).to_string()
    }
}

impl fmt::Debug for SnsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsSigner")
            .field("cert_url", &self.cert_url)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}
