//! virtio-net facts the port needs: the feature bits it offers, their names, the size of the
//! `virtio_net_hdr` in front of every frame, and the device configuration space.
//!
//! Offered: VERSION_1, MRG_RXBUF, INDIRECT_DESC, EVENT_IDX, MQ, MTU, STATUS (and MAC when a MAC
//! address is configured), the checksum offloads CSUM and GUEST_CSUM (unless the port turns
//! offloads off), plus vhost-user's PROTOCOL_FEATURES. Not offered: segmentation offloads
//! (TSO/UFO/USO: the switch does no segmentation yet, so the guest hands over frames of at most
//! its MTU), CTRL_VQ (the front-end owns the control queue), packed rings, IOMMU_PLATFORM and
//! LOG_ALL (no dirty logging, hence no live migration).

use crate::ring::HostBuf;

use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS,
};
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};

/// vhost-user's own feature bit: the front-end may use the protocol-feature messages.
pub const VHOST_USER_F_PROTOCOL_FEATURES: u32 = 30;

const fn bit(b: u32) -> u64 {
    1u64 << b
}

/// Virtio feature bits the port offers (MAC is added when a MAC address is configured).
pub const OFFERED_FEATURES: u64 = bit(VIRTIO_F_VERSION_1)
    | bit(VIRTIO_NET_F_MRG_RXBUF)
    | bit(VIRTIO_RING_F_INDIRECT_DESC)
    | bit(VIRTIO_RING_F_EVENT_IDX)
    | bit(VIRTIO_NET_F_MQ)
    | bit(VIRTIO_NET_F_MTU)
    | bit(VIRTIO_NET_F_STATUS)
    | bit(VHOST_USER_F_PROTOCOL_FEATURES);

/// The MAC feature bit, offered only with a configured MAC address.
pub const MAC_FEATURE: u64 = bit(VIRTIO_NET_F_MAC);

/// Checksum offload both ways: the guest may send frames whose L4 checksum is left to compute
/// (CSUM), and take such frames (GUEST_CSUM). Offered unless the port turns offloads off.
pub const CSUM_FEATURES: u64 = bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM);

const NAMES: &[(u32, &str)] = &[
    (VIRTIO_NET_F_CSUM, "CSUM"),
    (VIRTIO_NET_F_GUEST_CSUM, "GUEST_CSUM"),
    (VIRTIO_NET_F_MTU, "MTU"),
    (VIRTIO_NET_F_MAC, "MAC"),
    (VIRTIO_NET_F_MRG_RXBUF, "MRG_RXBUF"),
    (VIRTIO_NET_F_STATUS, "STATUS"),
    (VIRTIO_NET_F_MQ, "MQ"),
    (VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC"),
    (VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"),
    (VHOST_USER_F_PROTOCOL_FEATURES, "PROTOCOL_FEATURES"),
    (VIRTIO_F_VERSION_1, "VERSION_1"),
];

/// Feature names separated by `|` (unknown bits as `bitN`), for `status()`.
pub fn feature_names(features: u64) -> String {
    let mut names = Vec::new();
    for b in 0..64u32 {
        if features & bit(b) == 0 {
            continue;
        }
        match NAMES.iter().find(|(nb, _)| *nb == b) {
            Some((_, name)) => names.push((*name).to_string()),
            None => names.push(format!("bit{b}")),
        }
    }
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("|")
    }
}

/// Whether mergeable receive buffers were negotiated.
pub fn has_mrg_rxbuf(features: u64) -> bool {
    features & bit(VIRTIO_NET_F_MRG_RXBUF) != 0
}

/// The guest may send frames with the checksum left to compute.
pub fn has_csum(features: u64) -> bool {
    features & bit(VIRTIO_NET_F_CSUM) != 0
}

/// The guest takes frames with the checksum left to compute.
pub fn has_guest_csum(features: u64) -> bool {
    features & bit(VIRTIO_NET_F_GUEST_CSUM) != 0
}

pub fn has_event_idx(features: u64) -> bool {
    features & bit(VIRTIO_RING_F_EVENT_IDX) != 0
}

pub fn has_indirect(features: u64) -> bool {
    features & bit(VIRTIO_RING_F_INDIRECT_DESC) != 0
}

pub fn has_protocol_features(features: u64) -> bool {
    features & bit(VHOST_USER_F_PROTOCOL_FEATURES) != 0
}

/// Size of the `virtio_net_hdr` in front of each frame: 12 bytes (with `num_buffers`) for
/// VERSION_1 or MRG_RXBUF, else the legacy 10 bytes.
pub fn header_len(features: u64) -> usize {
    if features & (bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MRG_RXBUF)) != 0 {
        12
    } else {
        10
    }
}

/// `flags`: the checksum from `csum_start` on is left to compute.
const NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a segmentation super-frame.
const GSO_NONE: u8 = 0;

/// The first ten bytes of a `virtio_net_hdr`: what a transmitting guest asks of the device.
pub const TX_HEADER_LEN: usize = 10;

/// What a guest's transmit header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOffload {
    /// A complete frame.
    None,
    /// The L4 checksum from `start` (bytes into the frame) on is to compute and store at
    /// `start + offset`.
    Csum { start: usize, offset: usize },
}

/// Reads a transmit header; None if it asks for what `csum` (checksum offload negotiated)
/// does not allow: a checksum without CSUM, or any segmentation (no TSO/UFO is offered).
pub fn parse_tx_header(h: &[u8; TX_HEADER_LEN], csum: bool) -> Option<TxOffload> {
    let (flags, gso_type) = (h[0], h[1]);
    if gso_type != GSO_NONE {
        return None;
    }
    if flags & NEEDS_CSUM == 0 {
        return Some(TxOffload::None);
    }
    if !csum {
        return None;
    }
    let start = usize::from(u16::from_le_bytes([h[6], h[7]]));
    let offset = usize::from(u16::from_le_bytes([h[8], h[9]]));
    Some(TxOffload::Csum { start, offset })
}

/// The receive header the port writes: `num_buffers` (bytes 10..12) when the header has the
/// field, and with `csum` (start and offset in the frame) NEEDS_CSUM and its position.
pub fn rx_header(hdr_len: usize, num_buffers: u16, csum: Option<(usize, usize)>) -> [u8; 12] {
    let mut h = [0u8; 12];
    if let Some((start, offset)) = csum {
        h[0] = NEEDS_CSUM;
        // Both fit: a frame is shorter than 65536 bytes.
        h[6..8].copy_from_slice(&(start as u16).to_le_bytes());
        h[8..10].copy_from_slice(&(offset as u16).to_le_bytes());
    }
    if hdr_len >= 12 {
        h[10..12].copy_from_slice(&num_buffers.to_le_bytes());
    }
    h
}

/// Writes the receive header of [`rx_header`] (no mark) at the start of `buf` with two stores
/// of values built in registers: copying the 12-byte array from the stack would load it right
/// after building it with narrower stores, which the CPU cannot forward (a stall per frame).
/// `hdr_len` is 10 or 12; false if `buf` is shorter.
#[inline]
pub(crate) fn store_rx_header(buf: &HostBuf<'_>, hdr_len: usize, num_buffers: u16) -> bool {
    let tail = if hdr_len >= 12 {
        // csum_offset (bytes 8..10) = 0, num_buffers (bytes 10..12), little endian.
        buf.store(8, (u32::from(num_buffers) << 16).to_le())
    } else {
        buf.store(8, 0u16)
    };
    tail && buf.store(0, 0u64)
}

/// As [`store_rx_header`] for one buffer, with NEEDS_CSUM and the checksum's `start` and
/// `offset` in the frame.
#[inline(never)]
pub(crate) fn store_rx_header_marked(
    buf: &HostBuf<'_>,
    hdr_len: usize,
    start: usize,
    offset: usize,
) -> bool {
    // Bytes 0..8: flags, gso_type, hdr_len, gso_size, csum_start; 8..10: csum_offset. Both fit
    // in 16 bits: a frame is shorter than 65536 bytes.
    let head = u64::from(NEEDS_CSUM) | (start as u64) << 48;
    let tail = if hdr_len >= 12 {
        buf.store(8, (offset as u32 | 1 << 16).to_le())
    } else {
        buf.store(8, (offset as u16).to_le())
    };
    tail && buf.store(0, head.to_le())
}

/// `VIRTIO_NET_S_LINK_UP` in the config space status field.
const LINK_UP: u16 = 1;

/// The `virtio_net_config` space: `mac[6]`, status, max_virtqueue_pairs, mtu (little endian).
pub fn config_space(mac: [u8; 6], max_queue_pairs: u16, mtu: u16) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0..6].copy_from_slice(&mac);
    c[6..8].copy_from_slice(&LINK_UP.to_le_bytes());
    c[8..10].copy_from_slice(&max_queue_pairs.to_le_bytes());
    c[10..12].copy_from_slice(&mtu.to_le_bytes());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes() {
        assert_eq!(header_len(0), 10);
        assert_eq!(header_len(bit(VIRTIO_F_VERSION_1)), 12);
        assert_eq!(header_len(bit(VIRTIO_NET_F_MRG_RXBUF)), 12);
        assert_eq!(rx_header(12, 3, None)[10..12], [3, 0]);
        assert_eq!(rx_header(10, 3, None), [0; 12]);
    }

    #[test]
    fn names() {
        assert_eq!(feature_names(0), "none");
        let n = feature_names(OFFERED_FEATURES);
        assert!(n.contains("MRG_RXBUF") && n.contains("VERSION_1") && n.contains("EVENT_IDX"));
        assert_eq!(feature_names(CSUM_FEATURES), "CSUM|GUEST_CSUM");
        assert_eq!(feature_names(1 << 2), "bit2");
        // Offloads only when the port turns them on.
        assert_eq!(OFFERED_FEATURES & CSUM_FEATURES, 0);
    }

    #[test]
    fn tx_headers() {
        let h = |flags: u8, gso: u8| {
            let mut h = [0u8; TX_HEADER_LEN];
            (h[0], h[1]) = (flags, gso);
            h[6..8].copy_from_slice(&34u16.to_le_bytes());
            h[8..10].copy_from_slice(&16u16.to_le_bytes());
            h
        };
        let csum = TxOffload::Csum {
            start: 34,
            offset: 16,
        };
        assert_eq!(parse_tx_header(&h(0, 0), false), Some(TxOffload::None));
        assert_eq!(parse_tx_header(&h(1, 0), true), Some(csum));
        assert_eq!(
            parse_tx_header(&h(1, 0), false),
            None,
            "CSUM not negotiated"
        );
        assert_eq!(parse_tx_header(&h(0, 1), true), None, "no TSO offered");
        assert_eq!(rx_header(12, 2, Some((34, 16)))[..10], h(1, 0));
    }
}
