//! Bond options as operators write them (`add-bond br0 bond0 eth1 eth2 bond_mode=balance-tcp
//! lacp=active lacp-time=fast`), to the typed [`BondSpec`], and back to canonical options for
//! `show` and the state file (`render` then `parse` gives the same bond).
//!
//! Members are AF_XDP ports on the interface of the same name unless `member-type=` says
//! otherwise; a member's own type options are `MEMBER.KEY=VALUE` (`eth1.xdp-mode=native`,
//! `vu0.path=/run/vm1-0.sock`, `r0.peer=x0`).

use datapath::{BondMember, BondMode, BondSettings, BondSpec, LacpMode, PortSettings};

use super::port::{self, Options, SETTING_KEYS};

/// The bond's own settings (changeable live with `set port BOND ...`).
pub const BOND_KEYS: &[&str] = &[
    "bond_mode",
    "lacp",
    "lacp-time",
    "lacp-fallback-ab",
    "bond-primary",
    "updelay",
    "downdelay",
    "miimon",
    "bond-rebalance-interval",
    "lacp-system-priority",
    "lacp-system-id",
    "lacp-key",
];

/// Member types a bond takes.
const MEMBER_TYPES: &[&str] = &["afxdp", "dpdk", "ring", "vhost-user"];

fn number<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("bad {key} {v:?} (expected {what})"))
}

fn flag(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("bad {key} {v:?} (expected true or false)")),
    }
}

/// The bond settings among `options` (only [`BOND_KEYS`]).
pub fn parse_bond_settings(options: &Options) -> Result<BondSettings, String> {
    let d = BondSettings::default();
    let get = |k: &str| options.get(k).map(String::as_str);
    let mode = match get("bond_mode") {
        None => d.mode,
        Some(m) => BondMode::parse(m).ok_or_else(|| {
            format!("bad bond_mode {m:?} (active-backup, balance-slb or balance-tcp)")
        })?,
    };
    let lacp = match get("lacp") {
        None => d.lacp,
        Some(l) => {
            LacpMode::parse(l).ok_or_else(|| format!("bad lacp {l:?} (active, passive or off)"))?
        }
    };
    let lacp_fast = match get("lacp-time") {
        None | Some("slow") => false,
        Some("fast") => true,
        Some(t) => return Err(format!("bad lacp-time {t:?} (fast or slow)")),
    };
    let ms = |k: &str, default: u32| -> Result<u32, String> {
        get(k).map_or(Ok(default), |v| number(k, v, "milliseconds"))
    };
    let lacp_system_id = get("lacp-system-id")
        .map(|m| datapath::parse_mac(m).ok_or_else(|| format!("bad lacp-system-id {m:?}")))
        .transpose()?;
    let s = BondSettings {
        mode,
        lacp,
        lacp_fast,
        fallback_ab: get("lacp-fallback-ab").map_or(Ok(false), |v| flag("lacp-fallback-ab", v))?,
        primary: get("bond-primary").map(str::to_string),
        updelay_ms: ms("updelay", d.updelay_ms)?,
        downdelay_ms: ms("downdelay", d.downdelay_ms)?,
        miimon_ms: ms("miimon", d.miimon_ms)?,
        rebalance_interval_ms: ms("bond-rebalance-interval", d.rebalance_interval_ms)?,
        lacp_system_priority: get("lacp-system-priority")
            .map_or(Ok(d.lacp_system_priority), |v| {
                number("lacp-system-priority", v, "0-65535")
            })?,
        lacp_system_id,
        lacp_key: get("lacp-key")
            .map(|v| number("lacp-key", v, "0-65535"))
            .transpose()?,
    };
    if s.mode == BondMode::BalanceTcp && s.lacp == LacpMode::Off {
        return Err("bond_mode=balance-tcp needs lacp=active or lacp=passive".into());
    }
    Ok(s)
}

/// Canonical options of bond settings (defaults left out).
pub fn render_bond_settings(s: &BondSettings) -> Options {
    let d = BondSettings::default();
    let mut o = Options::new();
    let mut put = |k: &str, v: String| {
        o.insert(k.to_string(), v);
    };
    if s.mode != d.mode {
        put("bond_mode", s.mode.name().into());
    }
    if s.lacp != d.lacp {
        put("lacp", s.lacp.name().into());
    }
    if s.lacp_fast {
        put("lacp-time", "fast".into());
    }
    if s.fallback_ab {
        put("lacp-fallback-ab", "true".into());
    }
    if let Some(p) = &s.primary {
        put("bond-primary", p.clone());
    }
    for (k, v, dv) in [
        ("updelay", s.updelay_ms, d.updelay_ms),
        ("downdelay", s.downdelay_ms, d.downdelay_ms),
        ("miimon", s.miimon_ms, d.miimon_ms),
        (
            "bond-rebalance-interval",
            s.rebalance_interval_ms,
            d.rebalance_interval_ms,
        ),
    ] {
        if v != dv {
            put(k, v.to_string());
        }
    }
    if s.lacp_system_priority != d.lacp_system_priority {
        put("lacp-system-priority", s.lacp_system_priority.to_string());
    }
    if let Some(m) = s.lacp_system_id {
        put("lacp-system-id", datapath::format_mac(&m));
    }
    if let Some(k) = s.lacp_key {
        put("lacp-key", k.to_string());
    }
    o
}

/// A bond from its member names and options: bond settings, `member-type`, members' own
/// options (`MEMBER.KEY`) and the port settings (VLANs etc., for the bond as a whole).
pub fn parse_bond(
    members: &[String],
    options: &Options,
) -> Result<(BondSpec, PortSettings), String> {
    if members.is_empty() {
        return Err("a bond needs at least one member".into());
    }
    let mut bond_opts = Options::new();
    let mut settings = Options::new();
    let mut member_opts: Vec<Options> = vec![Options::new(); members.len()];
    let mut member_type = "afxdp";
    for (k, v) in options {
        if BOND_KEYS.contains(&k.as_str()) {
            bond_opts.insert(k.clone(), v.clone());
        } else if SETTING_KEYS.contains(&k.as_str()) {
            settings.insert(k.clone(), v.clone());
        } else if k == "member-type" {
            member_type = MEMBER_TYPES.iter().find(|t| **t == v).ok_or_else(|| {
                format!("bad member-type {v:?} (afxdp, dpdk, ring or vhost-user)")
            })?;
        } else if let Some((m, key)) = k.rsplit_once('.')
            && let Some(i) = members.iter().position(|x| x == m)
        {
            member_opts[i].insert(key.to_string(), v.clone());
        } else {
            return Err(format!(
                "unknown bond option {k:?} (bond: {}; members: member-type=, MEMBER.KEY=; and the settings {})",
                BOND_KEYS.join(", "),
                SETTING_KEYS.join(", ")
            ));
        }
    }
    let bond_settings = parse_bond_settings(&bond_opts)?;
    if let Some(p) = &bond_settings.primary
        && !members.contains(p)
    {
        return Err(format!("bond-primary={p} is not a member of the bond"));
    }
    let mut out = Vec::new();
    for (i, (name, mut o)) in members.iter().zip(member_opts).enumerate() {
        super::check_name("bond member", name)?;
        if members[..i].contains(name) {
            return Err(format!("member {name} is named twice"));
        }
        if member_type == "afxdp" && !o.contains_key("iface") {
            o.insert("iface".into(), name.clone());
        }
        let (kind, s) =
            port::parse_port(member_type, &o).map_err(|e| format!("member {name}: {e}"))?;
        if s != PortSettings::default() {
            return Err(format!(
                "member {name}: VLAN and other settings belong to the bond, not its members"
            ));
        }
        out.push(BondMember {
            name: name.clone(),
            kind,
        });
    }
    let spec = BondSpec {
        members: out,
        settings: bond_settings,
    };
    Ok((spec, port::parse_settings(&settings)?))
}

/// Canonical options of a bond (members, their type and options, bond settings), without the
/// port settings.
pub fn render_bond(spec: &BondSpec) -> Options {
    let mut o = render_bond_settings(&spec.settings);
    let names: Vec<&str> = spec.members.iter().map(|m| m.name.as_str()).collect();
    o.insert("members".into(), names.join(","));
    if let Some(first) = spec.members.first()
        && first.kind.name() != "afxdp"
    {
        o.insert("member-type".into(), first.kind.name().into());
    }
    for m in &spec.members {
        for (k, v) in port::render(&m.kind, &PortSettings::default()) {
            if k == "iface" && v == m.name {
                continue;
            }
            o.insert(format!("{}.{k}", m.name), v);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::PortKind;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn round_trip(members: &[&str], kv: &[(&str, &str)]) -> BondSpec {
        let (spec, settings) = parse_bond(&names(members), &opts(kv)).unwrap();
        let mut o = render_bond(&spec);
        let listed: Vec<String> = o
            .remove("members")
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect();
        o.extend(port::render_settings(&settings));
        let (again, s2) = parse_bond(&listed, &o).unwrap();
        assert_eq!((&again, &s2), (&spec, &settings));
        spec
    }

    #[test]
    fn bonds_round_trip_through_their_canonical_options() {
        let s = round_trip(&["eth1", "eth2"], &[]);
        assert_eq!(s.settings, BondSettings::default());
        assert!(matches!(&s.members[0].kind, PortKind::AfXdp { iface, .. } if iface == "eth1"));
        let s = round_trip(
            &["eth1", "eth2"],
            &[
                ("bond_mode", "balance-tcp"),
                ("lacp", "active"),
                ("lacp-time", "fast"),
                ("lacp-fallback-ab", "true"),
                ("bond-primary", "eth2"),
                ("updelay", "200"),
                ("downdelay", "100"),
                ("miimon", "50"),
                ("bond-rebalance-interval", "0"),
                ("lacp-system-priority", "1"),
                ("lacp-system-id", "02:00:00:00:00:aa"),
                ("lacp-key", "7"),
                ("eth1.xdp-mode", "generic"),
                ("eth2.iface", "veth9"),
                ("tag", "10"),
            ],
        );
        assert_eq!(s.settings.mode, BondMode::BalanceTcp);
        assert_eq!(s.settings.primary.as_deref(), Some("eth2"));
        round_trip(&["r0", "r1"], &[("member-type", "ring"), ("r0.peer", "x0")]);
        round_trip(
            &["vu0", "vu1"],
            &[
                ("member-type", "vhost-user"),
                ("vu0.path", "/tmp/a"),
                ("vu1.path", "/tmp/b"),
            ],
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = |m: &[&str], kv: &[(&str, &str)]| parse_bond(&names(m), &opts(kv)).unwrap_err();
        assert!(e(&[], &[]).contains("at least one member"));
        assert!(e(&["a", "a"], &[]).contains("twice"));
        assert!(e(&["a"], &[("bond_mode", "balance-tcp")]).contains("needs lacp"));
        assert!(e(&["a"], &[("bond_mode", "xor")]).contains("bad bond_mode"));
        assert!(e(&["a"], &[("lacp-time", "quick")]).contains("lacp-time"));
        assert!(e(&["a"], &[("bond-primary", "b")]).contains("not a member"));
        assert!(e(&["a"], &[("b.iface", "x")]).contains("unknown bond option"));
        assert!(e(&["a"], &[("a.tag", "3")]).contains("belong to the bond"));
        assert!(e(&["a"], &[("member-type", "vxlan")]).contains("member-type"));
        assert!(e(&["a"], &[("member-type", "vhost-user")]).contains("member a"));
        assert!(e(&["a"], &[("updelay", "-1")]).contains("updelay"));
    }
}
