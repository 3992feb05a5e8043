//! A switch with no PMD thread whose PMD the benchmark drives on its own thread, with ports that
//! swallow (and count) what they are sent: the pipeline, caches and control plane as in
//! `vswitchd`, without I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datapath::harness::{CallerPmd, InPort};
use datapath::packet::Batch;
use datapath::port::Port;
use datapath::{BondSettings, Change, PortSettings, Switch, SwitchConfig};
use flowtable::parse_rule;

use crate::null_port::NullPort;

static NO_LATENCY: AtomicBool = AtomicBool::new(false);

/// Rigs made from now on sample latency (the default, as vswitchd) or not (`--no-latency`).
pub fn set_latency(on: bool) {
    NO_LATENCY.store(!on, Ordering::Relaxed);
}

/// A switch with no PMD thread: the benchmark drives its PMD, on this thread.
pub struct Rig {
    pub sw: Switch,
    pub pmd: CallerPmd,
    /// Each null port (or bond of null ports) by name, with the ports that count its sends.
    ports: Vec<(String, Vec<Arc<NullPort>>)>,
}

impl Rig {
    pub fn new() -> Rig {
        let sw = Switch::start(SwitchConfig {
            caller_driven: true,
            no_latency: NO_LATENCY.load(Ordering::Relaxed),
            ..SwitchConfig::default()
        })
        .expect("switch");
        let pmd = sw.caller_pmd().expect("caller-driven PMD");
        Rig {
            sw,
            pmd,
            ports: Vec::new(),
        }
    }

    pub fn apply(&self, changes: Vec<Change>) {
        self.sw.apply(changes).expect("configuration");
    }

    /// A port that swallows what it is sent (and counts it), attached with `settings`.
    pub fn null_port(&mut self, bridge: &str, name: &str, settings: PortSettings) {
        let p = Arc::new(NullPort::new(name));
        self.sw
            .attach_port(bridge, name, p.clone(), settings)
            .expect("attach");
        self.ports.push((name.to_string(), vec![p]));
    }

    /// A bond over null ports `NAME-0`, `NAME-1`, ..., attached with `settings`; returns once
    /// its members are enabled (the bonds thread runs every 10 ms).
    pub fn null_bond(
        &mut self,
        bridge: &str,
        name: &str,
        members: usize,
        bond: BondSettings,
        settings: PortSettings,
    ) {
        let ports: Vec<Arc<NullPort>> = (0..members)
            .map(|i| Arc::new(NullPort::new(&format!("{name}-{i}"))))
            .collect();
        let dyns = ports.iter().map(|p| p.clone() as Arc<dyn Port>).collect();
        self.sw
            .attach_bond(bridge, name, dyns, bond, settings)
            .expect("attach bond");
        let t0 = std::time::Instant::now();
        while !self
            .sw
            .bonds(Some(name))
            .expect("bond")
            .iter()
            .all(|b| b.members.iter().all(|m| m.enabled) && b.members.iter().any(|m| m.active))
        {
            assert!(t0.elapsed().as_secs() < 10, "bond {name} did not come up");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.ports.push((name.to_string(), ports));
    }

    pub fn rule(&self, bridge: &str, text: &str) {
        let rule = parse_rule(text, &|_| None).expect("rule");
        self.apply(vec![Change::AddRule {
            bridge: bridge.into(),
            rule,
        }]);
    }

    pub fn sent(&self, port: &str) -> u64 {
        self.ports
            .iter()
            .find(|(n, _)| n == port)
            .map_or(0, |(_, ps)| ps.iter().map(|p| p.stats().tx_packets).sum())
    }

    /// Runs one frame through the switch as if received on `port`.
    pub fn inject(&mut self, port: &str, frame: &[u8]) {
        let mut b = Batch::new();
        let mut p = self.pmd.pool().get();
        p.set_data(frame);
        let _ = b.push(p);
        self.pmd.receive(&mut InPort::new(port), &mut b);
    }
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}
