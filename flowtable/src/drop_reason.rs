//! Why a packet was dropped; the datapath keeps one counter per reason.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Frame shorter than an Ethernet header, or a truncated VLAN tag.
    Runt,
    /// More than two VLAN tags.
    VlanTooDeep,
    /// The matching rule's actions were `drop` (or empty).
    RuleDrop,
    /// Table miss on a bridge that has rules.
    NoMatch,
    /// NORMAL learned the destination on the input port.
    IngressIsEgress,
    /// Flood with no port other than the input port.
    NoPorts,
    TxFailed,
    TooBig,
    NoBuffer,
    /// NORMAL: an access port got a frame tagged with a non-zero VID.
    VlanTaggedOnAccess,
    /// NORMAL: a trunk or native port got a VLAN it does not carry.
    VlanNotAllowed,
    /// NORMAL: a dot1q-tunnel port got a customer VLAN outside its `cvlans`.
    CvlanNotAllowed,
    /// A packet for a local VTEP with invalid outer headers.
    TnlMalformed,
    /// A VXLAN packet for a local VTEP that matches no tunnel port (VNI, remote, UDP port).
    TnlNoPort,
    /// Not a drop: NORMAL forwarded the frame but did not learn its source, because the input
    /// port is at its `mac-limit` or learning rate.
    MacLearnLimited,
    /// An ingress policer or a meter gave the frame a colour whose action is drop.
    Policed,
}

impl DropReason {
    /// Every reason, in `index()` order (for counter arrays and reports).
    pub const ALL: [DropReason; 16] = [
        DropReason::Runt,
        DropReason::VlanTooDeep,
        DropReason::RuleDrop,
        DropReason::NoMatch,
        DropReason::IngressIsEgress,
        DropReason::NoPorts,
        DropReason::TxFailed,
        DropReason::TooBig,
        DropReason::NoBuffer,
        DropReason::VlanTaggedOnAccess,
        DropReason::VlanNotAllowed,
        DropReason::CvlanNotAllowed,
        DropReason::TnlMalformed,
        DropReason::TnlNoPort,
        DropReason::MacLearnLimited,
        DropReason::Policed,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Dense index in `0..COUNT`, for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable kebab-case name for stats output.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::VlanTooDeep => "vlan-too-deep",
            DropReason::RuleDrop => "rule-drop",
            DropReason::NoMatch => "no-match",
            DropReason::IngressIsEgress => "ingress-is-egress",
            DropReason::NoPorts => "no-ports",
            DropReason::TxFailed => "tx-failed",
            DropReason::TooBig => "too-big",
            DropReason::NoBuffer => "no-buffer",
            DropReason::VlanTaggedOnAccess => "vlan-tagged-on-access",
            DropReason::VlanNotAllowed => "vlan-not-allowed",
            DropReason::CvlanNotAllowed => "cvlan-not-allowed",
            DropReason::TnlMalformed => "tnl-malformed",
            DropReason::TnlNoPort => "tnl-no-port",
            DropReason::MacLearnLimited => "mac-learn-limited",
            DropReason::Policed => "policed",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all_order_and_names_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(DropReason::VlanTooDeep.name(), "vlan-too-deep");
    }
}
