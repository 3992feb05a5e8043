//! The typed configuration the control plane hands the datapath: what to change
//! ([`Change`]), and what a port is ([`PortSpec`]). Everything here was parsed and validated at
//! the edge (the CLI, the state file); the datapath only checks what depends on its own state
//! (names in use, a peer that exists, an interface that opens).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use flowtable::{Match, PortLimits, Rule};
use qos::{ClassMap, PolicerConfig, SchedulerConfig, Trust};
use vlan_vxlan::VlanMode;

pub use crate::afxdp::{AfXdpOptions, XdpModeRequest};
pub use crate::dpdk_options::{DEFAULT_DESCRIPTORS, DpdkOptions};
pub use crate::tunnel::{TunnelKey, VxlanConfig};
pub use bond::{BondMode, LacpMode};
pub use vhost_user::{Mode as VhostUserMode, VhostUserOptions};

/// One configuration change. A list of them is applied as one transaction: all or nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    AddBridge {
        name: String,
    },
    /// Removes the bridge with its ports and rules.
    DelBridge {
        name: String,
    },
    AddPort {
        bridge: String,
        port: PortSpec,
    },
    DelPort {
        bridge: String,
        name: String,
    },
    /// New switch-side settings of a port (VLANs, VTEP address, learning limits, QoS), live.
    SetPort {
        name: String,
        settings: PortSettings,
    },
    /// Adds a rule, replacing one with the same priority and match.
    AddRule {
        bridge: String,
        rule: Rule,
    },
    /// Removes the rule with exactly this priority and match.
    DelRule {
        bridge: String,
        priority: u16,
        m: Match,
    },
    /// The operator's tunnel routes, as a whole.
    SetRoutes(Vec<Route>),
    /// Adds a meter to the bridge, or gives an existing one a new profile (its counts restart).
    SetMeter {
        bridge: String,
        id: u32,
        policer: PolicerConfig,
    },
    DelMeter {
        bridge: String,
        id: u32,
    },
    /// New settings of a bond (mode, LACP, delays, primary), live: members keep their LACP
    /// partners and the buckets stay where they are.
    SetBond {
        name: String,
        settings: BondSettings,
    },
}

/// A port to create.
#[derive(Clone, Debug, PartialEq)]
pub struct PortSpec {
    pub name: String,
    pub ofport: u32,
    pub kind: PortKind,
    pub settings: PortSettings,
}

/// What kind of port, with its type options.
#[derive(Clone, Debug, PartialEq)]
pub enum PortKind {
    /// An in-memory port, joined to `peer` (another ring port) when given.
    Ring { peer: Option<String> },
    /// A queue of a kernel interface through an AF_XDP socket.
    AfXdp {
        iface: String,
        options: AfXdpOptions,
    },
    /// A DPDK ethdev port: a NIC or VF bound to vfio-pci, or a DPDK virtual device.
    Dpdk(DpdkOptions),
    /// A virtio-net device for a VM.
    VhostUser(VhostUserOptions),
    /// A VXLAN tunnel port over the VTEPs.
    Vxlan(VxlanConfig),
    /// A bond of member ports (ring, AF_XDP or vhost-user ones).
    Bond(BondSpec),
}

impl PortKind {
    /// The type name operators use (`type=`).
    pub fn name(&self) -> &'static str {
        match self {
            PortKind::Ring { .. } => "ring",
            PortKind::AfXdp { .. } => "afxdp",
            PortKind::Dpdk(_) => "dpdk",
            PortKind::VhostUser(_) => "vhost-user",
            PortKind::Vxlan(_) => "vxlan",
            PortKind::Bond(_) => "bond",
        }
    }
}

/// A bond's members and settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BondSpec {
    pub members: Vec<BondMember>,
    pub settings: BondSettings,
}

/// One member of a bond: a port that is not a port of the bridge by itself.
#[derive(Clone, Debug, PartialEq)]
pub struct BondMember {
    pub name: String,
    pub kind: PortKind,
}

/// How a bond runs (the `add-bond` and `set port` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondSettings {
    pub mode: BondMode,
    pub lacp: LacpMode,
    /// `lacp-time=fast`: PDUs every second, partner expired after 3 s (else 30 s and 90 s).
    pub lacp_fast: bool,
    /// `lacp-fallback-ab`: without a partner, run the members as active-backup.
    pub fallback_ab: bool,
    /// `bond-primary`: the member preferred as active.
    pub primary: Option<String>,
    pub updelay_ms: u32,
    pub downdelay_ms: u32,
    /// How often the members' link state is read; 0: on every round of the bonds thread.
    pub miimon_ms: u32,
    /// balance-slb and balance-tcp: how often buckets move by load; 0: never.
    pub rebalance_interval_ms: u32,
    pub lacp_system_priority: u16,
    /// The LACP system id (default: the first member's MAC address).
    pub lacp_system_id: Option<[u8; 6]>,
    /// The LACP key (default: the bond's ofport).
    pub lacp_key: Option<u16>,
}

impl Default for BondSettings {
    /// Open vSwitch's defaults: active-backup, no LACP, slow, rebalance every 10 s, system
    /// priority 65534.
    fn default() -> Self {
        BondSettings {
            mode: BondMode::ActiveBackup,
            lacp: LacpMode::Off,
            lacp_fast: false,
            fallback_ab: false,
            primary: None,
            updelay_ms: 0,
            downdelay_ms: 0,
            miimon_ms: 0,
            rebalance_interval_ms: 10_000,
            lacp_system_priority: 65534,
            lacp_system_id: None,
            lacp_key: None,
        }
    }
}

impl BondSettings {
    /// The pure bond's configuration, with the defaults that depend on the members and the
    /// bond's ofport filled in.
    pub fn to_config(
        &self,
        member_names: &[&str],
        first_member_mac: [u8; 6],
        ofport: u32,
    ) -> Result<bond::BondConfig, String> {
        let primary = match &self.primary {
            None => None,
            Some(p) => Some(
                member_names
                    .iter()
                    .position(|m| m == p)
                    .ok_or_else(|| format!("bond-primary={p} is not a member of the bond"))?,
            ),
        };
        let system = bond::lacp::SystemId {
            priority: self.lacp_system_priority,
            mac: self.lacp_system_id.unwrap_or(first_member_mac),
        };
        let key = self.lacp_key.unwrap_or((ofport & 0xffff) as u16);
        let ms = |v: u32| std::time::Duration::from_millis(u64::from(v));
        Ok(bond::BondConfig {
            mode: self.mode,
            lacp: self.lacp,
            lacp_fast: self.lacp_fast,
            fallback_ab: self.fallback_ab,
            primary,
            updelay: ms(self.updelay_ms),
            downdelay: ms(self.downdelay_ms),
            rebalance_interval: ms(self.rebalance_interval_ms),
            system,
            key,
        })
    }
}

/// The port settings the switch itself handles, changeable while traffic flows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSettings {
    pub vlan: VlanMode,
    /// The port terminates VXLAN tunnels at this address.
    pub vtep: Option<VtepConfig>,
    /// MAC learning limits of the port (None: the bridge's defaults).
    pub mac_limits: Option<PortLimits>,
    /// Which marking of an arriving frame says its traffic class.
    pub trust: Trust,
    /// Policing of what arrives on the port.
    pub policer: Option<PolicerConfig>,
    /// Egress scheduling and shaping (None: frames go straight to the port).
    pub qos: Option<QosConfig>,
}

/// A port's egress scheduler and the maps that class the frames it gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QosConfig {
    pub scheduler: SchedulerConfig,
    pub classes: ClassMap,
}

/// `vtep_ip=A.B.C.D/LEN [vtep_mac=MAC]`: the address the port owns on the underlay (and the
/// MAC to use where the port has none of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtepConfig {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: Option<[u8; 6]>,
}

/// An operator tunnel route (`tnl-route-add`): remote VTEPs in `net` are reached through the
/// VTEP port `port`, via `gw` when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub net: Ipv4Net,
    pub port: String,
    pub gw: Option<Ipv4Addr>,
}

/// An IPv4 network: address and prefix length, the address kept masked to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// The network of `addr/len` (host bits cleared); None if `len` > 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Net> {
        (len <= 32).then(|| Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask(len)),
            len,
        })
    }

    pub fn mask(len: u8) -> u32 {
        match len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.len) == u32::from(self.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `A.B.C.D/LEN` (a bare address is /32), as an address and a prefix length, host bits kept
/// (a VTEP's own address needs them; [`Ipv4Net::new`] clears them for a network).
pub fn parse_prefix(v: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = v.split_once('/').unwrap_or((v, "32"));
    let ip = a
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("bad address {a:?} in {v:?}"))?;
    let len = l
        .parse::<u8>()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("bad prefix length in {v:?} (0-32)"))?;
    Ok((ip, len))
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        let (ip, len) = parse_prefix(v)?;
        Ipv4Net::new(ip, len).ok_or_else(|| format!("bad prefix {v:?}"))
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(v: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = v.split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_masked_once() {
        let n: Ipv4Net = "10.1.2.3/16".parse().unwrap();
        assert_eq!(n.to_string(), "10.1.0.0/16");
        assert!(n.contains(Ipv4Addr::new(10, 1, 200, 1)));
        assert!(!n.contains(Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!("10.0.0.1".parse::<Ipv4Net>().unwrap().prefix_len(), 32);
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        assert_eq!(
            parse_prefix("192.168.1.7/24").unwrap(),
            (Ipv4Addr::new(192, 168, 1, 7), 24)
        );
    }

    #[test]
    fn macs() {
        let m = parse_mac("02:aB:00:00:00:ff").unwrap();
        assert_eq!(m, [2, 0xab, 0, 0, 0, 0xff]);
        assert_eq!(format_mac(&m), "02:ab:00:00:00:ff");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:00:00:00:00:0g",
            "002:0:0:0:0:0",
        ] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }
}
