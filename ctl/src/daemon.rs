//! The daemon's state: the datapath, the configuration, and the ports of the configuration the
//! datapath does not have (they failed to restore). Every change is one transaction: a
//! command edits a copy of the configuration, the copy is validated, the difference is applied
//! to the datapath as typed changes (all or nothing), and only then does the copy become the
//! configuration and get written to the state file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use datapath::{Change, Switch};
use serde_json::Value;
use tracing::{error, info};

use crate::model::{Config, diff};
use crate::persist;

pub struct Daemon {
    dp: Switch,
    config: Config,
    state_path: PathBuf,
    /// The state file's text as last written (or read): unchanged text is not rewritten.
    saved: String,
    /// Ports of the configuration that are not in the datapath (failed restore), with why.
    unapplied: BTreeMap<String, String>,
    stopped: bool,
}

impl Daemon {
    /// Takes the started datapath and the loaded configuration and restores the configuration
    /// into the datapath: bridges, then each port on its own, then rules and routes. A port
    /// that fails (its interface or socket is missing) is logged and kept in the
    /// configuration, flagged by `show`.
    pub fn new(dp: Switch, config: Config, state_path: PathBuf) -> Daemon {
        let saved = persist::to_json(&config);
        let mut d = Daemon {
            dp,
            config: Config::default(),
            state_path,
            saved,
            unapplied: BTreeMap::new(),
            stopped: false,
        };
        d.restore(config);
        d
    }

    fn restore(&mut self, target: Config) {
        let (mut ports, mut failed, mut rules) = (0, 0, Vec::new());
        for c in diff(&Config::default(), &target) {
            match c {
                Change::AddBridge { .. } => {
                    if let Err(e) = self.dp.apply(vec![c]) {
                        error!("cannot restore a bridge: {e}");
                    }
                }
                Change::AddPort { ref port, .. } => {
                    let name = port.name.clone();
                    match self.dp.apply(vec![c]) {
                        Ok(()) => ports += 1,
                        Err(e) => {
                            error!(port = %name, "cannot restore port: {e}");
                            self.unapplied.insert(name, e.0);
                            failed += 1;
                        }
                    }
                }
                Change::AddRule { .. } => rules.push(c),
                // Routes go in below, through the ports that came up; a fresh diff has
                // nothing else.
                _ => {}
            }
        }
        self.config = target;
        let running = self.running(&self.config);
        let n_rules = rules.len();
        if let Err(e) = self.dp.apply(rules) {
            error!("cannot restore rules: {e}");
        }
        if !running.routes.is_empty()
            && let Err(e) = self
                .dp
                .apply(vec![Change::SetRoutes(running.routes.clone())])
        {
            error!("cannot restore tunnel routes: {e}");
        }
        info!(
            bridges = self.config.bridges.len(),
            ports,
            rules = n_rules,
            failed,
            "configuration restored"
        );
    }

    /// The configuration as the datapath has it: without the ports that failed to restore
    /// (and the routes through them).
    fn running(&self, c: &Config) -> Config {
        let mut r = c.clone();
        for b in &mut r.bridges {
            b.ports.retain(|p| !self.unapplied.contains_key(&p.name));
        }
        r.routes.retain(|rt| !self.unapplied.contains_key(&rt.port));
        r
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn datapath(&self) -> &Switch {
        &self.dp
    }

    /// Why a port of the configuration is not running, if it is not.
    pub fn unapplied(&self, port: &str) -> Option<&str> {
        self.unapplied.get(port).map(String::as_str)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Runs `edit` on a copy of the configuration and makes the result the configuration:
    /// validated, applied to the datapath as one transaction, written to the state file.
    /// Nothing changes if any step fails.
    pub fn transact<T>(
        &mut self,
        edit: impl FnOnce(&mut Config) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut new = self.config.clone();
        let out = edit(&mut new)?;
        new.validate()?;
        let changes = diff(&self.running(&self.config), &self.running(&new));
        if !changes.is_empty() {
            self.dp.apply(changes).map_err(|e| e.0)?;
        }
        // Ports that failed to restore and are gone from the configuration are forgotten.
        self.unapplied.retain(|p, _| new.port(p).is_some());
        self.config = new;
        let text = persist::to_json(&self.config);
        if text != self.saved {
            if let Err(e) = persist::save(&self.state_path, &self.config) {
                let msg = format!(
                    "change applied, but the state file {} could not be written: {e}",
                    self.state_path.display()
                );
                error!("{msg}");
                return Err(msg);
            }
            self.saved = text;
        }
        Ok(out)
    }

    /// Stops the datapath; later requests get an error.
    pub fn shutdown(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.dp.shutdown();
        }
    }
}

/// Serialises a command's result.
pub fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("internal error: {e}"))
}
