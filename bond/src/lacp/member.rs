//! One bond member's side of LACP: what its partner last said, its receive status and timers,
//! and its counters. The decisions that need the whole bond (attachment, our actor state) are
//! made in [`super::Lacp`].

use std::time::Duration;

use super::pdu::PortInfo;

/// Fast periodic transmission (the partner asked for short timeouts).
pub const FAST_PERIOD: Duration = Duration::from_secs(1);
/// Slow periodic transmission.
pub const SLOW_PERIOD: Duration = Duration::from_secs(30);
/// A partner is expired after this many of our timeout periods without a PDU.
pub const RX_MULTIPLIER: u32 = 3;
/// At most this many LACPDUs per [`FAST_PERIOD`] (802.1AX §6.4.16).
pub const TX_LIMIT: usize = 3;

/// The receive machine's state (802.1AX §6.4.12, as Open vSwitch simplifies it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxStatus {
    /// A PDU arrived within the timeout: the partner information is current.
    Current,
    /// The timeout passed once: the partner is no longer in sync; one more timeout defaults it.
    Expired,
    /// No partner: its information is cleared.
    Defaulted,
}

impl RxStatus {
    pub fn name(self) -> &'static str {
        match self {
            RxStatus::Current => "current",
            RxStatus::Expired => "expired",
            RxStatus::Defaulted => "defaulted",
        }
    }
}

/// The dot3ad-style counters of one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCounters {
    pub rx_pdus: u64,
    /// Malformed, truncated or oversize PDUs (ignored).
    pub rx_bad: u64,
    /// Our own bond's PDUs coming back (the member is looped to its own bond; ignored).
    pub rx_looped: u64,
    pub rx_markers: u64,
    pub rx_marker_responses: u64,
    pub tx_pdus: u64,
    pub tx_marker_responses: u64,
    /// Times the partner expired, and times it defaulted.
    pub link_expired: u64,
    pub link_defaulted: u64,
    pub carrier_changes: u64,
}

/// One member as LACP sees it.
#[derive(Clone, Debug)]
pub struct Member {
    /// Our port identifier and priority for this member (sent as the actor's port).
    pub port: u16,
    pub port_priority: u16,
    /// The member's own MAC address: the source of its PDUs.
    pub mac: [u8; 6],
    pub carrier: bool,
    pub status: RxStatus,
    /// The partner's information from its last PDU (zero when defaulted).
    pub partner: PortInfo,
    /// Whether this member is part of the bond's aggregator.
    pub attached: bool,
    pub counters: MemberCounters,
    pub(super) rx_deadline: Option<Duration>,
    pub(super) next_tx: Duration,
    /// Need to transmit: our information or our view of the partner changed.
    pub(super) ntt: bool,
    pub(super) recent_tx: [Option<Duration>; TX_LIMIT],
    /// What our last PDU said about us, to notice when it must be said again.
    pub(super) last_sent: Option<PortInfo>,
    /// Marker requests to answer, oldest first (a few at most: further ones are dropped).
    pub(super) markers: Vec<super::pdu::MarkerPdu>,
}

/// Marker requests kept per member until the next transmit opportunity.
pub(super) const MAX_PENDING_MARKERS: usize = 4;

impl Member {
    pub fn new(port: u16, port_priority: u16, mac: [u8; 6]) -> Member {
        Member {
            port,
            port_priority,
            mac,
            carrier: false,
            status: RxStatus::Defaulted,
            partner: PortInfo::default(),
            attached: false,
            counters: MemberCounters::default(),
            rx_deadline: None,
            next_tx: Duration::ZERO,
            ntt: true,
            recent_tx: [None; TX_LIMIT],
            last_sent: None,
            markers: Vec::new(),
        }
    }

    /// Whether the rate limit lets one more PDU go at `now`.
    pub(super) fn may_send(&self, now: Duration) -> bool {
        self.recent_tx.iter().any(|t| match t {
            None => true,
            Some(t) => now.saturating_sub(*t) >= FAST_PERIOD,
        })
    }

    pub(super) fn note_sent(&mut self, now: Duration) {
        // Replace the oldest entry (or an empty one).
        let slot = self
            .recent_tx
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.map_or(Duration::ZERO, |t| t + Duration::from_nanos(1)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        self.recent_tx[slot] = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_three_pdus_in_any_second() {
        let mut m = Member::new(1, 1, [2; 6]);
        let t0 = Duration::from_millis(100);
        for i in 0..3 {
            assert!(m.may_send(t0 + Duration::from_millis(i)));
            m.note_sent(t0 + Duration::from_millis(i));
        }
        assert!(!m.may_send(t0 + Duration::from_millis(500)));
        assert!(!m.may_send(t0 + Duration::from_millis(999)));
        assert!(m.may_send(t0 + Duration::from_millis(1000)));
        m.note_sent(t0 + Duration::from_millis(1000));
        assert!(!m.may_send(t0 + Duration::from_millis(1000)));
        assert!(m.may_send(t0 + Duration::from_millis(1001)));
    }
}
