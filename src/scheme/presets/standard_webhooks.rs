//! Standard Webhooks (`v1` HMAC-SHA256 and `v1a` Ed25519), as sent by Svix and the services
//! built on it.

use std::borrow::Cow;

use super::{names, prefixed_base64, Preset, FIVE_MINUTES};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, Keys, SigSpec, SignedPart, TsSource};
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
        let keys = collect_secrets(secrets, |i, s| {
            Ok(HmacKey::new(
                Algorithm::Sha256,
                &prefixed_base64(i, s, b"whsec_")?,
            ))
        })?;
        Ok(Self::standard(Keys::Hmac(keys), "standard-webhooks", "v1,"))
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
        Self::hmac(
            name,
            keys,
            SigSpec {
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
            false,
            FIVE_MINUTES,
        )
    }
}
