//! Per-virtqueue counters and the reasons a frame is dropped.
//!
//! Every counter of a virtqueue is written only under that virtqueue's lock (by the PMD polling
//! it, or by whoever transmits through it), so single-writer [`Counter`]s suffice.

use port_api::Counter;

use crate::ring::ChainError;

/// Why a frame was dropped. The names appear in `status()` as `drop_<name>=N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Descriptor index out of range, wrong direction (a writable buffer in a transmit chain or a
    /// readable one in a receive chain), or a malformed indirect descriptor.
    BadDescriptor,
    /// The chain is longer than the ring (or its indirect table), which includes loops.
    ChainTooLong,
    /// A buffer lies (partly) outside the guest memory table.
    BadAddress,
    /// Total chain length overflows, or the chain is shorter than the virtio-net header.
    BadLength,
    /// The frame is larger than a packet buffer ([`port_api::MAX_FRAME`]).
    Oversize,
    /// Transmit to the guest: no receive buffer posted.
    NoGuestBuffer,
    /// Transmit to the guest: the posted buffer cannot hold header and frame.
    GuestBufferTooSmall,
    /// Transmit while the front-end is gone, or the queue is disabled or broken.
    NotReady,
    /// The guest's virtio-net header asks for an offload that was not negotiated, or its
    /// checksum position lies outside the frame.
    BadHeader,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::BadDescriptor,
        DropReason::ChainTooLong,
        DropReason::BadAddress,
        DropReason::BadLength,
        DropReason::Oversize,
        DropReason::NoGuestBuffer,
        DropReason::GuestBufferTooSmall,
        DropReason::NotReady,
        DropReason::BadHeader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadDescriptor => "bad_descriptor",
            DropReason::ChainTooLong => "chain_too_long",
            DropReason::BadAddress => "bad_address",
            DropReason::BadLength => "bad_length",
            DropReason::Oversize => "oversize",
            DropReason::NoGuestBuffer => "no_guest_buffer",
            DropReason::GuestBufferTooSmall => "guest_buffer_too_small",
            DropReason::NotReady => "not_ready",
            DropReason::BadHeader => "bad_header",
        }
    }

    /// The key of its counter in `status()`: `drop_<name>`.
    pub fn status_key(self) -> &'static str {
        match self {
            DropReason::BadDescriptor => "drop_bad_descriptor",
            DropReason::ChainTooLong => "drop_chain_too_long",
            DropReason::BadAddress => "drop_bad_address",
            DropReason::BadLength => "drop_bad_length",
            DropReason::Oversize => "drop_oversize",
            DropReason::NoGuestBuffer => "drop_no_guest_buffer",
            DropReason::GuestBufferTooSmall => "drop_guest_buffer_too_small",
            DropReason::NotReady => "drop_not_ready",
            DropReason::BadHeader => "drop_bad_header",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<ChainError> for DropReason {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::BadIndex | ChainError::BadFlags | ChainError::BadIndirect => {
                DropReason::BadDescriptor
            }
            ChainError::TooLong => DropReason::ChainTooLong,
            ChainError::BadAddress => DropReason::BadAddress,
            ChainError::LengthOverflow | ChainError::NoRoom => DropReason::BadLength,
        }
    }
}

/// Counters of one virtqueue: frames and bytes moved, frames dropped, and drops by reason.
#[derive(Default, Debug)]
pub struct QueueStats {
    pub packets: Counter,
    pub bytes: Counter,
    pub dropped: Counter,
    reasons: [Counter; DropReason::ALL.len()],
}

impl QueueStats {
    pub fn count(&self, bytes: usize) {
        self.packets.add(1);
        self.bytes.add(bytes as u64);
    }

    pub fn drop(&self, reason: DropReason, n: u64) {
        self.dropped.add(n);
        self.reasons[reason.index()].add(n);
    }

    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.reasons[reason.index()].get()
    }
}
