//! VXLAN tunnelling: the VTEPs (underlay ports that own an IPv4 address), the tunnel route table
//! and neighbour cache, the `vxlan` port that encapsulates, and the receive-side termination
//! that answers ARP for VTEP addresses and decapsulates.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use vlan_vxlan::arp;
use vlan_vxlan::vxlan::{self, EncapParams};

use crate::counter::{Counter, SharedCounter};
use crate::packet::{Batch, Packet, PacketPool};
use crate::port::{Port, PortCounters, PortStats};
use crate::spec::Ipv4Net;
use flowtable::DropReason;

/// A port that terminates tunnels: it owns `ip` on the underlay.
#[derive(Clone)]
pub(crate) struct Vtep {
    pub(crate) port_name: String,
    pub(crate) port: Arc<dyn Port>,
    pub(crate) ip: Ipv4Addr,
    pub(crate) prefix_len: u8,
    pub(crate) mac: [u8; 6],
    pub(crate) mtu: usize,
}

/// A route to tunnel endpoints: destinations in `net` leave by the VTEP port `port`, through
/// `gw` when given (else directly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TunnelRoute {
    pub(crate) net: Ipv4Net,
    pub(crate) port: String,
    pub(crate) gw: Option<Ipv4Addr>,
    /// Implied by a VTEP's own address, rather than made by the operator (`tnl-route-add`).
    pub(crate) connected: bool,
}

/// VTEPs and routes, replaced as a whole on every change.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    pub(crate) vteps: Vec<Vtep>,
    pub(crate) routes: Vec<TunnelRoute>,
}

impl RouteTable {
    /// Longest-prefix match: the VTEP to leave by and the next hop to resolve.
    pub(crate) fn lookup(&self, dst: Ipv4Addr) -> Option<(&Vtep, Ipv4Addr)> {
        let r = self
            .routes
            .iter()
            .filter(|r| r.net.contains(dst))
            .max_by_key(|r| (r.net.prefix_len(), !r.connected))?;
        let vtep = self.vteps.iter().find(|v| v.port_name == r.port)?;
        Some((vtep, r.gw.unwrap_or(dst)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighEntry {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub port: String,
    pub age_secs: u64,
}

/// IPv4 → MAC of underlay neighbours, learned from ARP.
#[derive(Default)]
pub struct NeighCache {
    entries: HashMap<Ipv4Addr, ([u8; 6], String, Instant)>,
    /// When each unresolved address was last asked for (ARP requests are rate-limited).
    asked: HashMap<Ipv4Addr, Instant>,
}

/// How long a neighbour entry is trusted, and how often an unresolved one is asked for.
const NEIGH_TTL_SECS: u64 = 300;
const ARP_RETRY_MS: u128 = 500;

impl NeighCache {
    pub fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6], port: &str) {
        if mac[0] & 1 != 0 || ip.is_unspecified() || ip.is_broadcast() {
            return;
        }
        self.entries
            .insert(ip, (mac, port.to_string(), Instant::now()));
        self.asked.remove(&ip);
    }

    pub fn lookup(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.entries
            .get(&ip)
            .filter(|(_, _, t)| t.elapsed().as_secs() < NEIGH_TTL_SECS)
            .map(|(m, _, _)| *m)
    }

    /// True if an ARP request for `ip` should be sent now.
    fn should_ask(&mut self, ip: Ipv4Addr) -> bool {
        let now = Instant::now();
        match self.asked.get(&ip) {
            Some(t) if now.duration_since(*t).as_millis() < ARP_RETRY_MS => false,
            _ => {
                self.asked.insert(ip, now);
                true
            }
        }
    }

    pub fn entries(&self) -> Vec<NeighEntry> {
        let mut v: Vec<NeighEntry> = self
            .entries
            .iter()
            .map(|(ip, (mac, port, t))| NeighEntry {
                ip: *ip,
                mac: *mac,
                port: port.clone(),
                age_secs: t.elapsed().as_secs(),
            })
            .collect();
        v.sort_by_key(|e| e.ip);
        v
    }

    pub fn flush(&mut self) {
        self.entries.clear();
        self.asked.clear();
    }
}

/// Shared by every tunnel port and the receive path.
#[derive(Default)]
pub struct Tunnels {
    pub routes: ArcSwap<RouteTable>,
    pub neigh: Mutex<NeighCache>,
}

impl Tunnels {
    pub fn neigh(&self) -> std::sync::MutexGuard<'_, NeighCache> {
        self.neigh.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `key=` of a tunnel port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKey {
    Vni(u32),
    /// The VNI comes from the packet's tunnel metadata (`set_field:N->tun_id`); any VNI is
    /// accepted on receive.
    Flow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanConfig {
    pub remote_ip: Ipv4Addr,
    /// Source address of the outer header; the leaving VTEP's address when None.
    pub local_ip: Option<Ipv4Addr>,
    pub key: TunnelKey,
    pub dst_port: u16,
    pub ttl: u8,
}

/// Why tunnel packets were dropped (written under the port's transmit lock).
#[derive(Default)]
struct TunnelDrops {
    no_route: Counter,
    no_neighbour: Counter,
    too_big: Counter,
}

/// `type=vxlan`: a logical port; what the bridge sends to it leaves encapsulated by the VTEP
/// that routes to `remote_ip`. It receives through the VTEP's decapsulation.
pub struct VxlanPort {
    name: String,
    pub cfg: VxlanConfig,
    tunnels: Arc<Tunnels>,
    /// Transmit counters, written under `tx_lock`. (The receive ones are `rx_*` below.)
    counters: PortCounters,
    /// Frames and bytes received through decapsulation, by any PMD that polls a VTEP port.
    rx_packets: SharedCounter,
    rx_bytes: SharedCounter,
    drops: TunnelDrops,
    tx_lock: Mutex<Batch>,
}

impl VxlanPort {
    pub fn new(name: &str, cfg: VxlanConfig, tunnels: Arc<Tunnels>) -> Self {
        VxlanPort {
            name: name.to_string(),
            cfg,
            tunnels,
            counters: PortCounters::default(),
            rx_packets: SharedCounter::default(),
            rx_bytes: SharedCounter::default(),
            drops: TunnelDrops::default(),
            tx_lock: Mutex::new(Batch::new()),
        }
    }

    /// Counts frames received through decapsulation, once per batch. Several PMDs may
    /// decapsulate into one tunnel port at once, so these are atomic adds.
    pub fn count_rx(&self, packets: u64, bytes: u64) {
        self.rx_packets.add(packets);
        self.rx_bytes.add(bytes);
    }
}

/// A cheap hash of the inner headers for the outer UDP source port: the first 40 bytes as five
/// words (MACs, ethertype and, for untagged IPv4, addresses and L4 ports).
fn inner_hash(frame: &[u8]) -> u64 {
    let mut h: u64 = 0;
    for chunk in frame.chunks_exact(8).take(5) {
        let w = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h ^ (h >> 29)
}

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vxlan"
    }

    fn n_rxq(&self) -> usize {
        0
    }

    fn rx_burst(&self, _qid: usize, _pool: &mut PacketPool, _out: &mut Batch) -> usize {
        0
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let total = pkts.len() as u64;
        // Every transmit and drop counter of the port is written under this lock.
        let mut out = self.tx_lock.lock().unwrap_or_else(|e| e.into_inner());
        let routes = self.tunnels.routes.load();
        let Some((vtep, next_hop)) = routes.lookup(self.cfg.remote_ip) else {
            self.drops.no_route.add(total);
            self.counters.tx_dropped.add(total);
            pkts.recycle(pool);
            return 0;
        };
        let dst_mac = {
            let mut neigh = self.tunnels.neigh();
            match neigh.lookup(next_hop) {
                Some(m) => Some(m),
                None => {
                    if neigh.should_ask(next_hop) {
                        drop(neigh);
                        send_arp_request(vtep, next_hop, pool);
                    }
                    None
                }
            }
        };
        let Some(dst_mac) = dst_mac else {
            self.drops.no_neighbour.add(total);
            self.counters.tx_dropped.add(total);
            pkts.recycle(pool);
            return 0;
        };
        let (mut sent, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        for mut p in pkts.drain() {
            let inner_len = p.len();
            // The outer IPv4 packet (inner frame + 36 bytes) must fit the underlay MTU.
            if inner_len + vxlan::VXLAN_OVERHEAD_V4 - 14 > vtep.mtu {
                self.drops.too_big.add(1);
                dropped += 1;
                pool.put(p);
                continue;
            }
            let vni = match self.cfg.key {
                TunnelKey::Vni(v) => v,
                TunnelKey::Flow => (p.tun_id & 0x00ff_ffff) as u32,
            };
            let params = EncapParams {
                src_mac: vtep.mac,
                dst_mac,
                src_ip: self.cfg.local_ip.unwrap_or(vtep.ip).octets(),
                dst_ip: self.cfg.remote_ip.octets(),
                vni,
                src_port: vxlan::flow_src_port(inner_hash(p.data())),
                dst_port: self.cfg.dst_port,
                ttl: self.cfg.ttl,
                df: true,
                tos: 0,
            };
            let (buf, start, len) = p.raw_mut();
            match vxlan::encap(buf, start, len, &params) {
                Ok((s, l)) if p.set_bounds(s, l) => {
                    sent += 1;
                    bytes += inner_len as u64;
                    let _ = out.push(p);
                }
                _ => {
                    dropped += 1;
                    pool.put(p);
                }
            }
        }
        if !out.is_empty() {
            vtep.port.tx_burst(&mut out, pool);
        }
        self.counters.tx_packets.add(sent);
        self.counters.tx_bytes.add(bytes);
        self.counters.tx_dropped.add(dropped);
        sent as usize
    }

    fn explain_tx(&self, pkt: &Packet) -> Vec<(&'static str, String)> {
        let vni = match self.cfg.key {
            TunnelKey::Vni(v) => v,
            TunnelKey::Flow => (pkt.tun_id & 0x00ff_ffff) as u32,
        };
        let routes = self.tunnels.routes.load();
        let Some((vtep, next_hop)) = routes.lookup(self.cfg.remote_ip) else {
            return vec![(
                "vxlan",
                format!("no route to {}: dropped", self.cfg.remote_ip),
            )];
        };
        let src = self.cfg.local_ip.unwrap_or(vtep.ip);
        let mut out = vec![(
            "vxlan",
            format!(
                "VNI {vni}, {src} -> {}, UDP port {} (source port from the inner headers), TTL {}, via {}",
                self.cfg.remote_ip,
                self.cfg.dst_port,
                self.cfg.ttl,
                vtep.port.name()
            ),
        )];
        out.push(match self.tunnels.neigh().lookup(next_hop) {
            Some(m) => (
                "next hop",
                format!("{next_hop} at {}", crate::spec::format_mac(&m)),
            ),
            None => (
                "next hop",
                format!("{next_hop} unresolved: dropped while an ARP request is sent"),
            ),
        });
        if pkt.len() + vxlan::VXLAN_OVERHEAD_V4 - 14 > vtep.mtu {
            out.push((
                "mtu",
                format!("too big for the underlay MTU {}: dropped", vtep.mtu),
            ));
        }
        out
    }

    fn link_up(&self) -> bool {
        self.tunnels
            .routes
            .load()
            .lookup(self.cfg.remote_ip)
            .is_some()
    }

    fn stats(&self) -> PortStats {
        PortStats {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            ..self.counters.snapshot()
        }
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        let routes = self.tunnels.routes.load();
        let via = routes.lookup(self.cfg.remote_ip);
        let mut s = vec![
            ("remote_ip", self.cfg.remote_ip.to_string()),
            (
                "key",
                match self.cfg.key {
                    TunnelKey::Vni(v) => v.to_string(),
                    TunnelKey::Flow => "flow".to_string(),
                },
            ),
            ("dst_port", self.cfg.dst_port.to_string()),
            (
                "underlay",
                via.map(|(v, nh)| format!("{} via {nh}", v.port_name))
                    .unwrap_or_else(|| "no route".into()),
            ),
        ];
        if let Some((_, nh)) = via {
            let resolved = self.tunnels.neigh().lookup(nh).is_some();
            s.push(("next_hop_resolved", resolved.to_string()));
        }
        for (k, c) in [
            ("drop_no_route", &self.drops.no_route),
            ("drop_no_neighbour", &self.drops.no_neighbour),
            ("drop_too_big", &self.drops.too_big),
        ] {
            s.push((k, c.get().to_string()));
        }
        s
    }
}

fn send_arp_request(vtep: &Vtep, target: Ipv4Addr, pool: &mut PacketPool) {
    let mut p = pool.get();
    p.set_data(&arp::request(vtep.mac, vtep.ip.octets(), target.octets()));
    let mut b = Batch::new();
    let _ = b.push(p);
    vtep.port.tx_burst(&mut b, pool);
}

/// A tunnel port as the receive path sees it.
#[derive(Clone)]
pub struct TunnelRef {
    pub bridge: usize,
    pub port: usize,
    pub cfg: VxlanConfig,
    pub vxlan: Arc<VxlanPort>,
}

/// What the receive path does with a frame that arrived on a VTEP port.
pub enum Terminated {
    /// Not for the VTEP: switch it on the port's own bridge.
    Pass,
    /// Handled here (ARP for the VTEP address), nothing more to do.
    Consumed,
    /// A VXLAN packet for a local tunnel port: its inner frame enters that port's bridge.
    Decap {
        target: usize,
        vni: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        offset: usize,
        len: usize,
    },
    /// Addressed to the VTEP but invalid (`TnlMalformed`) or for no configured tunnel
    /// (`TnlNoPort`).
    Drop(DropReason),
}

/// Classifies a frame received on `vtep`'s port; answers ARP requests for its address.
pub fn terminate(
    frame: &[u8],
    vtep: &Vtep,
    tunnels: &Tunnels,
    ports: &[TunnelRef],
    replies: &mut Vec<[u8; 60]>,
) -> Terminated {
    if let Some(a) = arp::parse(frame) {
        if a.spa != [0; 4] && (a.tpa == vtep.ip.octets() || a.op == arp::OP_REPLY) {
            tunnels
                .neigh()
                .learn(Ipv4Addr::from(a.spa), a.sha, &vtep.port_name);
        }
        if a.tpa == vtep.ip.octets() {
            if a.op == arp::OP_REQUEST {
                replies.push(arp::reply(&a, vtep.mac));
            }
            return Terminated::Consumed;
        }
        return Terminated::Pass;
    }
    let Some(udp) = vxlan::peek_udp4(frame) else {
        return Terminated::Pass;
    };
    if udp.dst_ip != vtep.ip.octets() || !ports.iter().any(|t| t.cfg.dst_port == udp.dst_port) {
        return Terminated::Pass;
    }
    let d = match vxlan::decap(frame) {
        Ok(d) => d,
        Err(_) => return Terminated::Drop(DropReason::TnlMalformed),
    };
    let (src, dst) = (Ipv4Addr::from(d.src_ip), Ipv4Addr::from(d.dst_ip));
    let target = ports.iter().position(|t| {
        t.cfg.dst_port == d.dst_port
            && t.cfg.remote_ip == src
            && t.cfg.local_ip.is_none_or(|l| l == dst)
            && match t.cfg.key {
                TunnelKey::Vni(v) => v == d.vni,
                TunnelKey::Flow => true,
            }
    });
    match target {
        Some(target) => Terminated::Decap {
            target,
            vni: d.vni,
            src,
            dst,
            offset: d.inner_offset,
            len: d.inner_len,
        },
        None => Terminated::Drop(DropReason::TnlNoPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let vtep = |n: &str| Vtep {
            port_name: n.into(),
            port: Arc::new(crate::ring::RingPort::new(n, 4)),
            ip: Ipv4Addr::new(192, 168, 1, 1),
            prefix_len: 24,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        };
        let t = RouteTable {
            vteps: vec![vtep("u1"), vtep("u2")],
            routes: vec![
                TunnelRoute {
                    net: "192.168.1.0/24".parse().unwrap(),
                    port: "u1".into(),
                    gw: None,
                    connected: true,
                },
                TunnelRoute {
                    net: "10.0.0.0/8".parse().unwrap(),
                    port: "u1".into(),
                    gw: Some(Ipv4Addr::new(192, 168, 1, 254)),
                    connected: false,
                },
                TunnelRoute {
                    net: "10.1.0.0/16".parse().unwrap(),
                    port: "u2".into(),
                    gw: None,
                    connected: false,
                },
            ],
        };
        let (v, nh) = t.lookup(Ipv4Addr::new(10, 1, 2, 3)).unwrap();
        assert_eq!(
            (v.port_name.as_str(), nh),
            ("u2", Ipv4Addr::new(10, 1, 2, 3))
        );
        let (v, nh) = t.lookup(Ipv4Addr::new(10, 2, 2, 3)).unwrap();
        assert_eq!(
            (v.port_name.as_str(), nh),
            ("u1", Ipv4Addr::new(192, 168, 1, 254))
        );
        assert!(t.lookup(Ipv4Addr::new(172, 16, 0, 1)).is_none());
    }
}
