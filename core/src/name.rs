//! Validated names chosen by users: room names and participant identities.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("{0} is {1} bytes long; the limit is {MAX_NAME_BYTES} bytes")]
    TooLong(&'static str, usize),
    /// The name contains a control character (newline, NUL, ...).
    #[error("{0} must not contain control characters (found U+{1:04X})")]
    ControlCharacter(&'static str, u32),
}

fn validate(what: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty(what));
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(what, s.len()));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(NameError::ControlCharacter(what, c as u32));
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as a name of this kind.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                validate($what, &s)?;
                Ok(Self(s))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_NAME_BYTES))
                    .description(Some(concat!("A ", $what, ": 1 to 128 bytes of UTF-8 without control characters.")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

validated_name!(
    /// The name of a room, unique within its project.
    RoomName, "room name"
);
validated_name!(
    /// The identity of a participant, unique within its room.
    Identity, "identity"
);

impl RoomName {
    /// A fresh random room name, for rooms created without one.
    pub fn generate() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut rng = rand::thread_rng();
        let mut s = String::from("room-");
        for i in 0..12 {
            if i == 4 || i == 8 {
                s.push('-');
            }
            s.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
        }
        Self(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert!(RoomName::new("standup").is_ok());
        assert!(RoomName::new("réunion du lundi 🎥").is_ok());
        assert!(Identity::new("a".repeat(MAX_NAME_BYTES)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_control_characters() {
        assert_eq!(RoomName::new(""), Err(NameError::Empty("room name")));
        assert!(matches!(
            RoomName::new("a".repeat(129)),
            Err(NameError::TooLong(_, 129))
        ));
        assert!(matches!(
            Identity::new("bob\nsmith"),
            Err(NameError::ControlCharacter(_, 0x0a))
        ));
        assert!(Identity::new("nul\0").is_err());
    }

    #[test]
    fn refuses_bad_names_when_deserialized() {
        assert!(serde_json::from_str::<RoomName>("\"\"").is_err());
        assert!(serde_json::from_str::<RoomName>("\"ok\"").is_ok());
    }

    #[test]
    fn generated_names_are_valid_and_distinct() {
        let a = RoomName::generate();
        let b = RoomName::generate();
        assert_ne!(a, b);
        assert!(RoomName::new(a.as_str()).is_ok());
    }
}
