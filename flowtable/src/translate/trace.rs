//! What the slow path decided, step by step, for `vswitchctl trace`: recorded only when a
//! trace asks for it (the datapath's own translations record nothing).

use std::sync::Arc;

use vlan_vxlan::Egress;

use crate::drop_reason::DropReason;
use crate::key::PortNo;
use crate::mac_learning::Learned;
use crate::rule::{Action, InstalledRule};

/// One decision of the slow path, in the order it was taken.
#[derive(Clone, Debug)]
pub enum TraceStep {
    /// The bridge has no rules: every packet goes to NORMAL.
    NoRules,
    /// The rule table's highest-priority match.
    Rule(Arc<InstalledRule>),
    /// No rule matched: the packet is dropped (table miss).
    NoRuleMatched,
    /// An action of the rule, about to run.
    Action(Action),
    /// An output to the packet's own input port, which OpenFlow suppresses.
    IngressIsEgress(PortNo),
    /// NORMAL: the input port admitted the frame into bridge VLAN `vlan`.
    VlanAdmitted {
        port: PortNo,
        vlan: u16,
        pcp: u8,
        strip_outer: bool,
    },
    /// NORMAL: the input port's VLAN mode refused the frame.
    VlanRefused { port: PortNo, reason: DropReason },
    /// NORMAL: what learning the source address did (or would do, in a trace).
    Learn {
        vlan: u16,
        mac: [u8; 6],
        port: PortNo,
        result: Learned,
    },
    /// NORMAL: the destination's lookup; None is unknown (the frame floods the VLAN).
    Lookup {
        vlan: u16,
        mac: [u8; 6],
        port: Option<PortNo>,
    },
    /// NORMAL: a multicast or broadcast destination floods the VLAN.
    Multicast { vlan: u16 },
    /// NORMAL: the form the frame leaves a port in (`Skip`: the port does not carry the VLAN).
    Egress { port: PortNo, egress: Egress },
}

/// Where a translation records its steps: nowhere, or a trace.
pub(crate) struct Recorder<'t>(pub(crate) Option<&'t mut Vec<TraceStep>>);

impl Recorder<'_> {
    /// Records a step; `step` is only built when a trace is being taken.
    #[inline]
    pub(crate) fn note(&mut self, step: impl FnOnce() -> TraceStep) {
        if let Some(t) = self.0.as_deref_mut() {
            t.push(step());
        }
    }
}
