//! The daemon's commands. A command that changes the configuration is an edit of the model
//! (`edit`): it runs on a copy inside one [`Daemon::transact`], alone or with others in a
//! `batch` (`vswitchctl A -- B -- C`, all or nothing). The others report (`query`).
//!
//! One file per family: `bridge`, `port`, `flow`, `meter`, `tunnel`, `qos`, `bond`, `trace`,
//! and `stats` (show, counters, PMDs).

mod bond;
mod bridge;
pub mod capture;
mod flow;
mod meter;
mod port;
mod qos;
mod stats;
mod trace;
mod tunnel;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::model::Config;
use crate::protocol::{Request, truncate};

/// Commands and their usage, in the order `vswitchctl --help` lists them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("add-br", "add-br BRIDGE"),
    ("del-br", "del-br BRIDGE"),
    ("add-port", "add-port BRIDGE PORT type=TYPE [KEY=VALUE...]"),
    ("del-port", "del-port [BRIDGE] PORT"),
    (
        "add-bond",
        "add-bond BRIDGE BOND MEMBER... [bond_mode=active-backup|balance-slb|balance-tcp] [lacp=off|active|passive] [lacp-time=fast|slow] [lacp-fallback-ab=true] [bond-primary=MEMBER] [updelay=MS] [downdelay=MS] [miimon=MS] [bond-rebalance-interval=MS] [member-type=afxdp|dpdk|ring|vhost-user] [MEMBER.KEY=VALUE...] [tag=N ...]",
    ),
    ("del-bond", "del-bond [BRIDGE] BOND"),
    ("bond-show", "bond-show [BOND]"),
    ("lacp-show", "lacp-show [BOND]"),
    (
        "bond-set-active-member",
        "bond-set-active-member BOND MEMBER",
    ),
    (
        "set",
        "set port PORT [tag=N] [trunks=LIST] [vlan_mode=MODE] [cvlans=LIST] [vtep_ip=A.B.C.D/LEN] [mac-limit=N] [mac-learn-rate=N] [trust=dscp|pcp|untrusted[:DSCP]] (empty value clears)",
    ),
    ("show", "show"),
    (
        "set-qos",
        "set-qos PORT max-rate=RATE [burst=BYTES] [overhead=N] [dscp-map=D:C,...] [pcp-map=P:C,...]",
    ),
    (
        "set-queue",
        "set-queue PORT CLASS [strict] [weight=W] [min-rate=RATE] [max-rate=RATE] [limit=N] [limit-bytes=BYTES]",
    ),
    ("clear-qos", "clear-qos PORT"),
    (
        "set-policer",
        "set-policer PORT [type=srtcm|trtcm|rfc4115] cir=RATE [cbs=BYTES] [ebs=|pir=|pbs=|eir=...] [green=|yellow=|red=pass|drop|dscp:N|prec:N] [color-aware=true]",
    ),
    ("clear-policer", "clear-policer PORT"),
    ("qos-show", "qos-show PORT"),
    ("add-flow", "add-flow BRIDGE RULE"),
    (
        "add-flows",
        "add-flows BRIDGE RULE... (vswitchctl: add-flows BRIDGE FILE)",
    ),
    ("del-flows", "del-flows BRIDGE [--strict] [MATCH]"),
    ("dump-flows", "dump-flows BRIDGE"),
    (
        "add-meter",
        "add-meter BRIDGE meter=N,kbps,[burst,]bands=type=drop|dscp_remark,rate=KBPS[,burst_size=KBIT][,prec_level=N]...",
    ),
    ("del-meter", "del-meter BRIDGE meter=N"),
    ("dump-meters", "dump-meters BRIDGE"),
    ("dump-ports", "dump-ports BRIDGE"),
    ("fdb-show", "fdb-show BRIDGE"),
    ("tnl-route-add", "tnl-route-add A.B.C.D/LEN PORT [GATEWAY]"),
    ("tnl-route-del", "tnl-route-del A.B.C.D/LEN"),
    ("tnl-route-show", "tnl-route-show"),
    ("tnl-neigh-show", "tnl-neigh-show"),
    ("tnl-neigh-flush", "tnl-neigh-flush"),
    ("pmd-stats", "pmd-stats"),
    ("pmd-rxq-show", "pmd-rxq-show"),
    ("pmd-rxq-rebalance", "pmd-rxq-rebalance"),
    ("port-latency", "port-latency [PORT]"),
    (
        "capture",
        "capture PORT [--direction rx|tx|both] [--count N] [--snaplen N] [--seconds N] -w FILE.pcapng (vswitchctl; the daemon has capture-start, capture-read, capture-stop)",
    ),
    (
        "trace",
        "trace BRIDGE FLOW | trace BRIDGE PORT HEXFRAME (FLOW in rule syntax with in_port=PORT)",
    ),
    (
        "batch",
        "batch COMMAND [ARGS...] [-- COMMAND [ARGS...]]... (vswitchctl: A -- B -- C)",
    ),
    ("version", "version"),
];

/// Runs one request.
pub fn handle(d: &mut Daemon, req: &Request) -> Result<Value, String> {
    if d.is_stopped() {
        return Err("vswitchd is shutting down".into());
    }
    let (cmd, args) = (req.command.as_str(), req.args.as_slice());
    if cmd == "batch" {
        let parts: Vec<&[String]> = args.split(|a| a == "--").collect();
        for p in &parts {
            let Some(c) = p.first() else {
                return Err("batch: empty command between \"--\"".into());
            };
            if !is_edit(c) {
                return Err(format!(
                    "batch: {} does not change the configuration (only changes can be batched)",
                    truncate(c, 40)
                ));
            }
        }
        return d.transact(|cfg| {
            parts
                .iter()
                .map(|p| edit(cfg, &p[0], &p[1..]))
                .collect::<Result<Vec<Value>, String>>()
                .map(Value::Array)
        });
    }
    if is_edit(cmd) {
        let port = match cmd {
            "set" => args.get(1),
            "set-qos" | "set-queue" | "clear-qos" | "set-policer" | "clear-policer" => args.first(),
            _ => None,
        };
        {
            // A port that did not come up cannot take new settings until it is re-added.
            if let Some(port) = port
                && let Some(why) = d.unapplied(port)
            {
                return Err(format!(
                    "port {port} is not running ({why}); fix or delete it first"
                ));
            }
        }
        return d.transact(|cfg| edit(cfg, cmd, args));
    }
    query(d, cmd, args)
}

const EDITS: &[&str] = &[
    "add-br",
    "del-br",
    "add-port",
    "del-port",
    "add-bond",
    "del-bond",
    "set",
    "add-flow",
    "add-flows",
    "del-flows",
    "tnl-route-add",
    "tnl-route-del",
    "set-qos",
    "set-queue",
    "clear-qos",
    "set-policer",
    "clear-policer",
    "add-meter",
    "del-meter",
];

fn is_edit(cmd: &str) -> bool {
    EDITS.contains(&cmd)
}

/// Applies one configuration command to `cfg`.
fn edit(cfg: &mut Config, cmd: &str, a: &[String]) -> Result<Value, String> {
    match cmd {
        "add-br" => {
            expect_args(cmd, a, 1, 1)?;
            bridge::add(cfg, &a[0])
        }
        "del-br" => {
            expect_args(cmd, a, 1, 1)?;
            bridge::del(cfg, &a[0])
        }
        "add-port" => {
            expect_args(cmd, a, 2, usize::MAX)?;
            port::add(cfg, &a[0], &a[1], &a[2..])
        }
        "del-port" => {
            expect_args(cmd, a, 1, 2)?;
            match a {
                [br, p] => port::del(cfg, Some(br), p),
                [p] => port::del(cfg, None, p),
                _ => unreachable!("checked by expect_args"),
            }
        }
        "add-bond" => {
            expect_args(cmd, a, 3, usize::MAX)?;
            bond::add(cfg, &a[0], &a[1], &a[2..])
        }
        "del-bond" => {
            expect_args(cmd, a, 1, 2)?;
            match a {
                [br, p] => bond::del(cfg, Some(br), p),
                [p] => bond::del(cfg, None, p),
                _ => unreachable!("checked by expect_args"),
            }
        }
        "set" => {
            expect_args(cmd, a, 3, usize::MAX)?;
            if a[0] != "port" {
                return Err(format!(
                    "set: only \"set port PORT KEY=VALUE...\" is supported, not {:?}",
                    truncate(&a[0], 32)
                ));
            }
            port::set(cfg, &a[1], &a[2..])
        }
        "add-flow" => {
            expect_args(cmd, a, 2, 2)?;
            flow::add(cfg, &a[0], &a[1..])
        }
        "add-flows" => {
            expect_args(cmd, a, 1, usize::MAX)?;
            flow::add(cfg, &a[0], &a[1..])
        }
        "del-flows" => {
            expect_args(cmd, a, 1, 3)?;
            flow::del(cfg, &a[0], &a[1..])
        }
        "tnl-route-add" => {
            expect_args(cmd, a, 2, 3)?;
            tunnel::route_add(cfg, &a[0], &a[1], a.get(2).map(String::as_str))
        }
        "tnl-route-del" => {
            expect_args(cmd, a, 1, 1)?;
            tunnel::route_del(cfg, &a[0])
        }
        "add-meter" => {
            expect_args(cmd, a, 2, usize::MAX)?;
            meter::add(cfg, &a[0], &a[1..].join(","))
        }
        "del-meter" => {
            expect_args(cmd, a, 2, 2)?;
            meter::del(cfg, &a[0], &a[1])
        }
        "set-qos" => {
            expect_args(cmd, a, 2, usize::MAX)?;
            qos::set_qos(cfg, &a[0], &a[1..])
        }
        "set-queue" => {
            expect_args(cmd, a, 3, usize::MAX)?;
            qos::set_queue(cfg, &a[0], &a[1], &a[2..])
        }
        "clear-qos" => {
            expect_args(cmd, a, 1, 1)?;
            qos::clear_qos(cfg, &a[0])
        }
        "set-policer" => {
            expect_args(cmd, a, 2, usize::MAX)?;
            qos::set_policer(cfg, &a[0], &a[1..])
        }
        "clear-policer" => {
            expect_args(cmd, a, 1, 1)?;
            qos::clear_policer(cfg, &a[0])
        }
        other => Err(unknown(other)),
    }
}

/// Runs one reporting (or non-configuration) command.
fn query(d: &Daemon, cmd: &str, a: &[String]) -> Result<Value, String> {
    match cmd {
        "version" => {
            expect_args(cmd, a, 0, 0)?;
            stats::version()
        }
        "show" => {
            expect_args(cmd, a, 0, 0)?;
            stats::show(d)
        }
        "dump-flows" => {
            expect_args(cmd, a, 1, 1)?;
            flow::dump(d, &a[0])
        }
        "dump-ports" => {
            expect_args(cmd, a, 1, 1)?;
            stats::dump_ports(d, &a[0])
        }
        "fdb-show" => {
            expect_args(cmd, a, 1, 1)?;
            stats::fdb(d, &a[0])
        }
        "pmd-stats" | "pmd-rxq-show" => {
            expect_args(cmd, a, 0, 0)?;
            stats::pmds(d)
        }
        "pmd-rxq-rebalance" => {
            expect_args(cmd, a, 0, 0)?;
            stats::rebalance(d)
        }
        "port-latency" => {
            expect_args(cmd, a, 0, 1)?;
            stats::latency(d, a.first().map(String::as_str))
        }
        "trace" => {
            expect_args(cmd, a, 2, 3)?;
            trace::trace(d, a)
        }
        "capture-start" => {
            expect_args(cmd, a, 4, 4)?;
            capture::start(d, a)
        }
        "capture-read" => {
            expect_args(cmd, a, 1, 2)?;
            capture::read(d, a)
        }
        "capture-stop" => {
            expect_args(cmd, a, 1, 1)?;
            capture::stop(d, a)
        }
        "tnl-route-show" => {
            expect_args(cmd, a, 0, 0)?;
            tunnel::routes(d)
        }
        "tnl-neigh-show" => {
            expect_args(cmd, a, 0, 0)?;
            tunnel::neighbours(d)
        }
        "dump-meters" => {
            expect_args(cmd, a, 1, 1)?;
            meter::dump(d, &a[0])
        }
        "qos-show" => {
            expect_args(cmd, a, 1, 1)?;
            qos::show(d, &a[0])
        }
        "tnl-neigh-flush" => {
            expect_args(cmd, a, 0, 0)?;
            d.datapath().tnl_neigh_flush();
            Ok(Value::Null)
        }
        "bond-show" | "lacp-show" => {
            expect_args(cmd, a, 0, 1)?;
            bond::show(d, a.first().map(String::as_str))
        }
        "bond-set-active-member" => {
            expect_args(cmd, a, 2, 2)?;
            bond::set_active(d, &a[0], &a[1])
        }
        other => Err(unknown(other)),
    }
}

fn unknown(cmd: &str) -> String {
    format!(
        "unknown command '{}' (commands: {})",
        truncate(cmd, 40),
        COMMANDS
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn usage_error(cmd: &str) -> String {
    let usage = COMMANDS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, u)| *u)
        .unwrap_or(cmd);
    format!("{cmd}: wrong number of arguments (usage: {usage})")
}

fn expect_args(cmd: &str, args: &[String], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        Err(usage_error(cmd))
    } else {
        Ok(())
    }
}

/// The bridge named `name`, or the error every command gives for a missing one.
fn bridge_of<'a>(cfg: &'a Config, name: &str) -> Result<&'a crate::model::Bridge, String> {
    cfg.bridge(name)
        .ok_or_else(|| format!("no bridge named {}", truncate(name, 64)))
}

fn bridge_mut<'a>(cfg: &'a mut Config, name: &str) -> Result<&'a mut crate::model::Bridge, String> {
    cfg.bridge_mut(name)
        .ok_or_else(|| format!("no bridge named {}", truncate(name, 64)))
}

#[cfg(test)]
mod tests;
