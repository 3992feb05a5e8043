//! The state file: the configuration as it is, written atomically on every change and read at
//! start. The file is text an operator may read and fix, so ports keep their options as
//! `key=value` pairs and rules their `ovs-ofctl` text; both go through the same parsers as the
//! command line.
//!
//! ```json
//! {"version":1,"bridges":[{"name":"br0",
//!   "ports":[{"name":"p1","ofport":1,"type":"afxdp","options":{"iface":"veth0"}}],
//!   "flows":["priority=100,in_port=p1,actions=output:p2"]}]}
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use datapath::Route;
use flowtable::{format_meter, format_rule, parse_meter, parse_rule};
use serde::{Deserialize, Serialize};

use crate::model::{Bridge, Config, Port};
use crate::parse::{check_name, port, qos};

/// Version of the state file format.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    #[serde(default)]
    bridges: Vec<BridgeFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tnl_routes: Vec<RouteFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeFile {
    name: String,
    #[serde(default)]
    ports: Vec<PortFile>,
    /// Meters in ovs-ofctl text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    meters: Vec<String>,
    /// Rules in canonical ovs-ofctl text, ports by name, in table order.
    #[serde(default)]
    flows: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortFile {
    name: String,
    ofport: u32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
    /// The egress scheduler, as `set-qos` and `set-queue` options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qos: Option<QosFile>,
    /// The ingress policer, as `set-policer` options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policer: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QosFile {
    options: BTreeMap<String, String>,
    /// Queues with non-default settings, by class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    queues: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    prefix: String,
    port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
}

/// Parses and checks a state file's contents. Every error names what is wrong.
pub fn from_json(text: &str) -> Result<Config, String> {
    let file: StateFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != CONFIG_VERSION {
        return Err(format!(
            "unsupported version {} (expected {CONFIG_VERSION})",
            file.version
        ));
    }
    // Ports first (and checked: unique names and ofports), then the rules that name them.
    let mut cfg = Config::default();
    let mut flows = Vec::new();
    for bf in file.bridges {
        check_name("bridge", &bf.name)?;
        let mut b = Bridge::new(&bf.name);
        for pf in bf.ports {
            check_name("port", &pf.name)?;
            let (kind, mut settings) = port::parse_port(&pf.kind, &pf.options)
                .map_err(|e| format!("port {}: {e}", pf.name))?;
            if let Some(q) = &pf.qos {
                settings.qos = Some(
                    qos::parse_qos_parts(&q.options, &q.queues)
                        .map_err(|e| format!("port {} qos: {e}", pf.name))?,
                );
            }
            if let Some(p) = &pf.policer {
                settings.policer = Some(
                    qos::parse_policer(p).map_err(|e| format!("port {} policer: {e}", pf.name))?,
                );
            }
            b.insert_port(Port {
                name: pf.name,
                ofport: pf.ofport,
                kind,
                settings,
            });
        }
        for text in &bf.meters {
            let m = parse_meter(text)
                .map_err(|e| format!("bridge {}: meter {text:?}: {e}", bf.name))?;
            if b.meters.insert(m.id, m).is_some() {
                return Err(format!("bridge {}: meter {text:?} given twice", bf.name));
            }
        }
        cfg.bridges.push(b);
        flows.push(bf.flows);
    }
    cfg.validate()?;
    for (b, texts) in cfg.bridges.iter_mut().zip(flows) {
        for text in texts {
            let rule = parse_rule(&text, &|n| b.ofport_of(n))
                .map_err(|e| format!("bridge {}: rule {text:?}: {e}", b.name))?;
            b.rules.insert(rule);
        }
    }
    for r in file.tnl_routes {
        let net = r.prefix.parse().map_err(|e| format!("tunnel route: {e}"))?;
        let gw =
            r.gw.map(|g| {
                g.parse()
                    .map_err(|_| format!("tunnel route {}: bad gateway {g:?}", r.prefix))
            })
            .transpose()?;
        cfg.routes.push(Route {
            net,
            port: r.port,
            gw,
        });
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The configuration as the state file's text.
pub fn to_json(cfg: &Config) -> String {
    let file = StateFile {
        version: CONFIG_VERSION,
        bridges: cfg
            .bridges
            .iter()
            .map(|b| BridgeFile {
                name: b.name.clone(),
                ports: b
                    .ports
                    .iter()
                    .map(|p| PortFile {
                        name: p.name.clone(),
                        ofport: p.ofport,
                        kind: p.kind.name().to_string(),
                        options: port::render(&p.kind, &p.settings),
                        qos: p.settings.qos.as_ref().map(|q| {
                            let (options, queues) = qos::render_qos(q);
                            QosFile {
                                options,
                                queues: queues
                                    .into_iter()
                                    .map(|(c, o)| (c.to_string(), o))
                                    .collect(),
                            }
                        }),
                        policer: p.settings.policer.as_ref().map(qos::render_policer),
                    })
                    .collect(),
                meters: b.meters.values().map(format_meter).collect(),
                flows: b
                    .rules
                    .rules()
                    .iter()
                    .map(|r| rule_text(b, &r.rule))
                    .collect(),
            })
            .collect(),
        tnl_routes: cfg
            .routes
            .iter()
            .map(|r| RouteFile {
                prefix: r.net.to_string(),
                port: r.port.clone(),
                gw: r.gw.map(|g| g.to_string()),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&file).expect("state serialises");
    s.push('\n');
    s
}

/// A rule's canonical text with its priority always explicit (so it restores the same).
pub fn rule_text(b: &Bridge, r: &flowtable::Rule) -> String {
    let text = format_rule(r, &|p| b.name_of(p));
    let head = text.split("actions=").next().unwrap_or("");
    if head
        .split([',', ' '])
        .any(|t| t.trim().starts_with("priority="))
    {
        text
    } else {
        format!("priority={},{text}", r.priority)
    }
}

/// Reads the state file. A missing file is an empty configuration; anything unreadable or
/// malformed is an error naming the file (the caller must not overwrite it).
pub fn load(path: &Path) -> Result<Config, String> {
    match fs::read_to_string(path) {
        Ok(text) => from_json(&text).map_err(|e| {
            format!(
                "state file {} is corrupt: {e}; refusing to start (fix it or move it away to start empty)",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(format!("cannot read state file {}: {e}", path.display())),
    }
}

/// The temporary file used by [`save`]: `<state>.tmp` in the same directory.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "state.json".into());
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes the state file atomically: write `<state>.tmp`, fsync it, rename it over the state
/// file, fsync the directory. Creates the directory (0755) if needed.
pub fn save(path: &Path, cfg: &Config) -> io::Result<()> {
    save_text(path, &to_json(cfg))
}

fn save_text(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)?;
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"{"version":1,
      "bridges":[{"name":"br0",
        "ports":[{"name":"p1","ofport":1,"type":"afxdp","options":{"iface":"veth0","vtep_ip":"192.168.1.1/24"}},
                 {"name":"p2","ofport":7,"type":"ring","options":{"tag":"10","trust":"untrusted:8"},
                  "qos":{"options":{"max-rate":"1Gbit","overhead":"24","dscp-map":"10:3"},
                         "queues":{"0":{"weight":"3","max-rate":"100Mbit"},"7":{"strict":"false","weight":"9"}}},
                  "policer":{"type":"trtcm","cir":"10Mbit","pir":"20Mbit","yellow":"dscp:12"}}],
        "meters":["meter=3,kbps,bands=type=drop,rate=1000"],
        "flows":["priority=100,in_port=p1,actions=meter:3,output:p2","priority=5,actions=NORMAL"]}],
      "tnl_routes":[{"prefix":"10.9.0.0/16","port":"p1","gw":"192.168.1.254"}]}"#;

    pub(crate) fn sample() -> Config {
        from_json(SAMPLE).unwrap()
    }

    /// A directory under the system temp dir, removed when dropped.
    pub(crate) struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for TempDir {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn temp_dir(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d =
            std::env::temp_dir().join(format!("vswitch-ctl-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    #[test]
    fn round_trip_is_exact() {
        let c = sample();
        let b = c.bridge("br0").unwrap();
        assert_eq!(b.ports.len(), 2);
        assert_eq!(b.rules.len(), 2);
        assert_eq!(c.routes.len(), 1);
        let json = to_json(&c);
        assert!(json.contains("\"type\": \"afxdp\""));
        assert!(json.contains("in_port=p1"), "{json}");
        assert_eq!(to_json(&from_json(&json).unwrap()), json);
        let p2 = &b.ports[1].settings;
        assert_eq!(p2.trust, ::qos::Trust::Untrusted { dscp: 8 });
        let q = p2.qos.as_ref().unwrap();
        assert_eq!(q.scheduler.shaper.unwrap().rate, 125_000_000);
        assert_eq!(q.scheduler.queues[0].weight, 3);
        assert!(!q.scheduler.queues[7].strict);
        assert_eq!(q.classes.dscp[10].value(), 3);
        assert!(p2.policer.is_some());
    }

    /// DPDK ports and a bond of DPDK members (the fuzz seed) load and write back the same.
    #[test]
    fn dpdk_ports_round_trip() {
        let text = include_str!("../fuzz/seeds/state_file/dpdk.json");
        let c = from_json(text).unwrap();
        let ports = &c.bridge("b").unwrap().ports;
        assert_eq!(ports.len(), 3);
        match &ports[0].kind {
            datapath::PortKind::Dpdk(d) => {
                assert_eq!(
                    (d.devargs.as_str(), d.n_rxq, d.n_txq),
                    ("net_tap0,iface=t0", 2, Some(4))
                );
                assert_eq!((d.rxd, d.txd, d.mtu), (2048, 512, Some(9000)));
            }
            k => panic!("{k:?}"),
        }
        let json = to_json(&c);
        assert_eq!(to_json(&from_json(&json).unwrap()), json);
    }

    #[test]
    fn rejects_bad_configs_naming_the_problem() {
        let e = |t: &str| from_json(t).unwrap_err();
        assert!(e("").contains("EOF"));
        assert!(e("{").contains("EOF"));
        assert!(e(r#"{"version":2,"bridges":[]}"#).contains("version"));
        assert!(e(r#"{"version":1,"bridges":[],"x":1}"#).contains("unknown field"));
        let twice = SAMPLE.replace("\"name\":\"p2\"", "\"name\":\"p1\"");
        assert!(e(&twice).contains("p1 is used twice"), "{}", e(&twice));
        let same_ofport = SAMPLE.replace("\"ofport\":7", "\"ofport\":1");
        assert!(e(&same_ofport).contains("ofport 1 is used twice"));
        let bad_opt = SAMPLE.replace("\"tag\":\"10\"", "\"tag\":\"x\"");
        assert!(e(&bad_opt).contains("port p2"), "{}", e(&bad_opt));
        let bad_rule = SAMPLE.replace("output:p2", "output:nope");
        assert!(e(&bad_rule).contains("nope"), "{}", e(&bad_rule));
        let no_meter = SAMPLE.replace("meter:3", "meter:4");
        assert!(e(&no_meter).contains("meter 4"), "{}", e(&no_meter));
        let bad_meter = SAMPLE.replace("rate=1000", "rate=0");
        assert!(e(&bad_meter).contains("meter"), "{}", e(&bad_meter));
        let bad_route = SAMPLE.replace("\"port\":\"p1\",\"gw\"", "\"port\":\"p9\",\"gw\"");
        assert!(e(&bad_route).contains("p9"), "{}", e(&bad_route));
        let bad_qos = SAMPLE.replace("\"weight\":\"3\"", "\"weight\":\"0\"");
        assert!(
            e(&bad_qos).contains("port p2 qos: queue 0: bad weight"),
            "{}",
            e(&bad_qos)
        );
        let bad_policer = SAMPLE.replace("\"pir\":\"20Mbit\"", "\"pir\":\"1Mbit\"");
        assert!(
            e(&bad_policer).contains("port p2 policer"),
            "{}",
            e(&bad_policer)
        );
        let bad_name = SAMPLE.replace("\"br0\"", "\"a b\"");
        assert!(e(&bad_name).contains("invalid bridge name"));
    }

    #[test]
    fn atomic_save_and_load() {
        let dir = temp_dir("save");
        let path = dir.join("sub").join("state.json");
        assert!(load(&path).unwrap().bridges.is_empty());
        save(&path, &sample()).unwrap();
        assert_eq!(to_json(&load(&path).unwrap()), to_json(&sample()));
        assert!(!tmp_path(&path).exists());
        // Overwrite: replaced whole.
        save(&path, &Config::default()).unwrap();
        assert!(load(&path).unwrap().bridges.is_empty());
        // A stale tmp file from a crash does not matter.
        fs::write(tmp_path(&path), "garbage").unwrap();
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap().bridges.len(), 1);
        // Corrupt file: error naming it, file left alone.
        fs::write(&path, "{not json").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("corrupt"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "{not json");
        // Save into a place that cannot be written leaves nothing behind.
        let blocker = dir.join("file");
        fs::write(&blocker, "x").unwrap();
        assert!(save(&blocker.join("state.json"), &sample()).is_err());
    }
}
