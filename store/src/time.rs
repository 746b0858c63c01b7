//! Conversions between timestamps and the microsecond integers stored on disk.

use chrono::{DateTime, Utc};

use crate::StoreError;

pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} is out of range")))
}

/// `t` cut to the microsecond precision the database keeps, so what is returned equals what is read back.
pub(crate) fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}
