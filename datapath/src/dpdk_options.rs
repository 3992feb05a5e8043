//! The options of a `type=dpdk` port (kept apart from the port itself, which only exists in
//! builds with DPDK).

/// How to open a DPDK ethdev port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkOptions {
    /// What to probe: a PCI address (`0000:03:00.1`) or a virtual device with its arguments
    /// (`net_tap0,iface=t0`, `net_af_xdp0,iface=veth1`).
    pub devargs: String,
    pub n_rxq: u16,
    /// Transmit queues; None: one per PMD thread (as many as the device has).
    pub n_txq: Option<u16>,
    /// Descriptors per receive and transmit queue.
    pub rxd: u16,
    pub txd: u16,
    /// The L3 MTU; None: the device's default.
    pub mtu: Option<u16>,
    /// A MAC address to give the device; None: its own.
    pub mac: Option<[u8; 6]>,
}

/// Descriptors per queue when not given (Open vSwitch uses 2048; 1024 halves the port's
/// buffer memory and still covers a 100 µs stall at 10 Mpps).
pub const DEFAULT_DESCRIPTORS: u16 = 1024;

impl DpdkOptions {
    pub fn new(devargs: impl Into<String>) -> DpdkOptions {
        DpdkOptions {
            devargs: devargs.into(),
            n_rxq: 1,
            n_txq: None,
            rxd: DEFAULT_DESCRIPTORS,
            txd: DEFAULT_DESCRIPTORS,
            mtu: None,
            mac: None,
        }
    }
}
