//! Checksum offload through the pipeline: a frame whose UDP checksum its sender left to compute
//! (as a guest with VIRTIO_NET_F_CSUM sends it) leaves a port that cannot carry that with a
//! valid checksum, and a port that can (a vhost-user port) gets it still marked; a flooded
//! frame does both. A caller-driven switch, so packets enter with their metadata.

mod common;

use std::sync::{Arc, Mutex};

use common::{BCAST, mac, udp_frame};
use datapath::harness::{CallerPmd, InPort};
use datapath::packet::{Batch, PacketPool};
use datapath::port::{Port, PortStats};
use datapath::{Change, PortSettings, Switch, SwitchConfig};

/// A frame as a port was handed it, with its checksum mark (start and offset in the frame).
type Sent = (Vec<u8>, Option<(usize, usize)>);

/// Records the frames it is sent and their checksum marks.
struct Recorder {
    name: String,
    takes_partial: bool,
    frames: Mutex<Vec<Sent>>,
}

impl Port for Recorder {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn rx_burst(&self, _: usize, _: &mut PacketPool, _: &mut Batch) -> usize {
        0
    }
    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let mut f = self.frames.lock().unwrap();
        let n = pkts.len();
        for p in pkts.drain() {
            f.push((p.data().to_vec(), p.csum_partial()));
            pool.put(p);
        }
        n
    }
    fn takes_partial_csum(&self) -> bool {
        self.takes_partial
    }
    fn link_up(&self) -> bool {
        true
    }
    fn stats(&self) -> PortStats {
        PortStats::default()
    }
}

fn recorder(name: &str, takes_partial: bool) -> Arc<Recorder> {
    Arc::new(Recorder {
        name: name.into(),
        takes_partial,
        frames: Mutex::default(),
    })
}

fn ones_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | w.get(1).map_or(0, |b| u32::from(*b)))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The IPv4 pseudo-header of `udp_frame`'s UDP segment (10.0.0.1 -> 10.0.0.2).
fn pseudo(frame: &[u8]) -> Vec<u8> {
    let mut p = frame[26..34].to_vec();
    p.extend_from_slice(&[0, 17]);
    p.extend_from_slice(&frame[38..40]);
    p
}

/// A UDP frame as a checksum-offloading sender hands it over: the pseudo-header sum in the
/// checksum field.
fn partial_frame(dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = udp_frame(dst, mac(1), &[], 0, 4000, 5000, payload);
    let partial = fold(ones_sum(&pseudo(&f)));
    f[40..42].copy_from_slice(&partial.to_be_bytes());
    f
}

fn valid_udp_checksum(frame: &[u8]) -> bool {
    fold(ones_sum(&pseudo(frame)) + ones_sum(&frame[34..])) == 0xffff
}

#[test]
fn checksums_left_by_the_sender_are_completed_where_needed() {
    let sw = Switch::start(SwitchConfig {
        caller_driven: true,
        ..SwitchConfig::default()
    })
    .unwrap();
    let mut pmd: CallerPmd = sw.caller_pmd().unwrap();
    sw.apply(vec![Change::AddBridge { name: "br0".into() }])
        .unwrap();
    let (plain, taker) = (recorder("p2", false), recorder("p3", true));
    for (name, port) in [
        ("p1", recorder("p1", false)),
        ("p2", plain.clone()),
        ("p3", taker.clone()),
    ] {
        sw.attach_port("br0", name, port, PortSettings::default())
            .unwrap();
    }
    let mut pool = PacketPool::with_capacity(64);
    let mut send = |pmd: &mut CallerPmd, frame: &[u8]| {
        let mut p = pool.get_for(frame.len());
        assert!(p.set_data(frame));
        assert!(p.set_csum_partial(34, 6));
        let mut b = Batch::new();
        b.push(p).ok().unwrap();
        b.set_csum_marks(true);
        pmd.receive(&mut InPort::new("p1"), &mut b);
    };

    // Flooded (unknown destination): completed for p2, still marked for p3.
    let frame = partial_frame(BCAST, &[0x42; 1000]);
    assert!(!valid_udp_checksum(&frame));
    send(&mut pmd, &frame);
    let to_plain = std::mem::take(&mut *plain.frames.lock().unwrap());
    let to_taker = std::mem::take(&mut *taker.frames.lock().unwrap());
    assert_eq!(to_plain.len(), 1);
    assert!(
        valid_udp_checksum(&to_plain[0].0),
        "completed for a port that needs it"
    );
    assert_eq!(to_plain[0].1, None);
    assert_eq!(
        to_taker,
        vec![(frame.clone(), Some((34, 6)))],
        "as sent, still marked"
    );

    // A jumbo frame, and a frame whose tag is pushed on the way: the mark follows the bytes.
    common::add_flow(
        &sw,
        "br0",
        "in_port=p1,actions=push_vlan:0x8100,set_field:5->vlan_vid,output:p2,output:p3",
    )
    .unwrap();
    let jumbo = partial_frame(mac(9), &[0x17; 8972]);
    send(&mut pmd, &jumbo);
    let to_plain = std::mem::take(&mut *plain.frames.lock().unwrap());
    let to_taker = std::mem::take(&mut *taker.frames.lock().unwrap());
    let untag = |f: &[u8]| [&f[..12], &f[16..]].concat();
    assert_eq!(to_plain.len(), 1);
    assert!(valid_udp_checksum(&untag(&to_plain[0].0)));
    assert_eq!(to_taker.len(), 1);
    assert_eq!(
        to_taker[0].1,
        Some((38, 6)),
        "4 bytes further into the tagged frame"
    );
    assert_eq!(untag(&to_taker[0].0), jumbo);
}

/// Into a VXLAN tunnel: the inner checksum is completed before encapsulation.
#[test]
fn checksums_are_completed_before_vxlan_encapsulation() {
    use datapath::{PortKind, PortSpec, TunnelKey, VtepConfig, VxlanConfig};
    use vlan_vxlan::{VXLAN_PORT, arp, vxlan};
    const PEER_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];
    let sw = Switch::start(SwitchConfig {
        caller_driven: true,
        ..SwitchConfig::default()
    })
    .unwrap();
    let mut pmd: CallerPmd = sw.caller_pmd().unwrap();
    sw.apply(vec![
        Change::AddBridge { name: "br0".into() },
        Change::AddBridge {
            name: "br-phy".into(),
        },
    ])
    .unwrap();
    let wire = recorder("u0", false);
    sw.attach_port("br0", "p1", recorder("p1", false), PortSettings::default())
        .unwrap();
    sw.attach_port("br-phy", "u0", wire.clone(), PortSettings::default())
        .unwrap();
    sw.apply(vec![
        Change::SetPort {
            name: "u0".into(),
            settings: PortSettings {
                vtep: Some(VtepConfig {
                    ip: [192, 168, 50, 1].into(),
                    prefix_len: 24,
                    mac: Some([0x02, 0xaa, 0, 0, 0, 1]),
                }),
                ..PortSettings::default()
            },
        },
        Change::AddPort {
            bridge: "br0".into(),
            port: PortSpec {
                name: "vx0".into(),
                ofport: 2,
                kind: PortKind::Vxlan(VxlanConfig {
                    remote_ip: [192, 168, 50, 2].into(),
                    local_ip: None,
                    key: TunnelKey::Vni(5000),
                    dst_port: VXLAN_PORT,
                    ttl: 64,
                }),
                settings: PortSettings::default(),
            },
        },
    ])
    .unwrap();
    let mut pool = PacketPool::with_capacity(64);
    let mut inject = |pmd: &mut CallerPmd, port: &str, frame: &[u8], mark: bool| {
        let mut p = pool.get_for(frame.len());
        assert!(p.set_data(frame));
        let mut b = Batch::new();
        if mark {
            assert!(p.set_csum_partial(34, 6));
            b.set_csum_marks(true);
        }
        b.push(p).ok().unwrap();
        pmd.receive(&mut InPort::new(port), &mut b);
    };
    // The peer's ARP request teaches the switch its MAC.
    let req = arp::request(PEER_MAC, [192, 168, 50, 2], [192, 168, 50, 1]);
    inject(&mut pmd, "u0", &req, false);
    wire.frames.lock().unwrap().clear();

    let frame = partial_frame(BCAST, &[0x5a; 1200]);
    inject(&mut pmd, "p1", &frame, true);
    let out = std::mem::take(&mut *wire.frames.lock().unwrap());
    assert_eq!(out.len(), 1, "one tunnel packet");
    let d = vxlan::decap(&out[0].0).unwrap();
    let inner = &out[0].0[d.inner_offset..d.inner_offset + d.inner_len];
    assert!(valid_udp_checksum(inner), "inner checksum completed");
    assert_eq!(out[0].1, None);
}
