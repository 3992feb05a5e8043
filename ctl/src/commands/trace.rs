//! `trace BRIDGE FLOW` and `trace BRIDGE PORT HEXFRAME`: a frame through the bridge, each
//! decision explained (like `ovs-appctl ofproto/trace`). Nothing is sent, learned or policed.

use datapath::{CachedDecision, Trace};
use flowtable::{
    CacheLevel, DpAction, Learned, PortNo, TraceStep, extract, format_action, format_dp_action,
    format_flow, frame_of, parse_match,
};
use serde_json::Value;
use vlan_vxlan::Egress;

use crate::daemon::{Daemon, to_value};
use crate::model::Bridge;
use crate::persist::rule_text;
use crate::protocol::truncate;
use crate::results::{TraceCacheRow, TraceOutputRow, TraceResult};

/// Longest frame accepted in hex (a jumbo frame).
const MAX_FRAME: usize = 9216;

pub(super) fn trace(d: &Daemon, a: &[String]) -> Result<Value, String> {
    let br = &a[0];
    let b = super::bridge_of(d.config(), br)?;
    let (in_port, frame, tun) = match a {
        [_, flow] => {
            let (m, _) =
                parse_match(flow.trim(), &|n| b.ofport_of(n)).map_err(|e| format!("trace: {e}"))?;
            if m.mask.in_port == 0 {
                return Err("trace: the flow needs in_port=PORT".into());
            }
            let port = b
                .name_of(m.key.in_port)
                .ok_or_else(|| format!("trace: no port {} on bridge {br}", m.key.in_port))?;
            let k = m.key;
            (port, frame_of(&k), (k.tun_id, k.tun_src, k.tun_dst))
        }
        [_, port, hex] => (port.clone(), parse_hex(hex)?, (0, 0, 0)),
        _ => return Err(super::usage_error("trace")),
    };
    let t = d
        .datapath()
        .trace(br, &in_port, &frame, tun)
        .map_err(|e| e.0)?;
    to_value(&result(b, br, &t))
}

/// A frame in hex: digits with optional `0x` and separators (spaces, colons, dashes).
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .trim()
        .trim_start_matches("0x")
        .bytes()
        .filter(|c| !matches!(c, b' ' | b':' | b'-' | b'\n' | b'\t'))
        .collect();
    if !digits.len().is_multiple_of(2) || digits.len() / 2 > MAX_FRAME {
        return Err(format!(
            "trace: a frame is an even number of hex digits, at most {MAX_FRAME} bytes"
        ));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("trace: bad hex {:?}", truncate(text, 40)))
        })
        .collect()
}

fn result(b: &Bridge, br: &str, t: &Trace) -> TraceResult {
    let name = |p: PortNo| b.name_of(p);
    let port = |p: PortNo| name(p).unwrap_or_else(|| p.to_string());
    let traced = (&t.actions, t.drop);
    TraceResult {
        bridge: br.to_string(),
        in_port: t.in_port.clone(),
        flow: t.key.as_ref().ok().map(|k| format_flow(k, &name)),
        frame_hex: t.frame.iter().map(|b| format!("{b:02x}")).collect(),
        ingress: t.ingress.clone(),
        steps: t.steps.iter().map(|s| step(b, s, &port)).collect(),
        datapath_actions: t
            .actions
            .iter()
            .map(|a| format_dp_action(a, &name))
            .collect(),
        outputs: t
            .outputs
            .iter()
            .map(|o| TraceOutputRow {
                port: o.port.clone(),
                kind: o.kind.to_string(),
                flow: extract(&o.frame, 0)
                    .map(|k| format_flow(&k, &name))
                    .unwrap_or_else(|r| format!("unparsable ({r})")),
                details: o
                    .details
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            })
            .collect(),
        drop: t.drop.map(|r| r.to_string()),
        caches: t
            .caches
            .iter()
            .map(|c| cache_row(c.pmd, c.held.as_ref(), traced))
            .collect(),
    }
}

fn cache_row(
    pmd: usize,
    held: Option<&Option<CachedDecision>>,
    traced: (&Vec<DpAction>, Option<flowtable::DropReason>),
) -> TraceCacheRow {
    let cached = held.and_then(Option::as_ref);
    TraceCacheRow {
        pmd,
        answered: held.is_some(),
        cache: cached.map(|c| match c.level {
            CacheLevel::Emc => "emc".to_string(),
            CacheLevel::Megaflow => "megaflow".to_string(),
        }),
        same_decision: cached.is_some_and(|c| (&c.actions, c.drop) == traced),
    }
}

fn vlan_name(vlan: u16) -> String {
    if vlan == 0 {
        "the untagged VLAN".into()
    } else {
        format!("VLAN {vlan}")
    }
}

fn step(b: &Bridge, s: &TraceStep, port: &dyn Fn(PortNo) -> String) -> String {
    let mac = |m: &[u8; 6]| datapath::format_mac(m);
    match s {
        TraceStep::NoRules => "no rules: every frame goes to NORMAL".into(),
        TraceStep::Rule(r) => format!("rule: {}", rule_text(b, &r.rule)),
        TraceStep::NoRuleMatched => "no rule matched: dropped (table miss)".into(),
        TraceStep::Action(a) => format!("  action {}", format_action(a, &|p| b.name_of(p))),
        TraceStep::IngressIsEgress(p) => {
            format!("    output to {} skipped: it is the input port", port(*p))
        }
        TraceStep::VlanAdmitted {
            port: p,
            vlan,
            pcp,
            strip_outer,
        } => format!(
            "    NORMAL: {} admits the frame into {} (priority {pcp}{})",
            port(*p),
            vlan_name(*vlan),
            if *strip_outer {
                ", outer tag removed"
            } else {
                ""
            }
        ),
        TraceStep::VlanRefused { port: p, reason } => {
            format!("    NORMAL: {} refuses the frame: {reason}", port(*p))
        }
        TraceStep::Learn {
            vlan,
            mac: m,
            port: p,
            result,
        } => {
            let what = match result {
                Learned::New => format!("would be learned on {}", port(*p)),
                Learned::Moved => format!("would move to {}", port(*p)),
                Learned::Refreshed => format!("already learned on {}", port(*p)),
                Learned::Full => "not learned: the table is full".into(),
                Learned::Ignored => "not learned: multicast".into(),
                Learned::Limited => format!("not learned: {} is at its mac-limit", port(*p)),
                Learned::RateLimited => {
                    format!("not learned: {} is at its mac-learn-rate", port(*p))
                }
            };
            format!(
                "    NORMAL: source {} in {}: {what}",
                mac(m),
                vlan_name(*vlan)
            )
        }
        TraceStep::Lookup {
            vlan,
            mac: m,
            port: found,
        } => match found {
            Some(p) => format!(
                "    NORMAL: destination {} in {}: learned on {}",
                mac(m),
                vlan_name(*vlan),
                port(*p)
            ),
            None => format!(
                "    NORMAL: destination {} in {}: unknown, flooded",
                mac(m),
                vlan_name(*vlan)
            ),
        },
        TraceStep::Multicast { vlan } => format!(
            "    NORMAL: multicast or broadcast destination: flooded in {}",
            vlan_name(*vlan)
        ),
        TraceStep::Egress { port: p, egress } => match egress {
            Egress::Skip => format!("    NORMAL: {} does not carry the VLAN: skipped", port(*p)),
            Egress::Untagged => format!("    NORMAL: to {} untagged", port(*p)),
            Egress::Tagged { tpid, vid } => {
                format!(
                    "    NORMAL: to {} tagged VLAN {vid} (TPID {tpid:#06x})",
                    port(*p)
                )
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::parse_hex;

    #[test]
    fn hex_frames_parse_with_separators_and_errors_are_clear() {
        assert_eq!(
            parse_hex("0x0a0B ff:00-01").unwrap(),
            vec![0x0a, 0x0b, 0xff, 0, 1]
        );
        assert!(parse_hex("abc").unwrap_err().contains("even number"));
        assert!(parse_hex("zz").unwrap_err().contains("bad hex"));
        assert!(parse_hex(&"00".repeat(9217)).is_err());
    }
}
