//! Why WhatsApp did not deliver a message, from an Infobip delivery report, in an agent's
//! words. Infobip reports a status group (`UNDELIVERABLE`, `EXPIRED`, `REJECTED`) and an error
//! with an id, a name and whether it is permanent; the chat errors below are the ones an
//! agent's reply meets (reference `infobip.md`; their ids come from Infobip's published error
//! table and are not confirmed against a live account).

/// A failed delivery as the report tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// `UNDELIVERABLE`, `EXPIRED`, `REJECTED`, …
    pub group: String,
    pub error_id: Option<i64>,
    /// `EC_NO_SESSION`, …, or the status name when the report carries no error.
    pub name: String,
    pub description: String,
    pub permanent: bool,
}

impl DeliveryFailure {
    /// The record's short form: `EC_NO_SESSION: No session`.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.name, self.description)
    }

    /// The code the agent's `MessageDeliveryFailed` entry carries.
    pub fn code(&self) -> String {
        format!("WHATSAPP_{}", if self.name.is_empty() { self.group.as_str() } else { self.name.as_str() })
    }

    /// What happened and what the agent can do, in plain words.
    pub fn explain(&self) -> String {
        let known = match (self.error_id, self.name.as_str()) {
            (Some(7010), _) | (_, "EC_NO_SESSION") => Some(
                "Not delivered: the customer has not written in the last 24 hours, so WhatsApp only delivers an approved template. Send a template from the WhatsApp panel.",
            ),
            (Some(7029), _) | (_, "EC_USER_IDENTITY_CHANGED") => Some(
                "Not delivered: the customer's WhatsApp identity changed (a new phone or a reinstalled app). Confirm who you are talking to before sending again.",
            ),
            (Some(7022), _) | (_, "EC_MEDIA_UNSUPPORTED") => {
                Some("Not delivered: WhatsApp does not accept this kind of file. Send it in another format.")
            }
            (Some(7013 | 7014), _) => {
                Some("Not delivered: WhatsApp could not fetch or upload the file. Try sending it again.")
            }
            (Some(7030), _) | (_, "EC_TEMPLATE_BLOCKED_BY_USER") => {
                Some("Not delivered: the customer blocked messages from this template.")
            }
            (Some(7032), _) | (_, "EC_FREQUENCY_CAPPING") => Some(
                "Not delivered: WhatsApp limits how many marketing messages a customer receives, and this one was over the limit.",
            ),
            (Some(7033), _) | (_, "EC_MARKETING_OPT_OUT") => {
                Some("Not delivered: the customer opted out of marketing messages.")
            }
            (Some(7016), _) | (_, "EC_SPAM_RATE") => Some(
                "Not delivered: WhatsApp held the message back because too many customers marked this number's messages as spam.",
            ),
            (Some(7017), _) | (_, "EC_TOO_MANY_REQUESTS") => {
                Some("Not delivered: too many messages to this customer in a short time. Wait a moment and send again.")
            }
            (Some(7050 | 7051), _) => {
                Some("Not delivered: WhatsApp had a problem on its side. Try sending again in a few minutes.")
            }
            _ => None,
        };
        if let Some(text) = known {
            return text.to_owned();
        }
        let why = if self.description.is_empty() { self.name.clone() } else { self.summary() };
        match self.group.as_str() {
            "EXPIRED" => format!(
                "Not delivered: WhatsApp could not reach the customer's phone before the message expired (the phone may be off or offline). ({why})"
            ),
            "REJECTED" => format!("Not delivered: WhatsApp refused the message. ({why})"),
            _ => format!("Not delivered: WhatsApp could not deliver the message. ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(group: &str, id: Option<i64>, name: &str) -> DeliveryFailure {
        DeliveryFailure {
            group: group.into(),
            error_id: id,
            name: name.into(),
            description: "Some text".into(),
            permanent: true,
        }
    }

    #[test]
    fn known_errors_are_explained_and_the_rest_named() {
        assert!(failure("UNDELIVERABLE", Some(7010), "EC_NO_SESSION").explain().contains("24 hours"));
        assert!(failure("UNDELIVERABLE", None, "EC_NO_SESSION").explain().contains("template"));
        let expired = failure("EXPIRED", Some(1), "EXPIRED_EXPIRED").explain();
        assert!(expired.contains("expired") && expired.contains("EXPIRED_EXPIRED: Some text"), "{expired}");
        assert_eq!(failure("REJECTED", Some(9), "X").code(), "WHATSAPP_X");
    }
}
