//! VXLAN through the real pipeline over ring ports: ARP for the VTEP address, neighbour
//! resolution, encapsulation, decapsulation into the bridge, drops by reason.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use datapath::packet::{Batch, PacketPool};
use datapath::port::Port;
use datapath::ring::RingPort;
use datapath::{
    Change, PortKind, PortSettings, PortSpec, Switch, SwitchConfig, TunnelKey, VtepConfig,
    VxlanConfig,
};
use vlan_vxlan::vxlan::{self, EncapParams};
use vlan_vxlan::{VXLAN_PORT, arp};

const VTEP_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];
const LOCAL: [u8; 4] = [192, 168, 50, 1];
const REMOTE: [u8; 4] = [192, 168, 50, 2];
const REMOTE_NET_LOCAL: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 168, 50, 1);

struct Rig {
    sw: Switch,
    host: Arc<RingPort>,
    wire: Arc<RingPort>,
    pool: PacketPool,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_underlay_mtu(1500)
    }

    fn with_underlay_mtu(mtu: usize) -> Rig {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        sw.apply(vec![
            Change::AddBridge { name: "br0".into() },
            Change::AddBridge {
                name: "br-phy".into(),
            },
        ])
        .unwrap();
        let (p1, host) = RingPort::pair("p1", "h1");
        sw.attach_port("br0", "p1", Arc::new(p1), PortSettings::default())
            .unwrap();
        let (u0, wire) = RingPort::pair("u0", "w0");
        let u0 = u0.with_mtu(mtu);
        sw.attach_port("br-phy", "u0", Arc::new(u0), PortSettings::default())
            .unwrap();
        sw.apply(vec![Change::SetPort {
            name: "u0".into(),
            settings: PortSettings {
                vtep: Some(VtepConfig {
                    ip: REMOTE_NET_LOCAL,
                    prefix_len: 24,
                    mac: Some(VTEP_MAC),
                }),
                ..PortSettings::default()
            },
        }])
        .unwrap();
        sw.apply(vec![Change::AddPort {
            bridge: "br0".into(),
            port: PortSpec {
                name: "vx0".into(),
                ofport: 2,
                kind: PortKind::Vxlan(VxlanConfig {
                    remote_ip: REMOTE.into(),
                    local_ip: None,
                    key: TunnelKey::Vni(5000),
                    dst_port: VXLAN_PORT,
                    ttl: 64,
                }),
                settings: PortSettings::default(),
            },
        }])
        .unwrap();
        Rig {
            sw,
            host: Arc::new(host),
            wire: Arc::new(wire),
            pool: PacketPool::with_capacity(256),
        }
    }

    fn send(&mut self, port: &Arc<RingPort>, frames: &[Vec<u8>]) {
        // The frames must meet the configuration the rig just made (see Harness::send).
        assert!(
            self.sw.wait_for_pmds(),
            "the PMD did not take the configuration"
        );
        let mut b = Batch::new();
        for f in frames {
            let mut p = self.pool.get_for(f.len());
            assert!(p.set_data(f));
            b.push(p).ok().unwrap();
        }
        assert_eq!(port.tx_burst(&mut b, &mut self.pool), frames.len());
    }

    /// Frames that come out of `port` within a short settling time.
    fn recv(&mut self, port: &Arc<RingPort>, want: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let mut b = Batch::new();
            port.rx_burst(0, &mut self.pool, &mut b);
            for p in b.drain() {
                got.push(p.data().to_vec());
                self.pool.put(p);
            }
            if got.len() >= want {
                std::thread::sleep(Duration::from_millis(20));
                let mut b = Batch::new();
                port.rx_burst(0, &mut self.pool, &mut b);
                for p in b.drain() {
                    got.push(p.data().to_vec());
                    self.pool.put(p);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    /// Asserts that the tunnel port vx0 reports `key=value` in its status.
    fn assert_vx_status(&self, key: &str, value: &str) {
        let b = self.sw.bridge("br0").unwrap();
        let vx = b.ports.iter().find(|p| p.name == "vx0").unwrap();
        assert!(
            vx.status.iter().any(|(k, v)| *k == key && v == value),
            "{:?}",
            vx.status
        );
    }

    fn drops(&self, bridge: &str, port: &str) -> Vec<(String, u64)> {
        drops_of(&self.sw, bridge, port)
    }
}

fn encap(inner: &[u8], vni: u32, src: [u8; 4]) -> Vec<u8> {
    let mut buf = vec![0u8; 64 + inner.len()];
    buf[64..].copy_from_slice(inner);
    let p = EncapParams {
        src_mac: PEER_MAC,
        dst_mac: VTEP_MAC,
        src_ip: src,
        dst_ip: LOCAL,
        vni,
        src_port: 50000,
        dst_port: VXLAN_PORT,
        ttl: 64,
        df: true,
        tos: 0,
    };
    let (s, l) = vxlan::encap(&mut buf, 64, inner.len(), &p).unwrap();
    buf[s..s + l].to_vec()
}

#[test]
fn vtep_answers_arp_resolves_peer_encaps_and_decaps() {
    let mut r = Rig::new();
    let wire = r.wire.clone();
    let host = r.host.clone();

    // ARP for the VTEP address is answered by the switch.
    r.send(&wire, &[arp::request(PEER_MAC, REMOTE, LOCAL).to_vec()]);
    let replies = r.recv(&wire, 1);
    let reply = replies
        .iter()
        .filter_map(|f| arp::parse(f))
        .find(|a| a.op == arp::OP_REPLY)
        .expect("ARP reply");
    assert_eq!((reply.sha, reply.spa, reply.tpa), (VTEP_MAC, LOCAL, REMOTE));
    // That request also taught the switch the peer's MAC.
    let neigh = r.sw.tnl_neigh();
    assert_eq!(neigh.len(), 1);
    assert_eq!(neigh[0].mac, PEER_MAC);

    // A frame from the host leaves the underlay encapsulated with VNI 5000.
    let inner = simple(BCAST, mac(1), b"over-the-overlay");
    r.send(&host, &[inner.clone()]);
    let out = r.recv(&wire, 1);
    assert_eq!(out.len(), 1, "exactly one tunnel packet");
    let d = vxlan::decap(&out[0]).unwrap();
    assert_eq!(
        (d.vni, d.src_ip, d.dst_ip, d.dst_port),
        (5000, LOCAL, REMOTE, VXLAN_PORT)
    );
    assert_eq!(&out[0][0..6], &PEER_MAC);
    assert_eq!(&out[0][6..12], &VTEP_MAC);
    assert_eq!(
        &out[0][d.inner_offset..d.inner_offset + d.inner_len],
        &inner[..]
    );

    // A tunnel packet from the peer comes out at the host decapsulated; its source MAC is
    // learned on the tunnel port.
    let back = simple(mac(1), mac(9), b"from-remote");
    r.send(&wire, &[encap(&back, 5000, REMOTE)]);
    assert_eq!(r.recv(&host, 1), vec![back]);
    let fdb = r.sw.fdb("br0").unwrap();
    assert!(
        fdb.iter().any(|e| e.mac == mac(9) && e.port == "vx0"),
        "{fdb:?}"
    );

    // Wrong VNI, wrong source, broken outer header: dropped and counted on the underlay port.
    r.send(&wire, &[encap(&simple(mac(1), mac(9), b"x"), 7, REMOTE)]);
    r.send(
        &wire,
        &[encap(
            &simple(mac(1), mac(9), b"x"),
            5000,
            [192, 168, 50, 77],
        )],
    );
    let mut bad = encap(&simple(mac(1), mac(9), b"x"), 5000, REMOTE);
    bad[24] ^= 0xff;
    r.send(&wire, &[bad]);
    assert!(r.recv(&host, 1).is_empty());
    let mut drops = r.drops("br-phy", "u0");
    drops.sort();
    assert_eq!(
        drops,
        vec![
            ("tnl-malformed".to_string(), 1),
            ("tnl-no-port".to_string(), 2)
        ]
    );

    // Too big for the underlay MTU (1500): dropped and counted by the tunnel port.
    let big = udp_frame(BCAST, mac(1), &[], 0, 1, 2, &vec![0u8; 1440]);
    r.send(&host, &[big]);
    assert!(r.recv(&wire, 1).is_empty());
    r.assert_vx_status("drop_too_big", "1");
}

/// An underlay at MTU 9000 carries inner frames of up to 8,950 bytes of IP both ways; one byte
/// more is dropped and counted as too big.
#[test]
fn jumbo_frames_cross_a_9000_underlay() {
    let mut r = Rig::with_underlay_mtu(9000);
    let wire = r.wire.clone();
    let host = r.host.clone();
    r.send(&wire, &[arp::request(PEER_MAC, REMOTE, LOCAL).to_vec()]);
    assert_eq!(r.recv(&wire, 1).len(), 1, "ARP reply");

    // 8,950 bytes of IP: 20 + 8 + 8,922.
    let inner = udp_frame(BCAST, mac(1), &[], 0, 1, 2, &vec![0x3c; 8922]);
    r.send(&host, &[inner.clone()]);
    let out = r.recv(&wire, 1);
    assert_eq!(out.len(), 1, "one tunnel packet");
    assert_eq!(out[0].len(), 14 + 9000);
    let d = vxlan::decap(&out[0]).unwrap();
    assert_eq!(
        &out[0][d.inner_offset..d.inner_offset + d.inner_len],
        &inner[..]
    );

    let back = udp_frame(mac(1), mac(9), &[], 0, 1, 2, &vec![0xc3; 8922]);
    r.send(&wire, &[encap(&back, 5000, REMOTE)]);
    assert_eq!(r.recv(&host, 1), vec![back]);

    let over = udp_frame(BCAST, mac(1), &[], 0, 1, 2, &vec![0u8; 8923]);
    r.send(&host, &[over]);
    assert!(r.recv(&wire, 1).is_empty());
    r.assert_vx_status("drop_too_big", "1");
}

#[test]
fn unresolved_peer_is_asked_for_and_counted() {
    let mut r = Rig::new();
    let wire = r.wire.clone();
    let host = r.host.clone();
    r.send(&host, &[simple(BCAST, mac(1), b"first")]);
    let out = r.recv(&wire, 1);
    let req = out
        .iter()
        .filter_map(|f| arp::parse(f))
        .next()
        .expect("an ARP request for the peer");
    assert_eq!(
        (req.op, req.spa, req.tpa, req.sha),
        (arp::OP_REQUEST, LOCAL, REMOTE, VTEP_MAC)
    );
    r.assert_vx_status("drop_no_neighbour", "1");
    // The reply resolves it; the next frame goes out.
    r.send(&wire, &[arp::reply(&req, PEER_MAC).to_vec()]);
    std::thread::sleep(Duration::from_millis(50));
    r.send(&host, &[simple(BCAST, mac(1), b"second")]);
    let out = r.recv(&wire, 1);
    assert!(
        out.iter().any(|f| vxlan::decap(f).is_ok()),
        "encapsulated after resolution"
    );
    assert!(
        r.sw.tnl_routes()
            .iter()
            .any(|rt| rt.port == "u0" && rt.net.prefix_len() == 24)
    );
}
