//! Opens the port object a [`PortKind`] describes, and keeps ring ports joined as their
//! `peer=` settings say.

use std::sync::Arc;

use crate::afxdp::AfXdpPort;
use crate::bond_port::{BondCtl, BondPort};
use crate::info::DpError;
use crate::port::Port;
use crate::ring::{RING_CAPACITY, RingPort};
use crate::spec::{BondSettings, BondSpec, PortKind};
use crate::tunnel::{Tunnels, VxlanPort};

use super::state::{ControlState, MemberRing};

/// A port object just opened, with its ring or VXLAN handle when it is one of those.
pub(super) struct Opened {
    pub(super) port: Arc<dyn Port>,
    pub(super) ring: Option<Arc<RingPort>>,
    pub(super) vxlan: Option<Arc<VxlanPort>>,
}

pub(super) fn open(
    state: &ControlState,
    name: &str,
    kind: &PortKind,
    tunnels: &Arc<Tunnels>,
) -> Result<Opened, DpError> {
    let plain = |port: Arc<dyn Port>| Opened {
        port,
        ring: None,
        vxlan: None,
    };
    match kind {
        PortKind::Ring { peer } => {
            if let Some(peer) = peer {
                if peer == name {
                    return Err(DpError(format!("port {name} cannot be its own peer")));
                }
                if let Some((_, p)) = state.find_port(peer)
                    && p.ring.is_none()
                {
                    return Err(DpError(format!("peer {peer} is not a ring port")));
                }
                let ends = ring_ends(state);
                if let Some(pp) = ends.iter().find(|e| e.name == peer).and_then(|e| e.peer)
                    && pp != name
                {
                    return Err(DpError(format!("peer {peer} is already joined to {pp}")));
                }
                // Another ring port that names the same peer holds it already.
                if let Some(other) = ends
                    .iter()
                    .find(|q| q.name != name && q.peer == Some(peer.as_str()))
                {
                    return Err(DpError(format!(
                        "peer {peer} is already joined to {}",
                        other.name
                    )));
                }
            }
            let ring = Arc::new(RingPort::new(name, RING_CAPACITY));
            Ok(Opened {
                port: ring.clone(),
                ring: Some(ring),
                vxlan: None,
            })
        }
        PortKind::AfXdp { iface, options } => {
            let port = AfXdpPort::open(name, iface, options.clone())
                .map_err(|e| DpError(format!("port {name}: {e}")))?;
            // Loading the XDP program parses the kernel's BTF (megabytes), which the
            // allocator would otherwise keep.
            release_freed_memory();
            Ok(plain(Arc::new(port)))
        }
        PortKind::Dpdk(options) => open_dpdk(state, name, options),
        PortKind::VhostUser(options) => {
            let port = vhost_user::VhostUserPort::new(name, options.clone())
                .map_err(|e| DpError(format!("port {name}: {e}")))?;
            Ok(plain(Arc::new(port)))
        }
        PortKind::Vxlan(cfg) => {
            let vx = Arc::new(VxlanPort::new(name, cfg.clone(), tunnels.clone()));
            Ok(Opened {
                port: vx.clone(),
                ring: None,
                vxlan: Some(vx),
            })
        }
        PortKind::Bond(_) => Err(DpError(format!(
            "port {name}: a bond is made with its members (add-bond)"
        ))),
    }
}

#[cfg(feature = "dpdk")]
fn open_dpdk(
    state: &ControlState,
    name: &str,
    options: &crate::spec::DpdkOptions,
) -> Result<Opened, DpError> {
    let port = crate::dpdk_port::DpdkPort::open(name, options, &state.dpdk_eal, state.n_pmds)
        .map_err(|e| DpError(format!("port {name}: {e}")))?;
    Ok(Opened {
        port: Arc::new(port),
        ring: None,
        vxlan: None,
    })
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(
    _state: &ControlState,
    name: &str,
    _options: &crate::spec::DpdkOptions,
) -> Result<Opened, DpError> {
    Err(DpError(format!(
        "port {name}: this vswitchd was built without DPDK (cargo feature `dpdk`)"
    )))
}

/// Opens a bond's members and the bond over them; returns the bond and its ring members.
pub(super) fn open_bond(
    state: &ControlState,
    name: &str,
    ofport: u32,
    spec: &BondSpec,
    tunnels: &Arc<Tunnels>,
) -> Result<(Arc<BondPort>, Vec<MemberRing>), DpError> {
    if spec.members.is_empty() {
        return Err(DpError(format!("bond {name} needs at least one member")));
    }
    let mut ports = Vec::new();
    let mut rings = Vec::new();
    for (i, m) in spec.members.iter().enumerate() {
        if let Some(what) = state.name_in_use(&m.name) {
            return Err(DpError(format!(
                "{} is already the name of a {what}",
                m.name
            )));
        }
        if m.name == name || spec.members[..i].iter().any(|o| o.name == m.name) {
            return Err(DpError(format!("bond {name} names {} twice", m.name)));
        }
        if matches!(m.kind, PortKind::Vxlan(_) | PortKind::Bond(_)) {
            return Err(DpError(format!(
                "bond member {} cannot be a {} port",
                m.name,
                m.kind.name()
            )));
        }
        let opened = open(state, &m.name, &m.kind, tunnels)?;
        if let (Some(ring), PortKind::Ring { peer }) = (&opened.ring, &m.kind) {
            rings.push(MemberRing {
                name: m.name.clone(),
                ring: ring.clone(),
                peer: peer.clone(),
            });
        }
        ports.push(opened.port);
    }
    let bond = bond_over(state, name, ofport, ports, &spec.settings)?;
    Ok((bond, rings))
}

/// A bond over port objects already open.
pub(super) fn bond_over(
    state: &ControlState,
    name: &str,
    ofport: u32,
    ports: Vec<Arc<dyn Port>>,
    settings: &BondSettings,
) -> Result<Arc<BondPort>, DpError> {
    if ports.is_empty() {
        return Err(DpError(format!("bond {name} needs at least one member")));
    }
    let names: Vec<&str> = ports.iter().map(|p| p.name()).collect();
    let macs: Vec<[u8; 6]> = ports
        .iter()
        .zip(&names)
        .map(|(p, n)| p.mac().unwrap_or_else(|| derived_mac(n)))
        .collect();
    let config = settings
        .to_config(&names, macs[0], ofport)
        .map_err(|e| DpError(format!("bond {name}: {e}")))?;
    let specs: Vec<bond::MemberSpec> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| bond::MemberSpec {
            port: i as u16 + 1,
            mac: *mac,
        })
        .collect();
    let ctl = BondCtl::new(config, settings.clone(), specs)
        .map_err(|e| DpError(format!("bond {name}: {e}")))?;
    Ok(Arc::new(BondPort::new(
        name,
        ports,
        ctl,
        state.n_pmds.max(1),
    )))
}

/// A stable locally administered unicast address for a port without one of its own.
pub(super) fn derived_mac(name: &str) -> [u8; 6] {
    // FNV-1a: stable across runs and builds (the std hasher is not).
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let b = h.to_be_bytes();
    [0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// Gives memory freed by port set-up back to the system.
fn release_freed_memory() {
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A ring port that may be joined: a bridge port or a bond member, and the peer it names.
struct RingEnd<'a> {
    name: &'a str,
    ring: &'a Arc<RingPort>,
    peer: Option<&'a str>,
}

fn ring_ends(state: &ControlState) -> Vec<RingEnd<'_>> {
    let mut ends = Vec::new();
    for p in state.bridges.iter().flat_map(|b| &b.ports) {
        if let Some(ring) = &p.ring {
            ends.push(RingEnd {
                name: &p.name,
                ring,
                peer: p.ring_peer(),
            });
        }
        for m in &p.member_rings {
            ends.push(RingEnd {
                name: &m.name,
                ring: &m.ring,
                peer: m.peer.as_deref(),
            });
        }
    }
    ends
}

/// The ring port `p` should be joined to: the one it names (if that one names it back or
/// nobody), else one that names it while it names nobody.
fn desired_peer<'a>(ends: &'a [RingEnd<'a>], p: &RingEnd<'_>) -> Option<&'a RingEnd<'a>> {
    let mut others = ends.iter().filter(|q| q.name != p.name);
    match p.peer {
        Some(peer) => others.find(|q| q.name == peer && q.peer.is_none_or(|qp| qp == p.name)),
        None => others.find(|q| q.peer == Some(p.name)),
    }
}

/// Joins and cuts ring links so each ring port is joined to its desired peer, and to nothing
/// once its peer is gone.
pub(super) fn sync_ring_links(state: &ControlState) {
    let ends = ring_ends(state);
    for p in &ends {
        match desired_peer(&ends, p) {
            Some(q) => {
                if p.ring.peer_name().as_deref() != Some(q.name) {
                    p.ring.join_to(q.ring);
                }
            }
            None => {
                if p.ring.peer_name().is_some() {
                    p.ring.unjoin();
                }
            }
        }
    }
}
