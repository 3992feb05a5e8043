//! The slow path: runs the rule table (and NORMAL's MAC learning) for one flow key and returns
//! datapath actions plus the mask of every field the result depended on (the megaflow mask).

use crate::drop_reason::DropReason;
use crate::key::{FlowKey, PortNo, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK};
use crate::mac_learning::{Learned, MacTable, is_multicast};
use crate::parse::{ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_VLAN};
use crate::rule::{Action, InstalledRule, RuleId, RuleTable};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vlan_vxlan::{Egress, FrameTags, VlanDrop, VlanMode};

mod trace;
use trace::Recorder;
pub use trace::TraceStep;

/// What the datapath does to the packet, in order. `Output` sends the packet as modified so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpAction {
    Output(PortNo),
    /// `tci` is the wire TCI (PCP << 13 | DEI | VID), without `VLAN_PRESENT` semantics.
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    PopVlan,
    SetVlanVid(u16),
    SetVlanPcp(u8),
    SetDscp(u8),
    /// Sets the packet's tunnel key (used by tunnel ports with `key=flow`).
    SetTunId(u64),
    /// Puts the packet in this queue (traffic class) of a scheduler it is sent to.
    SetQueue(u8),
    /// Polices the packet with the bridge's meter.
    Meter(u32),
}

/// `repr(C)` keeps what every packet reads (validity, drop, learn, rule, actions) in the first
/// cache line, and what only invalidation reads (the mask and dependencies) after it.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Decision {
    /// Cleared when something the decision depends on changed; caches then ignore it.
    pub validity: Validity,
    /// Why nothing was output; None when at least one `Output` was produced.
    pub drop: Option<DropReason>,
    /// NORMAL was refused learning the source by the input port's limits.
    pub learn_refused: bool,
    /// The decision sends to every port of the bridge (or of a VLAN): it changes when ports
    /// come, go or change their VLANs.
    pub floods: bool,
    /// NORMAL learned (VLAN, source MAC) on the input port (the first, if it ran more than
    /// once): the datapath refreshes that entry now and then while the flow keeps hitting the
    /// caches.
    pub learn: Option<(u16, [u8; 6])>,
    /// The matched rule (its counters count the packets that take this decision).
    pub rule: Option<Arc<InstalledRule>>,
    /// Empty when dropped; never ends with a modification (nothing would see it).
    pub actions: Vec<DpAction>,
    /// Fields this decision depends on; packets equal under it get the same decision.
    pub mask: FlowKey,
    /// Every (VLAN, MAC) NORMAL looked up as a destination or learned as a source: the
    /// decision changes when one of them is learned, moves or goes (a source that moved away
    /// must be learned back by the next packet).
    pub mac_deps: Vec<(u16, [u8; 6])>,
    /// The ports NORMAL found destinations on (their VLAN settings shaped the decision, even
    /// when they made it a drop).
    pub normal_targets: Vec<PortNo>,
}

impl Decision {
    /// Drops everything for `reason`, depending on nothing.
    pub fn dropped(reason: DropReason) -> Decision {
        Decision {
            actions: Vec::new(),
            mask: FlowKey::default(),
            drop: Some(reason),
            rule: None,
            learn: None,
            learn_refused: false,
            mac_deps: Vec::new(),
            floods: false,
            normal_targets: Vec::new(),
            validity: Validity::default(),
        }
    }

    pub fn rule_id(&self) -> Option<RuleId> {
        self.rule.as_ref().map(|r| r.id)
    }

    /// Priority of the matched rule (None: no rule matched, or the bridge has no rules).
    pub fn rule_priority(&self) -> Option<u16> {
        self.rule.as_ref().map(|r| r.rule.priority)
    }

    /// Whether the decision depends on port `p`'s existence or settings: made for packets from
    /// it, sending to it, or sending to every port.
    pub fn involves_port(&self, in_port: PortNo, p: PortNo) -> bool {
        self.floods
            || in_port == p
            || self.normal_targets.contains(&p)
            || self
                .actions
                .iter()
                .any(|a| matches!(a, DpAction::Output(o) if *o == p))
    }
}

impl PartialEq for Decision {
    /// Same forwarding and the same dependencies (rules compared by identity).
    fn eq(&self, other: &Self) -> bool {
        self.actions == other.actions
            && self.mask == other.mask
            && self.drop == other.drop
            && self.rule_id() == other.rule_id()
            && self.learn == other.learn
            && self.learn_refused == other.learn_refused
            && self.mac_deps == other.mac_deps
            && self.floods == other.floods
            && self.normal_targets == other.normal_targets
    }
}

/// Whether a cached decision still holds. One flag, shared by every cache entry that holds the
/// decision (the EMC and the megaflow cache hold the same `Arc<Decision>`), so invalidating
/// it once removes it everywhere. A copy starts valid.
#[derive(Debug, Default)]
pub struct Validity(AtomicBool);

impl Validity {
    #[inline(always)]
    pub fn is_valid(&self) -> bool {
        !self.0.load(Ordering::Relaxed)
    }

    pub fn invalidate(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Clone for Validity {
    fn clone(&self) -> Self {
        Validity::default()
    }
}

/// The MAC table as the slow path uses it. The datapath implements it over a shared table,
/// taking the table's lock only when NORMAL first needs it.
pub trait MacLearning {
    fn learn(&mut self, vlan: u16, mac: [u8; 6], port: PortNo, now_ns: u64) -> Learned;
    fn lookup(&mut self, vlan: u16, mac: [u8; 6], now_ns: u64) -> Option<PortNo>;
}

impl MacLearning for MacTable {
    fn learn(&mut self, vlan: u16, mac: [u8; 6], port: PortNo, now_ns: u64) -> Learned {
        MacTable::learn(self, vlan, mac, port, now_ns)
    }

    fn lookup(&mut self, vlan: u16, mac: [u8; 6], now_ns: u64) -> Option<PortNo> {
        MacTable::lookup(self, vlan, mac, now_ns)
    }
}

/// The MAC table read, never written: what a trace translates with.
pub struct PeekMacs<'a>(pub &'a MacTable);

impl MacLearning for PeekMacs<'_> {
    fn learn(&mut self, vlan: u16, mac: [u8; 6], port: PortNo, now_ns: u64) -> Learned {
        self.0.would_learn(vlan, mac, port, now_ns)
    }

    fn lookup(&mut self, vlan: u16, mac: [u8; 6], now_ns: u64) -> Option<PortNo> {
        self.0.lookup(vlan, mac, now_ns)
    }
}

pub struct BridgeView<'a> {
    /// Every port of the bridge, for flood/all.
    pub ports: &'a [PortNo],
    /// VLAN mode of each port, aligned with `ports` (NORMAL only). Empty: every port is a trunk
    /// of all VLANs.
    pub vlan_modes: &'a [VlanMode],
    pub rules: &'a RuleTable,
}

impl BridgeView<'_> {
    fn vlan_mode(&self, port: PortNo) -> &VlanMode {
        static TRUNK_ALL: VlanMode = VlanMode::TrunkAll;
        self.ports
            .iter()
            .position(|p| *p == port)
            .and_then(|i| self.vlan_modes.get(i))
            .unwrap_or(&TRUNK_ALL)
    }
}

/// The behaviour of a bridge without rules.
const NORMAL_ONLY: &[Action] = &[Action::Normal];

/// Decides what to do with a packet whose key is `key`. Learns source MACs for NORMAL.
pub fn translate(
    key: &FlowKey,
    view: &BridgeView,
    macs: &mut dyn MacLearning,
    now_ns: u64,
) -> Decision {
    translate_recorded(key, view, macs, now_ns, Recorder(None))
}

/// [`translate`], recording each step it takes in `steps` (for `vswitchctl trace`; give it
/// a `macs` that does not learn).
pub fn translate_traced(
    key: &FlowKey,
    view: &BridgeView,
    macs: &mut dyn MacLearning,
    now_ns: u64,
    steps: &mut Vec<TraceStep>,
) -> Decision {
    translate_recorded(key, view, macs, now_ns, Recorder(Some(steps)))
}

fn translate_recorded(
    key: &FlowKey,
    view: &BridgeView,
    macs: &mut dyn MacLearning,
    now_ns: u64,
    mut rec: Recorder,
) -> Decision {
    let (rule, actions, lookup_mask) = if view.rules.is_empty() {
        rec.note(|| TraceStep::NoRules);
        (None, NORMAL_ONLY, FlowKey::default())
    } else {
        match view.rules.lookup(key) {
            (Some(r), mask) => {
                rec.note(|| TraceStep::Rule(Arc::clone(r)));
                (Some(Arc::clone(r)), &r.rule.actions[..], mask)
            }
            (None, mask) => {
                rec.note(|| TraceStep::NoRuleMatched);
                return Decision {
                    mask: with_in_port(mask),
                    ..Decision::dropped(DropReason::NoMatch)
                };
            }
        }
    };
    let mut x = Xlate {
        work: *key,
        mask: with_in_port(lookup_mask),
        out: Vec::new(),
        reason: None,
        view,
        learn: None,
        learn_refused: false,
        mac_deps: Vec::new(),
        floods: false,
        normal_targets: Vec::new(),
        rec,
    };
    for a in actions {
        if rule.is_some() {
            x.rec.note(|| TraceStep::Action(a.clone()));
        }
        x.action(a, macs, now_ns);
    }
    x.finish(rule)
}

fn with_in_port(mut mask: FlowKey) -> FlowKey {
    // Every decision may depend on the input port (output to it is suppressed).
    mask.in_port = u32::MAX;
    mask
}

/// Translation state: the key as modified by the actions so far.
struct Xlate<'a, 't> {
    work: FlowKey,
    mask: FlowKey,
    out: Vec<DpAction>,
    /// Why an output was suppressed (kept if nothing was output in the end).
    reason: Option<DropReason>,
    view: &'a BridgeView<'a>,
    learn: Option<(u16, [u8; 6])>,
    learn_refused: bool,
    mac_deps: Vec<(u16, [u8; 6])>,
    floods: bool,
    normal_targets: Vec<PortNo>,
    rec: Recorder<'t>,
}

impl Xlate<'_, '_> {
    /// VLAN actions and NORMAL read the (original) VLAN fields, directly or after a pop.
    fn depends_on_vlans(&mut self) {
        self.mask.vlan_tci = u16::MAX;
        self.mask.cvlan_tci = u16::MAX;
    }

    fn depends_on_mac(&mut self, vlan: u16, mac: [u8; 6]) {
        if !self.mac_deps.contains(&(vlan, mac)) {
            self.mac_deps.push((vlan, mac));
        }
    }

    fn output(&mut self, p: PortNo) {
        if p == self.work.in_port {
            // OpenFlow: output to the ingress port needs the explicit in_port action.
            self.rec.note(|| TraceStep::IngressIsEgress(p));
            self.reason = Some(DropReason::IngressIsEgress);
        } else {
            self.out.push(DpAction::Output(p));
        }
    }

    fn flood(&mut self) {
        self.floods = true;
        let before = self.out.len();
        for &p in self.view.ports {
            if p != self.work.in_port {
                self.out.push(DpAction::Output(p));
            }
        }
        if self.out.len() == before {
            self.reason = Some(DropReason::NoPorts);
        }
    }

    fn push_vlan(&mut self, tpid: u16, wire_tci: u16) {
        self.out.push(DpAction::PushVlan {
            tpid,
            tci: wire_tci,
        });
        self.work.cvlan_tci = self.work.vlan_tci;
        self.work.vlan_tci = wire_tci | VLAN_PRESENT;
        self.work.vlan_tpid = tpid;
    }

    fn action(&mut self, a: &Action, macs: &mut dyn MacLearning, now_ns: u64) {
        let tagged = self.work.vlan_tci & VLAN_PRESENT != 0;
        match *a {
            Action::Output(p) => self.output(p),
            Action::InPort => self.out.push(DpAction::Output(self.work.in_port)),
            Action::Flood | Action::All => self.flood(),
            Action::Normal => self.normal(macs, now_ns),
            Action::Drop => {}
            Action::PushVlan(tpid) => {
                self.depends_on_vlans();
                // OpenFlow push_vlan copies VID/PCP from the current outer tag.
                let tci = self.work.vlan_tci & !VLAN_PRESENT;
                self.push_vlan(tpid, tci);
            }
            Action::PopVlan => {
                self.depends_on_vlans();
                if tagged {
                    self.out.push(DpAction::PopVlan);
                    let inner = self.work.cvlan_tci;
                    self.work.vlan_tci = inner;
                    self.work.vlan_tpid = if inner != 0 { ETH_TYPE_VLAN } else { 0 };
                    self.work.cvlan_tci = 0;
                }
            }
            Action::SetVlanVid(vid) => {
                self.depends_on_vlans();
                let vid = vid & VLAN_VID_MASK;
                if tagged {
                    self.out.push(DpAction::SetVlanVid(vid));
                    self.work.vlan_tci = (self.work.vlan_tci & !VLAN_VID_MASK) | vid;
                } else {
                    self.push_vlan(ETH_TYPE_VLAN, vid);
                }
            }
            Action::SetVlanPcp(pcp) => {
                self.depends_on_vlans();
                let pcp = pcp & 7;
                if tagged {
                    self.out.push(DpAction::SetVlanPcp(pcp));
                    self.work.vlan_tci =
                        (self.work.vlan_tci & 0x1fff) | (u16::from(pcp) << VLAN_PCP_SHIFT);
                } else {
                    self.push_vlan(ETH_TYPE_VLAN, u16::from(pcp) << VLAN_PCP_SHIFT);
                }
            }
            Action::SetQueue(q) => self.out.push(DpAction::SetQueue(q)),
            Action::Meter(m) => self.out.push(DpAction::Meter(m)),
            Action::SetTunId(id) => {
                self.out.push(DpAction::SetTunId(id));
                self.work.tun_id = id;
            }
            Action::SetDscp(dscp) => {
                // Only meaningful for IP packets; OpenFlow prerequisites make it a no-op else.
                self.mask.dl_type = u16::MAX;
                if self.work.dl_type == ETH_TYPE_IPV4 || self.work.dl_type == ETH_TYPE_IPV6 {
                    let dscp = dscp & 0x3f;
                    self.out.push(DpAction::SetDscp(dscp));
                    self.work.nw_tos = (dscp << 2) | (self.work.nw_tos & 3);
                }
            }
        }
    }

    /// Learning L2 switch: the input port's VLAN mode decides the bridge VLAN; learning,
    /// lookup and flooding stay within that VLAN; each output port gets the frame in the form
    /// its mode wants (untagged, or tagged with its TPID and VID).
    fn normal(&mut self, macs: &mut dyn MacLearning, now_ns: u64) {
        self.depends_on_vlans();
        self.mask.vlan_tpid = u16::MAX;
        self.mask.dl_src = [0xff; 6];
        self.mask.dl_dst = [0xff; 6];
        let in_port = self.work.in_port;
        let outer = (self.work.vlan_tci & VLAN_PRESENT != 0)
            .then_some((self.work.vlan_tpid, self.work.vlan_tci & !VLAN_PRESENT));
        let inner = (self.work.cvlan_tci & VLAN_PRESENT != 0)
            .then_some(self.work.cvlan_tci & !VLAN_PRESENT);
        let admitted = match self
            .view
            .vlan_mode(in_port)
            .admit(FrameTags { outer, inner })
        {
            Ok(a) => a,
            Err(e) => {
                let reason = match e {
                    VlanDrop::TaggedOnAccess => DropReason::VlanTaggedOnAccess,
                    VlanDrop::VlanNotAllowed => DropReason::VlanNotAllowed,
                    VlanDrop::CvlanNotAllowed => DropReason::CvlanNotAllowed,
                };
                self.rec.note(|| TraceStep::VlanRefused {
                    port: in_port,
                    reason,
                });
                self.reason = Some(reason);
                return;
            }
        };
        let vlan = admitted.vlan;
        self.rec.note(|| TraceStep::VlanAdmitted {
            port: in_port,
            vlan,
            pcp: admitted.pcp,
            strip_outer: admitted.strip_outer,
        });
        let (src, dst) = (self.work.dl_src, self.work.dl_dst);
        if !is_multicast(&src) {
            let learned: Learned = macs.learn(vlan, src, in_port, now_ns);
            self.rec.note(|| TraceStep::Learn {
                vlan,
                mac: src,
                port: in_port,
                result: learned,
            });
            self.learn.get_or_insert((vlan, src));
            if learned.refused() {
                // Not learned, so nothing to learn back if it moves: no dependency (a port
                // flooding random sources then costs no index entry per frame).
                self.learn_refused = true;
            } else {
                self.depends_on_mac(vlan, src);
            }
        }
        let known = if is_multicast(&dst) {
            self.rec.note(|| TraceStep::Multicast { vlan });
            None
        } else {
            self.depends_on_mac(vlan, dst);
            let found = macs.lookup(vlan, dst, now_ns);
            self.rec.note(|| TraceStep::Lookup {
                vlan,
                mac: dst,
                port: found,
            });
            found
        };
        // Unknown (or multicast) destinations go to every port of the VLAN.
        self.floods |= known.is_none();

        // Output ports with the form each wants, in port order.
        let mut targets: Vec<(PortNo, Egress)> = Vec::new();
        match known {
            Some(p) if p == in_port => {
                self.rec.note(|| TraceStep::IngressIsEgress(p));
                self.reason = Some(DropReason::IngressIsEgress);
                return;
            }
            Some(p) => {
                self.normal_targets.push(p);
                let e = self.view.vlan_mode(p).egress(vlan);
                self.rec.note(|| TraceStep::Egress { port: p, egress: e });
                if e != Egress::Skip {
                    targets.push((p, e));
                }
            }
            None => {
                for &p in self.view.ports {
                    if p == in_port {
                        continue;
                    }
                    let e = self.view.vlan_mode(p).egress(vlan);
                    self.rec.note(|| TraceStep::Egress { port: p, egress: e });
                    if e != Egress::Skip {
                        targets.push((p, e));
                    }
                }
            }
        }
        if targets.is_empty() {
            self.reason = Some(DropReason::NoPorts);
            return;
        }

        // The tag on top of the "base" frame (the frame without the tag the port strips).
        // Frames are modified in place between outputs, so each form is reached from the
        // current one: the form the frame arrived in goes first, unmodified.
        let mut top: Option<(u16, u16)> = match outer {
            Some((tpid, tci)) if admitted.strip_outer => Some((tpid, tci & VLAN_VID_MASK)),
            _ => None,
        };
        let base_tagged = if admitted.strip_outer {
            inner.is_some()
        } else {
            outer.is_some()
        };
        let as_top = |e: &Egress| match *e {
            Egress::Tagged { tpid, vid } => Some((tpid, vid)),
            _ => None,
        };
        let mut forms: Vec<Egress> = Vec::new();
        for (_, e) in &targets {
            if !forms.contains(e) {
                forms.push(*e);
            }
        }
        forms.sort_by_key(|f| as_top(f) != top);
        for form in forms {
            let want = as_top(&form);
            if want != top {
                if top.is_some() {
                    self.out.push(DpAction::PopVlan);
                }
                if let Some((tpid, vid)) = want {
                    let tci = (u16::from(admitted.pcp) << VLAN_PCP_SHIFT) | vid;
                    // Over a customer tag the outer tag is an 802.1ad service tag.
                    let tpid = if base_tagged && tpid == ETH_TYPE_VLAN {
                        vlan_vxlan::TPID_8021AD
                    } else {
                        tpid
                    };
                    self.out.push(DpAction::PushVlan { tpid, tci });
                }
                top = want;
            }
            for (p, e) in &targets {
                if *e == form {
                    self.out.push(DpAction::Output(*p));
                }
            }
        }
    }

    fn finish(mut self, rule: Option<Arc<InstalledRule>>) -> Decision {
        // Modifications after the last output affect nothing.
        let last_output = self
            .out
            .iter()
            .rposition(|a| matches!(a, DpAction::Output(_)));
        let drop = match last_output {
            Some(i) => {
                self.out.truncate(i + 1);
                None
            }
            None => {
                self.out.clear();
                Some(self.reason.unwrap_or(DropReason::RuleDrop))
            }
        };
        Decision {
            actions: self.out,
            mask: self.mask,
            drop,
            rule,
            learn: self.learn,
            learn_refused: self.learn_refused,
            mac_deps: self.mac_deps,
            floods: self.floods,
            normal_targets: self.normal_targets,
            validity: Validity::default(),
        }
    }
}

#[cfg(test)]
mod tests;
