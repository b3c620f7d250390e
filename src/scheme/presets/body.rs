//! Providers that sign the raw body alone, with no signed timestamp: an HMAC of the body in a
//! header (most of them), or a shared token in a header (GitLab).
//!
//! With nothing but the body signed, a captured delivery can be sent again as it is; the
//! event id then dedupes it where the id is part of the body (or, with no id, the body's hash
//! is). Where the id is an unsigned header (GitHub's `X-GitHub-Delivery`), a replay with a new
//! id is a new event.

use std::time::Duration;

use super::{hmac_keys, id_field, id_header, names, sig, sig_list, Preset};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, Keys, SignedPart, TsFormat, TsSource};
use crate::scheme::keys::{collect_secrets, Algorithm, TokenHash};
use crate::verify::handshake::OktaVerification;

impl Preset {
    /// A signature header holding `<prefix><encoded HMAC of the body>`.
    fn body_hmac<I, T>(
        name: &'static str,
        secrets: I,
        algorithm: Algorithm,
        signature: crate::scheme::engine::SigSpec,
        id: IdSpec,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::scheme(
            name,
            hmac_keys(secrets, algorithm)?,
            signature,
            vec![SignedPart::Body],
            id,
        ))
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body. The event id is
    /// `X-GitHub-Delivery` (kept on redelivery) and the type `X-GitHub-Event`. GitHub signs no
    /// timestamp, so there is no replay window.
    pub fn github<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-hub-signature-256"], "sha256=", Encoding::Hex);
        let id = id_header(&["x-github-delivery"]);
        Ok(
            Self::body_hmac("github", secrets, Algorithm::Sha256, signature, id)?
                .with_event_type("x-github-event"),
        )
    }

    /// Meta (Facebook, Instagram, WhatsApp, Messenger): `X-Hub-Signature-256: sha256=<hex>`,
    /// HMAC-SHA256 of the body with the app secret. Meta sends no delivery id, so the id is
    /// the body's hash; the type is the body's `object` (`page`, `instagram`,
    /// `whatsapp_business_account`, ...). No signed timestamp.
    ///
    /// Meta's verification `GET` (`hub.mode=subscribe`) is authenticated by the verify token
    /// you chose, not by the app secret: add it with
    /// `.with_handshake(MetaSubscribe::new([verify_token])?)`
    /// ([`MetaSubscribe`](crate::verify::handshake::MetaSubscribe)); without it that `GET` is
    /// refused (it carries no signature).
    pub fn meta<I, T>(app_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-hub-signature-256"], "sha256=", Encoding::Hex);
        Ok(Self::body_hmac(
            "meta",
            app_secrets,
            Algorithm::Sha256,
            signature,
            IdSpec::default(),
        )?
        .with_event_type_field(&["object"]))
    }

    /// Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>`, HMAC-SHA256 of the body. The event id
    /// is `X-Request-UUID` and the type `X-Event-Key` (`repo:push`, ...). No signed timestamp.
    pub fn bitbucket_cloud<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-hub-signature"], "sha256=", Encoding::Hex);
        let id = id_header(&["x-request-uuid"]);
        Ok(
            Self::body_hmac("bitbucket-cloud", secrets, Algorithm::Sha256, signature, id)?
                .with_event_type("x-event-key"),
        )
    }

    /// Intercom: `X-Hub-Signature: sha1=<hex>`, HMAC-SHA1 of the body with the app's client
    /// secret. The event id is the body's `id` (`notif_...`), the type its `topic`. No signed
    /// timestamp.
    pub fn intercom<I, T>(client_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-hub-signature"], "sha1=", Encoding::Hex);
        let id = id_field(&["id"]);
        Ok(
            Self::body_hmac("intercom", client_secrets, Algorithm::Sha1, signature, id)?
                .with_event_type_field(&["topic"]),
        )
    }

    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>`, HMAC-SHA256 of the body with the app's
    /// client secret. The event id is `X-Shopify-Event-Id` (else `X-Shopify-Webhook-Id`) and
    /// the type `X-Shopify-Topic`. No signed timestamp.
    pub fn shopify<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-shopify-hmac-sha256"], "", Encoding::Base64);
        let id = id_header(&["x-shopify-event-id", "x-shopify-webhook-id"]);
        Ok(
            Self::body_hmac("shopify", secrets, Algorithm::Sha256, signature, id)?
                .with_event_type("x-shopify-topic"),
        )
    }

    /// Typeform: `Typeform-Signature: sha256=<base64>`, HMAC-SHA256 of the body. The event id
    /// is the body's `event_id`, the type its `event_type`. No signed timestamp.
    pub fn typeform<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["typeform-signature"], "sha256=", Encoding::Base64);
        let id = id_field(&["event_id"]);
        Ok(
            Self::body_hmac("typeform", secrets, Algorithm::Sha256, signature, id)?
                .with_event_type_field(&["event_type"]),
        )
    }

    /// PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of the body;
    /// any `v1` matching is enough (PagerDuty lists one per active secret). The event id is
    /// `X-Webhook-Id`, else the body's `event.id`. No signed timestamp.
    pub fn pagerduty<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig_list("x-pagerduty-signature", b',', "v1=", Encoding::Hex);
        let id = IdSpec {
            json: Some(&["event", "id"]),
            ..id_header(&["x-webhook-id"])
        };
        Self::body_hmac("pagerduty", secrets, Algorithm::Sha256, signature, id)
    }

    /// CircleCI: `circleci-signature: v1=<hex>[,...]`, HMAC-SHA256 of the body; only `v1`
    /// items count. The event id is the body's `id`, the type `circleci-event-type`. No signed
    /// timestamp.
    pub fn circleci<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig_list("circleci-signature", b',', "v1=", Encoding::Hex);
        Ok(Self::body_hmac(
            "circleci",
            secrets,
            Algorithm::Sha256,
            signature,
            id_field(&["id"]),
        )?
        .with_event_type("circleci-event-type"))
    }

    /// Vercel: `x-vercel-signature: <hex>`, HMAC-SHA1 of the body with the webhook secret (or
    /// the integration's client secret). The event id is the body's `id`, the type its
    /// `type`. No signed timestamp.
    pub fn vercel<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-vercel-signature"], "", Encoding::Hex);
        Ok(Self::body_hmac(
            "vercel",
            secrets,
            Algorithm::Sha1,
            signature,
            id_field(&["id"]),
        )?
        .with_event_type_field(&["type"]))
    }

    /// Lemon Squeezy: `X-Signature: <hex>`, HMAC-SHA256 of the body with the signing secret.
    /// The type is `X-Event-Name`; Lemon Squeezy sends no delivery id, so the id is the body's
    /// hash. No signed timestamp.
    pub fn lemonsqueezy<I, T>(signing_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-signature"], "", Encoding::Hex);
        Ok(Self::body_hmac(
            "lemonsqueezy",
            signing_secrets,
            Algorithm::Sha256,
            signature,
            IdSpec::default(),
        )?
        .with_event_type("x-event-name"))
    }

    /// Coinbase Commerce: `X-CC-Webhook-Signature: <hex>`, HMAC-SHA256 of the body with the
    /// shared secret. The event id is the body's `event.id`, the type `event.type`. No signed
    /// timestamp.
    pub fn coinbase_commerce<I, T>(shared_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-cc-webhook-signature"], "", Encoding::Hex);
        let id = id_field(&["event", "id"]);
        Ok(Self::body_hmac(
            "coinbase-commerce",
            shared_secrets,
            Algorithm::Sha256,
            signature,
            id,
        )?
        .with_event_type_field(&["event", "type"]))
    }

    /// Razorpay: `X-Razorpay-Signature: <hex>`, HMAC-SHA256 of the body with the webhook
    /// secret. The event id is `X-Razorpay-Event-Id`, the type the body's `event`. No signed
    /// timestamp.
    pub fn razorpay<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-razorpay-signature"], "", Encoding::Hex);
        let id = id_header(&["x-razorpay-event-id"]);
        Ok(
            Self::body_hmac("razorpay", secrets, Algorithm::Sha256, signature, id)?
                .with_event_type_field(&["event"]),
        )
    }

    /// Paystack: `x-paystack-signature: <hex>`, HMAC-SHA512 of the body with the secret key.
    /// Paystack sends no delivery id, so the id is the body's hash; the type is the body's
    /// `event`. No signed timestamp.
    pub fn paystack<I, T>(secret_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["x-paystack-signature"], "", Encoding::Hex);
        Ok(Self::body_hmac(
            "paystack",
            secret_keys,
            Algorithm::Sha512,
            signature,
            IdSpec::default(),
        )?
        .with_event_type_field(&["event"]))
    }

    /// Sentry integrations: `Sentry-Hook-Signature: <hex>`, HMAC-SHA256 of the body with the
    /// integration's client secret. The event id is `Request-ID`, the type
    /// `Sentry-Hook-Resource` (`issue`, `error`, ...). `Sentry-Hook-Timestamp` is not signed,
    /// so there is no replay window.
    pub fn sentry<I, T>(client_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["sentry-hook-signature"], "", Encoding::Hex);
        let id = id_header(&["request-id"]);
        Ok(
            Self::body_hmac("sentry", client_secrets, Algorithm::Sha256, signature, id)?
                .with_event_type("sentry-hook-resource"),
        )
    }

    /// Docusign Connect: one `X-DocuSign-Signature-<n>` header per active HMAC key
    /// (`-1` to `-10` are read), each the base64 HMAC-SHA256 of the body; any one matching
    /// is enough. The Connect key is used as its text, exactly as shown. Connect sends no
    /// event id (and its body counts retries), so the id is the body's hash; the type is the
    /// body's `event`. No signed timestamp.
    pub fn docusign<I, T>(connect_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut signature = sig(
            &[
                "x-docusign-signature-1",
                "x-docusign-signature-2",
                "x-docusign-signature-3",
                "x-docusign-signature-4",
                "x-docusign-signature-5",
                "x-docusign-signature-6",
                "x-docusign-signature-7",
                "x-docusign-signature-8",
                "x-docusign-signature-9",
                "x-docusign-signature-10",
            ],
            "",
            Encoding::Base64,
        );
        signature.every_header = true;
        Ok(Self::body_hmac(
            "docusign",
            connect_keys,
            Algorithm::Sha256,
            signature,
            IdSpec::default(),
        )?
        .with_event_type_field(&["event"]))
    }

    /// Linear: `Linear-Signature: <hex>`, HMAC-SHA256 of the body. The body's
    /// `webhookTimestamp` (milliseconds) is checked after the signature: replay window 60
    /// seconds, as in Linear's SDK. The event id is `Linear-Delivery`, the type `Linear-Event`.
    pub fn linear<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let signature = sig(&["linear-signature"], "", Encoding::Hex);
        let id = id_header(&["linear-delivery"]);
        Ok(
            Self::body_hmac("linear", secrets, Algorithm::Sha256, signature, id)?
                .with_event_type("linear-event")
                .with_timestamp(
                    TsSource::Json(&["webhookTimestamp"]),
                    TsFormat::Millis,
                    Some(Duration::from_secs(60)),
                ),
        )
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
        Ok(Self::scheme(
            "gitlab",
            Keys::Token(keys),
            sig(&["x-gitlab-token"], "", Encoding::Hex),
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
        Ok(Self::scheme(
            "okta",
            Keys::Token(keys),
            sig(&["authorization"], "", Encoding::Hex),
            Vec::new(),
            id_field(&["eventId"]),
        )
        .with_handshake(OktaVerification))
    }
}
