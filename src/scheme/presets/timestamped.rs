//! Providers that sign a timestamp together with the body, so that a captured delivery cannot
//! be replayed outside the replay window.

use std::borrow::Cow;
use std::time::Duration;

use super::{hmac_keys, names, Preset, FIVE_MINUTES};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, SigSpec, SignedPart, TsSource};
use crate::scheme::keys::Algorithm;
use crate::verify::handshake::SlackUrlVerification;

impl Preset {
    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of `t.body`; any
    /// `v1` matching is enough. The secret is the endpoint's `whsec_...` string, used as-is.
    /// The event id is the body's `id` (`evt_...`). Replay window: 5 minutes.
    pub fn stripe<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "stripe",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["stripe-signature"]),
                list_sep: Some(b','),
                prefix: Cow::Borrowed(b"v1="),
                encoding: Encoding::Hex,
            },
            vec![
                SignedPart::Timestamp,
                SignedPart::lit("."),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["id"]),
            },
        )
        .with_timestamp(TsSource::InSignature(b"t="), false, FIVE_MINUTES))
    }

    /// Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 of `v0:<ts>:<body>` with the app's
    /// signing secret, timestamp in `X-Slack-Request-Timestamp`. The event id is the body's
    /// `event_id` (Events API), else the body's hash. Replay window: 5 minutes. Its handshake,
    /// [`SlackUrlVerification`], is answered by the verify layer.
    pub fn slack<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "slack",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["x-slack-signature"]),
                list_sep: None,
                prefix: Cow::Borrowed(b"v0="),
                encoding: Encoding::Hex,
            },
            vec![
                SignedPart::lit("v0:"),
                SignedPart::Timestamp,
                SignedPart::lit(":"),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["event_id"]),
            },
        )
        .with_timestamp(
            TsSource::Header(names(&["x-slack-request-timestamp"])),
            false,
            FIVE_MINUTES,
        )
        .with_handshake(SlackUrlVerification))
    }

    /// Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]`, HMAC-SHA256 of
    /// `ts:body`. The event id is the body's `event_id`. Replay window: 5 seconds, as in
    /// Paddle's SDKs.
    pub fn paddle<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::hmac(
            "paddle",
            hmac_keys(secrets, Algorithm::Sha256)?,
            SigSpec {
                headers: names(&["paddle-signature"]),
                list_sep: Some(b';'),
                prefix: Cow::Borrowed(b"h1="),
                encoding: Encoding::Hex,
            },
            vec![
                SignedPart::Timestamp,
                SignedPart::lit(":"),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["event_id"]),
            },
        )
        .with_timestamp(TsSource::InSignature(b"ts="), false, Duration::from_secs(5)))
    }
}
