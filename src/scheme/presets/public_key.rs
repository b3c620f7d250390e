//! Providers that sign with a private key and publish the public key the receiver verifies
//! with: Discord (Ed25519, feature `ed25519`) and SendGrid (ECDSA P-256, feature `p256`).
//! Standard Webhooks `v1a` is in [`standard_webhooks`](super::standard_webhooks).

#[cfg(any(feature = "ed25519", feature = "p256"))]
use super::{names, sig, Preset};
#[cfg(any(feature = "ed25519", feature = "p256"))]
use crate::error::ConfigError;
#[cfg(any(feature = "ed25519", feature = "p256"))]
use crate::scheme::engine::{Encoding, IdSpec, Keys, SignedPart, TsFormat, TsSource};
#[cfg(any(feature = "ed25519", feature = "p256"))]
use crate::scheme::keys::collect_secrets;

#[cfg(any(feature = "ed25519", feature = "p256"))]
impl Preset {
    /// Discord interactions: `X-Signature-Ed25519: <hex>`, the Ed25519 signature of the
    /// `X-Signature-Timestamp` value followed by the body, verified with the application's
    /// public key (64 hex digits, as the Developer Portal shows it). The event id is the
    /// body's `id` (the interaction id), the type its `type` (`1` is a PING). Discord
    /// documents no replay window, so none is checked unless set with
    /// [`tolerance`](Self::tolerance). Its handshake,
    /// [`DiscordPing`](crate::verify::handshake::DiscordPing) (interactions and webhook
    /// events `PING`s), is answered by the verify layer.
    #[cfg(feature = "ed25519")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
    pub fn discord<I, T>(public_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(public_keys, |index, s| {
            let undecodable = |reason| ConfigError::UndecodableSecret { index, reason };
            let bytes: [u8; 32] = hex::decode(s.trim_ascii())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(undecodable("a Discord public key is 64 hex digits"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| undecodable("not a valid Ed25519 public key"))
        })?;
        Ok(Self::scheme(
            "discord",
            Keys::Ed25519(keys),
            sig(&["x-signature-ed25519"], "", Encoding::Hex),
            vec![SignedPart::Timestamp, SignedPart::Body],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["id"]),
            },
        )
        .with_timestamp(
            TsSource::Header(names(&["x-signature-timestamp"])),
            TsFormat::Seconds,
            None,
        )
        .with_event_type_field(&["type"])
        .with_handshake(crate::verify::handshake::DiscordPing))
    }

    /// SendGrid Event Webhook: `X-Twilio-Email-Event-Webhook-Signature: <base64>`, an ECDSA
    /// P-256 signature (DER, SHA-256) of the `X-Twilio-Email-Event-Webhook-Timestamp` value
    /// followed by the body, verified with the verification key SendGrid shows (the base64
    /// of its DER public key). SendGrid batches events in one array body, so the id is the
    /// body's hash. SendGrid documents no replay window, so none is checked unless set with
    /// [`tolerance`](Self::tolerance).
    #[cfg(feature = "p256")]
    #[cfg_attr(docsrs, doc(cfg(feature = "p256")))]
    pub fn sendgrid<I, T>(verification_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        use base64::Engine as _;
        use p256::pkcs8::DecodePublicKey as _;
        let keys = collect_secrets(verification_keys, |index, s| {
            let undecodable = |reason| ConfigError::UndecodableSecret { index, reason };
            let der = crate::scheme::parse::BASE64_LENIENT
                .decode(s.trim_ascii())
                .map_err(|_| undecodable("not valid base64"))?;
            p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                .map_err(|_| undecodable("not a P-256 public key in DER form"))
        })?;
        Ok(Self::scheme(
            "sendgrid",
            Keys::P256(keys),
            sig(
                &["x-twilio-email-event-webhook-signature"],
                "",
                Encoding::Base64,
            ),
            vec![SignedPart::Timestamp, SignedPart::Body],
            IdSpec::default(),
        )
        .with_timestamp(
            TsSource::Header(names(&["x-twilio-email-event-webhook-timestamp"])),
            TsFormat::Seconds,
            None,
        ))
    }
}
