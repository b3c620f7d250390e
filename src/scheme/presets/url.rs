//! Providers that sign the URL they call (with the body, or with the form parameters), so the
//! preset needs the public URL the provider was given.

use std::borrow::Cow;

use super::{hmac_keys, names, parse_url, public_base, Preset, FIVE_MINUTES};
use crate::error::ConfigError;
use crate::scheme::engine::{
    Content, Encoding, Engine, IdSpec, SigSpec, SignedPart, TsFormat, TsSource,
};
use crate::scheme::keys::Algorithm;
use crate::scheme::{Rejection, SignedRequest};

impl Preset {
    /// Twilio: `X-Twilio-Signature: <base64>`, HMAC-SHA1 with the auth token over the full URL
    /// followed by the form parameters sorted by name (each name then its value). For JSON
    /// bodies Twilio adds `bodySHA256=<hex>` to the query and signs the URL alone; the body's
    /// hash is then checked too. A non-empty body that is neither a form
    /// (`Content-Type: application/x-www-form-urlencoded`) nor covered by `bodySHA256` is
    /// rejected, since the signature would not cover it. The URL is tried with and without the
    /// default port, as Twilio may sign either.
    ///
    /// Twilio signs the decoded form parameters, not the body's bytes: two bodies that decode
    /// to the same parameters (`a=x+y` and `a=x%20y`) carry the same signature.
    ///
    /// `public_url` is the scheme and host Twilio calls (`https://example.com`); the path and
    /// query come from the request, so the scheme works behind a proxy that rewrites the host.
    /// The event id is `I-Twilio-Idempotency-Token`, else the body's hash.
    pub fn twilio<I, T>(auth_tokens: I, public_url: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut preset = Self::scheme(
            "twilio",
            hmac_keys(auth_tokens, Algorithm::Sha1)?,
            SigSpec {
                every_header: false,
                json: None,
                headers: names(&["x-twilio-signature"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            Vec::new(),
            IdSpec {
                headers: names(&["i-twilio-idempotency-token"]),
                json: None,
            },
        );
        preset.engine.content = Content::Twilio;
        preset.engine.public_url = Some(public_base(public_url)?);
        Ok(preset)
    }

    /// Square: `X-Square-HmacSha256-Signature: <base64>`, HMAC-SHA256 of the notification URL
    /// (exactly as registered with Square) followed by the body. The event id is the body's
    /// `event_id`. No signed timestamp.
    pub fn square<I, T>(signature_keys: I, notification_url: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        parse_url("notification URL", notification_url)?;
        Ok(Self::scheme(
            "square",
            hmac_keys(signature_keys, Algorithm::Sha256)?,
            SigSpec {
                every_header: false,
                json: None,
                headers: names(&["x-square-hmacsha256-signature"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            vec![
                SignedPart::Literal(Cow::Owned(notification_url.as_bytes().to_vec())),
                SignedPart::Body,
            ],
            IdSpec {
                headers: Vec::new(),
                json: Some(&["event_id"]),
            },
        ))
    }

    /// HubSpot v3: `X-HubSpot-Signature-v3: <base64>`, HMAC-SHA256 with the app's client
    /// secret of method + URI + body + timestamp, the timestamp in milliseconds in
    /// `X-HubSpot-Request-Timestamp`. The URI is `public_url` (scheme and host) followed by the
    /// request's path and query, with the escapes HubSpot decodes (`%3A`, `%2F`, ...) decoded.
    /// HubSpot batches events in one array body, so the id is the body's hash. Replay window:
    /// 5 minutes.
    pub fn hubspot<I, T>(client_secrets: I, public_url: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut preset = Self::scheme(
            "hubspot",
            hmac_keys(client_secrets, Algorithm::Sha256)?,
            SigSpec {
                every_header: false,
                json: None,
                headers: names(&["x-hubspot-signature-v3"]),
                list_sep: None,
                prefix: Cow::Borrowed(b""),
                encoding: Encoding::Base64,
            },
            vec![
                SignedPart::Method,
                SignedPart::Url,
                SignedPart::Body,
                SignedPart::Timestamp,
            ],
            IdSpec::default(),
        )
        .with_timestamp(
            TsSource::Header(names(&["x-hubspot-request-timestamp"])),
            TsFormat::Millis,
            Some(FIVE_MINUTES),
        );
        preset.engine.public_url = Some(public_base(public_url)?);
        preset.engine.decode_uri = true;
        Ok(preset)
    }
}

/// The messages Twilio may have signed for this request: the URL as configured and with the
/// default port toggled, each followed by the sorted form parameters. Empty when the body's
/// hash does not match a `bodySHA256` in the query (so nothing can match).
pub(crate) fn twilio_variants(
    engine: &Engine,
    req: &SignedRequest<'_>,
) -> Result<Vec<Vec<u8>>, Rejection> {
    let base = engine.public_url.as_deref().unwrap_or_default();
    let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut suffix = Vec::new();
    if let Some(expected) = crate::scheme::engine::query_param(req, "bodySHA256") {
        use sha2::Digest;
        // Twilio's libraries compare the lowercase hex digest as text.
        let actual = hex::encode(sha2::Sha256::digest(req.body));
        if actual != expected {
            return Ok(Vec::new());
        }
    } else if crate::scheme::engine::is_form(req.headers) {
        let mut params: Vec<(Cow<'_, str>, Cow<'_, str>)> =
            form_urlencoded::parse(req.body).collect();
        params.sort();
        for (k, v) in params {
            suffix.extend_from_slice(k.as_bytes());
            suffix.extend_from_slice(v.as_bytes());
        }
    } else if !req.body.is_empty() {
        // Neither form parameters nor a `bodySHA256`: the signature would cover the URL
        // alone, so these body bytes are not authenticated. Twilio never sends this.
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(2);
    for base in std::iter::once(Some(base.to_owned())).chain([toggle_default_port(base)]) {
        let Some(base) = base else { continue };
        let mut message = Vec::with_capacity(base.len() + pq.len() + suffix.len());
        message.extend_from_slice(base.as_bytes());
        message.extend_from_slice(pq.as_bytes());
        message.extend_from_slice(&suffix);
        out.push(message);
    }
    Ok(out)
}

/// `https://host` ⇄ `https://host:443` (and `http` with 80); `None` for other ports.
fn toggle_default_port(base: &str) -> Option<String> {
    let (scheme, authority) = base.split_once("://")?;
    let default = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    // An IPv6 literal ends in `]`; a port follows the last `:` after it.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':') {
        Some(i) => {
            let (host, port) = authority.split_at(host_end + i);
            (&port[1..] == default).then(|| format!("{scheme}://{host}"))
        }
        None => Some(format!("{scheme}://{authority}:{default}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_toggling() {
        assert_eq!(
            toggle_default_port("https://a.com").as_deref(),
            Some("https://a.com:443")
        );
        assert_eq!(
            toggle_default_port("https://a.com:443").as_deref(),
            Some("https://a.com")
        );
        assert_eq!(
            toggle_default_port("http://a.com").as_deref(),
            Some("http://a.com:80")
        );
        assert_eq!(toggle_default_port("https://a.com:8443"), None);
        assert_eq!(
            toggle_default_port("https://[::1]").as_deref(),
            Some("https://[::1]:443")
        );
    }
}
