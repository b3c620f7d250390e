//! Matching signatures: the expected MAC (or public-key check) per key, every candidate
//! signature against every key, in constant time and with no early exit; and, for the test
//! signer, producing a signature.

#[cfg(feature = "test-util")]
use super::engine::SigningKey;
use super::engine::{Content, Engine, Signatures};
use super::keys::{HmacKey, Matcher, Message, Tag, TokenHash};
#[cfg(any(feature = "ed25519", feature = "p256"))]
use super::parse::MAX_SIG;
use super::parse::{items, Text};
#[cfg(feature = "test-util")]
use super::timestamp::{TsSource, TsSpec};
use super::{Rejection, SignedRequest};

/// The signed parts of one request, as a [`Message`] for the MAC.
struct Parts<'a, 'r> {
    engine: &'a Engine,
    req: &'a SignedRequest<'r>,
    id: &'a [u8],
    ts: &'a [u8],
}

impl Message for Parts<'_, '_> {
    #[inline]
    fn feed(&self, sink: &mut impl FnMut(&[u8])) {
        self.engine.feed_parts(self.req, self.id, self.ts, sink);
    }
}

impl Engine {
    pub(super) fn match_hmac(
        &self,
        keys: &[HmacKey],
        req: &SignedRequest<'_>,
        sigs: &Signatures<'_>,
        id: &[u8],
        ts: &[u8],
    ) -> Result<Option<usize>, Rejection> {
        let twilio = match &self.content {
            Content::Twilio => Some(super::presets::twilio_variants(self, req)?),
            Content::Parts(_) => None,
        };
        let mut matcher = Matcher::new();
        let mut text = Text::EMPTY;
        // One key (and content variant) at a time: its MAC, written the one way the encoding
        // allows (lowercase hex, canonical base64), compared as text with every candidate, so
        // a candidate matches exactly when it decodes to that MAC and nothing needs decoding.
        let prefix: &[u8] = &self.signature.prefix;
        let sep = self.signature.list_sep;
        let mut check = |index: usize, tag: Tag| {
            self.signature
                .encoding
                .encode_into(tag.as_bytes(), &mut text);
            for value in sigs.values() {
                for item in items(value, sep) {
                    if let Some(candidate) = item.strip_prefix(prefix) {
                        matcher.check_one(index, candidate, text.as_bytes());
                    }
                }
            }
        };
        for (k, key) in keys.iter().enumerate() {
            match &twilio {
                Some(messages) => {
                    for message in messages {
                        check(k, key.mac(&message[..]));
                    }
                }
                None => check(k, self.mac_parts(key, req, id, ts)),
            }
        }
        Ok(matcher.result())
    }

    pub(super) fn match_token(&self, tokens: &[TokenHash], sigs: &Signatures<'_>) -> Option<usize> {
        let mut matcher = Matcher::new();
        for value in sigs.values() {
            let presented = TokenHash::new(value);
            matcher.check(presented.as_bytes(), tokens.iter().map(TokenHash::as_bytes));
        }
        matcher.result()
    }

    #[cfg(feature = "ed25519")]
    pub(super) fn match_ed25519(
        &self,
        keys: &[ed25519_dalek::VerifyingKey],
        req: &SignedRequest<'_>,
        sigs: &Signatures<'_>,
        id: &[u8],
        ts: &[u8],
    ) -> Option<usize> {
        let message = self.message(req, id, ts);
        let mut matcher = Matcher::new();
        let mut buf = [0u8; MAX_SIG];
        for candidate in self.candidates(sigs) {
            let signature = match self.signature.encoding.decode(candidate, &mut buf) {
                Some(64) => <&[u8; 64]>::try_from(&buf[..64])
                    .ok()
                    .map(ed25519_dalek::Signature::from_bytes),
                _ => None,
            };
            for (i, key) in keys.iter().enumerate() {
                let ok = signature
                    .as_ref()
                    .is_some_and(|s| key.verify_strict(&message, s).is_ok());
                matcher.record(i, ok);
            }
        }
        matcher.result()
    }

    #[cfg(feature = "p256")]
    pub(super) fn match_p256(
        &self,
        keys: &[p256::ecdsa::VerifyingKey],
        req: &SignedRequest<'_>,
        sigs: &Signatures<'_>,
        id: &[u8],
        ts: &[u8],
    ) -> Option<usize> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let digest = self.sha256_parts(req, id, ts);
        let mut matcher = Matcher::new();
        let mut buf = [0u8; MAX_SIG];
        for candidate in self.candidates(sigs) {
            let signature = self
                .signature
                .encoding
                .decode(candidate, &mut buf)
                .and_then(|n| p256::ecdsa::Signature::from_der(&buf[..n]).ok());
            for (i, key) in keys.iter().enumerate() {
                let ok = signature
                    .as_ref()
                    .is_some_and(|s| key.verify_prehash(&digest, s).is_ok());
                matcher.record(i, ok);
            }
        }
        matcher.result()
    }

    /// The MAC of the signed parts (not for Twilio, whose content is built by
    /// [`twilio_variants`](super::presets::twilio_variants)).
    #[inline]
    pub(super) fn mac_parts(
        &self,
        key: &HmacKey,
        req: &SignedRequest<'_>,
        id: &[u8],
        ts: &[u8],
    ) -> Tag {
        key.mac(&Parts {
            engine: self,
            req,
            id,
            ts,
        })
    }

    /// Feeds every signed part, in order.
    #[inline]
    pub(super) fn feed_parts(
        &self,
        req: &SignedRequest<'_>,
        id: &[u8],
        ts: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) {
        if let Content::Parts(parts) = &self.content {
            for part in parts {
                self.feed(part, req, id, ts, sink);
            }
        }
    }

    /// The SHA-256 of the signed parts (ECDSA verifies the digest).
    #[cfg(feature = "p256")]
    pub(super) fn sha256_parts(&self, req: &SignedRequest<'_>, id: &[u8], ts: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        self.feed_parts(req, id, ts, &mut |b| hash.update(b));
        hash.finalize().into()
    }

    /// The signed parts, concatenated (for signatures that need the whole message at once).
    #[cfg(feature = "ed25519")]
    pub(super) fn message(&self, req: &SignedRequest<'_>, id: &[u8], ts: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(req.body.len() + id.len() + ts.len() + 64);
        self.feed_parts(req, id, ts, &mut |b| message.extend_from_slice(b));
        message
    }

    /// The value of the signature a sender holding `key` would send for this request, built
    /// from the same specification [`verify`](Self::verify) checks: the signed content, the
    /// encoding, the prefix, and (for `t=`/`ts=` schemes) the timestamp item. `id` and `ts`
    /// are the raw id and timestamp texts the sender puts in their headers (or body fields).
    ///
    /// `None` when the request cannot be signed as given (a Twilio request whose
    /// `bodySHA256` does not match its body).
    #[cfg(feature = "test-util")]
    pub(crate) fn sign(
        &self,
        key: SigningKey<'_>,
        req: &SignedRequest<'_>,
        id: &[u8],
        ts: &[u8],
    ) -> Option<Vec<u8>> {
        let raw: Vec<u8> = match key {
            SigningKey::Hmac(key) => match &self.content {
                Content::Twilio => {
                    let messages = super::presets::twilio_variants(self, req).ok()?;
                    let message = messages.first()?;
                    key.mac(&message[..]).as_bytes().to_vec()
                }
                Content::Parts(_) => self.mac_parts(key, req, id, ts).as_bytes().to_vec(),
            },
            // The token is sent as-is: there is no encoding or prefix to apply.
            SigningKey::Token(token) => return Some(token.to_vec()),
            #[cfg(feature = "ed25519")]
            SigningKey::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(&self.message(req, id, ts)).to_bytes().to_vec()
            }
            #[cfg(feature = "p256")]
            SigningKey::P256(key) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner as _;
                let signature: p256::ecdsa::Signature =
                    key.sign_prehash(&self.sha256_parts(req, id, ts)).ok()?;
                signature.to_der().as_bytes().to_vec()
            }
        };
        let mut value = Vec::new();
        if let Some(TsSpec {
            source: TsSource::InSignature(prefix),
            ..
        }) = &self.timestamp
        {
            value.extend_from_slice(prefix);
            value.extend_from_slice(ts);
            value.push(self.signature.list_sep.unwrap_or(b','));
        }
        value.extend_from_slice(&self.signature.prefix);
        value.extend_from_slice(self.signature.encoding.encode(&raw).as_bytes());
        Some(value)
    }

    /// The encoded signatures, in every value, that carry this scheme's prefix.
    #[cfg(any(feature = "ed25519", feature = "p256"))]
    pub(super) fn candidates<'v>(
        &'v self,
        sigs: &'v Signatures<'_>,
    ) -> impl Iterator<Item = &'v [u8]> {
        let prefix: &[u8] = &self.signature.prefix;
        let sep = self.signature.list_sep;
        sigs.values()
            .flat_map(move |v| items(v, sep))
            .filter_map(move |item| item.strip_prefix(prefix))
    }
}
