//! Rule → canonical `ovs-ofctl` text, which `parse_rule` reads back to an equal rule (for
//! matches the parser can express).

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{DEFAULT_PRIORITY, FRAG_NAMES};
use crate::key::{FlowKey, PortNo, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK};
use crate::parse::{ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6};
use crate::rule::{Action, Match, Rule};
use crate::translate::DpAction;

pub fn format_rule(r: &Rule, port_name: &dyn Fn(PortNo) -> Option<String>) -> String {
    let mut parts = Vec::new();
    if r.cookie != 0 {
        parts.push(format!("cookie={:#x}", r.cookie));
    }
    if r.priority != DEFAULT_PRIORITY {
        parts.push(format!("priority={}", r.priority));
    }
    match_parts(&r.m, port_name, &mut parts);
    let actions: Vec<String> = r
        .actions
        .iter()
        .map(|a| format_action(a, port_name))
        .collect();
    let actions = if actions.is_empty() {
        "drop".to_string()
    } else {
        actions.join(",")
    };
    parts.push(format!("actions={actions}"));
    parts.join(",")
}

/// A packet's key in `ovs-ofctl` flow syntax: every field the frame has (untagged frames
/// show `dl_vlan=0xffff`; `in_port` only when not 0).
pub fn format_flow(k: &FlowKey, port_name: &dyn Fn(PortNo) -> Option<String>) -> String {
    let mut mask = crate::key::FULL_MASK;
    mask.vlan_tpid = 0;
    mask.cvlan_tci = 0;
    if k.in_port == 0 {
        mask.in_port = 0;
    }
    if k.tun_id == 0 && k.tun_src == 0 && k.tun_dst == 0 {
        (mask.tun_id, mask.tun_src, mask.tun_dst) = (0, 0, 0);
    }
    let ip = k.dl_type == ETH_TYPE_IPV4 || k.dl_type == ETH_TYPE_IPV6;
    // Shown as ip_frag=no, first or later.
    mask.nw_frag = if k.nw_frag == 0 { 1 } else { 3 };
    if !ip {
        (mask.nw_tos, mask.nw_ttl, mask.nw_frag) = (0, 0, 0);
        (mask.tp_src, mask.tp_dst) = (0, 0);
        if k.dl_type != ETH_TYPE_ARP {
            (mask.nw_src, mask.nw_dst, mask.nw_proto) = ([0; 16], [0; 16], 0);
        }
    } else if !matches!(k.nw_proto, 1 | 6 | 17 | 58) {
        (mask.tp_src, mask.tp_dst) = (0, 0);
    }
    let mut parts = Vec::new();
    match_parts(&Match { key: *k, mask }, port_name, &mut parts);
    parts.join(",")
}

/// One datapath action in `ovs-appctl dpctl/dump-flows` style.
pub fn format_dp_action(a: &DpAction, port_name: &dyn Fn(PortNo) -> Option<String>) -> String {
    match *a {
        DpAction::Output(p) => port(p, port_name),
        DpAction::PushVlan { tpid, tci } => format!(
            "push_vlan(tpid={tpid:#06x},vid={},pcp={})",
            tci & VLAN_VID_MASK,
            tci >> VLAN_PCP_SHIFT
        ),
        DpAction::PopVlan => "pop_vlan".into(),
        DpAction::SetVlanVid(v) => format!("set_vlan_vid({v})"),
        DpAction::SetVlanPcp(p) => format!("set_vlan_pcp({p})"),
        DpAction::SetDscp(d) => format!("set_dscp({d})"),
        DpAction::SetTunId(t) => format!("set_tunnel({t})"),
        DpAction::SetQueue(q) => format!("set_queue({q})"),
        DpAction::Meter(m) => format!("meter({m})"),
    }
}

fn port(p: PortNo, port_name: &dyn Fn(PortNo) -> Option<String>) -> String {
    port_name(p).unwrap_or_else(|| p.to_string())
}

/// One rule action in `ovs-ofctl` syntax.
pub fn format_action(a: &Action, port_name: &dyn Fn(PortNo) -> Option<String>) -> String {
    match *a {
        Action::Output(p) => format!("output:{}", port(p, port_name)),
        Action::InPort => "in_port".into(),
        Action::Flood => "flood".into(),
        Action::All => "all".into(),
        Action::Normal => "normal".into(),
        Action::Drop => "drop".into(),
        Action::PushVlan(tpid) => format!("push_vlan:{tpid:#06x}"),
        Action::PopVlan => "pop_vlan".into(),
        Action::SetVlanVid(v) => format!("mod_vlan_vid:{v}"),
        Action::SetVlanPcp(p) => format!("mod_vlan_pcp:{p}"),
        Action::SetDscp(d) => format!("set_field:{d}->ip_dscp"),
        Action::SetTunId(t) => format!("set_field:{t}->tun_id"),
        Action::SetQueue(q) => format!("set_queue:{q}"),
        Action::Meter(m) => format!("meter:{m}"),
    }
}

/// `value` alone when the mask is all ones, else `0xvalue/0xmask`.
fn num_masked(v: u64, m: u64, full: u64) -> String {
    if m == full {
        v.to_string()
    } else {
        format!("{v:#x}/{m:#x}")
    }
}

fn ipv4(v: u32, m: u32) -> String {
    let a = Ipv4Addr::from(v);
    if m == u32::MAX {
        a.to_string()
    } else if m.leading_ones() + m.trailing_zeros() == 32 {
        format!("{a}/{}", m.leading_ones())
    } else {
        format!("{a}/{}", Ipv4Addr::from(m))
    }
}

fn ipv6(v: [u8; 16], m: [u8; 16]) -> String {
    let (a, mm) = (Ipv6Addr::from(v), u128::from_be_bytes(m));
    if mm == u128::MAX {
        a.to_string()
    } else if mm.leading_ones() + mm.trailing_zeros() == 128 {
        format!("{a}/{}", mm.leading_ones())
    } else {
        format!("{a}/{}", Ipv6Addr::from(m))
    }
}

fn first4(a: &[u8; 16]) -> u32 {
    let [b0, b1, b2, b3, ..] = *a;
    u32::from_be_bytes([b0, b1, b2, b3])
}

fn vlan(k: u16, m: u16, out: &mut Vec<String>) {
    let tagged = k & VLAN_PRESENT != 0;
    let vid = k & VLAN_VID_MASK;
    let pcp = k >> VLAN_PCP_SHIFT;
    match m {
        0 => {}
        0xffff if k == 0 => out.push("dl_vlan=0xffff".into()),
        0x1fff if tagged => out.push(format!("dl_vlan={vid}")),
        0xf000 if tagged => out.push(format!("dl_vlan_pcp={pcp}")),
        0xffff if tagged => {
            out.push(format!("dl_vlan={vid}"));
            out.push(format!("dl_vlan_pcp={pcp}"));
        }
        _ => out.push(format!("vlan_tci={k:#06x}/{m:#06x}")),
    }
}

fn match_parts(m: &Match, port_name: &dyn Fn(PortNo) -> Option<String>, out: &mut Vec<String>) {
    let (k, mk): (&FlowKey, &FlowKey) = (&m.key, &m.mask);
    let dl = |t: u16| mk.dl_type == u16::MAX && k.dl_type == t;
    let (is4, is6, is_arp) = (dl(ETH_TYPE_IPV4), dl(ETH_TYPE_IPV6), dl(ETH_TYPE_ARP));
    let mut proto_done = false;

    // dl_type and nw_proto, as a shorthand word when there is one.
    if mk.dl_type == u16::MAX {
        let shorthand = if mk.nw_proto == u8::MAX {
            match (k.dl_type, k.nw_proto) {
                (ETH_TYPE_IPV4, 6) => Some("tcp"),
                (ETH_TYPE_IPV4, 17) => Some("udp"),
                (ETH_TYPE_IPV4, 1) => Some("icmp"),
                (ETH_TYPE_IPV6, 6) => Some("tcp6"),
                (ETH_TYPE_IPV6, 17) => Some("udp6"),
                (ETH_TYPE_IPV6, 58) => Some("icmp6"),
                _ => None,
            }
        } else {
            None
        };
        match (shorthand, k.dl_type) {
            (Some(s), _) => {
                out.push(s.into());
                proto_done = true;
            }
            (None, ETH_TYPE_IPV4) => out.push("ip".into()),
            (None, ETH_TYPE_IPV6) => out.push("ipv6".into()),
            (None, ETH_TYPE_ARP) => out.push("arp".into()),
            (None, t) => out.push(format!("dl_type={t:#06x}")),
        }
    } else if mk.dl_type != 0 {
        out.push(format!("dl_type={:#06x}/{:#06x}", k.dl_type, mk.dl_type));
    }

    if mk.in_port != 0 {
        out.push(format!("in_port={}", port(k.in_port, port_name)));
    }
    vlan(k.vlan_tci, mk.vlan_tci, out);
    for (name, v, msk) in [
        ("dl_src", k.dl_src, mk.dl_src),
        ("dl_dst", k.dl_dst, mk.dl_dst),
    ] {
        if msk != [0; 6] {
            let mut s = format!("{name}={}", mac(v));
            if msk != [0xff; 6] {
                let _ = write!(s, "/{}", mac(msk));
            }
            out.push(s);
        }
    }

    let addrs = [
        ("src", &k.nw_src, &mk.nw_src),
        ("dst", &k.nw_dst, &mk.nw_dst),
    ];
    for (dir, v, msk) in addrs {
        if *msk == [0; 16] {
            continue;
        }
        if is6 {
            out.push(format!("ipv6_{dir}={}", ipv6(*v, *msk)));
        } else {
            let name = if is_arp {
                ["arp_spa", "arp_tpa"]
            } else {
                ["nw_src", "nw_dst"]
            };
            let name = if dir == "src" { name[0] } else { name[1] };
            out.push(format!("{name}={}", ipv4(first4(v), first4(msk))));
        }
    }

    if mk.nw_proto != 0 && !proto_done {
        if is_arp && mk.nw_proto == u8::MAX {
            out.push(format!("arp_op={}", k.nw_proto));
        } else {
            let p = num_masked(k.nw_proto.into(), mk.nw_proto.into(), 0xff);
            out.push(format!("nw_proto={p}"));
        }
    }
    if mk.nw_tos & 0xfc == 0xfc {
        out.push(format!("nw_tos={}", k.nw_tos & 0xfc));
    }
    if mk.nw_tos & 3 == 3 {
        out.push(format!("nw_ecn={}", k.nw_tos & 3));
    }
    if mk.nw_ttl != 0 {
        out.push(format!("nw_ttl={}", k.nw_ttl));
    }
    if mk.nw_frag != 0 {
        let name = FRAG_NAMES
            .iter()
            .find(|&&(_, v, m)| (v, m) == (k.nw_frag, mk.nw_frag));
        match name {
            Some((n, _, _)) => out.push(format!("ip_frag={n}")),
            None => out.push(format!("ip_frag={:#x}/{:#x}", k.nw_frag, mk.nw_frag)),
        }
    }

    let icmp = (is4 && proto_is(m, 1)) || (is6 && proto_is(m, 58));
    let ports = [("src", k.tp_src, mk.tp_src), ("dst", k.tp_dst, mk.tp_dst)];
    for (dir, v, msk) in ports {
        if msk == 0 {
            continue;
        }
        if icmp {
            let name = if dir == "src" {
                "icmp_type"
            } else {
                "icmp_code"
            };
            out.push(format!("{name}={v}"));
        } else {
            out.push(format!(
                "tp_{dir}={}",
                num_masked(v.into(), msk.into(), 0xffff)
            ));
        }
    }

    if mk.tun_id != 0 {
        out.push(format!(
            "tun_id={}",
            num_masked(k.tun_id, mk.tun_id, u64::MAX)
        ));
    }
    if mk.tun_src != 0 {
        out.push(format!("tun_src={}", ipv4(k.tun_src, mk.tun_src)));
    }
    if mk.tun_dst != 0 {
        out.push(format!("tun_dst={}", ipv4(k.tun_dst, mk.tun_dst)));
    }
}

fn proto_is(m: &Match, p: u8) -> bool {
    m.mask.nw_proto == u8::MAX && m.key.nw_proto == p
}

fn mac(a: [u8; 6]) -> String {
    let [a0, a1, a2, a3, a4, a5] = a;
    format!("{a0:02x}:{a1:02x}:{a2:02x}:{a3:02x}:{a4:02x}:{a5:02x}")
}
