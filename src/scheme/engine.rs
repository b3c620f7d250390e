//! The one verification engine every preset is configured from.
//!
//! A preset is data: where the signature is and how it is written ([`SigSpec`]), where the
//! timestamp is and how fresh it must be ([`TsSpec`]), what bytes are signed ([`Content`]),
//! where the event id and type come from ([`IdSpec`], [`Field`]), and the keys.
//! [`Engine::verify`] runs the same steps for all of them:
//!
//! 1. gather the signatures: every value of the signature header (and of each of its numbered
//!    siblings, for DocuSign), or the body field that carries it (Mailgun); absent:
//!    `missing_header`;
//! 2. read the id and timestamp the signature covers: a header repeated with different values
//!    is `conflicting_header`; absent: `missing_header`; unparsable: `malformed_header`;
//!    outside the window: `timestamp_too_old` / `timestamp_in_future`;
//! 3. compute the expected MAC once per key (and per content variant), then compare every
//!    candidate signature of every value against every expected MAC in constant time, with no
//!    early exit;
//! 4. only then read what the body says: the event id (provider header, else a field of a
//!    JSON body, else SHA-256 of the body), the event type, and a timestamp that lives in the
//!    (signed) body.

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::keys::{HmacKey, TokenHash};
use super::parse::{self, items};
use super::timestamp::{window_detail, Stamp};
use super::{IdOrigin, Rejection, RejectionKind, SignedRequest, Verified};
use crate::event::{EventId, EventType};

pub use super::content::SignedPart;
pub(crate) use super::content::{is_form, query_param, Content};
pub use super::parse::Encoding;
pub(crate) use super::timestamp::{TsFormat, TsSource, TsSpec};

/// Where the keys come from and how a candidate is checked.
#[derive(Clone)]
pub(crate) enum Keys {
    /// HMAC secrets, pre-keyed.
    Hmac(Vec<HmacKey>),
    /// Shared tokens that the header must equal (GitLab).
    Token(Vec<TokenHash>),
    /// Ed25519 public keys (Standard Webhooks `v1a`, Discord).
    #[cfg(feature = "ed25519")]
    Ed25519(Vec<ed25519_dalek::VerifyingKey>),
    /// ECDSA P-256 public keys over SHA-256, DER signatures (SendGrid).
    #[cfg(feature = "p256")]
    P256(Vec<p256::ecdsa::VerifyingKey>),
}

impl Keys {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Hmac(k) => k.len(),
            Self::Token(k) => k.len(),
            #[cfg(feature = "ed25519")]
            Self::Ed25519(k) => k.len(),
            #[cfg(feature = "p256")]
            Self::P256(k) => k.len(),
        }
    }
}

/// Where the signatures are and how they are written.
#[derive(Debug, Clone)]
pub(crate) struct SigSpec {
    /// Header names, first present wins (e.g. `webhook-signature`, then `svix-signature`),
    /// unless [`every_header`](Self::every_header) is set.
    pub(crate) headers: Vec<HeaderName>,
    /// Consider every present name, not just the first (DocuSign's
    /// `X-DocuSign-Signature-1`, `-2`, ...: one per active key).
    pub(crate) every_header: bool,
    /// The signature is a field of a JSON object body instead (Mailgun); `headers` is empty.
    pub(crate) json: Option<&'static [&'static str]>,
    /// Separator between items of the header value, if it holds a list.
    pub(crate) list_sep: Option<u8>,
    /// Text before the encoded signature in an item (`sha256=`, `v1,`, `h1=`); items without it
    /// are not signatures of this scheme and are skipped.
    pub(crate) prefix: std::borrow::Cow<'static, [u8]>,
    /// How the signature bytes are written.
    pub(crate) encoding: Encoding,
}

/// Where the event id comes from.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdSpec {
    /// Headers holding the provider's id, first present wins.
    pub(crate) headers: Vec<HeaderName>,
    /// A path to a string field in a JSON object body.
    pub(crate) json: Option<&'static [&'static str]>,
}

/// Where a value (the event type) is: a header, or a field of a JSON object body.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Header(HeaderName),
    Json(&'static [&'static str]),
}

/// A fully configured scheme.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) name: &'static str,
    pub(crate) keys: Keys,
    pub(crate) signature: SigSpec,
    pub(crate) timestamp: Option<TsSpec>,
    pub(crate) content: Content,
    pub(crate) id: IdSpec,
    pub(crate) event_type: Option<Field>,
    /// `scheme://host[:port]` of the URL the provider calls, for [`SignedPart::Url`] and Twilio.
    pub(crate) public_url: Option<String>,
    /// Decode the escapes HubSpot decodes before signing (`%3A` → `:` and so on).
    pub(crate) decode_uri: bool,
    /// The event id is always the body's SHA-256, whatever id the provider sends
    /// ([`Preset::id_from_body_hash`](super::Preset::id_from_body_hash)).
    pub(crate) id_from_body_hash: bool,
}

/// The sender's side of a key, for [`Engine::sign`].
#[cfg(feature = "test-util")]
#[derive(Clone, Copy)]
pub(crate) enum SigningKey<'k> {
    /// A pre-keyed HMAC secret.
    Hmac(&'k HmacKey),
    /// A shared token, sent as the header's value.
    Token(&'k [u8]),
    /// An Ed25519 private key.
    #[cfg(feature = "ed25519")]
    Ed25519(&'k ed25519_dalek::SigningKey),
    /// An ECDSA P-256 private key.
    #[cfg(feature = "p256")]
    P256(&'k p256::ecdsa::SigningKey),
}

/// Values read from a JSON object body, by slot.
#[derive(Default)]
pub(crate) struct BodyFields([Option<String>; 4]);

const SIG: usize = 0;
const TS: usize = 1;
const ID: usize = 2;
const TYPE: usize = 3;

impl BodyFields {
    fn get(&self, slot: usize) -> Option<&[u8]> {
        self.0[slot].as_deref().map(str::as_bytes)
    }
}

/// The signature texts of one request: every value of the signature header(s), or the body
/// field that carries the signature.
pub(crate) struct Signatures<'r> {
    /// The header they came from, for rejections (`None` for a body field).
    name: Option<&'r HeaderName>,
    first: &'r [u8],
    /// Further values (a repeated header, DocuSign's numbered headers); empty almost always,
    /// so this does not allocate on the common path.
    more: Vec<&'r [u8]>,
}

impl<'r> Signatures<'r> {
    pub(crate) fn values(&self) -> impl Iterator<Item = &'r [u8]> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }

    pub(crate) fn bad(&self) -> Rejection {
        let r = Rejection::new(
            RejectionKind::BadSignature,
            "no signature matches any configured secret",
        );
        match self.name {
            Some(name) => r.with_header(name.clone()),
            None => r,
        }
    }
}

/// The value of the first of `names` present, checking that a repeated header repeats the
/// same value (two different delivery ids, or timestamps, in one request are refused).
#[inline]
pub(crate) fn single_header<'h, 'n>(
    headers: &'h HeaderMap,
    names: &'n [HeaderName],
) -> Result<Option<(&'n HeaderName, &'h HeaderValue)>, Rejection> {
    for name in names {
        let mut values = headers.get_all(name).iter();
        if let Some(first) = values.next() {
            if values.any(|v| v != first) {
                return Err(Rejection::new(
                    RejectionKind::ConflictingHeader,
                    "header repeated with different values",
                )
                .with_header(name.clone()));
            }
            return Ok(Some((name, first)));
        }
    }
    Ok(None)
}

impl Engine {
    pub(crate) fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, Rejection> {
        // A signature inside the body (Mailgun) needs the body's fields before anything else.
        let early = self.signature.json.is_some();
        let mut fields = if early {
            self.body_fields(req.body, true)
        } else {
            BodyFields::default()
        };
        let sigs = self.signatures(req, &fields)?;

        let id_header = single_header(req.headers, &self.id.headers)?
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        let id_raw = id_header
            .map(HeaderValue::as_bytes)
            .or_else(|| fields.get(ID).filter(|id| !id.is_empty()));
        if id_raw.is_none() && self.content.signs(&SignedPart::Id) {
            return Err(match self.id.headers.first() {
                Some(name) => Rejection::missing(name),
                None => Rejection::missing_field("the body carries no id"),
            });
        }

        // A timestamp in the (signed) body is read after verification, unless it is itself
        // one of the signed pieces read from the body.
        let timestamp = match &self.timestamp {
            Some(spec) if early || !matches!(spec.source, TsSource::Json(_)) => {
                Some(self.read_timestamp(spec, &sigs, req, &fields)?)
            }
            _ => None,
        };
        let ts_raw = timestamp.map_or(&b""[..], |(raw, _)| raw);
        let id_bytes = id_raw.unwrap_or_default();

        let matched = match &self.keys {
            Keys::Hmac(keys) => self.match_hmac(keys, req, &sigs, id_bytes, ts_raw)?,
            Keys::Token(tokens) => self.match_token(tokens, &sigs),
            #[cfg(feature = "ed25519")]
            Keys::Ed25519(keys) => self.match_ed25519(keys, req, &sigs, id_bytes, ts_raw),
            #[cfg(feature = "p256")]
            Keys::P256(keys) => self.match_p256(keys, req, &sigs, id_bytes, ts_raw),
        };
        let secret_index = matched.ok_or_else(|| sigs.bad())?;
        let mut stamp = timestamp.map(|(_, stamp)| stamp);

        // Verified: now the body may be read.
        if !early && self.reads_body_after(id_header.is_some()) {
            fields = self.body_fields(req.body, id_header.is_none());
        }
        if let (None, Some(spec)) = (stamp, &self.timestamp) {
            let raw = fields
                .get(TS)
                .ok_or_else(|| Rejection::missing_field("the body carries no timestamp field"))?;
            stamp = Some(self.check_timestamp(spec, raw, None, req.now)?);
        }

        let (id, id_origin) = match (id_header, fields.0[ID].take()) {
            _ if self.id_from_body_hash => (EventId::from_body_hash(req.body), IdOrigin::BodyHash),
            (Some(v), _) => (EventId::from(v), IdOrigin::Provider),
            (None, Some(id)) if !id.is_empty() => (EventId::new(id), IdOrigin::Provider),
            _ => (EventId::from_body_hash(req.body), IdOrigin::BodyHash),
        };
        let event_type = match &self.event_type {
            Some(Field::Header(name)) => single_header(req.headers, std::slice::from_ref(name))?
                .map(|(_, v)| EventType::from(v)),
            Some(Field::Json(_)) => fields.0[TYPE].take().map(EventType::from),
            None => None,
        };

        Ok(Verified {
            scheme: self.name,
            id,
            id_origin,
            timestamp: stamp.map(Stamp::time),
            event_type,
            secret_index,
        })
    }

    /// Whether anything is read from the body after verification.
    fn reads_body_after(&self, id_from_header: bool) -> bool {
        (!id_from_header && self.id.json.is_some())
            || matches!(self.event_type, Some(Field::Json(_)))
            || matches!(
                self.timestamp,
                Some(TsSpec {
                    source: TsSource::Json(_),
                    ..
                })
            )
    }

    /// The JSON fields this scheme reads from the body, in one pass.
    fn body_fields(&self, body: &[u8], want_id: bool) -> BodyFields {
        let mut paths: [&[&str]; 4] = [&[]; 4];
        paths[SIG] = self.signature.json.unwrap_or(&[]);
        if let Some(TsSpec {
            source: TsSource::Json(path),
            ..
        }) = &self.timestamp
        {
            paths[TS] = path;
        }
        if want_id {
            paths[ID] = self.id.json.unwrap_or(&[]);
        }
        if let Some(Field::Json(path)) = &self.event_type {
            paths[TYPE] = path;
        }
        let mut fields = BodyFields::default();
        parse::json_fields(body, &paths, &mut fields.0);
        fields
    }

    /// Every signature text the request carries for this scheme.
    fn signatures<'r>(
        &'r self,
        req: &SignedRequest<'r>,
        fields: &'r BodyFields,
    ) -> Result<Signatures<'r>, Rejection> {
        if self.signature.json.is_some() {
            let first = fields
                .get(SIG)
                .ok_or_else(|| Rejection::missing_field("the body carries no signature"))?;
            return Ok(Signatures {
                name: None,
                first,
                more: Vec::new(),
            });
        }
        let mut found: Option<Signatures<'r>> = None;
        for name in &self.signature.headers {
            let mut values = req.headers.get_all(name).iter();
            let Some(value) = values.next() else {
                continue;
            };
            match &mut found {
                None => {
                    found = Some(Signatures {
                        name: Some(name),
                        first: value.as_bytes(),
                        more: Vec::new(),
                    })
                }
                Some(s) => s.more.push(value.as_bytes()),
            }
            if let Some(s) = &mut found {
                s.more.extend(values.map(HeaderValue::as_bytes));
            }
            if !self.signature.every_header {
                break;
            }
        }
        found.ok_or_else(|| Rejection::missing(&self.signature.headers[0]))
    }

    /// The timestamp's raw text and value, after the tolerance check.
    fn read_timestamp<'r>(
        &self,
        spec: &TsSpec,
        sigs: &Signatures<'r>,
        req: &SignedRequest<'r>,
        fields: &'r BodyFields,
    ) -> Result<(&'r [u8], Stamp), Rejection> {
        let (header, raw) = match &spec.source {
            TsSource::Header(names) => {
                let (name, value) = single_header(req.headers, names)?
                    .ok_or_else(|| Rejection::missing(&names[0]))?;
                (Some(name), value.as_bytes())
            }
            TsSource::InSignature(prefix) => {
                let name = sigs.name;
                let mut texts = sigs
                    .values()
                    .flat_map(|v| items(v, self.signature.list_sep))
                    .filter_map(|item| item.strip_prefix(*prefix));
                let raw = texts.next().ok_or_else(|| {
                    Rejection::new(
                        RejectionKind::MalformedHeader,
                        "signature header carries no timestamp",
                    )
                    .with_optional_header(name)
                })?;
                if texts.any(|other| other != raw) {
                    return Err(Rejection::new(
                        RejectionKind::ConflictingHeader,
                        "signature header carries different timestamps",
                    )
                    .with_optional_header(name));
                }
                (name, raw)
            }
            TsSource::Json(_) => (
                None,
                fields.get(TS).ok_or_else(|| {
                    Rejection::missing_field("the body carries no timestamp field")
                })?,
            ),
        };
        Ok((raw, self.check_timestamp(spec, raw, header, req.now)?))
    }

    /// Parses a timestamp's text and checks it against the replay window.
    fn check_timestamp(
        &self,
        spec: &TsSpec,
        raw: &[u8],
        header: Option<&HeaderName>,
        now: SystemTime,
    ) -> Result<Stamp, Rejection> {
        let stamp = spec.format.parse(raw).ok_or_else(|| {
            Rejection::new(
                RejectionKind::MalformedHeader,
                spec.format.malformed_detail(),
            )
            .with_optional_header(header)
        })?;
        if let Some(tolerance) = spec.tolerance {
            stamp.check(tolerance, now).map_err(|kind| {
                Rejection::new(kind, window_detail(kind)).with_optional_header(header)
            })?;
        }
        Ok(stamp)
    }
}
