//! A small stack-held queue of UMEM frames for the `xdp` crate's rings.

use xdp::slab::Slab;

use crate::packet::MAX_BURST;

/// Up to [`MAX_BURST`] UMEM frames on the stack, first in first out: what the `xdp` crate's rings
/// fill on receive and drain on transmit. `limit` caps how many it accepts.
pub(super) struct Frames {
    slots: [Option<xdp::Packet>; MAX_BURST],
    head: usize,
    tail: usize,
    limit: usize,
}

impl Frames {
    pub(super) fn new(limit: usize) -> Self {
        Frames {
            slots: [const { None }; MAX_BURST],
            head: 0,
            tail: 0,
            limit: limit.min(MAX_BURST),
        }
    }

    /// The frames received (not yet taken out), in order.
    pub(super) fn received(&self) -> impl Iterator<Item = &xdp::Packet> {
        self.slots[..self.tail].iter().flatten()
    }
}

impl Slab for Frames {
    fn available(&self) -> usize {
        self.limit - self.tail
    }

    fn len(&self) -> usize {
        self.tail - self.head
    }

    fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    fn push_front(&mut self, frame: xdp::Packet) -> Option<xdp::Packet> {
        if self.tail == self.limit {
            return Some(frame);
        }
        self.slots[self.tail] = Some(frame);
        self.tail += 1;
        None
    }

    fn pop_back(&mut self) -> Option<xdp::Packet> {
        if self.head == self.tail {
            return None;
        }
        self.head += 1;
        self.slots[self.head - 1].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_is_fifo_and_bounded() {
        let mut buf = [[0u8; 2048]; 3];
        let mut frames = Frames::new(2);
        for (i, b) in buf.iter_mut().enumerate() {
            let mut p = xdp::Packet::testing_new(b);
            p.append(&[i as u8]).unwrap();
            let rejected = frames.push_front(p);
            assert_eq!(rejected.is_some(), i == 2);
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames.pop_back().unwrap()[0], 0);
        assert_eq!(frames.pop_back().unwrap()[0], 1);
        assert!(frames.pop_back().is_none());
    }
}
