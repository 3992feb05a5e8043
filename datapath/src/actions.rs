//! Applies the header-rewriting datapath actions to a packet.

use flowtable::DpAction;
use qos::{ClassMap, TrafficClass, Trust};
use vlan_vxlan::tag;

use crate::packet::{ClassHint, Packet};

const PCP_SHIFT: u16 = 13;

/// The 802.1p priority of the frame's traffic class (the default maps: DSCP → class → PCP;
/// `set_queue` and a trusted PCP as they are), for a tag pushed on it.
fn class_pcp(pkt: &Packet) -> u8 {
    let map = ClassMap::default_ref();
    match pkt.class {
        ClassHint::Queue(q) => TrafficClass::new(q).map_or(0, |c| map.pcp_of(c)),
        ClassHint::Pcp(p) => p & 7,
        ClassHint::Markings | ClassHint::DscpOnly => match qos::markings(pkt.data()).dscp {
            Some(d) => map.pcp_of(map.classify(Trust::Dscp, Some(d), None)),
            None => 0,
        },
    }
}

/// Applies one rewriting action. `Output` and `Meter` are handled by the pipeline and ignored
/// here.
/// Returns false if the packet cannot take the action (no headroom, too short).
pub fn apply(pkt: &mut Packet, action: &DpAction) -> bool {
    match *action {
        DpAction::Output(_) | DpAction::Meter(_) => true,
        DpAction::PushVlan { tpid, tci } => {
            // A tag pushed without a priority carries the one of the frame's class.
            let tci = if tci >> PCP_SHIFT == 0 {
                tci | u16::from(class_pcp(pkt)) << PCP_SHIFT
            } else {
                tci
            };
            let (buf, start, len) = pkt.raw_mut();
            match tag::push_tag(buf, start, len, tpid, tci) {
                Ok((s, l)) => pkt.set_bounds(s, l),
                Err(_) => false,
            }
        }
        DpAction::PopVlan => {
            let (buf, start, len) = pkt.raw_mut();
            match tag::pop_tag(buf, start, len) {
                Ok((s, l)) => pkt.set_bounds(s, l),
                // Popping an untagged frame is a no-op, as in OpenFlow.
                Err(tag::TagError::NotTagged) => true,
                Err(_) => false,
            }
        }
        DpAction::SetVlanVid(vid) => tag::set_vid(pkt.data_mut(), vid).is_ok(),
        DpAction::SetVlanPcp(pcp) => {
            // The slow path pushes a tag first when needed; an untagged frame is left alone.
            let _ = tag::set_pcp(pkt.data_mut(), pcp);
            true
        }
        DpAction::SetTunId(id) => {
            pkt.tun_id = id;
            true
        }
        DpAction::SetQueue(q) => {
            pkt.class = ClassHint::Queue(q);
            true
        }
        DpAction::SetDscp(dscp) => {
            let _ = qos::set_dscp(pkt.data_mut(), dscp);
            true
        }
    }
}
