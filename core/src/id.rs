//! Prefixed identifiers.
//!
//! Each id is a type-specific prefix followed by a ULID (`rm_01J9...`), so ids
//! sort by creation time, are unique across nodes without coordination, and
//! say what they name when they show up in a log line or a support ticket.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

use ulid::{Generator, Ulid};

/// A ULID greater than any this process made before, even within one millisecond,
/// so ids made in order list in order.
fn next_ulid() -> Ulid {
    static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);
    let mut gen = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    gen.get_or_insert_with(Generator::new)
        .generate()
        // Overflow needs 2^80 ids in one millisecond; fall back to a random one.
        .unwrap_or_else(|_| Ulid::new())
}

/// Why a string is not a valid id of a given kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{value}` is not a valid {kind} id: expected `{prefix}` followed by 26 base32 characters")]
pub struct IdError {
    kind: &'static str,
    prefix: &'static str,
    value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            /// The prefix that starts every id of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, unique and ordered after ids made earlier.
            pub fn new() -> Self {
                Self(next_ulid())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", Self::PREFIX, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix(Self::PREFIX)
                    .and_then(|rest| Ulid::from_string(rest).ok())
                    .map(Self)
                    .ok_or_else(|| IdError {
                        kind: $kind,
                        prefix: Self::PREFIX,
                        value: s.chars().take(64).collect(),
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $kind, " id: `", $prefix, "` followed by a ULID.")))
                    .examples([serde_json::Value::String(concat!($prefix, "01JD0000000000000000000000").into())])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// Identifies a project, the tenant that owns rooms, keys and events.
    ProjectId, "pr_", "project"
);
prefixed_id!(
    /// Identifies one incarnation of a room: a room name reused later gets a new sid.
    RoomSid, "rm_", "room"
);
prefixed_id!(
    /// Identifies one session of a participant in a room.
    ParticipantSid, "pa_", "participant"
);
prefixed_id!(
    /// Identifies a published track.
    TrackSid, "tr_", "track"
);
prefixed_id!(
    /// Identifies an event in the event log.
    EventId, "ev_", "event"
);
prefixed_id!(
    /// Identifies a webhook endpoint.
    WebhookId, "wh_", "webhook"
);
prefixed_id!(
    /// Identifies one delivery of one event to one webhook endpoint (with all its attempts).
    DeliveryId, "whd_", "delivery"
);
prefixed_id!(
    /// Identifies one HTTP attempt of a delivery.
    AttemptId, "wha_", "attempt"
);
prefixed_id!(
    /// Identifies a deployed function (all its versions).
    FunctionId, "fn_", "function"
);
prefixed_id!(
    /// Identifies one run of a function.
    InvocationId, "fni_", "invocation"
);
prefixed_id!(
    /// Identifies one event queued for one function's asynchronous handler.
    FunctionJobId, "fnj_", "function job"
);
prefixed_id!(
    /// Identifies a recording of a room.
    RecordingId, "rec_", "recording"
);
prefixed_id!(
    /// Identifies one run of a server process (a node) from start to stop.
    NodeId, "nd_", "node"
);
prefixed_id!(
    /// Identifies a dashboard user (an account owner who signs in with email and password).
    UserId, "usr_", "user"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_string_form() {
        let id = RoomSid::new();
        let s = id.to_string();
        assert!(s.starts_with("rm_"));
        assert_eq!(s.parse::<RoomSid>(), Ok(id));
    }

    #[test]
    fn refuses_the_wrong_prefix_and_garbage() {
        let room = RoomSid::new().to_string();
        assert!(room.parse::<ProjectId>().is_err());
        assert!("rm_".parse::<RoomSid>().is_err());
        assert!("rm_not-a-ulid".parse::<RoomSid>().is_err());
        assert!("".parse::<EventId>().is_err());
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_even_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| EventId::new().to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
