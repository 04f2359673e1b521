//! The state columns as enums. Each is stored as the same text as before (no migration),
//! written and read through diesel for SQLite, PostgreSQL and the multi-backend connection.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;

use super::MultiBackend;

/// A stored value that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} in the database")]
pub struct UnknownState {
    pub what: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The text stored in the column.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;
            fn from_str(value: &str) -> Result<Self, UnknownState> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownState { what: $what, value: other.to_owned() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql<Text, Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                <str as ToSql<Text, Sqlite>>::to_sql(self.as_str(), out)
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl ToSql<Text, MultiBackend> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((Text, self.as_str()));
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Sqlite> for $name {
            fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                Ok(<String as FromSql<Text, Sqlite>>::from_sql(value)?.parse()?)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                Ok(<String as FromSql<Text, Pg>>::from_sql(value)?.parse()?)
            }
        }

        impl FromSql<Text, MultiBackend> for $name {
            fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                Ok(value.from_sql::<String, Text>()?.parse()?)
            }
        }
    };
}

text_enum!(
    /// Where an outbox job is.
    JobState, "job state" {
        /// Waiting for its `run_at` (and for the jobs before it of its conversation).
        Queued = "queued",
        /// Leased by a worker.
        Running = "running",
        /// Failed for good; visible, retried only by an operator.
        Dead = "dead",
    }
);

text_enum!(
    /// What came of a failed job attempt (`job_attempts`).
    AttemptOutcome, "attempt outcome" {
        /// Failed, tried again later.
        Retry = "retry",
        /// Failed for good: the job became a dead letter.
        Dead = "dead",
        /// A dead letter put back in the queue by an admin.
        Requeued = "requeued",
    }
);

text_enum!(
    /// Which way a message travels.
    Direction, "message direction" {
        /// From WhatsApp into Salesforce.
        Inbound = "inbound",
        /// From the agent to WhatsApp.
        Outbound = "outbound",
    }
);

text_enum!(
    /// A message's progress.
    MessageStatus, "message status" {
        /// Inbound, stored, not yet in Salesforce.
        Received = "received",
        /// Inbound in Salesforce, or outbound on the customer's phone.
        Delivered = "delivered",
        /// Outbound and read by the customer.
        Read = "read",
        /// Outbound, waiting to be relayed.
        Queued = "queued",
        /// A template from the panel, recorded before it is handed to Infobip.
        Sending = "sending",
        /// Handed to Infobip.
        Sent = "sent",
        /// Nothing to deliver (an empty welcome, a transcript frame the history API skips).
        Skipped = "skipped",
        Failed = "failed",
    }
);

text_enum!(
    /// A chatbot handover's import.
    HandoverStatus, "handover status" {
        Accepted = "accepted",
        /// The transcript is fetched and stored; its messages are going in.
        Importing = "importing",
        Imported = "imported",
        Failed = "failed",
    }
);

text_enum!(
    /// How a transcript goes into Salesforce.
    ImportMethod, "import method" {
        /// One entry per turn, with the speaker's label.
        Entries = "entries",
        /// The `conversationHistory` API.
        History = "history",
    }
);

text_enum!(
    /// A proactive conversation's start.
    ProactiveStatus, "proactive status" {
        Pending = "pending",
        /// The Salesforce conversation is open.
        Established = "established",
        /// The opening template went out too.
        TemplateSent = "template_sent",
        Failed = "failed",
    }
);

text_enum!(
    /// Who a page session belongs to.
    Role, "session role" {
        /// May open the setup (Customize Application in the org).
        Admin = "admin",
        /// May use the template panel only.
        Agent = "agent",
    }
);

text_enum!(
    /// Whether the bridge carries an app's conversations.
    AppStatus, "app status" {
        Draft = "draft",
        Active = "active",
        Disabled = "disabled",
    }
);

text_enum!(
    /// The kind of Salesforce org an app connects to.
    OrgType, "org type" {
        Production = "production",
        /// A sandbox: tokens are asked for with the audience https://test.salesforce.com.
        Sandbox = "sandbox",
    }
);

impl OrgType {
    /// The JWT bearer assertion's `aud`: the login host of the org's kind, also when the
    /// token is requested from the org's My Domain.
    pub const fn audience(self) -> &'static str {
        match self {
            OrgType::Production => "https://login.salesforce.com",
            OrgType::Sandbox => "https://test.salesforce.com",
        }
    }
}

text_enum!(
    /// What a one-time grant of the pages is for.
    GrantKind, "grant kind" {
        /// The first start's setup link.
        Bootstrap = "bootstrap",
        /// The sign-in window's code for the iframe's own session.
        Handoff = "handoff",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for s in [MessageStatus::Received, MessageStatus::Sending, MessageStatus::Failed] {
            assert_eq!(s.as_str().parse::<MessageStatus>(), Ok(s));
        }
        assert_eq!(ProactiveStatus::TemplateSent.as_str(), "template_sent");
        assert_eq!("running".parse::<JobState>(), Ok(JobState::Running));
        assert!("lost".parse::<JobState>().is_err());
    }
}
