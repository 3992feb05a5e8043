//! Port options as operators write them (`iface=veth0 xdp-mode=native tag=10`) to the typed
//! [`PortKind`] and [`PortSettings`], and back to canonical options (defaults left out) for
//! `show` and the state file. `render` then `parse` gives the same values back.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use datapath::{
    AfXdpOptions, DEFAULT_DESCRIPTORS, DpdkOptions, PortKind, PortSettings, TunnelKey,
    VhostUserMode, VhostUserOptions, VtepConfig, VxlanConfig, XdpModeRequest, format_mac,
    parse_mac, parse_prefix,
};
use flowtable::{DEFAULT_LEARN_RATE, DEFAULT_PORT_MAC_LIMIT, PortLimits};
use vlan_vxlan::{VlanMode, VlanSet};

pub type Options = BTreeMap<String, String>;

/// Settings the switch handles itself (any port type; changeable live with `set port`).
pub const SETTING_KEYS: &[&str] = &[
    "tag",
    "trunks",
    "vlan_mode",
    "cvlans",
    "vtep_ip",
    "vtep_mac",
    "mac-limit",
    "mac-learn-rate",
    "trust",
];

/// The type options each port type takes.
pub fn type_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "ring" => &["peer"],
        "afxdp" => &["iface", "xdp-mode", "queue", "n_rxq", "frames", "zero-copy"],
        "dpdk" => &["devargs", "n_rxq", "n_txq", "rxd", "txd", "mtu", "mac"],
        "vhost-user" => &["path", "mode", "queues", "mtu", "mac", "offloads"],
        "vxlan" => &["remote_ip", "local_ip", "key", "dst_port", "ttl"],
        _ => return None,
    })
}

pub const KINDS: &str = "afxdp, bond, dpdk, ring, vhost-user, vxlan";

/// A port's type and options (type options and settings mixed, as `add-port` takes them).
pub fn parse_port(kind: &str, options: &Options) -> Result<(PortKind, PortSettings), String> {
    if kind == "bond" {
        let mut o = options.clone();
        let members = o
            .remove("members")
            .ok_or("type=bond needs members=A,B (or use add-bond)")?;
        let names: Vec<String> = members.split(',').map(str::to_string).collect();
        let (spec, settings) = super::bond::parse_bond(&names, &o)?;
        return Ok((PortKind::Bond(spec), settings));
    }
    let keys =
        type_keys(kind).ok_or_else(|| format!("unknown port type {kind:?} (known: {KINDS})"))?;
    let (type_opts, settings): (Options, Options) = options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| !SETTING_KEYS.contains(&k.as_str()));
    if let Some(k) = type_opts.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(format!(
            "unknown option {k:?} for type={kind} (known: {}, and the settings {})",
            keys.join(", "),
            SETTING_KEYS.join(", ")
        ));
    }
    let o = Opts(&type_opts);
    let kind = match kind {
        "ring" => PortKind::Ring {
            peer: o.get("peer").map(str::to_string),
        },
        "afxdp" => afxdp(o)?,
        "dpdk" => PortKind::Dpdk(dpdk(o)?),
        "vhost-user" => PortKind::VhostUser(vhost_user(o)?),
        _ => PortKind::Vxlan(vxlan(o)?),
    };
    Ok((kind, parse_settings(&settings)?))
}

/// Options to read from.
#[derive(Clone, Copy)]
struct Opts<'a>(&'a Options);

impl<'a> Opts<'a> {
    fn get(self, key: &str) -> Option<&'a str> {
        self.0.get(key).map(String::as_str)
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("bad value {v:?} for {key} ({what})"))
}

fn afxdp(o: Opts<'_>) -> Result<PortKind, String> {
    let iface = o.get("iface").ok_or("type=afxdp needs iface=INTERFACE")?;
    let mut options = AfXdpOptions::default();
    if let Some(m) = o.get("xdp-mode") {
        options.mode = m
            .parse()
            .map_err(|e: datapath::afxdp::ParseXdpModeError| e.to_string())?;
    }
    if let Some(q) = o.get("queue") {
        options.queue = number("queue", q, "a number")?;
    }
    if let Some(n) = o.get("n_rxq") {
        options.n_rxq = match n.parse::<u32>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => return Err(format!("bad value {n:?} for n_rxq (1 to 64)")),
        };
    }
    if let Some(f) = o.get("frames") {
        options.frame_count = number("frames", f, "a number")?;
    }
    if let Some(z) = o.get("zero-copy") {
        options.zero_copy = match z {
            "true" => true,
            "false" => false,
            _ => return Err(format!("bad value {z:?} for zero-copy (true or false)")),
        };
    }
    Ok(PortKind::AfXdp {
        iface: iface.to_string(),
        options,
    })
}

fn dpdk(o: Opts<'_>) -> Result<DpdkOptions, String> {
    let devargs = o
        .get("devargs")
        .filter(|d| !d.is_empty())
        .ok_or("type=dpdk needs devargs=PCI-ADDRESS or devargs=VDEV[,ARG=VALUE...]")?;
    let mut d = DpdkOptions::new(devargs);
    // Queues and descriptors: at least 1; 1024 queues and 32768 descriptors are more than any
    // device has (the device's own limits are checked when the port opens).
    let count = |key: &str, max: u16| -> Result<Option<u16>, String> {
        o.get(key)
            .map(|v| match v.parse::<u16>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("bad value {v:?} for {key} (1 to {max})")),
            })
            .transpose()
    };
    if let Some(n) = count("n_rxq", 1024)? {
        d.n_rxq = n;
    }
    d.n_txq = count("n_txq", 1024)?;
    if let Some(n) = count("rxd", 32768)? {
        d.rxd = n;
    }
    if let Some(n) = count("txd", 32768)? {
        d.txd = n;
    }
    if let Some(m) = o.get("mtu") {
        d.mtu = Some(match m.parse::<u16>() {
            Ok(n) if n >= 68 => n,
            _ => return Err(format!("bad value {m:?} for mtu (68 to 65535)")),
        });
    }
    if let Some(m) = o.get("mac") {
        d.mac = Some(parse_mac(m).ok_or_else(|| format!("bad mac {m:?} (aa:bb:cc:dd:ee:ff)"))?);
    }
    Ok(d)
}

fn vhost_user(o: Opts<'_>) -> Result<VhostUserOptions, String> {
    let path = o.get("path").ok_or("type=vhost-user needs path=SOCKET")?;
    let mode = match o.get("mode") {
        None | Some("client") => VhostUserMode::Client,
        Some("server") => VhostUserMode::Server,
        Some(m) => return Err(format!("bad mode {m:?} (client or server)")),
    };
    let mut opts = VhostUserOptions::new(PathBuf::from(path), mode);
    let max_q = vhost_user::MAX_QUEUE_PAIRS;
    if let Some(q) = o.get("queues") {
        opts.max_queue_pairs = match q.parse::<usize>() {
            Ok(n) if (1..=max_q).contains(&n) => n,
            _ => return Err(format!("bad queues {q:?} (1-{max_q})")),
        };
    }
    let max_mtu = (port_api::MAX_FRAME - 18) as u16;
    if let Some(m) = o.get("mtu") {
        opts.mtu = match m.parse::<u16>() {
            Ok(n) if (68..=max_mtu).contains(&n) => n,
            _ => return Err(format!("bad mtu {m:?} (68-{max_mtu})")),
        };
    }
    if let Some(m) = o.get("mac") {
        opts.mac = Some(parse_mac(m).ok_or_else(|| format!("bad mac {m:?}"))?);
    }
    if let Some(v) = o.get("offloads") {
        opts.offloads = match v {
            "on" => true,
            "off" => false,
            _ => return Err(format!("bad offloads {v:?} (on or off)")),
        };
    }
    Ok(opts)
}

fn vxlan(o: Opts<'_>) -> Result<VxlanConfig, String> {
    let ip = |k: &str| -> Result<Option<Ipv4Addr>, String> {
        o.get(k)
            .map(|v| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| format!("bad {k} {v:?} (an IPv4 address)"))
            })
            .transpose()
    };
    let remote_ip = ip("remote_ip")?.ok_or("type=vxlan needs remote_ip=A.B.C.D")?;
    let key = match o.get("key") {
        None => TunnelKey::Vni(0),
        Some("flow") => TunnelKey::Flow,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n < 1 << 24 => TunnelKey::Vni(n),
            _ => return Err(format!("bad key {v:?} (a VNI 0-16777215, or flow)")),
        },
    };
    let dst_port = match o.get("dst_port") {
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad dst_port {v:?} (1-65535)"))?,
        None => vlan_vxlan::VXLAN_PORT,
    };
    let ttl = match o.get("ttl") {
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|t| *t != 0)
            .ok_or_else(|| format!("bad ttl {v:?} (1-255)"))?,
        None => 64,
    };
    Ok(VxlanConfig {
        remote_ip,
        local_ip: ip("local_ip")?,
        key,
        dst_port,
        ttl,
    })
}

/// The switch settings among `options` (other keys are an error).
pub fn parse_settings(options: &Options) -> Result<PortSettings, String> {
    if let Some(k) = options.keys().find(|k| !SETTING_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "cannot set {k:?} on a port (settable: {}); delete and re-add the port to change its type options",
            SETTING_KEYS.join(", ")
        ));
    }
    let o = Opts(options);
    let tag = o
        .get("tag")
        .map(|t| number::<u16>("tag", t, "1-4094"))
        .transpose()?;
    let set = |key: &str| -> Result<Option<VlanSet>, String> {
        o.get(key)
            .map(|v| VlanSet::parse(v).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let vlan = VlanMode::from_settings(
        o.get("vlan_mode"),
        tag,
        set("trunks")?.as_ref(),
        set("cvlans")?.as_ref(),
    )?;
    let vtep_mac = o
        .get("vtep_mac")
        .map(|m| parse_mac(m).ok_or_else(|| format!("bad vtep_mac {m:?}")))
        .transpose()?;
    let vtep = match o.get("vtep_ip") {
        Some(v) => {
            let (ip, prefix_len) = parse_prefix(v)?;
            Some(VtepConfig {
                ip,
                prefix_len,
                mac: vtep_mac,
            })
        }
        None if vtep_mac.is_some() => return Err("vtep_mac= needs vtep_ip=".into()),
        None => None,
    };
    let limit = o
        .get("mac-limit")
        .map(|v| number::<usize>("mac-limit", v, "a number of addresses"))
        .transpose()?;
    let rate = o
        .get("mac-learn-rate")
        .map(|v| number::<u32>("mac-learn-rate", v, "addresses per second, 0 for no limit"))
        .transpose()?;
    let mac_limits = (limit.is_some() || rate.is_some()).then(|| PortLimits {
        max_entries: limit.unwrap_or(DEFAULT_PORT_MAC_LIMIT),
        learn_rate: rate.unwrap_or(DEFAULT_LEARN_RATE),
    });
    let trust = o
        .get("trust")
        .map(super::qos::parse_trust)
        .transpose()?
        .unwrap_or_default();
    // The scheduler and policer have their own commands (and state file fields).
    Ok(PortSettings {
        vlan,
        vtep,
        mac_limits,
        trust,
        policer: None,
        qos: None,
    })
}

/// Canonical options of a port: its type options (defaults left out) and its settings.
pub fn render(kind: &PortKind, settings: &PortSettings) -> Options {
    let mut o = render_kind(kind);
    o.extend(render_settings(settings));
    o
}

fn render_kind(kind: &PortKind) -> Options {
    let mut o = Options::new();
    let mut put = |k: &str, v: String| {
        o.insert(k.to_string(), v);
    };
    match kind {
        PortKind::Bond(spec) => o.extend(super::bond::render_bond(spec)),
        PortKind::Ring { peer } => {
            if let Some(p) = peer {
                put("peer", p.clone());
            }
        }
        PortKind::AfXdp { iface, options } => {
            let d = AfXdpOptions::default();
            put("iface", iface.clone());
            if options.mode != XdpModeRequest::default() {
                put("xdp-mode", options.mode.name().to_string());
            }
            if options.queue != d.queue {
                put("queue", options.queue.to_string());
            }
            if options.n_rxq != d.n_rxq {
                put("n_rxq", options.n_rxq.to_string());
            }
            if options.frame_count != d.frame_count {
                put("frames", options.frame_count.to_string());
            }
            if options.zero_copy {
                put("zero-copy", "true".to_string());
            }
        }
        PortKind::Dpdk(d) => {
            put("devargs", d.devargs.clone());
            if d.n_rxq != 1 {
                put("n_rxq", d.n_rxq.to_string());
            }
            if let Some(n) = d.n_txq {
                put("n_txq", n.to_string());
            }
            if d.rxd != DEFAULT_DESCRIPTORS {
                put("rxd", d.rxd.to_string());
            }
            if d.txd != DEFAULT_DESCRIPTORS {
                put("txd", d.txd.to_string());
            }
            if let Some(m) = d.mtu {
                put("mtu", m.to_string());
            }
            if let Some(m) = d.mac {
                put("mac", format_mac(&m));
            }
        }
        PortKind::VhostUser(v) => {
            let d = VhostUserOptions::new(PathBuf::new(), VhostUserMode::Client);
            put("path", v.path.display().to_string());
            if v.mode != d.mode {
                put("mode", v.mode.name().to_string());
            }
            if v.max_queue_pairs != d.max_queue_pairs {
                put("queues", v.max_queue_pairs.to_string());
            }
            if v.mtu != d.mtu {
                put("mtu", v.mtu.to_string());
            }
            if let Some(m) = v.mac {
                put("mac", format_mac(&m));
            }
            if v.offloads != d.offloads {
                put(
                    "offloads",
                    if v.offloads { "on" } else { "off" }.to_string(),
                );
            }
        }
        PortKind::Vxlan(c) => {
            put("remote_ip", c.remote_ip.to_string());
            if let Some(l) = c.local_ip {
                put("local_ip", l.to_string());
            }
            match c.key {
                TunnelKey::Vni(0) => {}
                TunnelKey::Vni(v) => put("key", v.to_string()),
                TunnelKey::Flow => put("key", "flow".to_string()),
            }
            if c.dst_port != vlan_vxlan::VXLAN_PORT {
                put("dst_port", c.dst_port.to_string());
            }
            if c.ttl != 64 {
                put("ttl", c.ttl.to_string());
            }
        }
    }
    o
}

pub fn render_settings(s: &PortSettings) -> Options {
    let mut o: Options = s
        .vlan
        .settings()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some(v) = s.vtep {
        o.insert("vtep_ip".into(), format!("{}/{}", v.ip, v.prefix_len));
        if let Some(m) = v.mac {
            o.insert("vtep_mac".into(), format_mac(&m));
        }
    }
    if let Some(l) = s.mac_limits {
        o.insert("mac-limit".into(), l.max_entries.to_string());
        o.insert("mac-learn-rate".into(), l.learn_rate.to_string());
    }
    if s.trust != qos::Trust::default() {
        o.insert("trust".into(), super::qos::render_trust(s.trust));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_kind_round_trips_through_its_canonical_options() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("ring", &[]),
            ("ring", &[("peer", "p2"), ("tag", "10")]),
            ("afxdp", &[("iface", "veth0")]),
            (
                "afxdp",
                &[
                    ("iface", "eth1"),
                    ("xdp-mode", "native"),
                    ("queue", "3"),
                    ("n_rxq", "2"),
                    ("frames", "4096"),
                    ("zero-copy", "true"),
                    ("trunks", "10,20-30"),
                ],
            ),
            ("vhost-user", &[("path", "/run/vm1.sock")]),
            (
                "vhost-user",
                &[
                    ("path", "/tmp/x"),
                    ("mode", "server"),
                    ("queues", "2"),
                    ("mtu", "9000"),
                    ("mac", "52:54:00:00:00:01"),
                    ("offloads", "off"),
                    ("vlan_mode", "native-untagged"),
                    ("tag", "5"),
                    ("mac-limit", "16"),
                    ("mac-learn-rate", "0"),
                ],
            ),
            ("dpdk", &[("devargs", "0000:03:00.1")]),
            (
                "dpdk",
                &[
                    ("devargs", "net_tap0,iface=t0"),
                    ("n_rxq", "2"),
                    ("n_txq", "4"),
                    ("rxd", "2048"),
                    ("txd", "512"),
                    ("mtu", "9000"),
                    ("mac", "02:00:00:00:00:09"),
                    ("trunks", "10"),
                ],
            ),
            ("vxlan", &[("remote_ip", "10.0.0.2")]),
            (
                "vxlan",
                &[
                    ("remote_ip", "10.0.0.2"),
                    ("local_ip", "10.0.0.1"),
                    ("key", "flow"),
                    ("dst_port", "8472"),
                    ("ttl", "9"),
                ],
            ),
            (
                "afxdp",
                &[
                    ("iface", "u0"),
                    ("vtep_ip", "192.168.1.1/24"),
                    ("vtep_mac", "02:00:00:00:00:01"),
                ],
            ),
        ];
        for (kind, kv) in cases {
            let given = opts(kv);
            let (k, s) = parse_port(kind, &given).unwrap();
            assert_eq!(k.name(), *kind);
            let canon = render(&k, &s);
            assert_eq!(canon, given, "canonical options are what was given");
            assert_eq!(parse_port(kind, &canon).unwrap(), (k, s));
        }
        // Defaults are left out of the canonical form.
        let (k, s) = parse_port(
            "vhost-user",
            &opts(&[("path", "/p"), ("mode", "client"), ("queues", "8")]),
        )
        .unwrap();
        assert_eq!(render(&k, &s), opts(&[("path", "/p")]));
    }

    #[test]
    fn errors_name_the_field() {
        let e = |kind: &str, kv: &[(&str, &str)]| parse_port(kind, &opts(kv)).unwrap_err();
        assert!(e("bogus", &[]).contains("unknown port type"));
        assert!(e("afxdp", &[]).contains("needs iface="));
        assert!(e("dpdk", &[]).contains("needs devargs="));
        assert!(e("dpdk", &[("devargs", "x"), ("n_rxq", "0")]).contains("n_rxq"));
        assert!(e("dpdk", &[("devargs", "x"), ("rxd", "70000")]).contains("rxd"));
        assert!(e("dpdk", &[("devargs", "x"), ("mac", "zz")]).contains("bad mac"));
        assert!(e("afxdp", &[("iface", "a"), ("peer", "x")]).contains("unknown option \"peer\""));
        assert!(e("afxdp", &[("iface", "a"), ("xdp-mode", "x")]).contains("xdp-mode"));
        assert!(e("vhost-user", &[("path", "/p"), ("queues", "99")]).contains("bad queues"));
        assert!(e("vhost-user", &[("path", "/p"), ("mtu", "9199")]).contains("bad mtu"));
        assert!(e("vhost-user", &[("path", "/p"), ("offloads", "x")]).contains("bad offloads"));
        assert!(e("vxlan", &[("remote_ip", "x")]).contains("bad remote_ip"));
        assert!(e("vxlan", &[("remote_ip", "1.2.3.4"), ("key", "16777216")]).contains("bad key"));
        assert!(e("ring", &[("tag", "5000")]).contains("tag"));
        assert!(e("ring", &[("tag", "10"), ("trunks", "20")]).contains("native"));
        assert!(e("ring", &[("vtep_mac", "02:00:00:00:00:01")]).contains("needs vtep_ip"));
        assert!(e("ring", &[("mac-limit", "-1")]).contains("mac-limit"));
        let s = parse_settings(&opts(&[("iface", "x")])).unwrap_err();
        assert!(s.contains("cannot set \"iface\""));
    }

    #[test]
    fn learning_limits_default_per_field() {
        let s = parse_settings(&opts(&[("mac-limit", "8")])).unwrap();
        assert_eq!(
            s.mac_limits,
            Some(PortLimits {
                max_entries: 8,
                learn_rate: DEFAULT_LEARN_RATE
            })
        );
        assert_eq!(parse_settings(&Options::new()).unwrap().mac_limits, None);
    }
}
