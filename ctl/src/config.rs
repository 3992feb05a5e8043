//! The desired configuration (what the operator asked for) and its persistence.
//!
//! ```json
//! {"version":1,"bridges":[{"name":"br0",
//!   "ports":[{"name":"p1","ofport":1,"type":"afxdp","options":{"iface":"veth0"}}],
//!   "flows":["priority=100,in_port=p1,actions=output:p2"]}]}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the state file format.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub bridges: Vec<BridgeConfig>,
    /// Operator tunnel routes (`tnl-route-add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tnl_routes: Vec<RouteConfig>,
}

/// One `tnl-route-add PREFIX PORT [GW]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            bridges: Vec::new(),
            tnl_routes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    pub name: String,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Rules in canonical ovs-ofctl text, ports by name.
    #[serde(default)]
    pub flows: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    pub ofport: u32,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Config {
    pub fn bridge(&self, name: &str) -> Option<&BridgeConfig> {
        self.bridges.iter().find(|b| b.name == name)
    }

    pub fn bridge_mut(&mut self, name: &str) -> Option<&mut BridgeConfig> {
        self.bridges.iter_mut().find(|b| b.name == name)
    }

    /// The bridge holding port `port`, if any (port names are unique across the switch).
    pub fn port_bridge(&self, port: &str) -> Option<&BridgeConfig> {
        self.bridges
            .iter()
            .find(|b| b.ports.iter().any(|p| p.name == port))
    }

    /// Parses and checks a state file's contents.
    pub fn from_json(text: &str) -> Result<Config, String> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: version, unique bridge names, unique port names across the
    /// switch, unique ofports per bridge.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != CONFIG_VERSION {
            return Err(format!(
                "unsupported version {} (expected {CONFIG_VERSION})",
                self.version
            ));
        }
        let mut bridges = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for b in &self.bridges {
            if !bridges.insert(b.name.as_str()) {
                return Err(format!("bridge {} listed twice", b.name));
            }
            let mut ofports = BTreeSet::new();
            for p in &b.ports {
                if !ports.insert(p.name.as_str()) {
                    return Err(format!("port {} listed twice", p.name));
                }
                if !ofports.insert(p.ofport) {
                    return Err(format!(
                        "ofport {} used twice on bridge {}",
                        p.ofport, b.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("config serialises");
        s.push('\n');
        s
    }
}

/// Reads the state file. A missing file is an empty configuration; anything unreadable or
/// malformed is an error naming the file (the caller must not overwrite it).
pub fn load(path: &Path) -> Result<Config, String> {
    match fs::read_to_string(path) {
        Ok(text) => Config::from_json(&text).map_err(|e| {
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
        f.write_all(cfg.to_json().as_bytes())?;
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

    pub(crate) fn sample() -> Config {
        Config {
            version: 1,
            tnl_routes: vec![RouteConfig {
                prefix: "10.9.0.0/16".into(),
                port: "p1".into(),
                gw: Some("192.168.1.254".into()),
            }],
            bridges: vec![BridgeConfig {
                name: "br0".into(),
                ports: vec![
                    PortConfig {
                        name: "p1".into(),
                        ofport: 1,
                        kind: "afxdp".into(),
                        options: [("iface".to_string(), "veth0".to_string())].into(),
                    },
                    PortConfig {
                        name: "p2".into(),
                        ofport: 7,
                        kind: "ring".into(),
                        options: BTreeMap::new(),
                    },
                ],
                flows: vec!["priority=100,in_port=p1,actions=output:p2".into()],
            }],
        }
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
    fn serde_round_trip() {
        let c = sample();
        let json = c.to_json();
        assert!(json.contains("\"type\": \"afxdp\""));
        assert_eq!(Config::from_json(&json).unwrap(), c);
        let literal = r#"{"version":1,"bridges":[{"name":"br0","ports":[{"name":"p1","ofport":1,"type":"afxdp","options":{"iface":"veth0"}}],"flows":["priority=100,in_port=p1,actions=output:p2"]}]}"#;
        let parsed = Config::from_json(literal).unwrap();
        assert_eq!(parsed.bridges[0].ports[0].options["iface"], "veth0");
        assert_eq!(Config::from_json(&parsed.to_json()).unwrap(), parsed);
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(Config::from_json("").is_err());
        assert!(Config::from_json("{").is_err());
        assert!(
            Config::from_json(r#"{"version":2,"bridges":[]}"#)
                .unwrap_err()
                .contains("version")
        );
        assert!(Config::from_json(r#"{"version":1,"bridges":[],"x":1}"#).is_err());
        let mut c = sample();
        c.bridges.push(c.bridges[0].clone());
        assert!(
            c.validate()
                .unwrap_err()
                .contains("bridge br0 listed twice")
        );
        let mut c = sample();
        c.bridges.push(BridgeConfig {
            name: "br1".into(),
            ports: vec![c.bridges[0].ports[0].clone()],
            flows: vec![],
        });
        assert!(c.validate().unwrap_err().contains("port p1 listed twice"));
        let mut c = sample();
        c.bridges[0].ports[1].ofport = 1;
        assert!(c.validate().unwrap_err().contains("ofport 1"));
    }

    #[test]
    fn atomic_save_and_load() {
        let dir = temp_dir("save");
        let path = dir.join("sub").join("state.json");
        assert_eq!(load(&path).unwrap(), Config::default());
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), sample());
        assert!(!tmp_path(&path).exists());
        // Overwrite: replaced whole.
        save(&path, &Config::default()).unwrap();
        assert_eq!(load(&path).unwrap(), Config::default());
        // A stale tmp file from a crash does not matter.
        fs::write(tmp_path(&path), "garbage").unwrap();
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), sample());
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
        fs::remove_dir_all(&dir).unwrap();
    }
}
