//! The control side of one bond, run on the bonds thread: feeds the pure [`bond::Bond`] with
//! the members' carrier, the LACP frames they received and the bytes sent per bucket, sends
//! the LACP frames it asks for, publishes its distribution, and after a failover sends a RARP
//! for each MAC address the bridge learned behind the bond out of the new active member.

use std::sync::Arc;
use std::time::Duration;

use bond::lacp::{MemberCounters, PortInfo, RxStatus};
use bond::{BUCKETS, Bond, BondConfig, BondEvents, MemberSpec, Policy};
use flowtable::PortNo;
use port_api::{Batch, PacketPool, Port};
use vlan_vxlan::{Egress, VlanMode};

use super::{BondPort, SlowFrame};
use crate::bridge::BridgeShared;
use crate::spec::BondSettings;

/// The bridge a bond is a port of, for its learning packets.
pub(crate) struct Owner {
    pub(crate) shared: Arc<BridgeShared>,
    pub(crate) ofport: PortNo,
    pub(crate) vlan: VlanMode,
}

pub(crate) struct BondCtl {
    bond: Bond,
    settings: BondSettings,
    specs: Vec<MemberSpec>,
    owner: Option<Owner>,
    /// Buffers for the frames this side sends (LACP, learning packets).
    pool: PacketPool,
    slow: Vec<SlowFrame>,
    /// Bucket byte totals at the last tick.
    last_loads: [u64; BUCKETS],
    failovers: u64,
    learning_sent: u64,
    /// Buckets moved by rebalancing, in total.
    buckets_moved: u64,
    last_carrier_poll: Option<Duration>,
}

/// One member as `bond-show` and `lacp-show` report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberReport {
    pub name: String,
    pub carrier: bool,
    pub enabled: bool,
    pub active: bool,
    /// Buckets on the member, and the bytes they carried (decayed by rebalancing).
    pub buckets: usize,
    pub load_bytes: u64,
    /// With LACP: receive state, attachment, what we say and what the partner said.
    pub lacp: Option<(RxStatus, bool, PortInfo, PortInfo, MemberCounters)>,
}

/// A bond as `bond-show` and `lacp-show` report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondReport {
    pub name: String,
    pub settings: BondSettings,
    /// What the bond does now (balance-tcp runs as active-backup while LACP is down).
    pub policy: Policy,
    pub lacp_negotiated: Option<bool>,
    pub lacp_system: Option<bond::lacp::SystemId>,
    pub lacp_key: Option<u16>,
    pub members: Vec<MemberReport>,
    pub failovers: u64,
    pub learning_packets: u64,
    /// Buckets moved by rebalancing, in total.
    pub buckets_moved: u64,
    pub rx_not_admitted: u64,
    pub slow_dropped: u64,
    pub tx_no_member: u64,
}

impl BondCtl {
    pub(crate) fn new(
        config: BondConfig,
        settings: BondSettings,
        specs: Vec<MemberSpec>,
    ) -> Result<BondCtl, bond::BondError> {
        Ok(BondCtl {
            bond: Bond::new(config, &specs)?,
            settings,
            specs,
            owner: None,
            pool: PacketPool::with_capacity(8),
            slow: Vec::with_capacity(super::SLOW_QUEUE),
            last_loads: [0; BUCKETS],
            failovers: 0,
            learning_sent: 0,
            buckets_moved: 0,
            last_carrier_poll: None,
        })
    }

    pub(crate) fn set_owner(&mut self, owner: Owner) {
        self.owner = Some(owner);
    }

    pub(crate) fn set_vlan(&mut self, vlan: VlanMode) {
        if let Some(o) = self.owner.as_mut() {
            o.vlan = vlan;
        }
    }

    pub(crate) fn settings(&self) -> &BondSettings {
        &self.settings
    }

    pub(crate) fn reconfigure(
        &mut self,
        config: BondConfig,
        settings: BondSettings,
    ) -> Result<(), bond::BondError> {
        self.bond.reconfigure(config, &self.specs)?;
        self.settings = settings;
        Ok(())
    }

    /// Makes `member` the active one (it must be enabled).
    pub(crate) fn set_active(
        &mut self,
        port: &BondPort,
        member: usize,
        now: Duration,
    ) -> Result<(), String> {
        let ev = self
            .bond
            .set_active_member(member)
            .map_err(str::to_string)?;
        self.follow(port, ev, now);
        Ok(())
    }

    /// One round of the bond's control: everything that is due at `now`.
    pub(crate) fn tick(&mut self, port: &BondPort, now: Duration) {
        port.take_slow(&mut self.slow);
        for f in self.slow.drain(..) {
            // Malformed PDUs are counted per member by the bond.
            let _ = self.bond.receive_lacp(f.member(), f.data(), now);
        }
        let poll = Duration::from_millis(u64::from(self.settings.miimon_ms));
        if self.last_carrier_poll.is_none_or(|t| now >= t + poll) {
            self.last_carrier_poll = Some(now);
            for (i, m) in port.members().iter().enumerate() {
                let up = m.link_up();
                if up != self.bond.carrier(i) {
                    self.bond.set_carrier(i, up, now);
                }
            }
        }
        let totals = port.bucket_totals();
        let mut delta = [0u64; BUCKETS];
        for ((d, t), l) in delta.iter_mut().zip(&totals).zip(&self.last_loads) {
            *d = t.wrapping_sub(*l);
        }
        self.last_loads = totals;
        self.bond.add_loads(&delta);
        let ev = self.bond.run(now);
        let (bond, pool) = (&mut self.bond, &mut self.pool);
        bond.transmit_lacp(now, |m, frame| {
            if let Some(p) = port.members().get(m) {
                send(p.as_ref(), frame, pool);
            }
        });
        self.follow(port, ev, now);
    }

    fn follow(&mut self, port: &BondPort, ev: BondEvents, now: Duration) {
        self.buckets_moved += ev.rebalanced as u64;
        if ev.distribution_changed {
            port.publish(self.bond.distribution());
        }
        if let Some((from, to)) = ev.failover {
            self.failovers += 1;
            tracing::info!(
                bond = port.name.as_str(),
                from = ?from.map(|i| port.members()[i].name()),
                to = ?to.map(|i| port.members()[i].name()),
                "bond active member changed"
            );
            if let Some(to) = to
                && from.is_some()
                && self.bond.policy() != Policy::L4
            {
                self.send_learning(port, to, now);
            }
        }
    }

    /// RARPs from every MAC the bridge learned on other ports, out of member `to`.
    fn send_learning(&mut self, port: &BondPort, to: usize, now: Duration) {
        let Some(owner) = &self.owner else { return };
        let Some(member) = port.members().get(to) else {
            return;
        };
        let now_ns = now.as_nanos() as u64;
        let entries = owner.shared.macs.lock().entries(now_ns);
        for e in entries.iter().filter(|e| e.port != owner.ofport) {
            let vlan = match owner.vlan.egress(e.vlan) {
                Egress::Skip => continue,
                Egress::Untagged => None,
                Egress::Tagged { vid, .. } => Some(vid),
            };
            send(
                member.as_ref(),
                &bond::learning::rarp(e.mac, vlan),
                &mut self.pool,
            );
            self.learning_sent += 1;
        }
    }

    pub(crate) fn report(&self, port: &BondPort) -> BondReport {
        let d = self.bond.distribution();
        let per = self.bond.buckets().per_member(self.specs.len());
        let lacp = self.bond.lacp();
        let members = port
            .members()
            .iter()
            .enumerate()
            .map(|(i, p)| MemberReport {
                name: p.name().to_string(),
                carrier: self.bond.carrier(i),
                enabled: d.enabled & (1 << i) != 0,
                active: usize::from(d.active) == i,
                buckets: per[i].1,
                load_bytes: per[i].0,
                lacp: lacp.map(|l| {
                    let m = &l.members()[i];
                    (m.status, m.attached, l.actor_info(i), m.partner, m.counters)
                }),
            })
            .collect();
        BondReport {
            name: port.name.clone(),
            settings: self.settings.clone(),
            policy: d.policy,
            lacp_negotiated: lacp.map(|l| l.negotiation() == bond::lacp::Negotiation::Negotiated),
            lacp_system: lacp.map(|l| l.config().system),
            lacp_key: lacp.map(|l| l.config().key),
            members,
            failovers: self.failovers,
            learning_packets: self.learning_sent,
            buckets_moved: self.buckets_moved,
            rx_not_admitted: port.drops.rx_not_admitted.get(),
            slow_dropped: port.drops.slow_dropped.get(),
            tx_no_member: port.drops.tx_no_member.get(),
        }
    }
}

/// Sends one frame the control side made out of `port`.
fn send(port: &dyn Port, frame: &[u8], pool: &mut PacketPool) {
    let mut p = pool.get();
    if !p.set_data(frame) {
        pool.put(p);
        return;
    }
    let mut b = Batch::new();
    let _ = b.push(p);
    port.tx_burst(&mut b, pool);
    b.recycle(pool);
}
