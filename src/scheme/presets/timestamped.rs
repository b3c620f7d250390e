//! Providers that sign a timestamp together with the body (and some the delivery id), so that
//! a captured delivery cannot be replayed outside the replay window.
//!
//! Three shapes cover them: Stripe's `t=<ts>,v1=<hex>` over `ts.body` (Stripe, Calendly,
//! Mux), Slack's `v0=<hex>` over `v0:ts:body` (Slack, Zoom), and one each for Paddle and
//! Twitch.

use std::time::Duration;

use super::{hmac_keys, id_field, id_header, names, sig, sig_list, Preset, FIVE_MINUTES};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, SignedPart, TsFormat, TsSource};
use crate::scheme::keys::Algorithm;
use crate::verify::handshake::{SlackUrlVerification, TwitchVerification, ZoomUrlValidation};

impl Preset {
    /// `<header>: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of `t.body`, any `v1` matching.
    fn t_v1<I, T>(
        name: &'static str,
        secrets: I,
        header: &'static str,
        tolerance: Duration,
        id: IdSpec,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::scheme(
            name,
            hmac_keys(secrets, Algorithm::Sha256)?,
            sig_list(header, b',', "v1=", Encoding::Hex),
            vec![
                SignedPart::Timestamp,
                SignedPart::lit("."),
                SignedPart::Body,
            ],
            id,
        )
        .with_timestamp(
            TsSource::InSignature(b"t="),
            TsFormat::Seconds,
            Some(tolerance),
        ))
    }

    /// `<header>: v0=<hex>`, HMAC-SHA256 of `v0:<ts>:<body>`, the timestamp in its own header.
    fn v0<I, T>(
        name: &'static str,
        secrets: I,
        header: &'static str,
        timestamp_header: &'static str,
        tolerance: Option<Duration>,
        id: IdSpec,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::scheme(
            name,
            hmac_keys(secrets, Algorithm::Sha256)?,
            sig(&[header], "v0=", Encoding::Hex),
            vec![
                SignedPart::lit("v0:"),
                SignedPart::Timestamp,
                SignedPart::lit(":"),
                SignedPart::Body,
            ],
            id,
        )
        .with_timestamp(
            TsSource::Header(names(&[timestamp_header])),
            TsFormat::Seconds,
            tolerance,
        ))
    }

    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of `t.body`; any
    /// `v1` matching is enough. The secret is the endpoint's `whsec_...` string, used as-is.
    /// The event id is the body's `id` (`evt_...`). Replay window: 5 minutes.
    pub fn stripe<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Self::t_v1(
            "stripe",
            secrets,
            "stripe-signature",
            FIVE_MINUTES,
            id_field(&["id"]),
        )
    }

    /// Calendly: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`, HMAC-SHA256 of `t.body` with
    /// the webhook signing key. Calendly sends no delivery id, so the id is the body's hash;
    /// the type is the body's `event` (`invitee.created`, ...). Replay window: 3 minutes, as
    /// in Calendly's sample code.
    pub fn calendly<I, T>(signing_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::t_v1(
            "calendly",
            signing_keys,
            "calendly-webhook-signature",
            Duration::from_secs(180),
            IdSpec::default(),
        )?
        .with_event_type_field(&["event"]))
    }

    /// Mux: `Mux-Signature: t=<unix>,v1=<hex>`, HMAC-SHA256 of `t.body` with the webhook
    /// signing secret. The event id is the body's `id`, the type its `type`. Replay window:
    /// 5 minutes, as in Mux's SDK.
    pub fn mux<I, T>(signing_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::t_v1(
            "mux",
            signing_secrets,
            "mux-signature",
            FIVE_MINUTES,
            id_field(&["id"]),
        )?
        .with_event_type_field(&["type"]))
    }

    /// Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 of `v0:<ts>:<body>` with the app's
    /// signing secret, timestamp in `X-Slack-Request-Timestamp`. The event id is the body's
    /// `event_id` (Events API), else the body's hash. Replay window: 5 minutes. Its handshake,
    /// [`SlackUrlVerification`], is answered by the verify layer.
    pub fn slack<I, T>(signing_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Self::v0(
            "slack",
            signing_secrets,
            "x-slack-signature",
            "x-slack-request-timestamp",
            Some(FIVE_MINUTES),
            id_field(&["event_id"]),
        )
        .map(|p| p.with_handshake(SlackUrlVerification))
    }

    /// Zoom: `x-zm-signature: v0=<hex>`, HMAC-SHA256 of `v0:<ts>:<body>` with the app's secret
    /// token, timestamp in `x-zm-request-timestamp`. Zoom sends no delivery id, so the id is
    /// the body's hash; the type is the body's `event`. Zoom documents no replay window, so
    /// none is checked unless set with [`tolerance`](Self::tolerance). Its handshake,
    /// [`ZoomUrlValidation`] (`endpoint.url_validation`), is answered by the verify layer.
    pub fn zoom<I, T>(secret_tokens: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::v0(
            "zoom",
            secret_tokens,
            "x-zm-signature",
            "x-zm-request-timestamp",
            None,
            IdSpec::default(),
        )?
        .with_event_type_field(&["event"]))
        .map(|p| {
            let handshake = ZoomUrlValidation::new(&p.engine.keys);
            p.with_handshake(handshake)
        })
    }

    /// Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]`, HMAC-SHA256 of
    /// `ts:body`. The event id is the body's `event_id`. Replay window: 5 seconds, as in
    /// Paddle's SDKs.
    pub fn paddle<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::scheme(
            "paddle",
            hmac_keys(secrets, Algorithm::Sha256)?,
            sig_list("paddle-signature", b';', "h1=", Encoding::Hex),
            vec![
                SignedPart::Timestamp,
                SignedPart::lit(":"),
                SignedPart::Body,
            ],
            id_field(&["event_id"]),
        )
        .with_timestamp(
            TsSource::InSignature(b"ts="),
            TsFormat::Seconds,
            Some(Duration::from_secs(5)),
        ))
    }

    /// Twitch EventSub: `Twitch-Eventsub-Message-Signature: sha256=<hex>`, HMAC-SHA256 of the
    /// message id, the timestamp and the body, concatenated. The timestamp
    /// (`Twitch-Eventsub-Message-Timestamp`) is RFC 3339; replay window: 10 minutes, as
    /// Twitch's docs advise. The event id is `Twitch-Eventsub-Message-Id` (kept on resends),
    /// the type `Twitch-Eventsub-Subscription-Type` (`channel.follow`, ...). Its handshake,
    /// [`TwitchVerification`] (`webhook_callback_verification`), is answered by the verify
    /// layer; a `revocation` is stored like a notification (see there).
    pub fn twitch<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::scheme(
            "twitch",
            hmac_keys(secrets, Algorithm::Sha256)?,
            sig(
                &["twitch-eventsub-message-signature"],
                "sha256=",
                Encoding::Hex,
            ),
            vec![SignedPart::Id, SignedPart::Timestamp, SignedPart::Body],
            id_header(&["twitch-eventsub-message-id"]),
        )
        .with_timestamp(
            TsSource::Header(names(&["twitch-eventsub-message-timestamp"])),
            TsFormat::Rfc3339,
            Some(Duration::from_secs(600)),
        )
        .with_event_type("twitch-eventsub-subscription-type")
        .with_handshake(TwitchVerification))
    }
}
