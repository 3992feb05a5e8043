//! One bond: its configuration, LACP, member enablement and hash buckets, and the
//! [`Distribution`] the datapath reads per frame. The control thread owns a `Bond`, feeds it
//! carrier changes, received LACP frames, bucket loads and the time, and publishes the
//! distribution when it changes; PMDs only read the published copy.

use std::time::Duration;

use crate::buckets::{BUCKETS, Buckets, NO_MEMBER};
use crate::hash;
use crate::lacp::{Lacp, LacpConfig, Negotiation, PduError, SystemId};
use crate::links::Links;

/// Most members a bond may have (a bitmask of them fits a u32).
pub const MAX_MEMBERS: usize = 32;
/// Open vSwitch's default rebalance interval.
pub const DEFAULT_REBALANCE_INTERVAL: Duration = Duration::from_secs(10);

/// How a bond spreads traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BondMode {
    /// One member carries everything; the others wait.
    ActiveBackup,
    /// By source MAC and VLAN; no LACP needed (the upstream switch sees each MAC on one link).
    BalanceSlb,
    /// By L3/L4 flow; needs LACP (the upstream switch must treat the links as one).
    BalanceTcp,
}

impl BondMode {
    pub fn name(self) -> &'static str {
        match self {
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceSlb => "balance-slb",
            BondMode::BalanceTcp => "balance-tcp",
        }
    }

    pub fn parse(s: &str) -> Option<BondMode> {
        match s {
            "active-backup" => Some(BondMode::ActiveBackup),
            "balance-slb" => Some(BondMode::BalanceSlb),
            "balance-tcp" => Some(BondMode::BalanceTcp),
            _ => None,
        }
    }
}

/// Whether and how the bond runs LACP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LacpMode {
    Off,
    Passive,
    Active,
}

impl LacpMode {
    pub fn name(self) -> &'static str {
        match self {
            LacpMode::Off => "off",
            LacpMode::Passive => "passive",
            LacpMode::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<LacpMode> {
        match s {
            "off" => Some(LacpMode::Off),
            "passive" => Some(LacpMode::Passive),
            "active" => Some(LacpMode::Active),
            _ => None,
        }
    }
}

/// A bond's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BondConfig {
    pub mode: BondMode,
    pub lacp: LacpMode,
    /// LACP fast (1 s PDUs, 3 s expiry) rather than slow (30 s, 90 s).
    pub lacp_fast: bool,
    pub fallback_ab: bool,
    /// The member preferred as active (index into the members).
    pub primary: Option<usize>,
    pub updelay: Duration,
    pub downdelay: Duration,
    /// How often balance modes move buckets by load; zero never.
    pub rebalance_interval: Duration,
    /// LACP system identity and key.
    pub system: SystemId,
    pub key: u16,
}

impl BondConfig {
    pub fn new(mode: BondMode, lacp: LacpMode, system: SystemId, key: u16) -> BondConfig {
        BondConfig {
            mode,
            lacp,
            lacp_fast: false,
            fallback_ab: false,
            primary: None,
            updelay: Duration::ZERO,
            downdelay: Duration::ZERO,
            rebalance_interval: DEFAULT_REBALANCE_INTERVAL,
            system,
            key,
        }
    }

    fn lacp_config(&self) -> Option<LacpConfig> {
        (self.lacp != LacpMode::Off).then_some(LacpConfig {
            system: self.system,
            key: self.key,
            active: self.lacp == LacpMode::Active,
            fast: self.lacp_fast,
            fallback_ab: self.fallback_ab,
        })
    }
}

/// A bond that cannot be built as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BondError {
    NoMembers,
    TooManyMembers(usize),
    /// balance-tcp hashes flows over links the upstream switch must aggregate: LACP says so.
    TcpNeedsLacp,
    NoSuchPrimary(usize),
}

impl std::fmt::Display for BondError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BondError::NoMembers => write!(f, "a bond needs at least one member"),
            BondError::TooManyMembers(n) => {
                write!(f, "{n} members: a bond has at most {MAX_MEMBERS}")
            }
            BondError::TcpNeedsLacp => {
                write!(
                    f,
                    "bond_mode=balance-tcp requires lacp=active or lacp=passive"
                )
            }
            BondError::NoSuchPrimary(i) => {
                write!(f, "bond-primary names member {i}, not in the bond")
            }
        }
    }
}

impl std::error::Error for BondError {}

/// How the datapath picks a member for a frame right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Everything in and out of the active member (active-backup, or LACP's fallback to it).
    Active,
    /// Buckets by source MAC and VLAN; floods out of, and only accepted on, the active member.
    Slb,
    /// Buckets by L3/L4 flow, any enabled member in and out.
    L4,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Active => "active-backup",
            Policy::Slb => "balance-slb",
            Policy::L4 => "balance-tcp",
        }
    }
}

/// What PMDs read per frame: which member a frame leaves by and which members frames may
/// arrive on. Plain data, copied when published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    pub policy: Policy,
    /// The active member, or [`NO_MEMBER`].
    pub active: u8,
    /// Bit i: member i carries traffic.
    pub enabled: u32,
    pub buckets: [u8; BUCKETS],
}

fn is_multicast(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 1)
}

impl Distribution {
    /// No member enabled: everything is dropped.
    pub fn down() -> Distribution {
        Distribution {
            policy: Policy::Active,
            active: NO_MEMBER,
            enabled: 0,
            buckets: [NO_MEMBER; BUCKETS],
        }
    }

    /// The bucket a frame hashes to under the balance policies (for load counting).
    #[inline]
    pub fn bucket(&self, frame: &[u8]) -> usize {
        let h = match self.policy {
            Policy::Slb => hash::slb_hash(frame),
            Policy::L4 | Policy::Active => hash::l4_hash(frame),
        };
        hash::bucket_of(h)
    }

    /// What decides an untagged frame's balance-slb bucket, as one number (its source MAC and
    /// ethertype): consecutive frames with the same key share the bucket, so a sender can skip
    /// the hash. None for other policies and tagged or short frames.
    #[inline]
    pub fn slb_key(&self, frame: &[u8]) -> Option<u64> {
        if self.policy != Policy::Slb {
            return None;
        }
        let b: [u8; 8] = frame.get(6..14)?.try_into().ok()?;
        let key = u64::from_be_bytes(b);
        let ethertype = key & 0xffff;
        (ethertype != 0x8100 && ethertype != 0x88a8).then_some(key)
    }

    /// The member `frame` leaves by, or `None` when no member is enabled. Under balance-slb,
    /// floods go out of the active member only, so the upstream switch never sees a frame
    /// twice.
    #[inline]
    pub fn tx_member(&self, frame: &[u8]) -> Option<usize> {
        let m = match self.policy {
            Policy::Active => self.active,
            _ => self.member_in_bucket(frame, self.bucket(frame)),
        };
        (m != NO_MEMBER).then_some(usize::from(m))
    }

    /// [`Distribution::tx_member`] for a balancing policy when the caller already has the
    /// frame's bucket: the member index, or [`NO_MEMBER`].
    #[inline]
    pub fn member_in_bucket(&self, frame: &[u8], bucket: usize) -> u8 {
        match self.policy {
            Policy::Active => self.active,
            Policy::Slb if is_multicast(frame) => self.active,
            Policy::Slb | Policy::L4 => self.buckets[bucket & (BUCKETS - 1)],
        }
    }

    /// Whether a frame received on `member` enters the bridge. A disabled member's frames
    /// never do; in active-backup only the active member's do; in balance-slb floods only on
    /// the active member (the others would see the upstream switch's copies of the same
    /// flood, or our own floods reflected).
    #[inline]
    pub fn rx_admit(&self, member: usize, frame: &[u8]) -> bool {
        if member >= MAX_MEMBERS || self.enabled & (1 << member) == 0 {
            return false;
        }
        match self.policy {
            Policy::Active => usize::from(self.active) == member,
            Policy::Slb => !is_multicast(frame) || usize::from(self.active) == member,
            Policy::L4 => true,
        }
    }
}

/// What one [`Bond::run`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BondEvents {
    /// The distribution differs from the last one: publish it.
    pub distribution_changed: bool,
    /// The active member changed from, to (learning packets go out of the new one).
    pub failover: Option<(Option<usize>, Option<usize>)>,
    /// Buckets moved by the rebalance.
    pub rebalanced: usize,
}

/// One bond's control state.
#[derive(Clone, Debug)]
pub struct Bond {
    config: BondConfig,
    n: usize,
    carrier: Vec<bool>,
    lacp: Option<Lacp>,
    links: Links,
    buckets: Buckets,
    next_rebalance: Option<Duration>,
    distribution: Distribution,
}

/// A member as the bond sees it at creation: its LACP port number and its MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    pub port: u16,
    pub mac: [u8; 6],
}

fn check(config: &BondConfig, n: usize) -> Result<(), BondError> {
    if n == 0 {
        return Err(BondError::NoMembers);
    }
    if n > MAX_MEMBERS {
        return Err(BondError::TooManyMembers(n));
    }
    if config.mode == BondMode::BalanceTcp && config.lacp == LacpMode::Off {
        return Err(BondError::TcpNeedsLacp);
    }
    match config.primary {
        Some(p) if p >= n => Err(BondError::NoSuchPrimary(p)),
        _ => Ok(()),
    }
}

impl Bond {
    pub fn new(config: BondConfig, members: &[MemberSpec]) -> Result<Bond, BondError> {
        check(&config, members.len())?;
        let lacp = config.lacp_config().map(|c| {
            let mut l = Lacp::new(c);
            for m in members {
                l.add_member(m.port, 0xff, m.mac);
            }
            l
        });
        let mut links = Links::new(members.len());
        links.updelay = config.updelay;
        links.downdelay = config.downdelay;
        links.primary = config.primary;
        Ok(Bond {
            config,
            n: members.len(),
            carrier: vec![false; members.len()],
            lacp,
            links,
            buckets: Buckets::default(),
            next_rebalance: None,
            distribution: Distribution::down(),
        })
    }

    /// Changes the settings live (same members). LACP keeps its partners unless it is turned
    /// off or on; buckets stay where they are.
    pub fn reconfigure(
        &mut self,
        config: BondConfig,
        members: &[MemberSpec],
    ) -> Result<(), BondError> {
        check(&config, self.n)?;
        match (config.lacp_config(), self.lacp.as_mut()) {
            (Some(c), Some(l)) => l.reconfigure(c),
            (Some(c), None) => {
                let mut l = Lacp::new(c);
                for m in members {
                    l.add_member(m.port, 0xff, m.mac);
                }
                for (i, &up) in self.carrier.iter().enumerate() {
                    l.set_carrier(i, up, Duration::ZERO);
                }
                self.lacp = Some(l);
            }
            (None, _) => self.lacp = None,
        }
        self.links.updelay = config.updelay;
        self.links.downdelay = config.downdelay;
        self.links.primary = config.primary;
        if config.rebalance_interval != self.config.rebalance_interval {
            self.next_rebalance = None;
        }
        self.config = config;
        Ok(())
    }

    pub fn config(&self) -> &BondConfig {
        &self.config
    }

    pub fn lacp(&self) -> Option<&Lacp> {
        self.lacp.as_ref()
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    pub fn carrier(&self, idx: usize) -> bool {
        self.carrier.get(idx).copied().unwrap_or(false)
    }

    pub fn distribution(&self) -> &Distribution {
        &self.distribution
    }

    /// A member's link went up or down (call [`Bond::run`] after).
    pub fn set_carrier(&mut self, idx: usize, up: bool, now: Duration) {
        if let Some(c) = self.carrier.get_mut(idx) {
            *c = up;
            if let Some(l) = self.lacp.as_mut() {
                l.set_carrier(idx, up, now);
            }
        }
    }

    /// A Slow Protocols frame arrived on member `idx`. Without LACP it is counted nowhere
    /// and dropped by the caller.
    pub fn receive_lacp(
        &mut self,
        idx: usize,
        frame: &[u8],
        now: Duration,
    ) -> Result<(), PduError> {
        match self.lacp.as_mut() {
            Some(l) => l.receive(idx, frame, now),
            None => Ok(()),
        }
    }

    /// LACP frames due now, as (member, frame).
    pub fn transmit_lacp(&mut self, now: Duration, send: impl FnMut(usize, &[u8])) {
        if let Some(l) = self.lacp.as_mut() {
            l.transmit(now, send);
        }
    }

    /// Bytes the datapath sent per bucket since the last call.
    pub fn add_loads(&mut self, bytes: &[u64; BUCKETS]) {
        self.buckets.add_loads(bytes);
    }

    /// Operator's choice of active member (`bond-set-active-member`).
    pub fn set_active_member(&mut self, idx: usize) -> Result<BondEvents, &'static str> {
        let before = self.links.active();
        self.links.set_active(idx)?;
        let failover = (before != Some(idx)).then_some((before, Some(idx)));
        Ok(BondEvents {
            distribution_changed: self.publish(),
            failover,
            rebalanced: 0,
        })
    }

    /// What the datapath should do now: LACP timers, member enablement, buckets, rebalance.
    pub fn run(&mut self, now: Duration) -> BondEvents {
        if let Some(l) = self.lacp.as_mut() {
            l.run(now);
        }
        let usable: Vec<bool> = (0..self.n)
            .map(|i| self.carrier[i] && self.lacp.as_ref().is_none_or(|l| l.may_enable(i)))
            .collect();
        let changes = self.links.update(&usable, now);
        if changes.enabled_changed {
            self.buckets.assign(&self.links.enabled());
        }
        let mut rebalanced = 0;
        let balancing = matches!(self.policy(), Policy::Slb | Policy::L4);
        if balancing && !self.config.rebalance_interval.is_zero() {
            let due = *self
                .next_rebalance
                .get_or_insert(now + self.config.rebalance_interval);
            if now >= due {
                rebalanced = self.buckets.rebalance(&self.links.enabled());
                self.next_rebalance = Some(now + self.config.rebalance_interval);
            }
        }
        BondEvents {
            distribution_changed: self.publish(),
            failover: changes.active_changed,
            rebalanced,
        }
    }

    /// The earliest time [`Bond::run`] or [`Bond::transmit_lacp`] has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        [
            self.lacp.as_ref().and_then(|l| l.next_deadline()),
            self.links.next_deadline(),
            self.next_rebalance,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The policy in force: balance-tcp only while LACP is negotiated; LACP's fallback runs
    /// the members as active-backup.
    pub fn policy(&self) -> Policy {
        let negotiated = self
            .lacp
            .as_ref()
            .is_none_or(|l| l.negotiation() == Negotiation::Negotiated);
        match self.config.mode {
            BondMode::ActiveBackup => Policy::Active,
            _ if !negotiated => Policy::Active,
            BondMode::BalanceSlb => Policy::Slb,
            BondMode::BalanceTcp => Policy::L4,
        }
    }

    fn publish(&mut self) -> bool {
        let enabled = self
            .links
            .links()
            .iter()
            .enumerate()
            .filter(|(_, l)| l.enabled)
            .fold(0u32, |acc, (i, _)| acc | 1 << i);
        let d = Distribution {
            policy: self.policy(),
            active: self.links.active().map_or(NO_MEMBER, |a| a as u8),
            enabled,
            buckets: *self.buckets.table(),
        };
        let changed = d != self.distribution;
        self.distribution = d;
        changed
    }
}
