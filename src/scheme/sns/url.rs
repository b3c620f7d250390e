//! [`SnsUrl`]: a URL the SNS scheme may visit, checked before anything is fetched.

use std::fmt;

/// An `https` URL on an AWS SNS endpoint host, `sns.<region>.amazonaws.com` (or
/// `sns.<region>.amazonaws.com.cn` for the China regions, as AWS documents them), with no user
/// info and no port. The only URLs the SNS scheme ever hands to a
/// [`CertificateSource`](super::CertificateSource) or a
/// [`SubscriptionConfirmer`](super::SubscriptionConfirmer); anything else is refused without
/// being fetched.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SnsUrl {
    url: String,
    uri: http::Uri,
}

/// Why a URL is not an [`SnsUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnsUrlError {
    /// Not a URL.
    #[error("not a URL")]
    Invalid,
    /// Not `https`.
    #[error("not https")]
    NotHttps,
    /// User info or a port in the authority.
    #[error("user info or a port in the URL")]
    Authority,
    /// The host is not `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`).
    #[error("the host is not sns.<region>.amazonaws.com")]
    Host,
    /// A signing certificate URL whose path is not a `.pem` file, or that has a query.
    #[error("not a .pem path")]
    NotPem,
    /// A subscribe URL that is not a `ConfirmSubscription` action.
    #[error("not a ConfirmSubscription URL")]
    NotConfirmSubscription,
}

impl SnsUrl {
    /// A `SigningCertURL`: an SNS host, a path ending in `.pem`, no query.
    pub fn signing_certificate(url: &str) -> Result<Self, SnsUrlError> {
        let checked = Self::parse(url)?;
        match checked.uri.path_and_query() {
            Some(pq) if pq.query().is_none() && pq.path().ends_with(".pem") => Ok(checked),
            _ => Err(SnsUrlError::NotPem),
        }
    }

    /// A `SubscribeURL`: an SNS host whose query asks for `Action=ConfirmSubscription`.
    pub fn subscribe(url: &str) -> Result<Self, SnsUrlError> {
        let checked = Self::parse(url)?;
        let confirm = checked.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "Action" && v == "ConfirmSubscription")
        });
        if confirm {
            Ok(checked)
        } else {
            Err(SnsUrlError::NotConfirmSubscription)
        }
    }

    fn parse(url: &str) -> Result<Self, SnsUrlError> {
        let uri: http::Uri = url.parse().map_err(|_| SnsUrlError::Invalid)?;
        if uri.scheme_str() != Some("https") {
            return Err(SnsUrlError::NotHttps);
        }
        let authority = uri.authority().ok_or(SnsUrlError::Invalid)?;
        if authority.as_str() != authority.host() {
            return Err(SnsUrlError::Authority);
        }
        if !is_sns_host(authority.host()) {
            return Err(SnsUrlError::Host);
        }
        Ok(Self {
            url: url.to_owned(),
            uri,
        })
    }

    /// The URL as sent.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL, parsed.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// The host (`sns.us-east-1.amazonaws.com`).
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or_default()
    }
}

impl fmt::Debug for SnsUrl {
    // A SubscribeURL carries the subscription's token: show the host and path only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnsUrl(https://{}{})", self.host(), self.uri.path())
    }
}

/// `sns.<region>.amazonaws.com`, or `sns.cn-<...>.amazonaws.com.cn`; a region is lowercase
/// words joined by `-` and ending in a number (`us-east-1`, `us-gov-west-1`, `ap-southeast-2`).
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let (region, china) = match rest.strip_suffix(".amazonaws.com") {
        Some(region) => (region, false),
        None => match rest.strip_suffix(".amazonaws.com.cn") {
            Some(region) => (region, true),
            None => return false,
        },
    };
    if china != region.starts_with("cn-") {
        return false;
    }
    let mut words = region.split('-').collect::<Vec<_>>();
    let Some(number) = words.pop() else {
        return false;
    };
    words.len() >= 2
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_hosts_over_https() {
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-1.pem",
            "https://sns.ap-southeast-2.amazonaws.com/a.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-3250158c6b.pem",
        ] {
            assert!(SnsUrl::signing_certificate(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "http://sns.us-east-1.amazonaws.com/a.pem",
                SnsUrlError::NotHttps,
            ),
            (
                "https://sns.us-east-1.amazonaws.com.evil.example/a.pem",
                SnsUrlError::Host,
            ),
            (
                "https://evil.example/sns.us-east-1.amazonaws.com/a.pem",
                SnsUrlError::Host,
            ),
            (
                "https://sns.us-east-1.amazonaws.com:8443/a.pem",
                SnsUrlError::Authority,
            ),
            (
                "https://user@sns.us-east-1.amazonaws.com/a.pem",
                SnsUrlError::Authority,
            ),
            ("https://sns.amazonaws.com/a.pem", SnsUrlError::Host),
            (
                "https://sqs.us-east-1.amazonaws.com/a.pem",
                SnsUrlError::Host,
            ),
            (
                "https://sns.US-EAST-1.amazonaws.com/a.pem",
                SnsUrlError::Host,
            ),
            ("https://sns.evil.amazonaws.com/a.pem", SnsUrlError::Host),
            (
                "https://sns.cn-north-1.amazonaws.com/a.pem",
                SnsUrlError::Host,
            ),
            (
                "https://sns.us-east-1.amazonaws.com.cn/a.pem",
                SnsUrlError::Host,
            ),
            (
                "https://sns.us-east-1.amazonaws.com/a.txt",
                SnsUrlError::NotPem,
            ),
            (
                "https://sns.us-east-1.amazonaws.com/a.pem?x=1",
                SnsUrlError::NotPem,
            ),
            ("sns.us-east-1.amazonaws.com/a.pem", SnsUrlError::Invalid),
            ("", SnsUrlError::Invalid),
        ] {
            assert_eq!(SnsUrl::signing_certificate(bad).unwrap_err(), why, "{bad}");
        }
    }

    #[test]
    fn subscribe_urls_must_confirm() {
        let url = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37";
        let checked = SnsUrl::subscribe(url).unwrap();
        assert_eq!(checked.as_str(), url);
        assert!(!format!("{checked:?}").contains("2336412f37"));
        assert_eq!(
            SnsUrl::subscribe("https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe")
                .unwrap_err(),
            SnsUrlError::NotConfirmSubscription
        );
        assert_eq!(
            SnsUrl::subscribe("https://example.com/?Action=ConfirmSubscription").unwrap_err(),
            SnsUrlError::Host
        );
    }
}
