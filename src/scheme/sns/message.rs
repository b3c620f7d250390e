//! The SNS message in the body, and the canonical string its signature covers.

use std::borrow::Cow;

use serde::Deserialize;

use crate::scheme::{Rejection, RejectionKind};

/// The three message types SNS sends to an HTTP(S) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "Notification" => Some(Self::Notification),
            "SubscriptionConfirmation" => Some(Self::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(Self::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

/// The fields of an SNS message that are signed or say how (the rest, such as
/// `MessageAttributes` and `UnsubscribeURL`, are ignored). Strings are borrowed from the body
/// where they have no escapes, decoded where they do: AWS signs the decoded values.
#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(rename = "Type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(rename = "MessageId", borrow)]
    pub(crate) message_id: Cow<'a, str>,
    #[serde(rename = "TopicArn", borrow)]
    pub(crate) topic_arn: Cow<'a, str>,
    #[serde(rename = "Message", borrow)]
    pub(crate) message: Cow<'a, str>,
    #[serde(rename = "Timestamp", borrow)]
    pub(crate) timestamp: Cow<'a, str>,
    #[serde(rename = "Subject", borrow, default)]
    pub(crate) subject: Option<Cow<'a, str>>,
    #[serde(rename = "Token", borrow, default)]
    pub(crate) token: Option<Cow<'a, str>>,
    #[serde(rename = "SubscribeURL", borrow, default)]
    pub(crate) subscribe_url: Option<Cow<'a, str>>,
    #[serde(rename = "SignatureVersion", borrow)]
    pub(crate) signature_version: Cow<'a, str>,
    #[serde(rename = "Signature", borrow)]
    pub(crate) signature: Cow<'a, str>,
    #[serde(rename = "SigningCertURL", borrow)]
    pub(crate) signing_cert_url: Cow<'a, str>,
}

/// The digest a signature version names: 1 is SHA1withRSA, 2 is SHA256withRSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureVersion {
    Sha1,
    Sha256,
}

impl<'a> Message<'a> {
    /// Parses the body: `malformed_body` when it is not an SNS message.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Rejection> {
        serde_json::from_slice(body).map_err(|_| {
            Rejection::new(
                RejectionKind::MalformedBody,
                "not an SNS message (a JSON object with Type, MessageId, TopicArn, Message, Timestamp, SignatureVersion, Signature and SigningCertURL)",
            )
        })
    }

    pub(crate) fn message_type(&self) -> Result<MessageType, Rejection> {
        MessageType::parse(&self.kind)
            .ok_or_else(|| Rejection::new(RejectionKind::MalformedBody, "unknown SNS message Type"))
    }

    pub(crate) fn version(&self) -> Result<SignatureVersion, Rejection> {
        match &*self.signature_version {
            "1" => Ok(SignatureVersion::Sha1),
            "2" => Ok(SignatureVersion::Sha256),
            _ => Err(Rejection::new(
                RejectionKind::MalformedBody,
                "SignatureVersion is neither 1 nor 2",
            )),
        }
    }

    /// The string AWS signs: `name\nvalue\n` for each signed field of the message's type, in
    /// AWS's documented order. A notification signs `Message`, `MessageId`, `Subject` (when
    /// present), `Timestamp`, `TopicArn` and `Type`; the confirmations sign `Message`,
    /// `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn` and `Type`.
    pub(crate) fn string_to_sign(&self) -> Result<Vec<u8>, Rejection> {
        let missing = || Rejection::new(RejectionKind::MalformedBody, "a signed field is missing");
        let fields: Vec<(&str, &str)> = match self.message_type()? {
            MessageType::Notification => {
                let mut fields = vec![
                    ("Message", &*self.message),
                    ("MessageId", &*self.message_id),
                ];
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.extend([
                    ("Timestamp", &*self.timestamp),
                    ("TopicArn", &*self.topic_arn),
                    ("Type", &*self.kind),
                ]);
                fields
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => vec![
                ("Message", &*self.message),
                ("MessageId", &*self.message_id),
                (
                    "SubscribeURL",
                    self.subscribe_url.as_deref().ok_or_else(missing)?,
                ),
                ("Timestamp", &*self.timestamp),
                ("Token", self.token.as_deref().ok_or_else(missing)?),
                ("TopicArn", &*self.topic_arn),
                ("Type", &*self.kind),
            ],
        };
        let len = fields.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = Vec::with_capacity(len);
        for (name, value) in fields {
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_strings_follow_the_documented_fields() {
        let notification = br#"{"Type":"Notification","MessageId":"22b80b92","TopicArn":"arn:aws:sns:us-west-2:123456789012:MyTopic","Subject":"My First Message","Message":"Hello world!\nline","Timestamp":"2012-05-02T00:54:06.655Z","SignatureVersion":"1","Signature":"x","SigningCertURL":"https://sns.us-west-2.amazonaws.com/a.pem","UnsubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"}"#;
        let m = Message::parse(notification).unwrap();
        assert_eq!(
            String::from_utf8(m.string_to_sign().unwrap()).unwrap(),
            "Message\nHello world!\nline\nMessageId\n22b80b92\nSubject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        assert_eq!(m.version().unwrap(), SignatureVersion::Sha1);

        let confirmation = br#"{"Type":"SubscriptionConfirmation","MessageId":"165545c9","Token":"2336412f37","TopicArn":"arn:aws:sns:us-west-2:123456789012:MyTopic","Message":"You have chosen to subscribe","SubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription","Timestamp":"2012-04-26T20:45:04.751Z","SignatureVersion":"2","Signature":"x","SigningCertURL":"https://sns.us-west-2.amazonaws.com/a.pem"}"#;
        let m = Message::parse(confirmation).unwrap();
        assert_eq!(
            String::from_utf8(m.string_to_sign().unwrap()).unwrap(),
            "Message\nYou have chosen to subscribe\nMessageId\n165545c9\nSubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription\nTimestamp\n2012-04-26T20:45:04.751Z\nToken\n2336412f37\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nSubscriptionConfirmation\n"
        );
        assert_eq!(m.version().unwrap(), SignatureVersion::Sha256);

        // A confirmation without its Token cannot be checked.
        let no_token =
            String::from_utf8_lossy(confirmation).replace(r#""Token":"2336412f37","#, "");
        let m = Message::parse(no_token.as_bytes()).unwrap();
        assert_eq!(
            m.string_to_sign().unwrap_err().kind(),
            RejectionKind::MalformedBody
        );
        assert!(Message::parse(b"{}").is_err());
        assert!(Message::parse(b"not json").is_err());
    }
}
