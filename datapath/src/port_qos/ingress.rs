//! What a port does to frames as they arrive, before the flow lookup: its trust setting
//! (which marking the egress schedulers should believe; an untrusted port's DSCP is re-marked so
//! a guest cannot promote itself) and its policer. A port with the default (trust DSCP, no
//! policer) has no [`Ingress`] and pays nothing.
//!
//! The flow key is kept in step with every re-marking, so rules and caches see the frame as
//! it leaves this stage.

use std::sync::Mutex;

use flowtable::{DropReason, ETH_TYPE_IPV4, ETH_TYPE_IPV6, FlowKey, VLAN_PCP_SHIFT, VLAN_PRESENT};
use port_api::{ClassHint, Packet};
use qos::{Action, Color, Policer, PolicerConfig, Trust, af_color};

pub(crate) struct Ingress {
    trust: Trust,
    policer: Option<Mutex<Policer>>,
}

/// Packets and bytes per colour of a port's policer, green first.
pub type ColorCounts = [(u64, u64); 3];

impl Ingress {
    /// None when the settings need nothing done on arrival.
    pub(crate) fn new(trust: Trust, policer: Option<&PolicerConfig>, now_ns: u64) -> Option<Self> {
        if trust == Trust::Dscp && policer.is_none() {
            return None;
        }
        Some(Ingress {
            trust,
            policer: policer.map(|c| Mutex::new(Policer::from_config(c, now_ns))),
        })
    }

    /// Classes, re-marks and polices every packet of a parsed batch; a packet the policer drops
    /// gets its reason in `bad`. One policer lock per batch.
    pub(crate) fn apply<'a>(
        &self,
        packets: impl Iterator<
            Item = (
                &'a mut Packet,
                (&'a mut FlowKey, &'a mut Option<DropReason>),
            ),
        >,
        now_ns: u64,
    ) {
        let mut policer = self
            .policer
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        for (pkt, (key, bad)) in packets {
            if bad.is_some() {
                continue;
            }
            self.classify(pkt, key);
            if let Some(p) = policer.as_deref_mut() {
                *bad = police(p, pkt, key, now_ns);
            }
        }
    }

    pub(crate) fn classify(&self, pkt: &mut Packet, key: &mut FlowKey) {
        match self.trust {
            Trust::Dscp => {}
            Trust::Pcp => {
                pkt.class = if key.vlan_tci & VLAN_PRESENT != 0 {
                    ClassHint::Pcp((key.vlan_tci >> VLAN_PCP_SHIFT) as u8)
                } else {
                    ClassHint::Queue(0)
                };
            }
            Trust::Untrusted { dscp } => {
                remark(pkt, key, dscp);
                pkt.class = ClassHint::DscpOnly;
            }
        }
    }

    /// The policer's counts per colour.
    pub(crate) fn policer_counts(&self) -> Option<ColorCounts> {
        let p = self.policer.as_ref()?;
        Some(p.lock().unwrap_or_else(|e| e.into_inner()).counts)
    }
}

fn is_ip(key: &FlowKey) -> bool {
    key.dl_type == ETH_TYPE_IPV4 || key.dl_type == ETH_TYPE_IPV6
}

/// Sets an IP frame's DSCP, in the frame and in its key.
fn remark(pkt: &mut Packet, key: &mut FlowKey, dscp: u8) {
    if is_ip(key) && qos::set_dscp(pkt.data_mut(), dscp) {
        key.nw_tos = (dscp << 2) | (key.nw_tos & 3);
    }
}

/// Colours one frame and carries out its colour's action; Some when it is dropped.
pub(crate) fn police(
    p: &mut Policer,
    pkt: &mut Packet,
    key: &mut FlowKey,
    now_ns: u64,
) -> Option<DropReason> {
    let pre = is_ip(key).then(|| af_color(key.nw_tos >> 2));
    let (_, action): (Color, Action) = p.police(now_ns, pkt.len(), pre);
    match action {
        Action::Pass => None,
        Action::RemarkDscp(d) => {
            remark(pkt, key, d);
            None
        }
        Action::RaiseDropPrecedence(n) => {
            if is_ip(key) {
                let dscp = key.nw_tos >> 2;
                remark(pkt, key, qos::raise_drop_precedence(dscp, n));
            }
            None
        }
        Action::Drop => Some(DropReason::Policed),
    }
}
