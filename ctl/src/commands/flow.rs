//! `add-flow`, `add-flows`, `del-flows`, `dump-flows`.

use flowtable::{parse_match, parse_rule};
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::model::Config;
use crate::persist::rule_text;
use crate::results::{DelFlowsResult, FlowEntry};

/// Adds each rule (OpenFlow add: one with the same priority and match is replaced).
pub(super) fn add(cfg: &mut Config, br: &str, rules: &[String]) -> Result<Value, String> {
    let b = super::bridge_mut(cfg, br)?;
    for text in rules {
        let rule = parse_rule(text, &|n| b.ofport_of(n)).map_err(|e| e.to_string())?;
        b.rules.insert(rule);
    }
    Ok(Value::Null)
}

/// Deletes the rules MATCH covers (all without one); with `--strict`, the one rule with
/// exactly that match and priority.
pub(super) fn del(cfg: &mut Config, br: &str, args: &[String]) -> Result<Value, String> {
    let (strict, text) = match args {
        [] => (false, ""),
        [s] if s == "--strict" => (true, ""),
        [s, m] if s == "--strict" => (true, m.as_str()),
        [m] => (false, m.as_str()),
        _ => return Err("del-flows: usage: del-flows BRIDGE [--strict] [MATCH]".into()),
    };
    let b = super::bridge_mut(cfg, br)?;
    let (m, priority) = parse_match(text.trim(), &|n| b.ofport_of(n)).map_err(|e| e.to_string())?;
    let deleted = if strict {
        let p = priority.unwrap_or(flowtable::DEFAULT_PRIORITY);
        usize::from(b.rules.remove_exact(p, &m).is_some())
    } else {
        b.rules.remove_matching(&m, None).len()
    };
    to_value(&DelFlowsResult { deleted })
}

pub(super) fn dump(d: &Daemon, br: &str) -> Result<Value, String> {
    let b = super::bridge_of(d.config(), br)?;
    let flows: Vec<FlowEntry> = d
        .datapath()
        .dump_flows(br)
        .map_err(|e| e.0)?
        .into_iter()
        .map(|f| FlowEntry {
            text: rule_text(b, &f.rule),
            priority: f.rule.priority,
            n_packets: f.n_packets,
            n_bytes: f.n_bytes,
        })
        .collect();
    to_value(&flows)
}
