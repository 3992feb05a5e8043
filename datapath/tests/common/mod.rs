//! Frame builders and a ring-port harness shared by the pipeline tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use datapath::packet::{Batch, PacketPool};
use datapath::port::Port;
use datapath::ring::RingPort;
use datapath::{Change, DpError, PortSettings, Switch, SwitchConfig};
use vlan_vxlan::VlanMode;

/// Adds a rule in ovs-ofctl syntax, ports by their names on the bridge.
pub fn add_flow(sw: &Switch, bridge: &str, text: &str) -> Result<(), DpError> {
    let ports = sw.bridge(bridge)?.ports;
    let rule = flowtable::parse_rule(text, &|n| {
        ports.iter().find(|p| p.name == n).map(|p| p.ofport)
    })
    .map_err(|e| DpError(e.to_string()))?;
    sw.apply(vec![Change::AddRule {
        bridge: bridge.into(),
        rule,
    }])
}

/// Deletes every rule of the bridge (one transaction); returns how many.
pub fn del_flows(sw: &Switch, bridge: &str) -> usize {
    let dels: Vec<Change> = sw
        .dump_flows(bridge)
        .unwrap()
        .into_iter()
        .map(|f| Change::DelRule {
            bridge: bridge.into(),
            priority: f.rule.priority,
            m: f.rule.m,
        })
        .collect();
    let n = dels.len();
    sw.apply(dels).unwrap();
    n
}

/// Gives a port these VLAN settings (nothing else).
pub fn set_vlan(sw: &Switch, port: &str, vlan: VlanMode) -> Result<(), DpError> {
    sw.apply(vec![Change::SetPort {
        name: port.into(),
        settings: PortSettings {
            vlan,
            ..PortSettings::default()
        },
    }])
}

/// A port's drops by reason name.
pub fn drops_of(sw: &Switch, bridge: &str, port: &str) -> Vec<(String, u64)> {
    sw.bridge(bridge)
        .unwrap()
        .ports
        .iter()
        .find(|p| p.name == port)
        .unwrap()
        .drops
        .iter()
        .map(|(r, n)| (r.name().to_string(), *n))
        .collect()
}

pub const BCAST: [u8; 6] = [0xff; 6];

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

fn checksum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for w in h.chunks(2) {
        let hi = w[0];
        let lo = *w.get(1).unwrap_or(&0);
        s += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Ethernet + optional tags + IPv4 + UDP, with a payload, valid IPv4 checksum.
pub fn udp_frame(
    dst: [u8; 6],
    src: [u8; 6],
    tags: &[(u16, u16)],
    tos: u8,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, tos];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

pub fn simple(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    udp_frame(dst, src, &[], 0, 1000, 2000, payload)
}

/// A switch with one PMD and ring ports whose far ends the test holds.
pub struct Harness {
    pub sw: Switch,
    pub hosts: Vec<Arc<RingPort>>,
    pool: PacketPool,
}

impl Harness {
    pub fn new(n_ports: usize) -> Self {
        let sw = Switch::start(SwitchConfig::default()).expect("switch");
        sw.apply(vec![Change::AddBridge { name: "br0".into() }])
            .unwrap();
        let mut hosts = Vec::new();
        for i in 1..=n_ports {
            let (port, host) = RingPort::pair(&format!("p{i}"), &format!("h{i}"));
            let ofport = sw
                .attach_port(
                    "br0",
                    &format!("p{i}"),
                    Arc::new(port),
                    PortSettings::default(),
                )
                .unwrap();
            assert_eq!(ofport, i as u32);
            hosts.push(Arc::new(host));
        }
        Harness {
            sw,
            hosts,
            pool: PacketPool::with_capacity(256),
        }
    }

    /// Sends frames into the switch on port `i` (1-based).
    pub fn send(&mut self, i: usize, frames: &[Vec<u8>]) {
        // Frames sent now must meet the configuration the test just made, not the one a PMD
        // loaded at the start of the iteration it is in.
        assert!(
            self.sw.wait_for_pmds(),
            "the PMD did not take the configuration"
        );
        for chunk in frames.chunks(32) {
            let mut b = Batch::new();
            for f in chunk {
                let mut p = self.pool.get_for(f.len());
                assert!(p.set_data(f));
                b.push(p).ok().unwrap();
            }
            assert_eq!(
                self.hosts[i - 1].tx_burst(&mut b, &mut self.pool),
                chunk.len()
            );
        }
    }

    /// Waits until the switch has taken every frame sent and settled, then collects what each
    /// port emitted.
    pub fn collect(&mut self) -> Vec<Vec<Vec<u8>>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        // The PMD counts what it received once it has processed and sent it: wait for that
        // count to cover every frame sent (a PMD descheduled between receiving and sending
        // would otherwise outlast any fixed grace period on a busy machine).
        loop {
            let sent: u64 = self.hosts.iter().map(|h| h.stats().tx_packets).sum();
            let processed: u64 = self.sw.pmds().iter().map(|p| p.packets).sum();
            let busy = processed < sent
                || self.sw.bridges()[0]
                    .ports
                    .iter()
                    .any(|p| p.stats.rx_packets < self.expected_rx(&p.name));
            if !busy || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut out = Vec::new();
        for h in &self.hosts {
            let mut got = Vec::new();
            loop {
                let mut b = Batch::new();
                if h.rx_burst(0, &mut self.pool, &mut b) == 0 {
                    break;
                }
                for p in b.drain() {
                    got.push(p.data().to_vec());
                    self.pool.put(p);
                }
            }
            out.push(got);
        }
        out
    }

    fn expected_rx(&self, port: &str) -> u64 {
        let i: usize = port.trim_start_matches('p').parse().unwrap_or(0);
        self.hosts
            .get(i.wrapping_sub(1))
            .map(|h| h.stats().tx_packets)
            .unwrap_or(0)
    }

    pub fn drops(&self, port: &str) -> Vec<(String, u64)> {
        drops_of(&self.sw, "br0", port)
    }
}
