//! Signing certificates: parsed once, checked per delivery, cached by URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use tokio::sync::OnceCell;
use x509_cert::der::{DecodePem, Encode};
use x509_cert::Certificate;

use super::message::SignatureVersion;
use super::{CertificateSource, SnsUrl};
use crate::error::ConfigError;
use crate::scheme::{Rejection, RejectionKind};

/// Signing certificates cached at once, at most; a new URL past this evicts one.
const MAX_CACHED: usize = 16;

/// The longest a certificate fetch may take, whatever the source: the delivery waiting for it
/// is then answered `503` and SNS retries.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA that must have issued the signing certificate (see
/// [`AwsSnsBuilder::trust_anchors`](super::AwsSnsBuilder::trust_anchors)).
#[derive(Clone)]
pub(crate) struct Anchor {
    subject: Vec<u8>,
    key: rsa::PublicKey,
}

impl Anchor {
    pub(crate) fn from_pem(index: usize, pem: &[u8]) -> Result<Self, ConfigError> {
        let undecodable = |reason| ConfigError::UndecodableSecret { index, reason };
        let cert =
            Certificate::from_pem(pem).map_err(|_| undecodable("not a PEM X.509 certificate"))?;
        let tbs = cert.tbs_certificate();
        Ok(Self {
            subject: tbs
                .subject()
                .to_der()
                .map_err(|_| undecodable("the subject cannot be encoded"))?,
            key: rsa_key(&cert).ok_or_else(|| undecodable("not an RSA certificate"))?,
        })
    }
}

fn rsa_key(cert: &Certificate) -> Option<rsa::PublicKey> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()?;
    rsa::PublicKey::from_public_key_der(&spki).ok()
}

/// A signing certificate: its RSA key, ready for either signature version, and its validity
/// period.
pub(crate) struct SigningCertificate {
    sha1: rsa::pkcs1v15::VerifyingKey<sha1::Sha1>,
    sha256: rsa::pkcs1v15::VerifyingKey<sha2::Sha256>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl SigningCertificate {
    /// Parses a PEM certificate and, with `anchors`, checks that one of them issued it.
    fn from_pem(pem: &[u8], anchors: &[Anchor]) -> Result<Self, &'static str> {
        let cert = Certificate::from_pem(pem).map_err(|_| "not a PEM X.509 certificate")?;
        if !anchors.is_empty() && !anchors.iter().any(|a| issued_by(&cert, a)) {
            return Err("not issued by a configured trust anchor");
        }
        let validity = cert.tbs_certificate().validity();
        let key = rsa_key(&cert).ok_or("not an RSA certificate")?;
        Ok(Self {
            sha1: rsa::pkcs1v15::VerifyingKey::new(key.clone()),
            sha256: rsa::pkcs1v15::VerifyingKey::new(key),
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
        })
    }

    /// Checks `signature` over `message` at `now`.
    pub(crate) fn verify(
        &self,
        version: SignatureVersion,
        message: &[u8],
        signature: &[u8],
        now: SystemTime,
    ) -> Result<(), Rejection> {
        if now < self.not_before || now > self.not_after {
            return Err(Rejection::new(
                RejectionKind::UntrustedKey,
                "the signing certificate is not valid now",
            ));
        }
        let signature = rsa::pkcs1v15::Signature::try_from(signature);
        let ok = signature.is_ok_and(|signature| match version {
            SignatureVersion::Sha1 => self.sha1.verify(message, &signature).is_ok(),
            SignatureVersion::Sha256 => self.sha256.verify(message, &signature).is_ok(),
        });
        if ok {
            Ok(())
        } else {
            Err(Rejection::new(
                RejectionKind::BadSignature,
                "the SNS signature does not verify with the signing certificate",
            ))
        }
    }
}

/// True if `anchor` signed `cert` (its issuer is the anchor's subject, and the anchor's key
/// verifies the signature over the to-be-signed part, with SHA-256, -384 or -512 RSA).
fn issued_by(cert: &Certificate, anchor: &Anchor) -> bool {
    const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
    const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
    const SHA512_RSA: &str = "1.2.840.113549.1.1.13";
    let tbs = cert.tbs_certificate();
    let Ok(issuer) = tbs.issuer().to_der() else {
        return false;
    };
    let (Ok(tbs_der), Some(signature)) = (tbs.to_der(), cert.signature().as_bytes()) else {
        return false;
    };
    if issuer != anchor.subject {
        return false;
    }
    let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
        return false;
    };
    let key = anchor.key.clone();
    match cert.signature_algorithm().oid.to_string().as_str() {
        SHA256_RSA => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
            .verify(&tbs_der, &signature)
            .is_ok(),
        SHA384_RSA => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key)
            .verify(&tbs_der, &signature)
            .is_ok(),
        SHA512_RSA => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key)
            .verify(&tbs_der, &signature)
            .is_ok(),
        _ => false,
    }
}

type Slot = Arc<OnceCell<Arc<SigningCertificate>>>;

/// Signing certificates by URL, loaded through the source at most once per URL at a time
/// (deliveries waiting for the same certificate share one fetch), bounded in number.
pub(crate) struct CertificateCache {
    source: Arc<dyn CertificateSource>,
    anchors: Vec<Anchor>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl CertificateCache {
    pub(crate) fn new(source: Arc<dyn CertificateSource>, anchors: Vec<Anchor>) -> Self {
        Self {
            source,
            anchors,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The certificate at `url`, if loaded.
    pub(crate) fn get(&self, url: &str) -> Option<Arc<SigningCertificate>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(url).and_then(|slot| slot.get().cloned())
    }

    /// Loads the certificate at `url` into the cache: `key_unavailable` when the fetch fails
    /// (not cached, so the next delivery tries again), `untrusted_key` when what was fetched
    /// is not a usable certificate.
    pub(crate) async fn load(self: Arc<Self>, url: SnsUrl) -> Result<(), Rejection> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if !slots.contains_key(url.as_str()) && slots.len() >= MAX_CACHED {
                // Prefer evicting a slot that holds nothing (a failed fetch).
                let victim = slots
                    .iter()
                    .find(|(_, slot)| !slot.initialized())
                    .or_else(|| slots.iter().next())
                    .map(|(k, _)| k.clone());
                if let Some(victim) = victim {
                    slots.remove(&victim);
                }
            }
            Arc::clone(slots.entry(url.as_str().to_owned()).or_default())
        };
        slot.get_or_try_init(|| async {
            let unavailable = || {
                Rejection::new(
                    RejectionKind::KeyUnavailable,
                    "the SNS signing certificate could not be fetched",
                )
            };
            let pem = match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch(&url)).await {
                Ok(Ok(pem)) => pem,
                Ok(Err(error)) => {
                    tracing::warn!(host = url.host(), %error, "SNS signing certificate fetch failed");
                    return Err(unavailable());
                }
                Err(_) => {
                    tracing::warn!(host = url.host(), "SNS signing certificate fetch timed out");
                    return Err(unavailable());
                }
            };
            let cert = SigningCertificate::from_pem(&pem, &self.anchors).map_err(|reason| {
                tracing::warn!(host = url.host(), reason, "SNS signing certificate refused");
                Rejection::new(RejectionKind::UntrustedKey, reason)
            })?;
            Ok::<_, Rejection>(Arc::new(cert))
        })
        .await
        .map(|_| ())
    }
}
