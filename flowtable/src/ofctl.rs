//! `ovs-ofctl` flow syntax (`priority=100,tcp,nw_src=10.0.0.0/8,actions=output:p2`), so OVS
//! users need no new habits. Parsing lives here, printing in `ofctl/format.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::key::{FlowKey, PortNo, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK};
use crate::parse::{ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6};
use crate::rule::{Action, Match, Rule};

mod format;
mod meter;
pub use format::{format_action, format_dp_action, format_flow, format_rule};
pub use meter::{BandKind, MAX_METER_ID, MeterBand, MeterSpec, format_meter, parse_meter};

pub const DEFAULT_PRIORITY: u16 = 32768;

/// A rule text that could not be parsed; the message is one line, meant for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

fn err(msg: impl Into<String>) -> RuleError {
    RuleError(msg.into())
}

fn bad(v: &str, field: &str, expected: &str) -> RuleError {
    err(format!("bad value \"{v}\" for {field} ({expected})"))
}

/// Parses a whole flow: match fields, then `actions=...`.
pub fn parse_rule(
    text: &str,
    port_by_name: &dyn Fn(&str) -> Option<PortNo>,
) -> Result<Rule, RuleError> {
    let (fields, actions) = split_actions(text).ok_or_else(|| err("missing \"actions=\""))?;
    let b = parse_fields(fields, port_by_name)?;
    Ok(Rule {
        priority: b.priority.unwrap_or(DEFAULT_PRIORITY),
        m: b.finish()?,
        actions: parse_actions(actions, port_by_name)?,
        cookie: b.cookie.unwrap_or(0),
    })
}

/// Parses a match without actions (for del-flows); empty text is the catch-all. Returns the
/// priority if one was given (for strict delete).
pub fn parse_match(
    text: &str,
    port_by_name: &dyn Fn(&str) -> Option<PortNo>,
) -> Result<(Match, Option<u16>), RuleError> {
    if split_actions(text).is_some() {
        return Err(err("actions are not allowed in a match"));
    }
    let b = parse_fields(text, port_by_name)?;
    if b.cookie.is_some() {
        return Err(err("cookie is not supported in a match"));
    }
    Ok((b.finish()?, b.priority))
}

/// Splits at `actions=` where it starts a token; everything after it is actions.
fn split_actions(text: &str) -> Option<(&str, &str)> {
    text.match_indices("actions=").find_map(|(i, pat)| {
        let before = text.get(..i)?;
        let starts_token = before
            .chars()
            .next_back()
            .is_none_or(|c| c == ',' || c.is_whitespace());
        starts_token.then(|| (before, text.get(i + pat.len()..).unwrap_or("")))
    })
}

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
}

/// What a field needs the rest of the match to say, like OpenFlow prerequisites.
#[derive(Clone, Copy, Debug)]
enum Prereq {
    Ipv4OrArp,
    Arp,
    Ipv6,
    Ip,
    IpOrArp,
    TcpOrUdp,
    Tcp,
    Udp,
    Icmp,
}

impl Prereq {
    fn holds(self, m: &Match) -> bool {
        let dl = |t: u16| m.mask.dl_type == u16::MAX && m.key.dl_type == t;
        let proto = |p: u8| m.mask.nw_proto == u8::MAX && m.key.nw_proto == p;
        let ip = dl(ETH_TYPE_IPV4) || dl(ETH_TYPE_IPV6);
        match self {
            Prereq::Ipv4OrArp => dl(ETH_TYPE_IPV4) || dl(ETH_TYPE_ARP),
            Prereq::Arp => dl(ETH_TYPE_ARP),
            Prereq::Ipv6 => dl(ETH_TYPE_IPV6),
            Prereq::Ip => ip,
            Prereq::IpOrArp => ip || dl(ETH_TYPE_ARP),
            Prereq::TcpOrUdp => ip && (proto(6) || proto(17)),
            Prereq::Tcp => ip && proto(6),
            Prereq::Udp => ip && proto(17),
            Prereq::Icmp => (dl(ETH_TYPE_IPV4) && proto(1)) || (dl(ETH_TYPE_IPV6) && proto(58)),
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Prereq::Ipv4OrArp => "dl_type=0x0800 or ip",
            Prereq::Arp => "dl_type=0x0806 or arp",
            Prereq::Ipv6 => "dl_type=0x86dd or ipv6",
            Prereq::Ip => "ip or ipv6",
            Prereq::IpOrArp => "ip, ipv6 or arp",
            Prereq::TcpOrUdp => "nw_proto=6 or 17 (tcp or udp)",
            Prereq::Tcp => "tcp or tcp6",
            Prereq::Udp => "udp or udp6",
            Prereq::Icmp => "icmp or icmp6",
        }
    }
}

/// Match fields as parsed so far; prerequisites are checked at the end, so order is free.
#[derive(Default)]
struct Builder {
    key: FlowKey,
    mask: FlowKey,
    priority: Option<u16>,
    cookie: Option<u64>,
    prereqs: Vec<(String, Prereq)>,
}

impl Builder {
    fn finish(&self) -> Result<Match, RuleError> {
        let m = Match::new(self.key, self.mask);
        match self.prereqs.iter().find(|(_, p)| !p.holds(&m)) {
            Some((field, p)) => Err(err(format!("{field} requires {}", p.needs()))),
            None => Ok(m),
        }
    }

    fn set_dl_type(&mut self, t: u16) {
        self.key.dl_type = t;
        self.mask.dl_type = u16::MAX;
    }

    fn set_proto(&mut self, t: u16, p: u8) {
        self.set_dl_type(t);
        self.key.nw_proto = p;
        self.mask.nw_proto = u8::MAX;
    }

    fn shorthand(&mut self, word: &str) -> Result<(), RuleError> {
        match word {
            "ip" | "ipv4" => self.set_dl_type(ETH_TYPE_IPV4),
            "ipv6" => self.set_dl_type(ETH_TYPE_IPV6),
            "arp" => self.set_dl_type(ETH_TYPE_ARP),
            "tcp" => self.set_proto(ETH_TYPE_IPV4, 6),
            "udp" => self.set_proto(ETH_TYPE_IPV4, 17),
            "icmp" => self.set_proto(ETH_TYPE_IPV4, 1),
            "tcp6" => self.set_proto(ETH_TYPE_IPV6, 6),
            "udp6" => self.set_proto(ETH_TYPE_IPV6, 17),
            "icmp6" => self.set_proto(ETH_TYPE_IPV6, 58),
            _ => return Err(err(format!("unknown field \"{word}\""))),
        }
        Ok(())
    }

    fn field(
        &mut self,
        name: &str,
        v: &str,
        ports: &dyn Fn(&str) -> Option<PortNo>,
    ) -> Result<(), RuleError> {
        let (k, m) = (&mut self.key, &mut self.mask);
        let prereq = match name {
            "priority" => {
                self.priority = Some(num(name, v, 0xffff)? as u16);
                None
            }
            "cookie" => {
                self.cookie = Some(num(name, v, u64::MAX)?);
                None
            }
            "in_port" => {
                k.in_port = port(v, ports)?;
                m.in_port = u32::MAX;
                None
            }
            "dl_src" | "eth_src" => {
                (k.dl_src, m.dl_src) = mac(name, v)?;
                None
            }
            "dl_dst" | "eth_dst" => {
                (k.dl_dst, m.dl_dst) = mac(name, v)?;
                None
            }
            "dl_type" | "eth_type" => {
                (k.dl_type, m.dl_type) = masked16(name, v)?;
                None
            }
            "dl_vlan" => {
                let vid = num(name, v, 0xffff)? as u16;
                if vid == 0xffff {
                    // "No tag at all".
                    (k.vlan_tci, m.vlan_tci) = (0, u16::MAX);
                } else if vid <= VLAN_VID_MASK {
                    k.vlan_tci = (k.vlan_tci & !0x1fff) | VLAN_PRESENT | vid;
                    m.vlan_tci |= VLAN_PRESENT | VLAN_VID_MASK;
                } else {
                    return Err(bad(v, name, "0-4095"));
                }
                None
            }
            "dl_vlan_pcp" => {
                let pcp = num(name, v, 7)? as u16;
                k.vlan_tci = (k.vlan_tci & 0x0fff) | VLAN_PRESENT | (pcp << VLAN_PCP_SHIFT);
                m.vlan_tci |= 0xf000;
                None
            }
            "vlan_tci" => {
                (k.vlan_tci, m.vlan_tci) = masked16(name, v)?;
                None
            }
            "nw_src" | "ip_src" => {
                (k.nw_src, m.nw_src) = ipv4(name, v)?;
                Some(Prereq::Ipv4OrArp)
            }
            "nw_dst" | "ip_dst" => {
                (k.nw_dst, m.nw_dst) = ipv4(name, v)?;
                Some(Prereq::Ipv4OrArp)
            }
            "arp_spa" => {
                (k.nw_src, m.nw_src) = ipv4(name, v)?;
                Some(Prereq::Arp)
            }
            "arp_tpa" => {
                (k.nw_dst, m.nw_dst) = ipv4(name, v)?;
                Some(Prereq::Arp)
            }
            "ipv6_src" => {
                (k.nw_src, m.nw_src) = ipv6(name, v)?;
                Some(Prereq::Ipv6)
            }
            "ipv6_dst" => {
                (k.nw_dst, m.nw_dst) = ipv6(name, v)?;
                Some(Prereq::Ipv6)
            }
            "nw_proto" | "ip_proto" => {
                (k.nw_proto, m.nw_proto) = masked8(name, v)?;
                Some(Prereq::IpOrArp)
            }
            "arp_op" => {
                (k.nw_proto, m.nw_proto) = (num(name, v, 0xff)? as u8, u8::MAX);
                Some(Prereq::Arp)
            }
            "nw_tos" => {
                // The low two bits are ECN, matched separately.
                k.nw_tos = (k.nw_tos & 3) | (num(name, v, 0xff)? as u8 & 0xfc);
                m.nw_tos |= 0xfc;
                Some(Prereq::Ip)
            }
            "ip_dscp" => {
                k.nw_tos = (k.nw_tos & 3) | ((num(name, v, 63)? as u8) << 2);
                m.nw_tos |= 0xfc;
                Some(Prereq::Ip)
            }
            "nw_ecn" | "ip_ecn" => {
                k.nw_tos = (k.nw_tos & 0xfc) | num(name, v, 3)? as u8;
                m.nw_tos |= 3;
                Some(Prereq::Ip)
            }
            "nw_ttl" => {
                (k.nw_ttl, m.nw_ttl) = (num(name, v, 0xff)? as u8, u8::MAX);
                Some(Prereq::Ip)
            }
            "ip_frag" | "nw_frag" => {
                (k.nw_frag, m.nw_frag) = frag(name, v)?;
                Some(Prereq::Ip)
            }
            "tp_src" | "tp_dst" | "tcp_src" | "tcp_dst" | "udp_src" | "udp_dst" => {
                let (val, mask) = masked16(name, v)?;
                if name.ends_with("src") {
                    (k.tp_src, m.tp_src) = (val, mask);
                } else {
                    (k.tp_dst, m.tp_dst) = (val, mask);
                }
                Some(match name.split('_').next() {
                    Some("tcp") => Prereq::Tcp,
                    Some("udp") => Prereq::Udp,
                    _ => Prereq::TcpOrUdp,
                })
            }
            "icmp_type" | "icmpv6_type" => {
                (k.tp_src, m.tp_src) = (num(name, v, 0xff)? as u16, u16::MAX);
                Some(Prereq::Icmp)
            }
            "icmp_code" | "icmpv6_code" => {
                (k.tp_dst, m.tp_dst) = (num(name, v, 0xff)? as u16, u16::MAX);
                Some(Prereq::Icmp)
            }
            "tun_id" | "tunnel_id" => {
                let (val, mask) = masked_num(name, v, u64::MAX)?;
                (k.tun_id, m.tun_id) = (val, mask);
                None
            }
            "tun_src" => {
                (k.tun_src, m.tun_src) = ipv4_u32(name, v)?;
                None
            }
            "tun_dst" => {
                (k.tun_dst, m.tun_dst) = ipv4_u32(name, v)?;
                None
            }
            _ => return Err(err(format!("unknown field \"{name}\""))),
        };
        if let Some(p) = prereq {
            self.prereqs.push((name.to_string(), p));
        }
        Ok(())
    }
}

fn parse_fields(text: &str, ports: &dyn Fn(&str) -> Option<PortNo>) -> Result<Builder, RuleError> {
    let mut b = Builder::default();
    for tok in tokens(text) {
        match tok.split_once('=') {
            Some((name, v)) => b.field(name, v, ports)?,
            None => b.shorthand(tok)?,
        }
    }
    Ok(b)
}

/// Decimal or 0x-hex number no larger than `max`.
fn num(field: &str, v: &str, max: u64) -> Result<u64, RuleError> {
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse::<u64>(),
    };
    match parsed {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad(v, field, &format!("0-{max}"))),
    }
}

/// `value[/mask]`; the mask defaults to all ones.
fn masked_num(field: &str, v: &str, max: u64) -> Result<(u64, u64), RuleError> {
    match v.split_once('/') {
        Some((val, mask)) => Ok((num(field, val, max)?, num(field, mask, max)?)),
        None => Ok((num(field, v, max)?, max)),
    }
}

fn masked16(field: &str, v: &str) -> Result<(u16, u16), RuleError> {
    let (val, mask) = masked_num(field, v, 0xffff)?;
    Ok((val as u16, mask as u16))
}

fn masked8(field: &str, v: &str) -> Result<(u8, u8), RuleError> {
    let (val, mask) = masked_num(field, v, 0xff)?;
    Ok((val as u8, mask as u8))
}

/// `ip_frag` keywords as (value, mask) over the FRAG_ANY / FRAG_LATER bits, as in OVS.
pub(crate) const FRAG_NAMES: [(&str, u8, u8); 5] = [
    ("no", 0, 1),
    ("yes", 1, 1),
    ("first", 1, 3),
    ("later", 3, 3),
    ("not_later", 0, 2),
];

fn frag(field: &str, v: &str) -> Result<(u8, u8), RuleError> {
    match FRAG_NAMES.iter().find(|(n, _, _)| *n == v) {
        Some(&(_, val, mask)) => Ok((val, mask)),
        None => masked8(field, v).map_err(|_| bad(v, field, "no, yes, first, later, not_later")),
    }
}

fn port(v: &str, ports: &dyn Fn(&str) -> Option<PortNo>) -> Result<PortNo, RuleError> {
    if let Some(p) = ports(v) {
        return Ok(p);
    }
    match v.parse::<PortNo>() {
        Ok(0) => Err(bad(v, "port", "1-4294967295")),
        Ok(p) => Ok(p),
        Err(_) => Err(err(format!("unknown port \"{v}\""))),
    }
}

fn mac(field: &str, v: &str) -> Result<([u8; 6], [u8; 6]), RuleError> {
    let one = |s: &str| -> Option<[u8; 6]> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(out)
    };
    let (val, mask) = match v.split_once('/') {
        Some((a, m)) => (one(a), one(m)),
        None => (one(v), Some([0xff; 6])),
    };
    val.zip(mask)
        .ok_or_else(|| bad(v, field, "a MAC like 00:11:22:33:44:55[/mask]"))
}

/// Mask for a prefix length, on a big-endian integer of `bits` bits (`len` <= `bits`).
fn prefix(len: u32, bits: u32) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len)) >> (128 - bits)
    }
}

fn ipv4_u32(field: &str, v: &str) -> Result<(u32, u32), RuleError> {
    let expected = "an IPv4 address a.b.c.d[/len or /mask]";
    let addr = |s: &str| s.parse::<Ipv4Addr>().map(u32::from).ok();
    let (val, mask) = match v.split_once('/') {
        None => (addr(v), Some(u32::MAX)),
        Some((a, m)) => {
            let mask = match m.parse::<u32>() {
                Ok(len) if len <= 32 => Some(prefix(len, 32) as u32),
                Ok(_) => None,
                Err(_) => addr(m),
            };
            (addr(a), mask)
        }
    };
    val.zip(mask).ok_or_else(|| bad(v, field, expected))
}

/// IPv4 in the first four bytes of an address field, as `FlowKey` stores it.
fn ipv4(field: &str, v: &str) -> Result<([u8; 16], [u8; 16]), RuleError> {
    let (val, mask) = ipv4_u32(field, v)?;
    let wide = |x: u32| {
        let mut a = [0u8; 16];
        for (d, s) in a.iter_mut().zip(x.to_be_bytes()) {
            *d = s;
        }
        a
    };
    Ok((wide(val), wide(mask)))
}

fn ipv6(field: &str, v: &str) -> Result<([u8; 16], [u8; 16]), RuleError> {
    let addr = |s: &str| s.parse::<Ipv6Addr>().map(|a| a.octets()).ok();
    let (val, mask) = match v.split_once('/') {
        None => (addr(v), Some([0xff; 16])),
        Some((a, m)) => {
            let mask = match m.parse::<u32>() {
                Ok(len) if len <= 128 => Some(prefix(len, 128).to_be_bytes()),
                Ok(_) => None,
                Err(_) => addr(m),
            };
            (addr(a), mask)
        }
    };
    val.zip(mask)
        .ok_or_else(|| bad(v, field, "an IPv6 address[/len or /mask]"))
}

fn parse_actions(
    text: &str,
    ports: &dyn Fn(&str) -> Option<PortNo>,
) -> Result<Vec<Action>, RuleError> {
    let actions = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| action(t, ports))
        .collect::<Result<Vec<_>, _>>()?;
    if actions.is_empty() {
        // No actions means drop; keep one canonical form.
        return Ok(vec![Action::Drop]);
    }
    if actions.len() > 1 && actions.contains(&Action::Drop) {
        return Err(err("\"drop\" must be the only action"));
    }
    Ok(actions)
}

fn action(tok: &str, ports: &dyn Fn(&str) -> Option<PortNo>) -> Result<Action, RuleError> {
    let (word, arg) = match tok.split_once(':') {
        Some((w, a)) => (w, Some(a)),
        None => (tok, None),
    };
    let word = word.to_ascii_lowercase();
    Ok(match (word.as_str(), arg) {
        ("output", Some(p)) => Action::Output(port(p, ports)?),
        ("in_port", None) => Action::InPort,
        ("flood", None) => Action::Flood,
        ("all", None) => Action::All,
        ("normal", None) => Action::Normal,
        ("drop", None) => Action::Drop,
        ("pop_vlan" | "strip_vlan", None) => Action::PopVlan,
        ("push_vlan", Some(t)) => match num("push_vlan", t, 0xffff) {
            Ok(tpid @ (0x8100 | 0x88a8)) => Action::PushVlan(tpid as u16),
            _ => return Err(bad(t, "push_vlan", "0x8100 or 0x88a8")),
        },
        ("mod_vlan_vid", Some(v)) => Action::SetVlanVid(num("mod_vlan_vid", v, 4095)? as u16),
        ("mod_vlan_pcp", Some(v)) => Action::SetVlanPcp(num("mod_vlan_pcp", v, 7)? as u8),
        ("mod_nw_tos", Some(v)) => match num("mod_nw_tos", v, 0xff) {
            Ok(tos) if tos & 3 == 0 => Action::SetDscp((tos >> 2) as u8),
            _ => return Err(bad(v, "mod_nw_tos", "0-255, a multiple of 4")),
        },
        ("set_field", Some(s)) => set_field(s)?,
        ("set_queue", Some(q)) => Action::SetQueue(num("set_queue", q, 7)? as u8),
        ("meter", Some(m)) => match num("meter", m, u64::from(MAX_METER_ID)) {
            Ok(id) if id > 0 => Action::Meter(id as u32),
            _ => return Err(bad(m, "meter", &format!("1-{MAX_METER_ID}"))),
        },
        ("set_tunnel" | "set_tunnel64", Some(v)) => {
            Action::SetTunId(num("set_tunnel", v, u64::MAX)?)
        }
        (_, None) => match port(tok, ports) {
            Ok(p) => Action::Output(p),
            Err(_) => return Err(err(format!("unknown action \"{tok}\""))),
        },
        _ => return Err(err(format!("unknown action \"{tok}\""))),
    })
}

fn set_field(s: &str) -> Result<Action, RuleError> {
    let (v, field) = s
        .split_once("->")
        .ok_or_else(|| err(format!("bad set_field \"{s}\" (want value->field)")))?;
    Ok(match field.to_ascii_lowercase().as_str() {
        "vlan_vid" => Action::SetVlanVid(num("vlan_vid", v, 4095)? as u16),
        "vlan_pcp" => Action::SetVlanPcp(num("vlan_pcp", v, 7)? as u8),
        "ip_dscp" => Action::SetDscp(num("ip_dscp", v, 63)? as u8),
        "tun_id" => Action::SetTunId(num("tun_id", v, u64::MAX)?),
        _ => return Err(err(format!("unsupported set_field target \"{field}\""))),
    })
}

#[cfg(test)]
mod tests;
