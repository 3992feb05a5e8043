//! The hashes that spread a bond's traffic over its members: balance-slb hashes the source MAC
//! and VLAN, balance-tcp the IP addresses, protocol and ports (falling back to the Ethernet
//! addresses for non-IP frames). Both read the frame in place with bounds checks and never
//! allocate; a frame too short to parse hashes what it has. The bucket is the top byte of the
//! hash ([`bucket_of`]): a Fibonacci multiply makes it depend on every input bit, at one
//! multiplication per frame (this runs for every frame a balancing bond sends).

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// The bucket of a hash: its top byte.
#[inline]
pub fn bucket_of(hash: u64) -> usize {
    (hash >> 56) as usize
}

/// Fibonacci hashing: the high bits of the product depend on every bit of `x`.
#[inline]
fn fib(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A 64-bit finaliser (splitmix64's), to combine fields: every input bit moves every output
/// bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn mac_bits(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 6).map_or(0, |m| {
        m.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x))
    })
}

/// The outermost VLAN ID (0 when untagged) and where the ethertype after the tags is.
fn vlan_and_type(frame: &[u8]) -> (u16, usize) {
    let mut at = 12;
    let mut vid = None;
    while let Some(t) = u16_at(frame, at) {
        if t != ETH_P_8021Q && t != ETH_P_8021AD {
            break;
        }
        if vid.is_none() {
            vid = u16_at(frame, at + 2).map(|tci| tci & 0x0fff);
        }
        at += 4;
    }
    (vid.unwrap_or(0), at)
}

/// balance-slb: source MAC and VLAN.
#[inline]
pub fn slb_hash(frame: &[u8]) -> u64 {
    // Untagged frames (the common case) without the tag walk.
    let vid = match frame.get(12..14) {
        Some([0x81, 0x00] | [0x88, 0xa8]) => vlan_and_type(frame).0,
        _ => 0,
    };
    fib(mac_bits(frame, 6) ^ (u64::from(vid) << 48))
}

/// balance-tcp: source and destination IP, protocol and ports (TCP, UDP, SCTP; the first
/// fragment's ports only, later fragments hash by addresses); else both MACs and the VLAN.
pub fn l4_hash(frame: &[u8]) -> u64 {
    let (vid, at) = vlan_and_type(frame);
    let l3 = at + 2;
    let h = match u16_at(frame, at) {
        Some(ETH_P_IPV4) => ipv4(frame, l3),
        Some(ETH_P_IPV6) => ipv6(frame, l3),
        _ => None,
    };
    match h {
        Some(h) => fib(h),
        None => fib(mix(mac_bits(frame, 0)) ^ mac_bits(frame, 6) ^ u64::from(vid)),
    }
}

fn ports(frame: &[u8], proto: u8, l4: usize) -> u64 {
    match proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => frame.get(l4..l4 + 4).map_or(0, |p| {
            u64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        }),
        _ => 0,
    }
}

fn ipv4(frame: &[u8], l3: usize) -> Option<u64> {
    let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
    let proto = *frame.get(l3 + 9)?;
    let src = frame.get(l3 + 12..l3 + 16)?;
    let dst = frame.get(l3 + 16..l3 + 20)?;
    let addrs = u64::from(u32::from_be_bytes([src[0], src[1], src[2], src[3]])) << 32
        | u64::from(u32::from_be_bytes([dst[0], dst[1], dst[2], dst[3]]));
    let frag_offset = u16_at(frame, l3 + 6)? & 0x1fff;
    let p = if frag_offset == 0 && ihl >= 20 {
        ports(frame, proto, l3 + ihl)
    } else {
        0
    };
    Some(addrs ^ mix(p ^ u64::from(proto) << 40))
}

fn ipv6(frame: &[u8], l3: usize) -> Option<u64> {
    let next = *frame.get(l3 + 6)?;
    let addrs = frame.get(l3 + 8..l3 + 40)?;
    let folded = addrs.chunks_exact(8).fold(0u64, |acc, c| {
        mix(acc ^ u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
    });
    // Extension headers are not walked: such frames hash by addresses and next header.
    Some(folded ^ mix(ports(frame, next, l3 + 40) ^ u64::from(next) << 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(sport: u16, vlan: Option<u16>) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        if let Some(v) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0, 53, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn l4_hash_follows_ports_and_slb_does_not() {
        assert_ne!(l4_hash(&udp4(1000, None)), l4_hash(&udp4(1001, None)));
        assert_eq!(slb_hash(&udp4(1000, None)), slb_hash(&udp4(1001, None)));
        assert_ne!(
            slb_hash(&udp4(1000, Some(10))),
            slb_hash(&udp4(1000, Some(11)))
        );
        // The tag does not change the L4 hash.
        assert_eq!(l4_hash(&udp4(7, Some(10))), l4_hash(&udp4(7, None)));
    }

    #[test]
    fn a_thousand_flows_spread_over_the_buckets() {
        let mut per_bucket = [0u32; 256];
        for p in 0..1000u16 {
            per_bucket[bucket_of(l4_hash(&udp4(p, None)))] += 1;
        }
        let used = per_bucket.iter().filter(|&&n| n > 0).count();
        assert!(used > 230, "{used} buckets used by 1,000 flows");
        let even = (0..1000u16)
            .filter(|p| l4_hash(&udp4(*p, None)) & 1 == 0)
            .count();
        assert!(
            (430..=570).contains(&even),
            "{even} of 1000 on even buckets"
        );
    }

    #[test]
    fn source_macs_spread_over_the_buckets() {
        let mut per_bucket = [0u32; 256];
        for i in 0..1000u32 {
            let mut f = udp4(1, None);
            f[6..12].copy_from_slice(&[2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            per_bucket[bucket_of(slb_hash(&f))] += 1;
        }
        let used = per_bucket.iter().filter(|&&n| n > 0).count();
        assert!(used > 230, "{used} buckets used by 1,000 MACs");
        assert!(
            per_bucket.iter().all(|&n| n < 16),
            "no bucket crowded: {per_bucket:?}"
        );
    }

    #[test]
    fn short_and_odd_frames_hash_without_panicking() {
        for n in 0..64 {
            let f = udp4(9, Some(3));
            let _ = l4_hash(&f[..n.min(f.len())]);
            let _ = slb_hash(&f[..n.min(f.len())]);
        }
        // Stacked tags all the way to the end.
        let f = [0x81, 0x00].repeat(40);
        let _ = l4_hash(&f);
    }
}
