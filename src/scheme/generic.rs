//! A configurable body-HMAC scheme for providers without a preset.

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderName;

use super::engine::{
    Content, Encoding, Engine, Field, IdSpec, Keys, SigSpec, SignedPart, TsFormat, TsSource, TsSpec,
};
use super::keys::{collect_secrets, Algorithm, HmacKey};
use super::presets::Preset;
use crate::error::ConfigError;

/// Builds a [`Preset`] for a provider that signs with an HMAC in a header.
///
/// By default it expects a hex HMAC-SHA256 of the body, with no prefix and no timestamp.
/// Everything is adjustable: header, algorithm, encoding, prefix, list separator, the signed
/// content (a template of [`SignedPart`]s), a timestamp header and its replay window, and the
/// header carrying the event id.
///
/// ```
/// use hookdock::scheme::{Algorithm, Encoding, GenericHmac, SignedPart};
/// use std::time::Duration;
///
/// // `X-Acme-Signature: sha256=<hex of HMAC(ts + "." + body)>`, `X-Acme-Timestamp: <unix>`.
/// let acme = GenericHmac::new("acme", "x-acme-signature")
///     .algorithm(Algorithm::Sha256)
///     .encoding(Encoding::Hex)
///     .prefix("sha256=")
///     .timestamp_header("x-acme-timestamp", Duration::from_secs(300))
///     .signed_content([SignedPart::Timestamp, SignedPart::lit("."), SignedPart::Body])
///     .id_header("x-acme-delivery")
///     .build(["my secret"])?;
/// # Ok::<(), hookdock::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct GenericHmac {
    name: &'static str,
    header: String,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: String,
    list_sep: Option<u8>,
    content: Vec<SignedPart>,
    timestamp: Option<(String, bool, Option<Duration>)>,
    id_header: Option<String>,
    event_type_header: Option<String>,
    public_url: Option<String>,
}

impl GenericHmac {
    /// Starts a scheme called `name` (the default source name for stored events) whose
    /// signature is in `header`.
    pub fn new(name: &'static str, header: &str) -> Self {
        Self {
            name,
            header: header.to_owned(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: String::new(),
            list_sep: None,
            content: vec![SignedPart::Body],
            timestamp: None,
            id_header: None,
            event_type_header: None,
            public_url: None,
        }
    }

    /// The hash under the HMAC (default SHA-256).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// How the signature is written (default hex).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Text before the encoded signature, such as `sha256=` (default none).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// The header holds a list of signatures separated by this byte (such as `b','`); any
    /// one matching is enough.
    pub fn list_separator(mut self, separator: u8) -> Self {
        self.list_sep = Some(separator);
        self
    }

    /// What is signed, in order (default: the body alone).
    pub fn signed_content(mut self, parts: impl IntoIterator<Item = SignedPart>) -> Self {
        self.content = parts.into_iter().collect();
        self
    }

    /// A header carrying a signed Unix timestamp in seconds, and the replay window (either
    /// way) it must fall in.
    pub fn timestamp_header(mut self, header: &str, tolerance: Duration) -> Self {
        self.timestamp = Some((header.to_owned(), false, Some(tolerance)));
        self
    }

    /// The timestamp header counts milliseconds rather than seconds.
    pub fn timestamp_in_millis(mut self) -> Self {
        if let Some(ts) = &mut self.timestamp {
            ts.1 = true;
        }
        self
    }

    /// The header with the provider's delivery id; without one, the id is the body's SHA-256.
    pub fn id_header(mut self, header: &str) -> Self {
        self.id_header = Some(header.to_owned());
        self
    }

    /// The header with the event type, if the provider sends one.
    pub fn event_type_header(mut self, header: &str) -> Self {
        self.event_type_header = Some(header.to_owned());
        self
    }

    /// The scheme and host the provider calls, for [`SignedPart::Url`].
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.trim_end_matches('/').to_owned());
        self
    }

    /// Builds the scheme with these secrets (several during a rotation).
    pub fn build<I, T>(self, secrets: I) -> Result<Preset, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let header = |name: &str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConfigError::InvalidHeaderName {
                name: name.to_owned(),
            })
        };
        if self.content.is_empty() {
            return Err(ConfigError::Missing("signed content"));
        }
        if self.content.contains(&SignedPart::Timestamp) && self.timestamp.is_none() {
            return Err(ConfigError::Missing(
                "timestamp header (content signs a timestamp)",
            ));
        }
        if self.content.contains(&SignedPart::Id) && self.id_header.is_none() {
            return Err(ConfigError::Missing("id header (content signs the id)"));
        }
        if self.content.contains(&SignedPart::Url) && self.public_url.is_none() {
            return Err(ConfigError::Missing("public URL (content signs the URL)"));
        }
        let algorithm = self.algorithm;
        let keys = collect_secrets(secrets, |_, s| Ok(HmacKey::new(algorithm, s)))?;
        let timestamp = match self.timestamp {
            Some((name, millis, tolerance)) => Some(TsSpec {
                source: TsSource::Header(vec![header(&name)?]),
                format: if millis {
                    TsFormat::Millis
                } else {
                    TsFormat::Seconds
                },
                tolerance,
            }),
            None => None,
        };
        Ok(Preset {
            engine: Engine {
                name: self.name,
                keys: Keys::Hmac(keys),
                signature: SigSpec {
                    headers: vec![header(&self.header)?],
                    every_header: false,
                    json: None,
                    list_sep: self.list_sep,
                    prefix: Cow::Owned(self.prefix.into_bytes()),
                    encoding: self.encoding,
                },
                timestamp,
                content: Content::Parts(self.content),
                id: IdSpec {
                    headers: self
                        .id_header
                        .as_deref()
                        .map(header)
                        .transpose()?
                        .into_iter()
                        .collect(),
                    json: None,
                },
                event_type: self
                    .event_type_header
                    .as_deref()
                    .map(header)
                    .transpose()?
                    .map(Field::Header),
                public_url: self.public_url,
                decode_uri: false,
                id_from_body_hash: false,
            },
            handshake: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_settings_fail_at_build() {
        let e = GenericHmac::new("x", "x-sig")
            .signed_content([SignedPart::Timestamp, SignedPart::Body])
            .build(["k"])
            .unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)), "{e}");
        let e = GenericHmac::new("x", "bad header")
            .build(["k"])
            .unwrap_err();
        assert!(matches!(e, ConfigError::InvalidHeaderName { .. }), "{e}");
        let e = GenericHmac::new("x", "x-sig")
            .signed_content([])
            .build(["k"])
            .unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)), "{e}");
    }
}
