//! Slow Protocols PDUs of link aggregation (IEEE 802.1AX-2014 §6.4.2 and §6.5.3): the LACPDU and
//! the Marker PDU, as typed values parsed from and written to Ethernet frames. Every field is
//! read by offset after one length check, so no input can make parsing panic.

/// The Slow Protocols ethertype (IEEE 802.3 Annex 57A).
pub const SLOW_PROTOCOLS_ETHERTYPE: u16 = 0x8809;
/// Where LACPDUs and Marker PDUs are sent (the Slow Protocols multicast address).
pub const SLOW_PROTOCOLS_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];
const SUBTYPE_LACP: u8 = 1;
const SUBTYPE_MARKER: u8 = 2;
const VERSION: u8 = 1;
const ETH_HEADER: usize = 14;
/// Both PDUs are 110 octets from the subtype to the end of the reserved field.
const PDU_LEN: usize = 110;
/// An LACPDU or Marker PDU frame as we send it (without FCS).
pub const FRAME_LEN: usize = ETH_HEADER + PDU_LEN;
/// Slow Protocols frames are at most 128 octets including the FCS (802.3 Annex 57A.3); a port
/// may hand us the frame with or without its FCS, so anything longer is oversize.
pub const MAX_FRAME_LEN: usize = 128;

const TLV_ACTOR: u8 = 1;
const TLV_PARTNER: u8 = 2;
const TLV_COLLECTOR: u8 = 3;
const TLV_INFO_LEN: u8 = 20;
const TLV_COLLECTOR_LEN: u8 = 16;
const TLV_MARKER_INFO: u8 = 1;
const TLV_MARKER_RESPONSE: u8 = 2;
const TLV_MARKER_LEN: u8 = 16;

/// A port's LACP state octet (802.1AX §6.4.2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct State(pub u8);

impl State {
    pub const ACTIVITY: u8 = 0x01;
    /// Short timeout: the port asks its partner for fast periodic PDUs.
    pub const TIMEOUT: u8 = 0x02;
    pub const AGGREGATION: u8 = 0x04;
    pub const SYNCHRONIZATION: u8 = 0x08;
    pub const COLLECTING: u8 = 0x10;
    pub const DISTRIBUTING: u8 = 0x20;
    pub const DEFAULTED: u8 = 0x40;
    pub const EXPIRED: u8 = 0x80;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    pub fn with(self, bit: u8, on: bool) -> State {
        if on {
            State(self.0 | bit)
        } else {
            State(self.0 & !bit)
        }
    }

    /// The set bits by name, as `lacp-show` prints them.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [(u8, &str); 8] = [
            (State::ACTIVITY, "activity"),
            (State::TIMEOUT, "timeout"),
            (State::AGGREGATION, "aggregation"),
            (State::SYNCHRONIZATION, "synchronized"),
            (State::COLLECTING, "collecting"),
            (State::DISTRIBUTING, "distributing"),
            (State::DEFAULTED, "defaulted"),
            (State::EXPIRED, "expired"),
        ];
        NAMES
            .iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// A system's identifier: priority, then MAC address (lower is better).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemId {
    pub priority: u16,
    pub mac: [u8; 6],
}

/// What one end says about a port: the actor or partner information of an LACPDU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortInfo {
    pub system: SystemId,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: State,
}

impl PortInfo {
    /// Everything but the state: whether two infos name the same port of the same aggregator.
    pub fn same_port(&self, other: &PortInfo) -> bool {
        self.system == other.system
            && self.key == other.key
            && self.port_priority == other.port_priority
            && self.port == other.port
    }
}

/// An LACPDU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lacpdu {
    pub actor: PortInfo,
    pub partner: PortInfo,
    pub collector_max_delay: u16,
}

/// A Marker PDU: a marker request (information) or the answer to one (response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkerPdu {
    pub response: bool,
    pub requester_port: u16,
    pub requester_system: [u8; 6],
    pub transaction_id: u32,
}

/// A received Slow Protocols PDU of link aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowPdu {
    Lacp(Lacpdu),
    Marker(MarkerPdu),
}

/// Why a frame is not a PDU we act on; each is counted by the receiving member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduError {
    /// Not a Slow Protocols frame at all (the datapath should not have handed it over).
    NotSlowProtocols,
    /// Longer than a Slow Protocols frame may be.
    Oversize,
    /// Shorter than the PDU.
    Truncated,
    /// Another Slow Protocol (OAM, OSSP, ...), not link aggregation.
    OtherSubtype(u8),
    /// A TLV of the wrong type or length where the PDU must have a given one.
    BadTlv,
}

impl std::fmt::Display for PduError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PduError::NotSlowProtocols => write!(f, "not a slow protocols frame"),
            PduError::Oversize => write!(f, "oversize slow protocols frame"),
            PduError::Truncated => write!(f, "truncated PDU"),
            PduError::OtherSubtype(s) => write!(f, "slow protocol subtype {s}"),
            PduError::BadTlv => write!(f, "malformed TLV"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

/// Whether an Ethernet frame carries the Slow Protocols ethertype (untagged, as they are sent).
pub fn is_slow_protocols(frame: &[u8]) -> bool {
    frame.len() >= ETH_HEADER && u16_at(frame, 12) == SLOW_PROTOCOLS_ETHERTYPE
}

/// Parses a Slow Protocols frame into an LACPDU or Marker PDU. Like Open vSwitch and Linux,
/// any version is read as version 1 (802.1AX §6.4.2.3 asks receivers to accept later versions)
/// and the destination address is not checked.
pub fn parse(frame: &[u8]) -> Result<SlowPdu, PduError> {
    if !is_slow_protocols(frame) {
        return Err(PduError::NotSlowProtocols);
    }
    if frame.len() > MAX_FRAME_LEN {
        return Err(PduError::Oversize);
    }
    let p = &frame[ETH_HEADER..];
    let Some(&subtype) = p.first() else {
        return Err(PduError::Truncated);
    };
    if subtype != SUBTYPE_LACP && subtype != SUBTYPE_MARKER {
        return Err(PduError::OtherSubtype(subtype));
    }
    if p.len() < PDU_LEN {
        return Err(PduError::Truncated);
    }
    if subtype == SUBTYPE_LACP {
        parse_lacpdu(p).map(SlowPdu::Lacp)
    } else {
        parse_marker(p).map(SlowPdu::Marker)
    }
}

/// `p` starts at the subtype and holds at least [`PDU_LEN`] bytes.
fn parse_lacpdu(p: &[u8]) -> Result<Lacpdu, PduError> {
    let tlv_ok = |at: usize, kind: u8, len: u8| p[at] == kind && p[at + 1] == len;
    if !tlv_ok(2, TLV_ACTOR, TLV_INFO_LEN)
        || !tlv_ok(22, TLV_PARTNER, TLV_INFO_LEN)
        || !tlv_ok(42, TLV_COLLECTOR, TLV_COLLECTOR_LEN)
    {
        return Err(PduError::BadTlv);
    }
    Ok(Lacpdu {
        actor: read_info(&p[4..22]),
        partner: read_info(&p[24..42]),
        collector_max_delay: u16_at(p, 44),
    })
}

/// The 18 bytes of an actor or partner TLV after its type and length.
fn read_info(b: &[u8]) -> PortInfo {
    PortInfo {
        system: SystemId {
            priority: u16_at(b, 0),
            mac: mac_at(b, 2),
        },
        key: u16_at(b, 8),
        port_priority: u16_at(b, 10),
        port: u16_at(b, 12),
        state: State(b[14]),
    }
}

fn parse_marker(p: &[u8]) -> Result<MarkerPdu, PduError> {
    let response = match (p[2], p[3]) {
        (TLV_MARKER_INFO, TLV_MARKER_LEN) => false,
        (TLV_MARKER_RESPONSE, TLV_MARKER_LEN) => true,
        _ => return Err(PduError::BadTlv),
    };
    Ok(MarkerPdu {
        response,
        requester_port: u16_at(p, 4),
        requester_system: mac_at(p, 6),
        transaction_id: u32::from_be_bytes([p[12], p[13], p[14], p[15]]),
    })
}

fn header(src: [u8; 6], subtype: u8) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&SLOW_PROTOCOLS_MAC);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&SLOW_PROTOCOLS_ETHERTYPE.to_be_bytes());
    f[14] = subtype;
    f[15] = VERSION;
    f
}

fn write_info(b: &mut [u8], info: &PortInfo) {
    b[0..2].copy_from_slice(&info.system.priority.to_be_bytes());
    b[2..8].copy_from_slice(&info.system.mac);
    b[8..10].copy_from_slice(&info.key.to_be_bytes());
    b[10..12].copy_from_slice(&info.port_priority.to_be_bytes());
    b[12..14].copy_from_slice(&info.port.to_be_bytes());
    b[14] = info.state.0;
}

/// An LACPDU frame from the member whose address is `src`.
pub fn build_lacpdu(src: [u8; 6], pdu: &Lacpdu) -> [u8; FRAME_LEN] {
    let mut f = header(src, SUBTYPE_LACP);
    let p = &mut f[ETH_HEADER..];
    p[2] = TLV_ACTOR;
    p[3] = TLV_INFO_LEN;
    write_info(&mut p[4..22], &pdu.actor);
    p[22] = TLV_PARTNER;
    p[23] = TLV_INFO_LEN;
    write_info(&mut p[24..42], &pdu.partner);
    p[42] = TLV_COLLECTOR;
    p[43] = TLV_COLLECTOR_LEN;
    p[44..46].copy_from_slice(&pdu.collector_max_delay.to_be_bytes());
    // Terminator TLV (type 0, length 0) and the reserved octets are already zero.
    f
}

/// A Marker PDU frame from the member whose address is `src`.
pub fn build_marker(src: [u8; 6], m: &MarkerPdu) -> [u8; FRAME_LEN] {
    let mut f = header(src, SUBTYPE_MARKER);
    let p = &mut f[ETH_HEADER..];
    p[2] = if m.response {
        TLV_MARKER_RESPONSE
    } else {
        TLV_MARKER_INFO
    };
    p[3] = TLV_MARKER_LEN;
    p[4..6].copy_from_slice(&m.requester_port.to_be_bytes());
    p[6..12].copy_from_slice(&m.requester_system);
    p[12..16].copy_from_slice(&m.transaction_id.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(port: u16, state: u8) -> PortInfo {
        PortInfo {
            system: SystemId {
                priority: 0x8000,
                mac: [2, 0, 0, 0, 0, 1],
            },
            key: 7,
            port_priority: 0xff,
            port,
            state: State(state),
        }
    }

    #[test]
    fn lacpdu_round_trips_at_the_standard_offsets() {
        let pdu = Lacpdu {
            actor: info(3, 0x3f),
            partner: info(9, 0x45),
            collector_max_delay: 5,
        };
        let f = build_lacpdu([2, 0, 0, 0, 0, 9], &pdu);
        assert_eq!(f.len(), 124);
        assert_eq!(&f[12..16], &[0x88, 0x09, 1, 1]);
        // Actor TLV: type 1, length 20, system priority 0x8000, then the MAC.
        assert_eq!(&f[16..20], &[1, 20, 0x80, 0x00]);
        assert_eq!(f[16 + 16], 0x3f, "actor state at TLV offset 16");
        assert_eq!(&f[36..38], &[2, 20]);
        assert_eq!(&f[56..58], &[3, 16]);
        assert_eq!(&f[72..74], &[0, 0], "terminator");
        assert_eq!(parse(&f), Ok(SlowPdu::Lacp(pdu)));
        // With a 4-byte FCS still on, it is 128 bytes and parses the same.
        let mut with_fcs = f.to_vec();
        with_fcs.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(parse(&with_fcs), Ok(SlowPdu::Lacp(pdu)));
    }

    #[test]
    fn marker_round_trips() {
        let m = MarkerPdu {
            response: false,
            requester_port: 4,
            requester_system: [2, 1, 2, 3, 4, 5],
            transaction_id: 0xdead_beef,
        };
        let f = build_marker([2, 0, 0, 0, 0, 1], &m);
        assert_eq!(parse(&f), Ok(SlowPdu::Marker(m)));
        let r = MarkerPdu {
            response: true,
            ..m
        };
        assert_eq!(
            parse(&build_marker([2, 0, 0, 0, 0, 1], &r)),
            Ok(SlowPdu::Marker(r))
        );
    }

    #[test]
    fn malformed_frames_are_refused_with_a_reason() {
        let f = build_lacpdu([2, 0, 0, 0, 0, 9], &Lacpdu::default());
        assert_eq!(parse(&f[..60]), Err(PduError::Truncated));
        assert_eq!(parse(&f[..14]), Err(PduError::Truncated));
        assert_eq!(parse(&f[..10]), Err(PduError::NotSlowProtocols));
        let mut big = f.to_vec();
        big.resize(129, 0);
        assert_eq!(parse(&big), Err(PduError::Oversize));
        let mut bad = f;
        bad[17] = 19;
        assert_eq!(parse(&bad), Err(PduError::BadTlv));
        let mut oam = f;
        oam[14] = 3;
        assert_eq!(parse(&oam), Err(PduError::OtherSubtype(3)));
        let mut ip = f;
        ip[12] = 0x08;
        ip[13] = 0x00;
        assert_eq!(parse(&ip), Err(PduError::NotSlowProtocols));
    }

    #[test]
    fn state_names() {
        let s = State(0x3d);
        assert_eq!(
            s.names(),
            [
                "activity",
                "aggregation",
                "synchronized",
                "collecting",
                "distributing"
            ]
        );
        assert!(s.with(State::EXPIRED, true).has(State::EXPIRED));
        assert!(!s.with(State::ACTIVITY, false).has(State::ACTIVITY));
    }
}
