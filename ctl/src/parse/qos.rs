//! QoS settings as operators write them, to the typed [`QosConfig`], [`PolicerConfig`] and
//! [`Trust`], and back (non-defaults only) for `qos-show` and the state file. `render` then
//! `parse` gives the same values back.
//!
//! Rates are bits per second (`100000000`, `100Mbit`, `1Gbit`, `500kbit`), as `tc` and Open
//! vSwitch's `max-rate` write them; sizes are bytes (`15140`, `64KiB`, `64KB`).

use std::collections::BTreeMap;

use datapath::QosConfig;
use flowtable::{BandKind, MeterBand, MeterSpec};
use qos::{
    Action, CLASSES, ClassMap, PolicerConfig, Profile, QueueConfig, SchedulerConfig, Shaper,
    TrafficClass, Trust,
};

use super::port::Options;

/// Keys of `set-qos PORT ...` (the port's scheduler).
pub const QOS_KEYS: &[&str] = &["max-rate", "burst", "overhead", "dscp-map", "pcp-map"];
/// Keys of `set-queue PORT CLASS ...`.
pub const QUEUE_KEYS: &[&str] = &[
    "strict",
    "weight",
    "min-rate",
    "max-rate",
    "limit",
    "limit-bytes",
];
/// Keys of `set-policer PORT ...`.
pub const POLICER_KEYS: &[&str] = &[
    "type",
    "cir",
    "cbs",
    "ebs",
    "pir",
    "pbs",
    "eir",
    "green",
    "yellow",
    "red",
    "color-aware",
];

/// Largest queue an operator may configure (the scheduler keeps a buffer per queued frame).
pub const MAX_QUEUE_PACKETS: usize = 65_536;
pub const MAX_QUEUE_BYTES: usize = 64 << 20;
const MAX_WEIGHT: u32 = 1000;
const MAX_OVERHEAD: u32 = 64;
/// Default bursts: this long at the rate, and never below two full-size frames.
const DEFAULT_BURST_NS: u64 = 10_000_000;
const MIN_DEFAULT_BURST: u64 = 2 * 1518;

fn check_keys(options: &Options, known: &[&str], what: &str) -> Result<(), String> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown {what} option {k:?} (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// A rate in bits per second with an optional `kbit`, `Mbit` or `Gbit` suffix (any case), as
/// bytes per second.
pub fn parse_rate(key: &str, v: &str) -> Result<u64, String> {
    let bad = || format!("bad {key} {v:?} (bits per second, e.g. 100Mbit, 1Gbit, 500000)");
    let lower = v.to_ascii_lowercase();
    let (digits, scale) = [
        ("gbit", 1_000_000_000u64),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ]
    .iter()
    .find_map(|(s, m)| lower.strip_suffix(s).map(|d| (d, *m)))
    .unwrap_or((lower.as_str(), 1));
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bits = n.checked_mul(scale).ok_or_else(bad)?;
    if bits < 8 {
        return Err(format!("{key} must be at least 8 bits per second"));
    }
    Ok(bits / 8)
}

/// Bytes per second as the largest exact unit of bits per second.
pub fn render_rate(bytes_per_s: u64) -> String {
    let bits = u128::from(bytes_per_s) * 8;
    for (s, m) in [
        ("Gbit", 1_000_000_000u128),
        ("Mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bits >= m && bits % m == 0 {
            return format!("{}{s}", bits / m);
        }
    }
    bits.to_string()
}

/// A size in bytes with an optional `KB`/`MB` (1000) or `KiB`/`MiB` (1024) suffix.
pub fn parse_bytes(key: &str, v: &str) -> Result<u64, String> {
    let bad = || format!("bad {key} {v:?} (bytes, e.g. 15140, 64KiB, 1MB)");
    let (digits, scale) = [
        ("KiB", 1024u64),
        ("MiB", 1 << 20),
        ("KB", 1000),
        ("MB", 1_000_000),
        ("B", 1),
    ]
    .iter()
    .find_map(|(s, m)| v.strip_suffix(s).map(|d| (d, *m)))
    .unwrap_or((v, 1));
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(scale).ok_or_else(bad)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("bad {key} {v:?} (true or false)")),
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    key: &str,
    v: &str,
    lo: T,
    hi: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("bad {key} {v:?} ({lo}-{hi})")),
    }
}

fn class(v: &str) -> Result<TrafficClass, String> {
    v.parse::<u8>()
        .ok()
        .and_then(TrafficClass::new)
        .ok_or_else(|| format!("unknown class {v:?} (0-{})", CLASSES - 1))
}

/// `D:C,D:C,...` over a default map of `N` entries: marking D (below N) goes to class C.
fn parse_map<const N: usize>(
    key: &str,
    v: &str,
    default: [TrafficClass; N],
) -> Result<[TrafficClass; N], String> {
    let mut map = default;
    for entry in v.split(',').filter(|e| !e.is_empty()) {
        let (m, c) = entry
            .split_once(':')
            .ok_or_else(|| format!("bad {key} entry {entry:?} (MARKING:CLASS)"))?;
        let m: usize = parse_num(key, m, 0, N - 1)?;
        map[m] = class(c)?;
    }
    Ok(map)
}

fn render_map<const N: usize>(map: &[TrafficClass; N], default: &[TrafficClass; N]) -> String {
    map.iter()
        .zip(default)
        .enumerate()
        .filter(|(_, (m, d))| m != d)
        .map(|(i, (m, _))| format!("{i}:{}", m.value()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The port part of a scheduler (`set-qos` keys) over `base` (the current configuration, or
/// the default for a port without one). A port scheduler shapes: `max-rate` is required.
pub fn parse_qos(options: &Options, base: &QosConfig) -> Result<QosConfig, String> {
    check_keys(options, QOS_KEYS, "qos")?;
    let mut cfg = base.clone();
    let get = |k: &str| options.get(k).map(String::as_str);
    let rate = match get("max-rate") {
        Some(v) => parse_rate("max-rate", v)?,
        None => cfg
            .scheduler
            .shaper
            .map(|s| s.rate)
            .ok_or("set-qos needs max-rate= (the port's shaped rate)")?,
    };
    let burst = match get("burst") {
        Some(v) => parse_bytes("burst", v)?,
        None => match (cfg.scheduler.shaper, get("max-rate")) {
            (Some(s), None) => s.burst,
            _ => default_burst(rate),
        },
    };
    cfg.scheduler.shaper = Some(Shaper { rate, burst });
    if let Some(v) = get("overhead") {
        cfg.scheduler.overhead = parse_num("overhead", v, 0, MAX_OVERHEAD)?;
    }
    let defaults = ClassMap::default();
    if let Some(v) = get("dscp-map") {
        cfg.classes.dscp = parse_map("dscp-map", v, defaults.dscp)?;
    }
    if let Some(v) = get("pcp-map") {
        cfg.classes.pcp = parse_map("pcp-map", v, defaults.pcp)?;
    }
    cfg.scheduler.validate()?;
    Ok(cfg)
}

/// One queue's settings (`set-queue` keys) over its current ones.
pub fn parse_queue(options: &Options, base: &QueueConfig) -> Result<QueueConfig, String> {
    check_keys(options, QUEUE_KEYS, "queue")?;
    let mut q = *base;
    let get = |k: &str| options.get(k).map(String::as_str);
    if let Some(v) = get("strict") {
        q.strict = parse_bool("strict", v)?;
    }
    if let Some(v) = get("weight") {
        q.weight = parse_num("weight", v, 1, MAX_WEIGHT)?;
        if get("strict").is_none() {
            q.strict = false;
        }
    }
    let rate = |k: &str| -> Result<Option<Option<u64>>, String> {
        get(k)
            .map(|v| match v {
                "none" => Ok(None),
                _ => parse_rate(k, v).map(Some),
            })
            .transpose()
    };
    if let Some(r) = rate("min-rate")? {
        q.min_rate = r;
    }
    if let Some(r) = rate("max-rate")? {
        q.max_rate = r;
    }
    if let Some(v) = get("limit") {
        q.limit_packets = parse_num("limit", v, 1, MAX_QUEUE_PACKETS)?;
    }
    if let Some(v) = get("limit-bytes") {
        let b = parse_bytes("limit-bytes", v)?;
        q.limit_bytes = usize::try_from(b)
            .ok()
            .filter(|b| (1514..=MAX_QUEUE_BYTES).contains(b))
            .ok_or_else(|| format!("bad limit-bytes {v:?} (1514-{MAX_QUEUE_BYTES})"))?;
    }
    Ok(q)
}

fn default_burst(rate: u64) -> u64 {
    let at_rate = (u128::from(rate) * u128::from(DEFAULT_BURST_NS) / 1_000_000_000) as u64;
    at_rate.max(MIN_DEFAULT_BURST)
}

/// The non-default settings of a scheduler: the port's (`set-qos` keys) and each queue's
/// (`set-queue` keys), by class.
pub fn render_qos(cfg: &QosConfig) -> (Options, BTreeMap<u8, Options>) {
    let mut port = Options::new();
    if let Some(s) = cfg.scheduler.shaper {
        port.insert("max-rate".into(), render_rate(s.rate));
        if s.burst != default_burst(s.rate) {
            port.insert("burst".into(), s.burst.to_string());
        }
    }
    if cfg.scheduler.overhead != 0 {
        port.insert("overhead".into(), cfg.scheduler.overhead.to_string());
    }
    let defaults = ClassMap::default();
    let dscp = render_map(&cfg.classes.dscp, &defaults.dscp);
    if !dscp.is_empty() {
        port.insert("dscp-map".into(), dscp);
    }
    let pcp = render_map(&cfg.classes.pcp, &defaults.pcp);
    if !pcp.is_empty() {
        port.insert("pcp-map".into(), pcp);
    }
    let default = SchedulerConfig::default();
    let mut queues = BTreeMap::new();
    for (c, (q, d)) in cfg.scheduler.queues.iter().zip(&default.queues).enumerate() {
        let mut o = Options::new();
        if q.strict != d.strict {
            o.insert("strict".into(), q.strict.to_string());
        }
        if q.weight != d.weight {
            o.insert("weight".into(), q.weight.to_string());
        }
        if let Some(r) = q.min_rate {
            o.insert("min-rate".into(), render_rate(r));
        }
        if let Some(r) = q.max_rate {
            o.insert("max-rate".into(), render_rate(r));
        }
        if q.limit_packets != d.limit_packets {
            o.insert("limit".into(), q.limit_packets.to_string());
        }
        if q.limit_bytes != d.limit_bytes {
            o.insert("limit-bytes".into(), q.limit_bytes.to_string());
        }
        if !o.is_empty() {
            queues.insert(c as u8, o);
        }
    }
    (port, queues)
}

/// A whole scheduler from its rendered parts (the state file).
pub fn parse_qos_parts(
    port: &Options,
    queues: &BTreeMap<String, Options>,
) -> Result<QosConfig, String> {
    let mut cfg = parse_qos(port, &QosConfig::default())?;
    for (c, o) in queues {
        let c = class(c)?;
        let q = &mut cfg.scheduler.queues[c.index()];
        *q = parse_queue(o, q).map_err(|e| format!("queue {}: {e}", c.value()))?;
    }
    cfg.scheduler.validate()?;
    Ok(cfg)
}

/// `trust=dscp|pcp|untrusted|untrusted:DSCP`.
pub fn parse_trust(v: &str) -> Result<Trust, String> {
    match v {
        "dscp" => Ok(Trust::Dscp),
        "pcp" => Ok(Trust::Pcp),
        "untrusted" => Ok(Trust::Untrusted { dscp: 0 }),
        _ => match v.strip_prefix("untrusted:") {
            Some(d) => Ok(Trust::Untrusted {
                dscp: parse_num("trust=untrusted:DSCP", d, 0, 63)?,
            }),
            None => Err(format!(
                "bad trust {v:?} (dscp, pcp, untrusted or untrusted:DSCP)"
            )),
        },
    }
}

pub fn render_trust(t: Trust) -> String {
    match t {
        Trust::Dscp => "dscp".into(),
        Trust::Pcp => "pcp".into(),
        Trust::Untrusted { dscp: 0 } => "untrusted".into(),
        Trust::Untrusted { dscp } => format!("untrusted:{dscp}"),
    }
}

fn parse_color_action(key: &str, v: &str) -> Result<Action, String> {
    match v {
        "pass" => Ok(Action::Pass),
        "drop" => Ok(Action::Drop),
        _ => {
            if let Some(d) = v.strip_prefix("dscp:") {
                Ok(Action::RemarkDscp(parse_num(key, d, 0, 63)?))
            } else if let Some(n) = v.strip_prefix("prec:") {
                Ok(Action::RaiseDropPrecedence(parse_num(key, n, 1, 2)?))
            } else {
                Err(format!("bad {key} {v:?} (pass, drop, dscp:N or prec:N)"))
            }
        }
    }
}

fn render_color_action(a: Action) -> String {
    match a {
        Action::Pass => "pass".into(),
        Action::Drop => "drop".into(),
        Action::RemarkDscp(d) => format!("dscp:{d}"),
        Action::RaiseDropPrecedence(n) => format!("prec:{n}"),
    }
}

/// Green passes, yellow passes, red is dropped unless told otherwise.
const DEFAULT_ACTIONS: [Action; 3] = [Action::Pass, Action::Pass, Action::Drop];

/// `set-policer` keys: `type=srtcm` (RFC 2697: cir, cbs, ebs), `trtcm` (RFC 2698: cir, cbs,
/// pir, pbs) or `rfc4115` (cir, cbs, eir, ebs); bursts default to 10 ms at their rate.
pub fn parse_policer(options: &Options) -> Result<PolicerConfig, String> {
    check_keys(options, POLICER_KEYS, "policer")?;
    let get = |k: &str| options.get(k).map(String::as_str);
    let rate =
        |k: &str| -> Result<Option<u64>, String> { get(k).map(|v| parse_rate(k, v)).transpose() };
    let bytes = |k: &str, rate: u64| -> Result<u64, String> {
        get(k).map_or(Ok(default_burst(rate)), |v| parse_bytes(k, v))
    };
    let cir = rate("cir")?.ok_or("a policer needs cir= (its committed rate)")?;
    let cbs = bytes("cbs", cir)?;
    let kind = get("type").unwrap_or("srtcm");
    let not_for = |keys: &[&str]| -> Result<(), String> {
        match keys.iter().find(|k| options.contains_key(**k)) {
            Some(k) => Err(format!("{k}= does not apply to type={kind}")),
            None => Ok(()),
        }
    };
    let profile = match kind {
        "srtcm" => {
            not_for(&["pir", "pbs", "eir"])?;
            Profile::SrTcm {
                cir,
                cbs,
                ebs: get("ebs").map_or(Ok(0), |v| parse_bytes("ebs", v))?,
            }
        }
        "trtcm" => {
            not_for(&["ebs", "eir"])?;
            let pir = rate("pir")?.ok_or("type=trtcm needs pir= (its peak rate)")?;
            Profile::TrTcm {
                cir,
                cbs,
                pir,
                pbs: bytes("pbs", pir)?,
            }
        }
        "rfc4115" => {
            not_for(&["pir", "pbs"])?;
            let eir = rate("eir")?.ok_or("type=rfc4115 needs eir= (its excess rate)")?;
            Profile::Rfc4115 {
                cir,
                cbs,
                eir,
                ebs: bytes("ebs", eir)?,
            }
        }
        _ => return Err(format!("bad type {kind:?} (srtcm, trtcm or rfc4115)")),
    };
    let mut actions = DEFAULT_ACTIONS;
    for (i, k) in ["green", "yellow", "red"].iter().enumerate() {
        if let Some(v) = get(k) {
            actions[i] = parse_color_action(k, v)?;
        }
    }
    let color_aware = get("color-aware").map_or(Ok(false), |v| parse_bool("color-aware", v))?;
    let cfg = PolicerConfig {
        profile,
        actions,
        color_aware,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Every setting of a policer (rates and bursts always, so the text says what it does).
pub fn render_policer(p: &PolicerConfig) -> Options {
    let mut o = Options::new();
    let mut put = |k: &str, v: String| {
        o.insert(k.to_string(), v);
    };
    match p.profile {
        Profile::SrTcm { cir, cbs, ebs } => {
            put("type", "srtcm".into());
            put("cir", render_rate(cir));
            put("cbs", cbs.to_string());
            put("ebs", ebs.to_string());
        }
        Profile::TrTcm { cir, cbs, pir, pbs } => {
            put("type", "trtcm".into());
            put("cir", render_rate(cir));
            put("cbs", cbs.to_string());
            put("pir", render_rate(pir));
            put("pbs", pbs.to_string());
        }
        Profile::Rfc4115 { cir, cbs, eir, ebs } => {
            put("type", "rfc4115".into());
            put("cir", render_rate(cir));
            put("cbs", cbs.to_string());
            put("eir", render_rate(eir));
            put("ebs", ebs.to_string());
        }
    }
    for (i, k) in ["green", "yellow", "red"].iter().enumerate() {
        put(k, render_color_action(p.actions[i]));
    }
    if p.color_aware {
        put("color-aware", "true".into());
    }
    o
}

/// The policer a meter is: one drop band at R is srTCM (committed rate R, no excess: over R is
/// red, dropped); a `dscp_remark` band alone is the same with red re-marked; both bands are
/// trTCM (committed = the remark band's rate, peak = the drop band's: yellow re-marked, red
/// dropped). Burst sizes are the bands' `burst_size` (kbit), else 10 ms at their rate.
pub fn meter_policer(m: &MeterSpec) -> PolicerConfig {
    let rate = |b: &MeterBand| u64::from(b.rate) * 1000 / 8;
    let burst = |b: &MeterBand| match b.burst_size {
        Some(kbit) => (u64::from(kbit) * 1000 / 8).max(1),
        None => default_burst(rate(b)),
    };
    let raise = |b: &MeterBand| match b.kind {
        BandKind::DscpRemark { prec_level } => Action::RaiseDropPrecedence(prec_level),
        BandKind::Drop => Action::Drop,
    };
    let (profile, actions) = match (m.band(false), m.band(true)) {
        (Some(remark), Some(drop)) => (
            Profile::TrTcm {
                cir: rate(remark),
                cbs: burst(remark),
                pir: rate(drop),
                pbs: burst(drop),
            },
            [Action::Pass, raise(remark), Action::Drop],
        ),
        (Some(only), None) | (None, Some(only)) => (
            Profile::SrTcm {
                cir: rate(only),
                cbs: burst(only),
                ebs: 0,
            },
            [Action::Pass, Action::Pass, raise(only)],
        ),
        // parse_meter refuses a meter without bands; let everything by.
        (None, None) => (
            Profile::SrTcm {
                cir: u64::MAX / 8,
                cbs: u64::MAX / 8,
                ebs: 0,
            },
            [Action::Pass; 3],
        ),
    };
    PolicerConfig {
        profile,
        actions,
        color_aware: false,
    }
}

/// A meter band's packets and bytes: the colour its action applies to.
pub fn band_counts(m: &MeterSpec, counts: &[(u64, u64); 3], band: &MeterBand) -> (u64, u64) {
    match (band.kind, m.band(true).is_some()) {
        // With a drop band, a remark band's frames are the yellow ones.
        (BandKind::DscpRemark { .. }, true) => counts[1],
        _ => counts[2],
    }
}

#[cfg(test)]
mod tests;
