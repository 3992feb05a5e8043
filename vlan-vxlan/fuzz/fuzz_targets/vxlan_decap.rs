//! The VXLAN receive path on untrusted bytes: the VTEP's first look (ARP, UDP peek), outer
//! header validation, then the inner frame's flow key. Nothing may panic; whatever is accepted
//! must lie inside the frame, and re-encapsulating the inner frame must decode to the same VNI.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vlan_vxlan::arp;
use vlan_vxlan::vxlan::{self, EncapParams};

fuzz_target!(|frame: &[u8]| {
    let _ = arp::parse(frame);
    let _ = vxlan::peek_udp4(frame);
    let Ok(d) = vxlan::decap(frame) else { return };
    let end = d.inner_offset + d.inner_len;
    assert!(end <= frame.len());
    let inner = &frame[d.inner_offset..end];
    let _ = flowtable::extract(inner, 1);

    let mut buf = vec![0u8; 64 + inner.len()];
    buf[64..].copy_from_slice(inner);
    let p = EncapParams {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: d.dst_ip,
        dst_ip: d.src_ip,
        vni: d.vni,
        src_port: vxlan::flow_src_port(d.vni as u64),
        dst_port: d.dst_port,
        ttl: 64,
        df: true,
        tos: d.tos,
    };
    if let Ok((s, l)) = vxlan::encap(&mut buf, 64, inner.len(), &p) {
        let again = vxlan::decap(&buf[s..s + l]).expect("our own encapsulation decodes");
        assert_eq!(again.vni, d.vni);
        assert_eq!(&buf[s + again.inner_offset..s + again.inner_offset + again.inner_len], inner);
    }
});
