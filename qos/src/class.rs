//! Traffic classes: which of a port's 8 egress queues a frame goes to, from its DSCP or its
//! 802.1p priority (PCP), as the ingress port's trust setting says, unless an OpenFlow
//! `set_queue` chose one.
//!
//! The default DSCP map follows RFC 4594's service classes, condensed to 8 (class 7 is the
//! highest priority):
//!
//! | class | DSCP | RFC 4594 service class |
//! |---|---|---|
//! | 7 | EF (46), VOICE-ADMIT (44) | telephony, real-time |
//! | 6 | CS6 (48), CS7 (56) and 49-63 | network control |
//! | 5 | CS5 (40) and 41-43, 45, 47 | signaling, broadcast video |
//! | 4 | CS4, AF41-43 (32-39) | real-time interactive, multimedia conferencing |
//! | 3 | CS3, AF31-33 (24-31) | multimedia streaming |
//! | 2 | CS2, AF21-23 (16-23) | low-latency data, OAM |
//! | 1 | AF11-13 (9-15) | high-throughput data |
//! | 0 | DF (0), CS1 (8), LE (1) and the rest of 0-7 | standard, low-priority data |
//!
//! The default PCP map is IEEE 802.1Q's for 8 queues: PCP 1 (background) is the lowest, then
//! PCP 0 (best effort), then 2 to 7 in order.

/// A traffic class (egress queue), 0 (lowest) to 7 (highest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrafficClass(u8);

pub const CLASSES: usize = 8;

impl TrafficClass {
    pub const BEST_EFFORT: TrafficClass = TrafficClass(0);
    pub const TOP: TrafficClass = TrafficClass(7);

    pub fn new(c: u8) -> Option<TrafficClass> {
        (usize::from(c) < CLASSES).then_some(TrafficClass(c))
    }

    #[inline]
    pub fn index(self) -> usize {
        // Below CLASSES by construction; the mask lets the compiler drop bounds checks.
        usize::from(self.0 & 7)
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

/// Which marking of a frame arriving on a port says its class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trust {
    /// The IP DSCP (non-IP frames: their PCP, else best effort).
    #[default]
    Dscp,
    /// The 802.1p priority of the outer VLAN tag (untagged: best effort).
    Pcp,
    /// Neither: every IP frame is re-marked to this DSCP on the way in (so a guest cannot
    /// promote itself), and classed by it.
    Untrusted { dscp: u8 },
}

/// DSCP → class and PCP → class, and the PCP a class is marked with when a tag is pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassMap {
    pub dscp: [TrafficClass; 64],
    pub pcp: [TrafficClass; 8],
    pub class_pcp: [u8; CLASSES],
}

impl Default for ClassMap {
    fn default() -> Self {
        let dscp = std::array::from_fn(|d| TrafficClass(default_dscp_class(d as u8)));
        // 802.1Q: PCP 1 lowest, then 0, then 2..7.
        let pcp = [1, 0, 2, 3, 4, 5, 6, 7].map(TrafficClass);
        // The PCP a class carries: the inverse of the PCP map (class 0 is PCP 0, not 1).
        let class_pcp = [0, 1, 2, 3, 4, 5, 6, 7];
        ClassMap {
            dscp,
            pcp,
            class_pcp,
        }
    }
}

fn default_dscp_class(d: u8) -> u8 {
    match d {
        46 | 44 => 7,
        48..=63 => 6,
        40..=47 => 5,
        32..=39 => 4,
        24..=31 => 3,
        16..=23 => 2,
        9..=15 => 1,
        _ => 0,
    }
}

impl ClassMap {
    /// The default map, built once.
    pub fn default_ref() -> &'static ClassMap {
        static DEFAULT: std::sync::OnceLock<ClassMap> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(ClassMap::default)
    }

    /// The class of a frame with these markings (DSCP of an IP frame, PCP of its outer tag)
    /// arriving on a port with `trust`.
    #[inline]
    pub fn classify(&self, trust: Trust, dscp: Option<u8>, pcp: Option<u8>) -> TrafficClass {
        match trust {
            Trust::Dscp => match (dscp, pcp) {
                (Some(d), _) => self.dscp[usize::from(d & 63)],
                (None, Some(p)) => self.pcp[usize::from(p & 7)],
                (None, None) => TrafficClass::BEST_EFFORT,
            },
            Trust::Pcp => pcp.map_or(TrafficClass::BEST_EFFORT, |p| self.pcp[usize::from(p & 7)]),
            Trust::Untrusted { dscp: forced } => match dscp {
                Some(_) => self.dscp[usize::from(forced & 63)],
                None => TrafficClass::BEST_EFFORT,
            },
        }
    }

    /// The PCP for a frame of `class` that gets a VLAN tag (DSCP → PCP on push).
    pub fn pcp_of(&self, class: TrafficClass) -> u8 {
        self.class_pcp[class.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_follows_rfc_4594() {
        let m = ClassMap::default();
        let c = |d| m.classify(Trust::Dscp, Some(d), None).value();
        assert_eq!(c(46), 7, "EF is the top class");
        assert_eq!((c(48), c(56)), (6, 6), "network control");
        assert_eq!((c(34), c(36), c(38), c(32)), (4, 4, 4, 4));
        assert_eq!((c(26), c(18), c(10)), (3, 2, 1));
        assert_eq!((c(0), c(8), c(1)), (0, 0, 0));
        // Every DSCP has a class.
        assert!((0..64).all(|d| c(d) < 8));
        // PCP: 1 is below 0.
        let p = |x| m.classify(Trust::Pcp, None, Some(x)).value();
        assert_eq!((p(1), p(0), p(2), p(5), p(7)), (0, 1, 2, 5, 7));
        assert_eq!(
            m.classify(Trust::Pcp, Some(46), None),
            TrafficClass::BEST_EFFORT
        );
        // Non-IP frames under DSCP trust fall back to their PCP.
        assert_eq!(m.classify(Trust::Dscp, None, Some(5)).value(), 5);
    }

    #[test]
    fn an_untrusted_guest_cannot_promote_itself() {
        let m = ClassMap::default();
        let t = Trust::Untrusted { dscp: 0 };
        assert_eq!(m.classify(t, Some(46), Some(7)), TrafficClass::BEST_EFFORT);
        let t = Trust::Untrusted { dscp: 26 };
        assert_eq!(m.classify(t, Some(46), None).value(), 3);
        assert_eq!(m.classify(t, None, Some(7)), TrafficClass::BEST_EFFORT);
    }
}
