//! Test frame templates: Ethernet/IPv4/UDP with a varying 5-tuple.

/// A 64-byte (without FCS: 60 bytes on the wire before padding counts) UDP frame for flow `i`.
/// Flows differ in IPv4 source address and UDP source port.
pub fn udp64(i: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let payload_len = 64 - 4 - 14 - 20 - 8; // 64 B on the wire including the 4-byte FCS
    let total = (20 + 8 + payload_len) as u16;
    let src = 0x0a00_0000u32 | (i >> 16);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.to_be_bytes());
    ip.extend_from_slice(&[10, 1, 0, 1]);
    let c = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&((i & 0xffff) as u16).to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(60, 0);
    f
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    #[test]
    fn flows_are_distinct_and_parse() {
        let a = super::udp64(1);
        let b = super::udp64(70_000);
        assert_eq!(a.len(), 60);
        assert_ne!(a, b);
        let ka = flowtable::extract(&a, 1).unwrap();
        let kb = flowtable::extract(&b, 1).unwrap();
        assert_eq!(ka.nw_proto, 17);
        assert_ne!(ka, kb);
    }
}
