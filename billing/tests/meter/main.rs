//! The meter against a real database on both backends: sessions from events,
//! video and audio, period boundaries, one identity's overlapping sessions,
//! skewed clocks, replays, and the sessions of a node that died; what is read
//! back from them; and the same log metered in one batch or event by event.

mod batching;
mod fixture;
mod reports;
mod sessions;
