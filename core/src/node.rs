//! Nodes of a deployment, their load, and where a new room goes.
//!
//! Every `switchboard serve` process is a node. Media-capable nodes (role
//! `all` or `media`) host rooms; each room lives on exactly one of them. The
//! registry of nodes is kept in the database (see the store's `nodes`); this
//! module holds the types and [`choose`], the placement rule, as a plain
//! function over a snapshot of the registry so it tests without a cluster.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{NodeId, ProjectId};
use crate::name::RoomName;

/// How often a node records that it is alive, with its load.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Silence after which a node is taken for dead: it gets no new rooms, and
/// its open sessions are closed at its last heartbeat.
pub const DEAD_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

/// [`DEAD_AFTER`] as a span of wall-clock time, to compare with heartbeats.
pub fn dead_after() -> chrono::Duration {
    chrono::Duration::seconds(DEAD_AFTER.as_secs() as i64)
}

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Control plane and media in one process (the single binary).
    All,
    /// Control plane only: REST, webhooks, functions, billing, dashboard.
    Api,
    /// An SFU node in a region.
    Media,
}

impl NodeRole {
    /// The role's name in flags, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Api => "api",
            Self::Media => "media",
        }
    }

    /// Whether nodes of this role host rooms.
    pub fn hosts_media(self) -> bool {
        matches!(self, Self::All | Self::Media)
    }

    /// Whether nodes of this role serve the REST API and run the consumers.
    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "api" => Ok(Self::Api),
            "media" => Ok(Self::Media),
            other => Err(format!(
                "unknown role `{other}`; the roles are `all`, `api` and `media`"
            )),
        }
    }
}

/// The longest region name accepted, in bytes.
pub const MAX_REGION_BYTES: usize = 64;

/// A region name such as `eu-west`: lowercase letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

/// Why a region name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region `{0}` is not a region name: use 1 to {MAX_REGION_BYTES} lowercase letters, digits and dashes, such as `eu-west`")]
pub struct RegionError(String);

impl Region {
    /// Validates `s` as a region name.
    pub fn new(s: impl Into<String>) -> Result<Self, RegionError> {
        let s = s.into();
        let valid = !s.is_empty()
            && s.len() <= MAX_REGION_BYTES
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(s))
        } else {
            // Quote at most a short, printable prefix of what was given.
            let shown: String = s.chars().filter(|c| !c.is_control()).take(40).collect();
            Err(RegionError(shown))
        }
    }

    /// The region's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Region {
    /// The region of a node started without `--region`.
    fn default() -> Self {
        Self("local".into())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, RegionError> {
        Self::new(s)
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, RegionError> {
        Self::new(s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

/// The client's address as a trusted proxy reports it in a header
/// (`X-Forwarded-For` and the like): the last entry over all the header's
/// values, since each proxy appends the address it saw and a client can
/// forge only the ones before.
///
/// ```
/// # use switchboard_core::node::last_forwarded_ip;
/// let ip = last_forwarded_ip(["10.0.0.1, 198.51.100.7", "203.0.113.5"]);
/// assert_eq!(ip, Some("203.0.113.5".parse().unwrap()));
/// assert_eq!(last_forwarded_ip(["garbage"]), None);
/// ```
pub fn last_forwarded_ip<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Option<std::net::IpAddr> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|ip| ip.trim().parse().ok())
}

/// The region nearest a client, by its IP address: a map of networks
/// (`[[placement.client_regions]]`) where the most specific one containing
/// the address wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRegions(Vec<ClientNetwork>);

/// One entry of [`ClientRegions`]: clients in `cidr` are nearest `region`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientNetwork {
    /// A network, such as `203.0.113.0/24` or `2001:db8::/32`.
    pub cidr: ipnet::IpNet,
    /// The region its clients are nearest.
    pub region: Region,
}

impl ClientRegions {
    /// A map of these networks.
    pub fn new(networks: Vec<ClientNetwork>) -> Self {
        Self(networks)
    }

    /// The region of the most specific network containing `ip`, if any does.
    pub fn region_of(&self, ip: std::net::IpAddr) -> Option<&Region> {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.0
            .iter()
            .filter(|n| n.cidr.contains(&ip))
            .max_by_key(|n| n.cidr.prefix_len())
            .map(|n| &n.region)
    }
}

/// What a media node is carrying, as it last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Live rooms.
    pub rooms: u32,
    /// Connected participants.
    pub participants: u32,
    /// Published tracks.
    pub tracks: u32,
    /// Media forwarded to subscribers, in bits per second.
    pub forwarded_bps: u64,
    /// The process's CPU use as a share of the machine (0.0 to 1.0).
    pub cpu: f32,
    /// The newest time (ms since the Unix epoch) the API named this node
    /// for a join that has reached it: joins named later are on their way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_until: Option<i64>,
}

/// A node as the registry holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id, new at every start.
    pub id: NodeId,
    /// What it runs.
    pub role: NodeRole,
    /// Where it is.
    pub region: Region,
    /// The URL clients reach it at (`https://...`); signaling is at `/rtc` under it.
    pub url: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// When it stopped, or was taken for dead and its sessions closed.
    pub stopped_at: Option<DateTime<Utc>>,
    /// When it was told to drain: it takes no new rooms since.
    pub draining_since: Option<DateTime<Utc>>,
    /// What it carried at its last heartbeat.
    pub load: NodeLoad,
}

impl NodeInfo {
    /// Whether the node has reported within `dead_after` of `now`.
    pub fn is_alive(&self, now: DateTime<Utc>, dead_after: chrono::Duration) -> bool {
        self.stopped_at.is_none() && now - self.heartbeat_at <= dead_after
    }
}

/// Whether `node` was replaced by a later process at the same URL (it was
/// restarted after a crash, before its silence was noticed): its rooms are gone.
pub fn superseded(node: &NodeInfo, running: &[NodeInfo]) -> bool {
    running
        .iter()
        .any(|n| n.id != node.id && n.url == node.url && n.started_at > node.started_at)
}

/// Past these, a node takes no new rooms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Share of the machine's CPU.
    pub max_cpu: f32,
    /// Connected participants.
    pub max_participants: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            max_cpu: 0.85,
            max_participants: 2_000,
        }
    }
}

/// Where a new room may go, and how fresh a node must be.
#[derive(Debug, Clone, Copy)]
pub struct PlacementRules {
    /// Silence after which a node is taken for dead.
    pub dead_after: chrono::Duration,
    /// When a node counts as overloaded.
    pub capacity: Capacity,
}

impl PlacementRules {
    /// Whether `node` can take more participants at `now`: a live, undrained
    /// media node under its CPU and participant capacity.
    pub fn can_take(&self, node: &NodeInfo, now: DateTime<Utc>) -> bool {
        node.role.hosts_media()
            && node.draining_since.is_none()
            && node.is_alive(now, self.dead_after)
            && !self.is_full(&node.load)
    }

    /// Whether a node carrying `load` is at its CPU or participant capacity.
    pub fn is_full(&self, load: &NodeLoad) -> bool {
        load.cpu >= self.capacity.max_cpu || self.is_full_of_participants(load)
    }

    /// Whether a node carrying `load` is at its participant capacity: what
    /// sends a live room's next participants to another node of its region
    /// (a CPU share over half a second is too noisy to split rooms by).
    pub fn is_full_of_participants(&self, load: &NodeLoad) -> bool {
        load.participants >= self.capacity.max_participants
    }

    /// Whether a node that reports `load` is at half its participant
    /// capacity or more: the least a live room's node must report before a
    /// join is sent to another node for joins on their way (tokens issued
    /// and not yet used), so the API and the node named agree.
    pub fn is_half_full_of_participants(&self, load: &NodeLoad) -> bool {
        u64::from(load.participants) * 2 >= u64::from(self.capacity.max_participants)
    }
}

/// Why no node could take a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// No healthy media node is in the region (or allowed regions).
    #[error(
        "no media node in {0} can take a new room: none is running, or all are draining or full"
    )]
    NoNode(String),
    /// The project is pinned to regions where no node can take the room.
    #[error(
        "the project is restricted to region(s) {0} (data residency), and no media node there can take a new room"
    )]
    OutsideRegions(String),
}

impl PlacementError {
    /// The refusal for a project pinned to `regions`.
    pub fn outside(regions: &[Region]) -> Self {
        let names: Vec<&str> = regions.iter().map(Region::as_str).collect();
        Self::OutsideRegions(names.join(", "))
    }
}

/// The healthy media node with the most room to spare among those in
/// `regions` (any region when empty), preferring `regions` in their order:
/// the first region with a node that can take the room wins.
///
/// Draining, overloaded, silent and API-only nodes are never chosen. Among
/// the rest, the least loaded wins; ties go to the lowest id, so every API
/// instance picks the same node from the same registry.
pub fn choose<'a>(
    nodes: &'a [NodeInfo],
    regions: &[Region],
    now: DateTime<Utc>,
    rules: &PlacementRules,
) -> Result<&'a NodeInfo, PlacementError> {
    let fits = |n: &&NodeInfo| rules.can_take(n, now);
    let least_loaded = |candidates: Vec<&'a NodeInfo>| {
        candidates.into_iter().min_by(|a, b| {
            load_score(&a.load, &rules.capacity)
                .total_cmp(&load_score(&b.load, &rules.capacity))
                .then_with(|| a.id.cmp(&b.id))
        })
    };
    if regions.is_empty() {
        return least_loaded(nodes.iter().filter(fits).collect())
            .ok_or_else(|| PlacementError::NoNode("any region".into()));
    }
    for region in regions {
        let here = nodes
            .iter()
            .filter(fits)
            .filter(|n| &n.region == region)
            .collect();
        if let Some(node) = least_loaded(here) {
            return Ok(node);
        }
    }
    let names: Vec<&str> = regions.iter().map(Region::as_str).collect();
    Err(PlacementError::NoNode(format!(
        "region {}",
        names.join(" or ")
    )))
}

/// Why a room could not be given a node.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No node can take it.
    #[error(transparent)]
    NoNode(#[from] PlacementError),
    /// The registry could not be read or written.
    #[error("the node registry is unavailable: {0}")]
    Unavailable(String),
}

/// Finds the media node of a room, placing the room first if it has none.
#[async_trait::async_trait]
pub trait RoomRouter: Send + Sync + 'static {
    /// The node that hosts (or will host) `room` of `project`; `hint` is the
    /// region asked for when the room has none of its own.
    async fn route(
        &self,
        project: ProjectId,
        room: &RoomName,
        hint: Option<&Region>,
    ) -> Result<NodeInfo, RouteError>;

    /// Notes that a token now names `node` for a join (a join on its way,
    /// which the node's load does not count yet).
    fn join_named(&self, _node: &NodeInfo) {}
}

/// How full a node is, 0.0 (idle) to 1.0 (at capacity): the larger of its
/// CPU and participant shares, so a node busy on either counts as busy.
fn load_score(load: &NodeLoad, capacity: &Capacity) -> f32 {
    let participants = load.participants as f32 / capacity.max_participants.max(1) as f32;
    let cpu = load.cpu / capacity.max_cpu.max(f32::EPSILON);
    participants.max(cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_network_names_a_clients_region() {
        let net = |cidr: &str, region: &str| ClientNetwork {
            cidr: cidr.parse().unwrap(),
            region: Region::new(region).unwrap(),
        };
        let map = ClientRegions::new(vec![
            net("10.0.0.0/8", "eu-west"),
            net("10.20.0.0/16", "us-east"),
            net("2001:db8::/32", "ap-south"),
        ]);
        let region = |ip: &str| map.region_of(ip.parse().unwrap()).map(Region::as_str);
        assert_eq!(region("10.1.2.3"), Some("eu-west"));
        assert_eq!(region("10.20.2.3"), Some("us-east"));
        assert_eq!(region("::ffff:10.20.2.3"), Some("us-east"));
        assert_eq!(region("2001:db8:1::5"), Some("ap-south"));
        assert_eq!(region("192.0.2.1"), None);
        assert_eq!(
            ClientRegions::default().region_of("10.1.2.3".parse().unwrap()),
            None
        );
        // Garbage in the configuration is refused with what is wrong.
        #[derive(Debug, Deserialize)]
        struct File {
            #[allow(dead_code)]
            client_regions: Vec<ClientNetwork>,
        }
        for bad in [
            r#"client_regions = [{ cidr = "10.0.0.0/33", region = "eu-west" }]"#,
            r#"client_regions = [{ cidr = "10.0.0.0/8", region = "EU" }]"#,
            r#"client_regions = [{ cidr = "10.0.0.0/8" }]"#,
            r#"client_regions = [{ cidr = "10.0.0.0/8", region = "eu-west", extra = 1 }]"#,
        ] {
            assert!(toml::from_str::<File>(bad).is_err(), "{bad}");
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn node(region: &str, participants: u32, cpu: f32) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(),
            role: NodeRole::Media,
            region: Region::new(region).unwrap(),
            url: format!("http://{region}.example"),
            started_at: at(0),
            heartbeat_at: at(100),
            stopped_at: None,
            draining_since: None,
            load: NodeLoad {
                participants,
                cpu,
                ..NodeLoad::default()
            },
        }
    }

    fn rules() -> PlacementRules {
        PlacementRules {
            dead_after: chrono::Duration::seconds(15),
            capacity: Capacity::default(),
        }
    }

    fn regions(names: &[&str]) -> Vec<Region> {
        names.iter().map(|n| Region::new(*n).unwrap()).collect()
    }

    #[test]
    fn the_least_loaded_node_of_the_region_is_chosen() {
        let nodes = vec![
            node("eu-west", 10, 0.1),
            node("eu-west", 3, 0.05),
            node("us-east", 0, 0.0),
        ];
        let chosen = choose(&nodes, &regions(&["eu-west"]), at(105), &rules()).unwrap();
        assert_eq!(chosen.id, nodes[1].id);
        // Busy on CPU counts as busy even with few participants.
        let nodes = vec![node("eu-west", 1, 0.7), node("eu-west", 50, 0.1)];
        let chosen = choose(&nodes, &regions(&["eu-west"]), at(105), &rules()).unwrap();
        assert_eq!(chosen.id, nodes[1].id);
    }

    #[test]
    fn draining_silent_overloaded_and_api_nodes_are_never_chosen() {
        let mut draining = node("eu-west", 0, 0.0);
        draining.draining_since = Some(at(50));
        let mut silent = node("eu-west", 0, 0.0);
        silent.heartbeat_at = at(80);
        let overloaded_cpu = node("eu-west", 0, 0.9);
        let full = node("eu-west", 2_000, 0.1);
        let mut api = node("eu-west", 0, 0.0);
        api.role = NodeRole::Api;
        let busy_but_fine = node("eu-west", 1_500, 0.5);
        let mut nodes = vec![draining, silent, overloaded_cpu, full, api];
        assert_eq!(
            choose(&nodes, &regions(&["eu-west"]), at(105), &rules()),
            Err(PlacementError::NoNode("region eu-west".into()))
        );
        nodes.push(busy_but_fine);
        let chosen = choose(&nodes, &regions(&["eu-west"]), at(105), &rules()).unwrap();
        assert_eq!(chosen.id, nodes[5].id);
    }

    #[test]
    fn regions_are_tried_in_order_and_none_means_any() {
        let nodes = vec![node("us-east", 5, 0.1), node("eu-west", 9, 0.2)];
        let chosen = choose(
            &nodes,
            &regions(&["ap-south", "eu-west"]),
            at(105),
            &rules(),
        )
        .unwrap();
        assert_eq!(chosen.region.as_str(), "eu-west");
        let chosen = choose(&nodes, &[], at(105), &rules()).unwrap();
        assert_eq!(chosen.region.as_str(), "us-east");
        assert_eq!(
            choose(&nodes, &regions(&["ap-south"]), at(105), &rules()).unwrap_err().to_string(),
            "no media node in region ap-south can take a new room: none is running, or all are draining or full"
        );
    }

    #[test]
    fn ties_go_to_the_lowest_id_so_every_api_instance_agrees() {
        let nodes = vec![node("eu-west", 2, 0.0), node("eu-west", 2, 0.0)];
        let lowest = nodes.iter().map(|n| n.id).min().unwrap();
        let chosen = choose(&nodes, &[], at(105), &rules()).unwrap();
        assert_eq!(chosen.id, lowest);
    }

    #[test]
    fn garbage_region_names_and_roles_are_refused() {
        for bad in ["", "EU", "eu west", "é", "a\nb", &"x".repeat(65)] {
            let err = Region::new(bad).unwrap_err().to_string();
            assert!(
                err.contains("lowercase letters, digits and dashes"),
                "{bad:?}: {err}"
            );
        }
        assert!(Region::new("eu-west-2").is_ok());
        assert_eq!("media".parse::<NodeRole>(), Ok(NodeRole::Media));
        assert!("sfu"
            .parse::<NodeRole>()
            .unwrap_err()
            .contains("`all`, `api` and `media`"));
    }
}
