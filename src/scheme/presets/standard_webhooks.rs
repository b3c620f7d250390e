//! Standard Webhooks (`v1` HMAC-SHA256 and `v1a` Ed25519), as sent by Svix and the services
//! built on it.

use std::borrow::Cow;

use super::{names, prefixed_base64, Preset, FIVE_MINUTES};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, Keys, SigSpec, SignedPart, TsFormat, TsSource};
use crate::scheme::keys::{collect_secrets, Algorithm, HmacKey};

impl Preset {
    /// [Standard Webhooks](https://www.standardwebhooks.com/) `v1` (HMAC-SHA256), as sent by
    /// Svix and the services built on it (Clerk, Resend, ...).
    ///
    /// Secrets are `whsec_<base64>` (the prefix is optional). Reads the `webhook-id`,
    /// `webhook-timestamp` and `webhook-signature` headers, or their `svix-` equivalents. The
    /// signature header is a space-separated list of `v1,<base64>`; any one matching is enough.
    /// The event id is `webhook-id`. Replay window: 5 minutes either way.
    pub fn standard_webhooks<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Self::standard_hmac("standard-webhooks", secrets)
    }

    /// Clerk, which sends its webhooks through Svix: [Standard Webhooks](Self::standard_webhooks)
    /// (`svix-*` headers, `whsec_` signing secret), with the event type from the body's `type`
    /// (`user.created`, ...).
    pub fn clerk<I, T>(signing_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::standard_hmac("clerk", signing_secrets)?.with_event_type_field(&["type"]))
    }

    /// Resend, which sends its webhooks through Svix: [Standard Webhooks](Self::standard_webhooks)
    /// (`svix-*` headers, `whsec_` signing secret), with the event type from the body's `type`
    /// (`email.delivered`, ...).
    pub fn resend<I, T>(signing_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::standard_hmac("resend", signing_secrets)?.with_event_type_field(&["type"]))
    }

    /// OpenAI webhooks: [Standard Webhooks](Self::standard_webhooks) (`webhook-*` headers,
    /// `whsec_` secret), with the event type from the body's `type` (`batch.completed`, ...).
    pub fn openai<I, T>(webhook_secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::standard_hmac("openai", webhook_secrets)?.with_event_type_field(&["type"]))
    }

    /// Replicate: [Standard Webhooks](Self::standard_webhooks) (`webhook-*` headers, the
    /// account's `whsec_` signing key). The body is the prediction, which names no event type.
    pub fn replicate<I, T>(signing_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Self::standard_hmac("replicate", signing_keys)
    }

    /// Standard Webhooks `v1` under the given name.
    fn standard_hmac<I, T>(name: &'static str, secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(secrets, |i, s| {
            Ok(HmacKey::new(
                Algorithm::Sha256,
                &prefixed_base64(i, s, b"whsec_")?,
            ))
        })?;
        Ok(Self::standard(Keys::Hmac(keys), name, "v1,"))
    }

    /// Standard Webhooks `v1a`: Ed25519 signatures, verified with the sender's public keys
    /// (`whpk_<base64>` of the 32-byte key; the prefix is optional). Otherwise as
    /// [`standard_webhooks`](Self::standard_webhooks).
    #[cfg(feature = "ed25519")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
    pub fn standard_webhooks_ed25519<I, T>(public_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let keys = collect_secrets(public_keys, |index, s| {
            let bytes = prefixed_base64(index, s, b"whpk_")?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| ConfigError::UndecodableSecret {
                    index,
                    reason: "an Ed25519 public key is 32 bytes",
                })?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
                ConfigError::UndecodableSecret {
                    index,
                    reason: "not a valid Ed25519 public key",
                }
            })
        })?;
        Ok(Self::standard(
            Keys::Ed25519(keys),
            "standard-webhooks-v1a",
            "v1a,",
        ))
    }

    fn standard(keys: Keys, name: &'static str, prefix: &'static str) -> Self {
        Self::scheme(
            name,
            keys,
            SigSpec {
                every_header: false,
                json: None,
                headers: names(&["webhook-signature", "svix-signature"]),
                list_sep: Some(b' '),
                prefix: Cow::Borrowed(prefix.as_bytes()),
                encoding: Encoding::Base64,
            },
            vec![
                SignedPart::Id,
                SignedPart::lit("."),
                SignedPart::Timestamp,
                SignedPart::lit("."),
                SignedPart::Body,
            ],
            IdSpec {
                headers: names(&["webhook-id", "svix-id"]),
                json: None,
            },
        )
        .with_timestamp(
            TsSource::Header(names(&["webhook-timestamp", "svix-timestamp"])),
            TsFormat::Seconds,
            Some(FIVE_MINUTES),
        )
    }
}
