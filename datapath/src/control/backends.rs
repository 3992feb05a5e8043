//! Opens the port object a [`PortKind`] describes, and keeps ring ports joined as their
//! `peer=` settings say.

use std::sync::Arc;

use crate::afxdp::AfXdpPort;
use crate::info::DpError;
use crate::port::Port;
use crate::ring::{RING_CAPACITY, RingPort};
use crate::spec::PortKind;
use crate::tunnel::{Tunnels, VxlanPort};

use super::state::{ControlState, PortEntry};

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
                if let Some((_, p)) = state.find_port(peer) {
                    if p.ring.is_none() {
                        return Err(DpError(format!("peer {peer} is not a ring port")));
                    }
                    if let Some(pp) = p.ring_peer()
                        && pp != name
                    {
                        return Err(DpError(format!("peer {peer} is already joined to {pp}")));
                    }
                }
                // Another ring port that names the same peer holds it already.
                if let Some(other) = state
                    .bridges
                    .iter()
                    .flat_map(|b| &b.ports)
                    .find(|q| q.name != name && q.ring_peer() == Some(peer.as_str()))
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
    }
}

/// Gives memory freed by port set-up back to the system.
fn release_freed_memory() {
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The ring port `p` should be joined to: the one it names (if that one names it back or
/// nobody), else one that names it while it names nobody.
fn desired_peer<'a>(state: &'a ControlState, p: &PortEntry) -> Option<&'a PortEntry> {
    p.ring.as_ref()?;
    let rings = state
        .bridges
        .iter()
        .flat_map(|b| &b.ports)
        .filter(|q| q.ring.is_some() && q.name != p.name);
    match p.ring_peer() {
        Some(peer) => rings
            .clone()
            .find(|q| q.name == peer && q.ring_peer().is_none_or(|qp| qp == p.name)),
        None => rings
            .clone()
            .find(|q| q.ring_peer() == Some(p.name.as_str())),
    }
}

/// Joins and cuts ring links so each ring port is joined to its desired peer, and to nothing
/// once its peer is gone.
pub(super) fn sync_ring_links(state: &ControlState) {
    for p in state.bridges.iter().flat_map(|b| &b.ports) {
        let Some(ring) = &p.ring else { continue };
        match desired_peer(state, p) {
            Some(q) => {
                if ring.peer_name().as_deref() != Some(q.name.as_str())
                    && let Some(qr) = &q.ring
                {
                    ring.join_to(qr);
                }
            }
            None => {
                if ring.peer_name().is_some() {
                    ring.unjoin();
                }
            }
        }
    }
}
