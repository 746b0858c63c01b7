//! Data messages between participants, and from the server, over the
//! participants' data channels.

use std::sync::Arc;

use super::live::Room;
use super::participant::{Participant, DATA_BURST, DATA_PER_S};

/// Largest data message forwarded, in bytes.
pub const MAX_DATA_BYTES: usize = 15 * 1024;

impl Room {
    /// Forwards a data message from `from` to everyone else on the same kind of channel.
    pub async fn forward_data(
        &self,
        from: &Participant,
        reliable: bool,
        data: &[u8],
    ) -> Result<(), String> {
        if !from.permissions().can_publish_data {
            return Err("this participant may not send data (token lacks can_publish_data)".into());
        }
        if data.len() > MAX_DATA_BYTES {
            return Err(format!(
                "data message of {} bytes is over the {MAX_DATA_BYTES}-byte limit",
                data.len()
            ));
        }
        if !from
            .data_rate
            .lock()
            .try_take(std::time::Instant::now(), 1.0)
        {
            return Err(format!(
                "at most {DATA_BURST} data messages at once, then {DATA_PER_S} a second"
            ));
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Incoming {
            #[serde(default)]
            topic: Option<String>,
            payload: String,
        }
        let msg: Incoming = serde_json::from_slice(data)
            .map_err(|e| format!("data message is not {{topic?, payload}} JSON: {e}"))?;
        let out = serde_json::json!({ "from": from.identity.as_str(), "topic": msg.topic, "payload": msg.payload }).to_string();
        deliver_data(self.others(from.sid), reliable, &out);
        self.remote.forward_data(reliable, &out);
        Ok(())
    }

    /// Sends a data message from the server (`from: null`) to everyone, reliably.
    pub async fn send_server_data(&self, topic: Option<&str>, payload: &str) -> Result<(), String> {
        if payload.len() > MAX_DATA_BYTES {
            return Err(format!(
                "data message of {} bytes is over the {MAX_DATA_BYTES}-byte limit",
                payload.len()
            ));
        }
        let out =
            serde_json::json!({ "from": null, "topic": topic, "payload": payload }).to_string();
        deliver_data(self.participants(), true, &out);
        self.remote.forward_data(true, &out);
        Ok(())
    }
}

/// Sends `text` on each participant's reliable or lossy data channel.
pub(super) fn deliver_data(to: Vec<Arc<Participant>>, reliable: bool, text: &str) {
    for p in to {
        // A connection without the server's data channels (WHIP, WHEP) drops it.
        p.subscriber.send_data(reliable, text.to_owned());
    }
}
