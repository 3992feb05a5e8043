//! Applies the header-rewriting datapath actions to a packet.

use flowtable::DpAction;
use vlan_vxlan::tag;

use crate::packet::{ClassHint, Packet};

/// Applies one rewriting action. `Output` and `Meter` are handled by the pipeline and ignored
/// here.
/// Returns false if the packet cannot take the action (no headroom, too short).
pub fn apply(pkt: &mut Packet, action: &DpAction) -> bool {
    match *action {
        DpAction::Output(_) | DpAction::Meter(_) => true,
        DpAction::PushVlan { tpid, tci } => {
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
