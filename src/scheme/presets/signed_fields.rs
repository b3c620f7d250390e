//! Providers whose signature, and what it covers, are fields of the JSON body: Mailgun.

use super::{hmac_keys, Preset};
use crate::error::ConfigError;
use crate::scheme::engine::{Encoding, IdSpec, SigSpec, SignedPart, TsFormat, TsSource};
use crate::scheme::keys::Algorithm;

impl Preset {
    /// Mailgun: the body's `signature.signature` is the hex HMAC-SHA256, with the HTTP webhook
    /// signing key, of `signature.timestamp` followed by `signature.token`.
    ///
    /// Mailgun signs those two fields, not the body: whoever holds one captured delivery can
    /// send its `signature` object again with any `event-data`. The event id is therefore
    /// the signed, single-use `signature.token` (so such a replay is a duplicate of the
    /// first), and the type is `event-data.event`. Mailgun documents no replay window, so
    /// none is checked unless set with [`tolerance`](Self::tolerance).
    pub fn mailgun<I, T>(signing_keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Ok(Self::scheme(
            "mailgun",
            hmac_keys(signing_keys, Algorithm::Sha256)?,
            SigSpec {
                headers: Vec::new(),
                every_header: false,
                json: Some(&["signature", "signature"]),
                list_sep: None,
                prefix: std::borrow::Cow::Borrowed(b""),
                encoding: Encoding::Hex,
            },
            vec![SignedPart::Timestamp, SignedPart::Id],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["signature", "token"]),
            },
        )
        .with_timestamp(
            TsSource::Json(&["signature", "timestamp"]),
            TsFormat::Seconds,
            None,
        )
        .with_event_type_field(&["event-data", "event"]))
    }
}
