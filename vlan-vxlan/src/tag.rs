//! 802.1Q / 802.1ad tag operations on a frame held in a buffer with headroom.
//!
//! A frame is `buf[start..start + len]`; pushing a tag moves the frame start 4 bytes into the
//! headroom (only the 12 MAC bytes move), popping moves it back.

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;
const TAG_LEN: usize = 4;
const MACS_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagError {
    /// No room in front of the frame for another tag.
    NoHeadroom,
    /// The frame carries no 802.1Q/802.1ad tag.
    NotTagged,
    /// The frame is shorter than an Ethernet header (plus tag).
    TooShort,
    /// The bounds given do not lie inside the buffer.
    BadBounds,
}

fn is_tpid(t: u16) -> bool {
    t == TPID_8021Q || t == TPID_8021AD
}

fn check(buf: &[u8], start: usize, len: usize) -> Result<(), TagError> {
    match start.checked_add(len) {
        Some(end) if end <= buf.len() => Ok(()),
        _ => Err(TagError::BadBounds),
    }
}

/// The outer tag's TPID and TCI, if the frame has one.
pub fn outer_tag(frame: &[u8]) -> Option<(u16, u16)> {
    let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if !is_tpid(tpid) {
        return None;
    }
    let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
    Some((tpid, tci))
}

/// Pushes an outer tag. Returns the new (start, len).
pub fn push_tag(
    buf: &mut [u8],
    start: usize,
    len: usize,
    tpid: u16,
    tci: u16,
) -> Result<(usize, usize), TagError> {
    check(buf, start, len)?;
    if len < MACS_LEN + 2 {
        return Err(TagError::TooShort);
    }
    if start < TAG_LEN {
        return Err(TagError::NoHeadroom);
    }
    let new_start = start - TAG_LEN;
    buf.copy_within(start..start + MACS_LEN, new_start);
    let t = new_start + MACS_LEN;
    buf[t..t + 2].copy_from_slice(&tpid.to_be_bytes());
    buf[t + 2..t + 4].copy_from_slice(&tci.to_be_bytes());
    Ok((new_start, len + TAG_LEN))
}

/// Removes the outer tag. Returns the new (start, len).
pub fn pop_tag(buf: &mut [u8], start: usize, len: usize) -> Result<(usize, usize), TagError> {
    check(buf, start, len)?;
    if len < MACS_LEN + TAG_LEN + 2 {
        return Err(TagError::TooShort);
    }
    if outer_tag(&buf[start..start + len]).is_none() {
        return Err(TagError::NotTagged);
    }
    buf.copy_within(start..start + MACS_LEN, start + TAG_LEN);
    Ok((start + TAG_LEN, len - TAG_LEN))
}

/// Rewrites the VID of the outer tag, keeping PCP and DEI.
pub fn set_vid(frame: &mut [u8], vid: u16) -> Result<(), TagError> {
    let (_, tci) = outer_tag(frame).ok_or(TagError::NotTagged)?;
    let tci = (tci & 0xf000) | (vid & 0x0fff);
    frame[14..16].copy_from_slice(&tci.to_be_bytes());
    Ok(())
}

/// Rewrites the PCP (802.1p priority) of the outer tag.
pub fn set_pcp(frame: &mut [u8], pcp: u8) -> Result<(), TagError> {
    let (_, tci) = outer_tag(frame).ok_or(TagError::NotTagged)?;
    let tci = (tci & 0x1fff) | (u16::from(pcp & 7) << 13);
    frame[14..16].copy_from_slice(&tci.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_in_buf() -> (Vec<u8>, usize, usize) {
        let mut buf = vec![0u8; 64];
        let start = 8;
        let frame: Vec<u8> = (1..=12).chain([0x08, 0x00, 0x45, 0x00]).collect();
        buf[start..start + frame.len()].copy_from_slice(&frame);
        (buf, start, frame.len())
    }

    #[test]
    fn push_then_pop_restores_frame() {
        let (mut buf, start, len) = frame_in_buf();
        let orig = buf[start..start + len].to_vec();
        let (s, l) = push_tag(&mut buf, start, len, TPID_8021Q, 0x200a).unwrap();
        assert_eq!((s, l), (start - 4, len + 4));
        let f = &buf[s..s + l];
        assert_eq!(&f[..12], &orig[..12]);
        assert_eq!(outer_tag(f), Some((0x8100, 0x200a)));
        assert_eq!(&f[16..], &orig[12..]);
        let (s, l) = pop_tag(&mut buf, s, l).unwrap();
        assert_eq!(&buf[s..s + l], &orig[..]);
    }

    #[test]
    fn set_vid_and_pcp_keep_other_bits() {
        let (mut buf, start, len) = frame_in_buf();
        let (s, l) = push_tag(&mut buf, start, len, TPID_8021AD, 0xa00a).unwrap();
        set_vid(&mut buf[s..s + l], 300).unwrap();
        assert_eq!(outer_tag(&buf[s..s + l]), Some((0x88a8, 0xa000 | 300)));
        set_pcp(&mut buf[s..s + l], 3).unwrap();
        assert_eq!(outer_tag(&buf[s..s + l]), Some((0x88a8, 0x6000 | 300)));
    }

    #[test]
    fn errors_are_reported_not_panics() {
        let (mut buf, _, len) = frame_in_buf();
        assert_eq!(
            push_tag(&mut buf, 2, len, TPID_8021Q, 1),
            Err(TagError::NoHeadroom)
        );
        assert_eq!(pop_tag(&mut buf, 8, len + 4), Err(TagError::NotTagged));
        assert_eq!(
            push_tag(&mut buf, 60, 10, TPID_8021Q, 1),
            Err(TagError::BadBounds)
        );
        assert_eq!(pop_tag(&mut buf, 8, 5), Err(TagError::TooShort));
        assert_eq!(set_vid(&mut [0u8; 10], 5), Err(TagError::NotTagged));
    }
}
