//! Providers that sign the raw body alone (no timestamp): an HMAC of the body in a header, or
//! a shared token in a header.

use std::borrow::Cow;

use super::{hmac_keys, names, Preset};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, Keys, SigSpec, SignedPart};
use crate::scheme::keys::{collect_secrets, Algorithm, TokenHash};
use crate::verify::handshake::OktaVerification;

impl Preset {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body. The event id is
    /// `X-GitHub-Delivery` (kept on redelivery) and the type `X-GitHub-Event`. GitHub signs no
    /// timestamp, so there is no replay window.
    pub fn github<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "github",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-hub-signature-256"]),
                list_sep: None,
                prefix: Cow::Borrowed(b"sha256="),
                encoding: Encoding::Hex,
            },
            vec![SignedPart::Body],
            IdSpec {
                headers: names(&["x-github-delivery"]),
                json: None,
            },
        )
        .with_event_type("x-github-event"))
    }

    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>`, HMAC-SHA256 of the body with the app's
    /// client secret. The event id is `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`) and
    /// the type `X-Shopify-Topic`. No signed timestamp.
    pub fn shopify<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "shopify",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-shopify-hmac-sha256"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            vec![SignedPart::Body],
            IdSpec {
                headers: names(&["x-shopify-event-id", "x-shopify-webhook-id"]),
                json: None,
            },
        )
        .with_event_type("x-shopify-topic"))
    }

    /// PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of the body;
    /// any `v1` matching is enough (PagerDuty lists one per active secret). The event id is
    /// `X-Webhook-Id`, else the body's `event.id`. No signed timestamp.
    pub fn pagerduty<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "pagerduty",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-pagerduty-signature"]),
                list_sep: Some(b','),
                prefix: Cow::Borrowed(b"v1="),
                encoding: Encoding::Hex,
            },
            vec![SignedPart::Body],
            IdSpec {
                headers: names(&["x-webhook-id"]),
                json: Some(&["event", "id"]),
            },
        ))
    }

    /// GitLab: the `X-Gitlab-Token` header must equal the webhook's secret token (compared in
    /// constant time, as SHA-256 digests so lengths do not show). The event id is
    /// `Idempotency-Key` (kept across retries), else `X-Gitlab-Event-UUID`; the type is
    /// `X-Gitlab-Event`.
    pub fn gitlab<I, T>(tokens: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(tokens, |_, s| Ok(TokenHash::new(s)))?;
        Ok(Self::hmac(
            "gitlab",
            Keys::Token(keys),
            SigSpec {
                headers: names(&["x-gitlab-token"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Hex,
            },
            Vec::new(),
            IdSpec {
                headers: names(&["idempotency-key", "x-gitlab-event-uuid"]),
                json: None,
            },
        )
        .with_event_type("x-gitlab-event"))
    }

    /// Okta event hooks: Okta signs nothing; it sends the value you set as the hook's
    /// "Authentication secret" in the `Authorization` header (the "Authentication field") of
    /// every request, including the one-time verification. That value must equal one of
    /// `secrets`, compared in constant time, as SHA-256 digests (GitLab's rule). The event id is
    /// the body's `eventId`. No signed timestamp.
    ///
    /// Only `Authorization` is read: it is a header the intake never stores, while a header of
    /// another name would be stored with the event, secret included.
    ///
    /// Its handshake, [`OktaVerification`] (the `GET` with `X-Okta-Verification-Challenge`),
    /// is answered by the verify layer once the `Authorization` value matched.
    pub fn okta<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(secrets, |_, s| Ok(TokenHash::new(s)))?;
        Ok(Self::hmac(
            "okta",
            Keys::Token(keys),
            SigSpec {
                headers: names(&["authorization"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Hex,
            },
            Vec::new(),
            IdSpec {
                headers: Vec::new(),
                json: Some(&["eventId"]),
            },
        )
        .with_handshake(OktaVerification))
    }
}
