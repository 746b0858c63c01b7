//! What a webhook endpoint subscribes to and where it may point.
//!
//! Both are plain rules, checked when an endpoint is created or changed and
//! again when a delivery connects: [`EventTypes`] says which events of the
//! catalogue an endpoint receives, and [`AddressPolicy`] keeps deliveries away
//! from the server's own network (loopback, private ranges, cloud metadata)
//! unless the server runs in development mode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::event::EventPayload;

/// Longest endpoint URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Most event type patterns one endpoint may list.
pub const MAX_PATTERNS: usize = 64;

/// Why an endpoint's settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse or has no host.
    #[error("`{url}` is not a valid URL: {reason}")]
    InvalidUrl {
        /// What was given (cut to 100 characters).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `http` outside development mode.
    #[error("webhook URLs must use https (plain http is accepted only with --dev)")]
    InsecureUrl,
    /// The URL names an address deliveries may not reach.
    #[error("{0}")]
    ForbiddenAddress(String),
    /// An event type pattern names nothing in the catalogue.
    #[error("`{0}` is not an event type; use one of {types}, a prefix such as `room.*`, or `*`", types = EventPayload::TYPES.join(", "))]
    UnknownEventType(String),
    /// No patterns, or too many.
    #[error("events must list between 1 and {MAX_PATTERNS} event types")]
    PatternCount,
}

/// The event types an endpoint receives: exact names (`participant.joined`),
/// prefixes (`room.*`) or everything (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct EventTypes(Vec<String>);

impl EventTypes {
    /// Checks every pattern against the catalogue.
    pub fn new(patterns: Vec<String>) -> Result<Self, WebhookError> {
        if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
            return Err(WebhookError::PatternCount);
        }
        for p in &patterns {
            let known = if p == "*" {
                true
            } else if let Some(prefix) = p.strip_suffix(".*") {
                EventPayload::TYPES
                    .iter()
                    .any(|t| t.split_once('.').is_some_and(|(head, _)| head == prefix))
            } else {
                EventPayload::TYPES.contains(&p.as_str())
            };
            if !known {
                return Err(WebhookError::UnknownEventType(
                    p.chars().take(100).collect(),
                ));
            }
        }
        Ok(Self(patterns))
    }

    /// Whether an event of type `event_type` is wanted.
    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|p| {
            p == "*"
                || p == event_type
                || p.strip_suffix('*')
                    .is_some_and(|prefix| event_type.starts_with(prefix))
        })
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for EventTypes {
    type Error = WebhookError;

    fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<EventTypes> for Vec<String> {
    fn from(t: EventTypes) -> Self {
        t.0
    }
}

/// Where deliveries may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Accept plain `http` URLs.
    pub allow_http: bool,
    /// Accept loopback, private, link-local and other non-public addresses.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Production: https only, public addresses only.
    pub const STRICT: Self = Self {
        allow_http: false,
        allow_private: false,
    };
    /// Development: anything, so a receiver on localhost works.
    pub const DEV: Self = Self {
        allow_http: true,
        allow_private: true,
    };

    /// Checks an endpoint URL as given, before any DNS lookup.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, WebhookError> {
        let invalid = |reason: &str| WebhookError::InvalidUrl {
            url: raw.chars().take(100).collect(),
            reason: reason.to_owned(),
        };
        if raw.len() > MAX_URL_LEN {
            return Err(invalid(&format!("longer than {MAX_URL_LEN} bytes")));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(WebhookError::InsecureUrl),
            _ => return Err(invalid("the scheme must be https")),
        }
        match url.host() {
            None => return Err(invalid("it has no host")),
            Some(url::Host::Ipv4(ip)) => self.check_ip(url.host_str().unwrap_or(""), ip.into())?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(url.host_str().unwrap_or(""), ip.into())?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// Checks one address a delivery would connect to (`host` names it in the error).
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), WebhookError> {
        if self.allow_private {
            return Ok(());
        }
        match non_public_kind(ip) {
            None => Ok(()),
            Some(kind) => Err(WebhookError::ForbiddenAddress(format!(
                "`{host}` is {ip}, {kind}; webhooks may only reach public addresses (any address is allowed with --dev)"
            ))),
        }
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return v4_kind(v4).or_else(|| v6_kind(v6));
            }
            v6_kind(v6)
        }
    }
}

/// The IPv4 address an IPv6 form carries and that a host or relay may reach
/// in its stead: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, deprecated but still routed by some stacks), 6to4
/// (`2002:aabb:ccdd::/48`) and Teredo (`2001:0::/32`, the client's address
/// stored inverted in the last 32 bits).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        Some(v4(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(v4(s[1], s[2]))
    } else if s[0] == 0x2001 && s[1] == 0 {
        Some(v4(!s[6], !s[7]))
    } else {
        None
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("a broadcast, multicast or reserved address")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Some("a documentation or benchmarking address")
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique local (private) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("a documentation address")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 can embed any IPv4 address, private ones included.
        Some("a NAT64 address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(p: &[&str]) -> Result<EventTypes, WebhookError> {
        EventTypes::new(p.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn patterns_match_exact_names_prefixes_and_everything() {
        let t = types(&["participant.joined", "room.*"]).unwrap();
        assert!(t.matches("participant.joined"));
        assert!(t.matches("room.started"));
        assert!(t.matches("room.finished"));
        assert!(!t.matches("participant.left"));
        assert!(!t.matches("track.published"));
        let all = types(&["*"]).unwrap();
        assert!(EventPayload::TYPES.iter().all(|ty| all.matches(ty)));
    }

    #[test]
    fn unknown_patterns_are_refused_with_the_catalogue() {
        for bad in [
            "room.begun",
            "rooms.*",
            "",
            "*.*",
            "room",
            "participant.joined ",
        ] {
            let err = types(&[bad]).unwrap_err();
            assert!(err.to_string().contains("room.started"), "{bad}: {err}");
        }
        assert_eq!(types(&[]), Err(WebhookError::PatternCount));
        let many: Vec<&str> = vec!["*"; MAX_PATTERNS + 1];
        assert_eq!(types(&many), Err(WebhookError::PatternCount));
    }

    #[test]
    fn strict_policy_wants_https_and_public_addresses() {
        let p = AddressPolicy::STRICT;
        assert!(p.check_url("https://hooks.example.com/switchboard").is_ok());
        assert!(p.check_url("https://93.184.216.34:8443/x").is_ok());
        // Forms that embed a public IPv4 address stay public.
        assert!(p.check_url("https://[2002:5db8:d822::1]/").is_ok());
        assert!(p.check_url("https://[2001:4860:4860::8888]/").is_ok());
        assert_eq!(
            p.check_url("http://hooks.example.com/"),
            Err(WebhookError::InsecureUrl)
        );
        for bad in [
            "https://127.0.0.1/",
            "https://127.8.9.10:9000/",
            "https://[::1]/",
            "https://0.0.0.0/",
            "https://10.0.0.8/",
            "https://172.16.3.4/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            // IPv4-compatible, 6to4 and Teredo forms of loopback, private and metadata addresses.
            "https://[::127.0.0.1]/",
            "https://[::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[2002:c0a8:0101::]/",
            "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
            "https://[2001:0:4136:e378:8000:63bf:5601:5601]/",
            "https://224.0.0.1/",
            "https://0x7f000001/",
            "https://2130706433/",
        ] {
            let err = p.check_url(bad).unwrap_err();
            assert!(
                matches!(err, WebhookError::ForbiddenAddress(_)),
                "{bad}: {err}"
            );
        }
        for garbage in [
            "",
            "not a url",
            "ftp://example.com/",
            "https://",
            "mailto:x@y.z",
        ] {
            assert!(p.check_url(garbage).is_err(), "{garbage}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(
            p.check_url(&long),
            Err(WebhookError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn dev_policy_accepts_local_receivers() {
        let p = AddressPolicy::DEV;
        assert!(p.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(p.check_url("http://localhost/hook").is_ok());
        assert!(p.check_url("ftp://localhost/hook").is_err());
    }
}
