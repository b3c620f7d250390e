//! Pre-keyed secrets and constant-time matching.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::parse::MAX_MAC;
use crate::error::ConfigError;

/// The hash function under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA256 (almost every provider).
    #[default]
    Sha256,
    /// HMAC-SHA1 (Twilio, Intercom, Vercel, some older providers).
    Sha1,
    /// HMAC-SHA512 (Paystack).
    Sha512,
}

impl Algorithm {
    /// Length of the MAC in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha1 => 20,
            Self::Sha512 => 64,
        }
    }
}

/// One secret, held as the HMAC state after absorbing the key: checking a request clones this
/// state instead of re-keying, and the secret text itself is not kept.
#[derive(Clone)]
pub(crate) enum HmacKey {
    Sha256(Hmac<sha2::Sha256>),
    Sha1(Hmac<sha1::Sha1>),
    Sha512(Hmac<sha2::Sha512>),
}

impl HmacKey {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so these cannot fail.
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(
                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length"),
            ),
            Algorithm::Sha1 => Self::Sha1(
                <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length"),
            ),
            Algorithm::Sha512 => Self::Sha512(
                <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length"),
            ),
        }
    }

    /// The MAC of the bytes `feed` passes to its sink, computed from a copy of the pre-keyed
    /// state (no re-keying, and the state is copied once and updated in place). Each piece
    /// goes straight to the hash, whose own block buffer joins small pieces (an id, a
    /// separator, a timestamp) with the start of the body; joining them on the stack first
    /// measured slower.
    #[inline]
    pub(crate) fn mac(&self, message: &(impl Message + ?Sized)) -> Tag {
        let mut tag = Tag::EMPTY;
        match self {
            Self::Sha256(key) => {
                let mut mac = key.clone();
                message.feed(&mut |b| mac.update(b));
                tag.bytes[..32].copy_from_slice(&mac.finalize().into_bytes());
                tag.len = 32;
            }
            Self::Sha1(key) => {
                let mut mac = key.clone();
                message.feed(&mut |b| mac.update(b));
                tag.bytes[..20].copy_from_slice(&mac.finalize().into_bytes());
                tag.len = 20;
            }
            Self::Sha512(key) => {
                let mut mac = key.clone();
                message.feed(&mut |b| mac.update(b));
                tag.bytes.copy_from_slice(&mac.finalize().into_bytes());
                tag.len = 64;
            }
        }
        tag
    }
}

/// Bytes to MAC, handed to the hash in pieces (so a message made of an id, a separator, a
/// timestamp and the body is never joined first). Generic over the sink, so each piece goes
/// to the hash's `update` without an indirect call.
pub(crate) trait Message {
    /// Passes every piece, in order, to `sink`.
    fn feed(&self, sink: &mut impl FnMut(&[u8]));
}

impl Message for [u8] {
    #[inline]
    fn feed(&self, sink: &mut impl FnMut(&[u8])) {
        sink(self)
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alg = match self {
            Self::Sha256(_) => "sha256",
            Self::Sha1(_) => "sha1",
            Self::Sha512(_) => "sha512",
        };
        write!(f, "HmacKey({alg}, <redacted>)")
    }
}

/// A computed MAC.
#[derive(Clone, Copy)]
pub(crate) struct Tag {
    bytes: [u8; MAX_MAC],
    len: u8,
}

impl Tag {
    pub(crate) const EMPTY: Tag = Tag {
        bytes: [0; MAX_MAC],
        len: 0,
    };

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Secrets of a token scheme (a header that must equal the secret), held as their SHA-256 so
/// that comparing costs the same whatever the lengths.
#[derive(Clone)]
pub(crate) struct TokenHash([u8; 32]);

impl TokenHash {
    pub(crate) fn new(token: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(token).into())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// The index of the first of `tokens` that `presented` equals, compared in constant time
/// against every one (as SHA-256 digests, so lengths do not show); `None` when `presented` is
/// absent or matches none.
pub(crate) fn match_token(tokens: &[TokenHash], presented: Option<&[u8]>) -> Option<usize> {
    let mut matcher = Matcher::new();
    if let Some(presented) = presented {
        let presented = TokenHash::new(presented);
        matcher.check(presented.as_bytes(), tokens.iter().map(TokenHash::as_bytes));
    }
    matcher.result()
}

/// Records, in constant time, the first expected value (by index) that some candidate equals.
///
/// Every candidate is compared with every expected value; nothing returns early, so the time
/// taken does not depend on where (or whether) a match is found.
pub(crate) struct Matcher {
    found: Choice,
    index: u32,
}

impl Matcher {
    pub(crate) fn new() -> Self {
        Self {
            found: Choice::from(0),
            index: 0,
        }
    }

    /// Compares one candidate against every expected value.
    #[inline]
    pub(crate) fn check<'a>(&mut self, candidate: &[u8], expected: impl Iterator<Item = &'a [u8]>) {
        for (i, exp) in expected.enumerate() {
            let eq = ct_eq(exp, candidate);
            let first = eq & !self.found;
            self.index = u32::conditional_select(&self.index, &(i as u32), first);
            self.found |= eq;
        }
    }

    /// Compares one candidate with the expected value at `index`.
    #[inline]
    pub(crate) fn check_one(&mut self, index: usize, candidate: &[u8], expected: &[u8]) {
        let eq = ct_eq(expected, candidate);
        let first = eq & !self.found;
        self.index = u32::conditional_select(&self.index, &(index as u32), first);
        self.found |= eq;
    }

    /// Records a match decided elsewhere (an Ed25519 or ECDSA verification) for expected
    /// value `index`.
    #[cfg(any(feature = "ed25519", feature = "p256"))]
    pub(crate) fn record(&mut self, index: usize, matched: bool) {
        let eq = Choice::from(u8::from(matched));
        let first = eq & !self.found;
        self.index = u32::conditional_select(&self.index, &(index as u32), first);
        self.found |= eq;
    }

    /// The index of the first expected value that matched, if any.
    pub(crate) fn result(&self) -> Option<usize> {
        bool::from(self.found).then_some(self.index as usize)
    }
}

/// Constant-time equality of two byte strings whose lengths are public (a MAC's length is
/// fixed by its algorithm; a candidate's length is chosen by the sender). The bytes are folded
/// with XOR/OR, with no branch on their values, and only the final byte goes through `subtle`'s
/// optimization barrier (rather than one barrier per byte, as `<[u8]>::ct_eq` does).
#[inline]
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff.ct_eq(&0)
}

/// Turns the secrets a user gives into keys, checking each one.
pub(crate) fn collect_secrets<I, T, K>(
    secrets: I,
    mut convert: impl FnMut(usize, &[u8]) -> Result<K, ConfigError>,
) -> Result<Vec<K>, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut keys = Vec::new();
    for (index, secret) in secrets.into_iter().enumerate() {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret { index });
        }
        keys.push(convert(index, secret)?);
    }
    if keys.is_empty() {
        return Err(ConfigError::NoSecrets);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_reports_first_matching_expected_value_after_checking_all() {
        let expected: [&[u8]; 3] = [b"aaaa", b"bbbb", b"bbbb"];
        let mut m = Matcher::new();
        m.check(b"zzzz", expected.iter().copied());
        assert_eq!(m.result(), None);
        m.check(b"bbbb", expected.iter().copied());
        assert_eq!(m.result(), Some(1));
        m.check(b"aaaa", expected.iter().copied());
        assert_eq!(m.result(), Some(1), "a later match does not move the index");
    }

    #[test]
    fn constant_time_equality() {
        assert!(bool::from(ct_eq(b"", b"")));
        assert!(bool::from(ct_eq(b"abc", b"abc")));
        assert!(!bool::from(ct_eq(b"abc", b"abd")));
        assert!(!bool::from(ct_eq(b"abc", b"ab")));
        for i in 0..32 {
            let a = [7u8; 32];
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!bool::from(ct_eq(&a, &b)), "byte {i}");
        }
    }

    #[test]
    fn macs_match_a_freshly_keyed_hmac() {
        let key = HmacKey::new(Algorithm::Sha256, b"key");
        struct Pieces;
        impl Message for Pieces {
            fn feed(&self, sink: &mut impl FnMut(&[u8])) {
                sink(b"The quick brown fox ");
                sink(b"jumps over the lazy dog");
            }
        }
        let tag = key.mac(&Pieces);
        // RFC-style well-known value of HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            hex::encode(tag.as_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let sha1 = HmacKey::new(Algorithm::Sha1, b"key");
        let tag = sha1.mac(&b"The quick brown fox jumps over the lazy dog"[..]);
        assert_eq!(
            hex::encode(tag.as_bytes()),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = HmacKey::new(Algorithm::Sha256, b"super-secret-value");
        let s = format!("{k:?}");
        assert!(!s.contains("super"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn secrets_are_checked() {
        let none: [&str; 0] = [];
        assert_eq!(
            collect_secrets(none, |_, s| Ok(s.to_vec())).unwrap_err(),
            ConfigError::NoSecrets
        );
        assert_eq!(
            collect_secrets(["a", ""], |_, s| Ok(s.to_vec())).unwrap_err(),
            ConfigError::EmptySecret { index: 1 }
        );
    }
}
