//! An ethdev port: probed from devargs, configured with its queues, started, and on drop
//! stopped, closed and its device detached (so the same devargs can be added again).

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::burst::{RxQueue, TxQueue};
use crate::eal::Eal;
use crate::error::Error;
use crate::mempool::Mempool;

/// How to set a port up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub n_rxq: u16,
    pub n_txq: u16,
    /// Receive and transmit descriptors per queue (the driver rounds them to what it takes).
    pub rxd: u16,
    pub txd: u16,
    /// The L3 MTU, when not the device's default.
    pub mtu: Option<u16>,
    /// A MAC address to give the port, when not its own.
    pub mac: Option<[u8; 6]>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            n_rxq: 1,
            n_txq: 1,
            rxd: 1024,
            txd: 1024,
            mtu: None,
            mac: None,
        }
    }
}

/// What a port is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub port_id: u16,
    /// The ethdev name (a PCI address, or the virtual device's name).
    pub name: String,
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// Descriptors per queue after the driver's rounding.
    pub rxd: u16,
    pub txd: u16,
    /// Whether receive-side scaling spreads flows over the rx queues.
    pub rss: bool,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub mbufs: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    /// Mbit/s; 0 when unknown.
    pub speed_mbps: u32,
    pub full_duplex: bool,
    pub autoneg: bool,
}

/// The device's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Frames the device dropped because no rx descriptor was free.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

/// The port itself; queues and the control handle share it, and the last one gone closes it.
pub(crate) struct Inner {
    pub(crate) port_id: u16,
    device: *mut dpdk_sys::rte_device,
    started: bool,
    // Dropped after the port is closed (fields drop after `Drop::drop`).
    pub(crate) pool: Option<Mempool>,
}

// SAFETY: `device` is only used in `drop` to detach the device; the port id and pool are
// used through DPDK calls that are safe from any thread for control (stats, link) and, for
// queues, from the one thread that owns the queue handle.
unsafe impl Send for Inner {}
// SAFETY: as above; shared access only makes DPDK's thread-safe control calls.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        let _plug = hotplug();
        let port = self.port_id;
        // SAFETY: no queue handle is left (each holds an Arc to self), so no thread is in a
        // burst on this port; stop and close take the port id only.
        unsafe {
            if self.started {
                dpdk_sys::rte_eth_dev_stop(port);
            }
            dpdk_sys::rte_eth_dev_close(port);
        }
        let shared = valid_ports()
            .into_iter()
            .any(|p| device_of(p) == Some(self.device));
        if !self.device.is_null() && !shared {
            // SAFETY: the device came from this port's dev_info; no other port is on it, and
            // its only port was closed above.
            unsafe {
                dpdk_sys::rte_dev_remove(self.device);
            }
        }
    }
}

/// The control handle of a started port.
pub struct EthDev {
    inner: Arc<Inner>,
    info: PortInfo,
}

/// A started port and its queues.
pub type Opened = (EthDev, Vec<RxQueue>, Vec<TxQueue>);

static POOLS: AtomicU32 = AtomicU32::new(0);

/// Held while a device is probed and its new port found, and while one is detached: DPDK's
/// hotplug calls are not safe against each other, and a port found as "the id that was not
/// there before" must not be one another thread just made.
static HOTPLUG: Mutex<()> = Mutex::new(());

fn hotplug() -> MutexGuard<'static, ()> {
    HOTPLUG.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EthDev {
    /// Probes the device `devargs` names (`0000:03:00.1`, `net_tap0,iface=t0`, ...), sets up
    /// its queues and starts it.
    pub fn open(_eal: &Eal, devargs: &str, cfg: &PortConfig) -> Result<Opened, Error> {
        if cfg.n_rxq == 0 || cfg.n_txq == 0 {
            return Err(Error::Invalid("n_rxq and n_txq must be at least 1".into()));
        }
        let c_devargs = CString::new(devargs)
            .map_err(|_| Error::Invalid(format!("devargs {devargs:?} has a NUL byte")))?;
        let plug = hotplug();
        let before = valid_ports();
        // SAFETY: a NUL-terminated string that DPDK parses and copies.
        let ret = unsafe { dpdk_sys::rte_dev_probe(c_devargs.as_ptr()) };
        if ret == -libc::EEXIST {
            return Err(Error::Invalid(format!(
                "devargs {devargs}: the device is already in use by another port"
            )));
        }
        if ret < 0 {
            return Err(Error::call(format!("probing devargs {devargs}"), ret));
        }
        let port_id = valid_ports()
            .into_iter()
            .find(|p| !before.contains(p))
            .ok_or_else(|| {
                Error::Invalid(format!("devargs {devargs}: the device has no ethdev port"))
            })?;
        let mut inner = Inner {
            port_id,
            device: device_of(port_id).unwrap_or(std::ptr::null_mut()),
            started: false,
            pool: None,
        };
        drop(plug);
        // From here on, dropping `inner` closes the port and detaches the device.
        let info = setup(&mut inner, cfg)?;
        let inner = Arc::new(inner);
        let rxqs = (0..cfg.n_rxq)
            .map(|q| RxQueue::new(inner.clone(), q))
            .collect();
        let txqs = (0..cfg.n_txq)
            .map(|q| TxQueue::new(inner.clone(), q))
            .collect();
        Ok((EthDev { inner, info }, rxqs, txqs))
    }

    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    pub fn link(&self) -> LinkStatus {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: writes one rte_eth_link; the port is open (self holds it).
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.inner.port_id, &mut link) };
        if ret < 0 {
            return LinkStatus::default();
        }
        LinkStatus {
            up: link.link_status() == dpdk_sys::RTE_ETH_LINK_UP as u16,
            speed_mbps: if link.link_speed == u32::MAX {
                0
            } else {
                link.link_speed
            },
            full_duplex: link.link_duplex() == 1,
            autoneg: link.link_autoneg() == 1,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: writes one rte_eth_stats; the port is open.
        if unsafe { dpdk_sys::rte_eth_stats_get(self.inner.port_id, &mut s) } < 0 {
            return PortStats::default();
        }
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// The driver's extended counters, by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        let port = self.inner.port_id;
        // SAFETY: with a NULL array, both calls only return how many entries there are.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(port, std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays hold `n` entries, and `n` is passed as their size.
        let (got_names, got) = unsafe {
            (
                dpdk_sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32),
                dpdk_sys::rte_eth_xstats_get(port, values.as_mut_ptr(), n as u32),
            )
        };
        if got_names as usize != n || got as usize != n {
            return Vec::new();
        }
        values
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within their 64 bytes.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect()
    }

    /// Buffers of the port's pool not in use.
    pub fn mbufs_available(&self) -> u32 {
        self.inner.pool.as_ref().map_or(0, Mempool::available)
    }
}

fn setup(inner: &mut Inner, cfg: &PortConfig) -> Result<PortInfo, Error> {
    let port = inner.port_id;
    let mut dev = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: writes one rte_eth_dev_info for a valid port.
    let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(port, &mut dev) };
    if ret < 0 {
        return Err(Error::call("reading device info", ret));
    }
    if cfg.n_rxq > dev.max_rx_queues || cfg.n_txq > dev.max_tx_queues {
        return Err(Error::Invalid(format!(
            "the device has at most {} rx and {} tx queues (asked {} and {})",
            dev.max_rx_queues, dev.max_tx_queues, cfg.n_rxq, cfg.n_txq
        )));
    }
    let mut conf = dpdk_sys::rte_eth_conf::default();
    // SAFETY: a pure function returning a constant.
    let rss_hf = unsafe { dpdk_sys::vs_rss_ip_tcp_udp() } & dev.flow_type_rss_offloads;
    let rss = cfg.n_rxq > 1 && rss_hf != 0;
    if rss {
        conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    }
    if let Some(mtu) = cfg.mtu {
        if mtu < dev.min_mtu || mtu > dev.max_mtu {
            return Err(Error::Invalid(format!(
                "mtu {mtu} is outside the device's {}..={}",
                dev.min_mtu, dev.max_mtu
            )));
        }
        // DPDK's own frame overhead for the device (Ethernet header and CRC unless the device
        // says more), checked here so that the error names the device's limit.
        let overhead = if dev.max_mtu != u16::MAX && dev.max_rx_pktlen > u32::from(dev.max_mtu) {
            dev.max_rx_pktlen - u32::from(dev.max_mtu)
        } else {
            18
        };
        let frame = u32::from(mtu) + overhead;
        if frame > dev.max_rx_pktlen {
            return Err(Error::Invalid(format!(
                "mtu {mtu} needs {frame}-byte frames; the device takes at most {}",
                dev.max_rx_pktlen
            )));
        }
        conf.rxmode.mtu = u32::from(mtu);
    }
    // SAFETY: `conf` is a fully initialised rte_eth_conf that DPDK copies.
    let ret = unsafe { dpdk_sys::rte_eth_dev_configure(port, cfg.n_rxq, cfg.n_txq, &conf) };
    if ret < 0 {
        return Err(Error::call("configuring the port", ret));
    }
    let (mut rxd, mut txd) = (cfg.rxd, cfg.txd);
    // SAFETY: two u16s DPDK may round.
    let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rxd, &mut txd) };
    if ret < 0 {
        return Err(Error::call("sizing the descriptor rings", ret));
    }
    // SAFETY: reads the port's NUMA node.
    let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port) };
    // Every descriptor may hold a buffer, plus bursts in flight and per-thread caches; a
    // power of two minus one is the mempool's most efficient size.
    let want = u32::from(cfg.n_rxq) * u32::from(rxd) + u32::from(cfg.n_txq) * u32::from(txd);
    let mbufs = (want + 4096).next_power_of_two() - 1;
    let pool_name = format!("vs{}-{}", port, POOLS.fetch_add(1, Ordering::Relaxed));
    let pool = Mempool::new(&pool_name, mbufs, 256, data_room(cfg.mtu), socket)?;
    for q in 0..cfg.n_rxq {
        // SAFETY: the pool outlives the port (Inner drops it after closing the port); a NULL
        // rxconf asks for the driver's defaults.
        let ret = unsafe {
            dpdk_sys::rte_eth_rx_queue_setup(
                port,
                q,
                rxd,
                socket as u32,
                std::ptr::null(),
                pool.as_ptr(),
            )
        };
        if ret < 0 {
            return Err(Error::call(format!("setting up rx queue {q}"), ret));
        }
    }
    inner.pool = Some(pool);
    for q in 0..cfg.n_txq {
        // SAFETY: a NULL txconf asks for the driver's defaults.
        let ret = unsafe {
            dpdk_sys::rte_eth_tx_queue_setup(port, q, txd, socket as u32, std::ptr::null())
        };
        if ret < 0 {
            return Err(Error::call(format!("setting up tx queue {q}"), ret));
        }
    }
    if let Some(mac) = cfg.mac {
        let mut addr = dpdk_sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: one rte_ether_addr that DPDK copies.
        let ret = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(port, &mut addr) };
        if ret < 0 {
            return Err(Error::call("setting the MAC address", ret));
        }
    }
    // SAFETY: starts the configured port.
    let ret = unsafe { dpdk_sys::rte_eth_dev_start(port) };
    if ret < 0 {
        return Err(Error::call("starting the port", ret));
    }
    inner.started = true;
    // A switch port takes every frame; a device that cannot filter anyway says ENOTSUP.
    // SAFETY: takes the port id only.
    unsafe {
        dpdk_sys::rte_eth_promiscuous_enable(port);
    }
    let mut addr = dpdk_sys::rte_ether_addr::default();
    let mut mtu = 0u16;
    let mut name = [0 as libc::c_char; 64];
    // SAFETY: each call writes one value of the type passed (the name: at most
    // RTE_ETH_NAME_MAX_LEN = 64 bytes, NUL-terminated).
    let (driver, name) = unsafe {
        dpdk_sys::rte_eth_macaddr_get(port, &mut addr);
        dpdk_sys::rte_eth_dev_get_mtu(port, &mut mtu);
        dpdk_sys::rte_eth_dev_get_name_by_port(port, name.as_mut_ptr());
        let driver = if dev.driver_name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(dev.driver_name)
                .to_string_lossy()
                .into_owned()
        };
        (
            driver,
            CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
        )
    };
    Ok(PortInfo {
        port_id: port,
        name,
        driver,
        max_rx_queues: dev.max_rx_queues,
        max_tx_queues: dev.max_tx_queues,
        rxd,
        txd,
        rss,
        mac: addr.addr_bytes,
        mtu,
        mbufs,
    })
}

/// Ids of the ethdev ports that exist.
fn valid_ports() -> HashSet<u16> {
    (0..dpdk_sys::RTE_MAX_ETHPORTS as u16)
        // SAFETY: only checks the id.
        .filter(|&p| unsafe { dpdk_sys::rte_eth_dev_is_valid_port(p) } == 1)
        .collect()
}

/// The device a port belongs to.
fn device_of(port: u16) -> Option<*mut dpdk_sys::rte_device> {
    let mut dev = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: writes one rte_eth_dev_info.
    (unsafe { dpdk_sys::rte_eth_dev_info_get(port, &mut dev) } == 0).then_some(dev.device)
}

/// Bytes per mbuf: DPDK's default (2 KiB of frame after the headroom), or room for a whole
/// frame of the port's MTU with two VLAN tags and the CRC, so that every frame is one segment
/// (the port copies frames from single-segment mbufs). At MTU 9000 that is 9,154 bytes: the
/// pool then takes about 4.5 times the memory.
fn data_room(mtu: Option<u16>) -> u16 {
    let default = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    let headroom = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;
    match mtu {
        Some(mtu) => default.max(headroom.saturating_add(mtu).saturating_add(14 + 8 + 4)),
        None => default,
    }
}
