//! A set of VLAN IDs (0-4095), as a bitmap.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VlanSet {
    bits: [u64; 64],
}

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet { bits: [0; 64] }
    }
}

impl VlanSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, vid: u16) {
        let v = usize::from(vid & 0x0fff);
        self.bits[v / 64] |= 1 << (v % 64);
    }

    pub fn contains(&self, vid: u16) -> bool {
        let v = usize::from(vid & 0x0fff);
        vid <= 0x0fff && self.bits[v / 64] & (1 << (v % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0u16..4096).filter(|v| self.contains(*v))
    }

    /// Parses `10,20,100-200` (as `trunks=` and `cvlans=` take it).
    pub fn parse(text: &str) -> Result<VlanSet, String> {
        let mut set = VlanSet::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (vid(a)?, vid(b)?),
                None => {
                    let v = vid(part)?;
                    (v, v)
                }
            };
            if lo > hi {
                return Err(format!("bad VLAN range {part:?}"));
            }
            for v in lo..=hi {
                set.insert(v);
            }
        }
        Ok(set)
    }
}

fn vid(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(v) if v <= 4095 => Ok(v),
        _ => Err(format!("bad VLAN ID {s:?} (0-4095)")),
    }
}

/// `10,20,100-200`: ranges collapsed.
impl fmt::Display for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut v: u32 = 0;
        while v < 4096 {
            if !self.contains(v as u16) {
                v += 1;
                continue;
            }
            let start = v;
            while v + 1 < 4096 && self.contains((v + 1) as u16) {
                v += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == v {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{v}")?;
            }
            v += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let s = VlanSet::parse("10, 20,100-103,4095").unwrap();
        assert!(s.contains(10) && s.contains(102) && s.contains(4095));
        assert!(!s.contains(11) && !s.contains(4096));
        assert_eq!(s.to_string(), "10,20,100-103,4095");
        assert_eq!(VlanSet::parse(&s.to_string()).unwrap(), s);
        assert!(VlanSet::parse("").unwrap().is_empty());
        assert!(VlanSet::parse("4096").is_err());
        assert!(VlanSet::parse("20-10").is_err());
        assert!(VlanSet::parse("x").is_err());
    }
}
