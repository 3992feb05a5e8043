//! The seam between the pipeline and every kind of port (ring, afxdp, vhost-user, dpdk, bond).

use crate::counter::Counter;
use crate::packet::{Batch, Packet, PacketPool};

/// Counters every port keeps. Receive counters are written by the PMD polling the queue,
/// transmit counters under the port's transmit lock.
#[derive(Default, Debug)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    /// Frames the port could not take in (ring overflow, oversize frame, no buffer).
    pub rx_dropped: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Frames handed to the port that it could not send (ring full, link down, too big).
    pub tx_dropped: Counter,
}

/// A point-in-time copy of [`PortCounters`].
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl PortCounters {
    pub fn snapshot(&self) -> PortStats {
        PortStats {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            rx_dropped: self.rx_dropped.get(),
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            tx_dropped: self.tx_dropped.get(),
        }
    }
}

/// A switch port. Each receive queue is polled by exactly one PMD thread at a time; transmit may
/// be called from any PMD and the port serialises it per queue.
pub trait Port: Send + Sync {
    fn name(&self) -> &str;

    /// Port type as configured (`ring`, `afxdp`, ...).
    fn kind(&self) -> &'static str;

    /// Number of receive queues.
    fn n_rxq(&self) -> usize {
        1
    }

    /// Receives up to `out.room()` frames from queue `qid` into buffers taken from `pool`.
    /// Returns how many were added.
    fn rx_burst(&self, qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize;

    /// Sends every packet in `pkts` (the batch is left empty, buffers go back to `pool`).
    /// Returns how many were accepted; the rest are counted in `tx_dropped`.
    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize;

    /// Frames accepted by [`Port::tx_burst`] that the port has not finished sending (in its
    /// transmit ring). An egress scheduler keeps this small, so that a high-priority frame never
    /// waits behind a full ring.
    fn tx_in_flight(&self) -> usize {
        0
    }

    /// Whether the link is up (carrier, or peer connected).
    fn link_up(&self) -> bool;

    fn stats(&self) -> PortStats;

    /// The port's own Ethernet address, where it has one (kernel interfaces).
    fn mac(&self) -> Option<[u8; 6]> {
        None
    }

    /// Whether the port takes frames whose L4 checksum is still to compute
    /// ([`crate::Packet::csum`]) and deals with them itself (a vhost-user port hands them to a
    /// guest that accepts them, or completes them). For other ports the pipeline completes
    /// them first.
    fn takes_partial_csum(&self) -> bool {
        false
    }

    /// The largest L3 packet the port carries (the interface MTU), where known.
    fn mtu(&self) -> Option<usize> {
        None
    }

    /// The device's own counters where it keeps any (a DPDK ethdev's `rx_missed`, `rx_nombuf`,
    /// errors and non-zero extended statistics), for `dump-ports`.
    fn device_counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// Type-specific facts for `show` (e.g. `iface`, `xdp_mode`), as key/value pairs.
    fn status(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// What the port would do with `pkt` if it were sent now, as key/value pairs (the QoS
    /// class it is queued in, the tunnel header it gets, the bond member it leaves by), for
    /// `vswitchctl trace`. Changes nothing and sends nothing.
    fn explain_tx(&self, pkt: &Packet) -> Vec<(&'static str, String)> {
        let _ = pkt;
        Vec::new()
    }
}
