//! Checksum offload: a frame whose L4 checksum its sender left to the network (a guest that
//! negotiated VIRTIO_NET_F_CSUM), and completing that checksum in software where it leaves
//! through a port that cannot take it as is.
//!
//! As with Linux's `CHECKSUM_PARTIAL`, the sender has put the sum of the pseudo-header in the
//! checksum field; the checksum is the ones' complement of the ones'-complement sum of every
//! byte from `start` to the end of the frame, stored at `start + offset`.

/// Where a frame's checksum is still to be computed. `start` is an offset in the packet's
/// buffer (not the frame), so pushing or popping a VLAN tag or adding a tunnel header in front
/// of the frame, which leave the L3 bytes where they are, keep it right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsumPartial {
    pub start: u16,
    pub offset: u16,
}

/// Computes the checksum over `frame[start..]` and stores it at `start + offset`; false (and
/// nothing written) if those bounds do not fit the frame.
pub fn complete(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let Some(at) = start.checked_add(offset) else {
        return false;
    };
    if start > frame.len() || at + 2 > frame.len() {
        return false;
    }
    let sum = fold(ones_sum(&frame[start..]));
    // As Linux does: a computed 0 goes out as 0xffff (for UDP, 0 would mean "no checksum").
    let csum = match !sum {
        0 => 0xffff,
        c => c,
    };
    frame[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

/// The ones'-complement sum of `bytes` as big-endian 16-bit words (an odd last byte padded
/// with zero), not yet folded.
fn ones_sum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut sum = 0u64;
    for c in &mut chunks {
        // Four 16-bit words at once: the carries collect in the upper 32 bits.
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        sum += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for w in &mut rest {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain RFC 1071 sum, word by word.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for w in bytes.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            sum += hi | w.get(1).map_or(0, |b| u32::from(*b));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn sums_match_the_word_by_word_reference() {
        for len in [0usize, 1, 2, 7, 8, 9, 63, 64, 1500, 8999] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(fold(ones_sum(&bytes)), reference(&bytes), "len {len}");
        }
        let ones = vec![0xff; 4096];
        assert_eq!(fold(ones_sum(&ones)), reference(&ones));
    }

    #[test]
    fn completed_checksum_verifies_with_the_pseudo_header() {
        // Ethernet + IPv4 (not read) + UDP with 37 bytes of payload, 10.0.0.1 -> 10.0.0.2.
        let udp_len = 8 + 37u16;
        let mut frame = vec![0u8; 34];
        frame.extend_from_slice(&[0x04, 0xd2, 0x16, 0x2e]);
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend((0..37u8).map(|b| b.wrapping_mul(29)));
        let mut pseudo = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 17];
        pseudo.extend_from_slice(&udp_len.to_be_bytes());
        // What the sender leaves in the field: the folded pseudo-header sum.
        let partial = fold(ones_sum(&pseudo));
        frame[40..42].copy_from_slice(&partial.to_be_bytes());
        assert!(complete(&mut frame, 34, 6));
        // What a receiver checks: pseudo-header plus segment sum to all ones.
        assert_eq!(fold(ones_sum(&pseudo) + ones_sum(&frame[34..])), 0xffff);
        assert_ne!(&frame[40..42], &partial.to_be_bytes());
    }

    #[test]
    fn bounds_outside_the_frame_are_refused() {
        let mut frame = vec![0u8; 60];
        assert!(!complete(&mut frame, 59, 0));
        assert!(!complete(&mut frame, 61, 0));
        assert!(!complete(&mut frame, 40, 19));
        assert!(!complete(&mut frame, usize::MAX, 2));
        assert!(complete(&mut frame, 40, 18));
    }
}
