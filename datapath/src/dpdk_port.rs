//! A DPDK ethdev port (`type=dpdk`): a NIC, an SR-IOV VF or a DPDK virtual device.
//!
//! Frames are copied once each way between mbufs and the switch's packet buffers, like every
//! other port: a PMD's buffers never leave it, and the copy of a 64-byte frame costs less than
//! the bookkeeping zero-copy would need (an mbuf handle in every packet, buffers owned by
//! several pools, frees on other threads). Each receive queue is polled by one PMD; each PMD
//! transmits on its own queue (index modulo `n_txq`), so queue locks are uncontended unless
//! there are more PMDs than queues.

use std::sync::{Mutex, MutexGuard, PoisonError};

use dpdk::{BURST, Eal, EalArgs, EthDev, PortConfig, RxQueue, TxQueue};
use port_api::copy::copy_frame;
use port_api::counter::Counter;
use port_api::packet::{Batch, MAX_FRAME, PacketPool};
use port_api::port::{Port, PortStats};

use crate::dpdk_options::DpdkOptions;
use crate::spec::format_mac;

struct RxSide {
    queue: Mutex<RxQueue>,
    // Written by the PMD holding `queue`.
    packets: Counter,
    bytes: Counter,
    dropped: Counter,
}

struct TxSide {
    queue: Mutex<TxQueue>,
    // Written under `queue`.
    packets: Counter,
    bytes: Counter,
    dropped: Counter,
}

pub struct DpdkPort {
    name: String,
    devargs: String,
    dev: EthDev,
    rx: Vec<RxSide>,
    tx: Vec<TxSide>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static EAL_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the calling thread (a PMD, or the bonds thread) known to DPDK the first time it uses
/// a DPDK queue: registered threads allocate and free mbufs through a per-thread cache
/// instead of the pool's shared ring (measured: the ring was 7 % of a PMD's cycles).
#[inline]
fn register_thread() {
    if !EAL_THREAD.with(std::cell::Cell::get) {
        if let Some(eal) = Eal::get() {
            eal.register_thread();
        }
        EAL_THREAD.with(|c| c.set(true));
    }
}

impl DpdkPort {
    /// Starts the EAL if this is the process's first DPDK port (with `eal_args`), then probes
    /// and starts the device. `n_pmds` sizes the default number of transmit queues.
    pub fn open(
        name: &str,
        options: &DpdkOptions,
        eal_args: &[String],
        n_pmds: usize,
    ) -> Result<DpdkPort, String> {
        let eal = Eal::init(&EalArgs::new(eal_args.to_vec())).map_err(|e| e.to_string())?;
        let n_txq = options
            .n_txq
            .unwrap_or(n_pmds.clamp(1, usize::from(u16::MAX)) as u16);
        let cfg = PortConfig {
            n_rxq: options.n_rxq,
            n_txq,
            rxd: options.rxd,
            txd: options.txd,
            mtu: options.mtu,
            mac: options.mac,
        };
        let opened = EthDev::open(eal, &options.devargs, &cfg);
        // The default n_txq may be more than a small device has: fall back to what it has.
        let (dev, rxqs, txqs) = match opened {
            Err(dpdk::Error::Invalid(_)) if options.n_txq.is_none() && n_txq > 1 => {
                let one = PortConfig { n_txq: 1, ..cfg };
                EthDev::open(eal, &options.devargs, &one)
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        Ok(DpdkPort {
            name: name.to_string(),
            devargs: options.devargs.clone(),
            dev,
            rx: rxqs
                .into_iter()
                .map(|q| RxSide {
                    queue: Mutex::new(q),
                    packets: Counter::default(),
                    bytes: Counter::default(),
                    dropped: Counter::default(),
                })
                .collect(),
            tx: txqs
                .into_iter()
                .map(|q| TxSide {
                    queue: Mutex::new(q),
                    packets: Counter::default(),
                    bytes: Counter::default(),
                    dropped: Counter::default(),
                })
                .collect(),
        })
    }

    /// Buffers of the port's pool not in use (tests check for leaks with it).
    pub fn mbufs_available(&self) -> u32 {
        self.dev.mbufs_available()
    }
}

impl Port for DpdkPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "dpdk"
    }

    fn n_rxq(&self) -> usize {
        self.rx.len()
    }

    fn rx_burst(&self, qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize {
        let Some(side) = self.rx.get(qid) else {
            return 0;
        };
        register_thread();
        let mut q = lock(&side.queue);
        let (mut added, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        q.recv(out.room(), |frame| match frame {
            Some(f) if f.len() <= MAX_FRAME => {
                let mut pkt = pool.get_for(f.len());
                copy_frame(pkt.prepare(f.len()), f);
                match out.push(pkt) {
                    Ok(()) => {
                        added += 1;
                        bytes += f.len() as u64;
                    }
                    Err(pkt) => {
                        pool.put(pkt);
                        dropped += 1;
                    }
                }
            }
            // Multi-buffer or oversize frame: counted, not taken (jumbo frames are their own
            // issue).
            _ => dropped += 1,
        });
        side.packets.add(added);
        side.bytes.add(bytes);
        if dropped > 0 {
            side.dropped.add(dropped);
        }
        added as usize
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        register_thread();
        // Each PMD its own queue; other threads (the bonds thread's LACP frames) share queue 0.
        let side = &self.tx[crate::pmd_index::get().unwrap_or(0) % self.tx.len()];
        let frames = pkts.as_slice();
        let n = frames.len().min(BURST);
        let sent = lock(&side.queue).send(
            n,
            |j| frames[j].len(),
            |j, buf| copy_frame(buf, frames[j].data()),
        );
        // The device takes a prefix of the burst (no packet is longer than an mbuf's 2048
        // bytes, so send skips none).
        let bytes: usize = frames[..sent].iter().map(|p| p.len()).sum();
        let total = frames.len();
        pkts.recycle(pool);
        side.packets.add(sent as u64);
        side.bytes.add(bytes as u64);
        if sent < total {
            side.dropped.add((total - sent) as u64);
        }
        sent
    }

    fn link_up(&self) -> bool {
        self.dev.link().up
    }

    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for r in &self.rx {
            s.rx_packets += r.packets.get();
            s.rx_bytes += r.bytes.get();
            s.rx_dropped += r.dropped.get();
        }
        for t in &self.tx {
            s.tx_packets += t.packets.get();
            s.tx_bytes += t.bytes.get();
            s.tx_dropped += t.dropped.get();
        }
        // Frames the device dropped before we saw them (no descriptor or no buffer free).
        let dev = self.dev.stats();
        s.rx_dropped += dev.rx_missed + dev.rx_nombuf;
        s
    }

    fn mac(&self) -> Option<[u8; 6]> {
        Some(self.dev.info().mac)
    }

    fn mtu(&self) -> Option<usize> {
        Some(usize::from(self.dev.info().mtu))
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        let info = self.dev.info();
        let link = self.dev.link();
        let dev = self.dev.stats();
        let mut st = vec![
            ("devargs", self.devargs.clone()),
            ("dpdk_port", info.port_id.to_string()),
            ("device", info.name.clone()),
            ("driver", info.driver.clone()),
            ("n_rxq", self.rx.len().to_string()),
            ("n_txq", self.tx.len().to_string()),
            ("rxd", info.rxd.to_string()),
            ("txd", info.txd.to_string()),
            ("rss", if info.rss { "yes" } else { "no" }.to_string()),
            ("mac", format_mac(&info.mac)),
            ("mtu", info.mtu.to_string()),
            ("link_speed", format!("{} Mbps", link.speed_mbps)),
            (
                "link_duplex",
                if link.full_duplex { "full" } else { "half" }.to_string(),
            ),
            ("mbufs", info.mbufs.to_string()),
            ("mbufs_free", self.dev.mbufs_available().to_string()),
            ("rx_missed", dev.rx_missed.to_string()),
            ("rx_nombuf", dev.rx_nombuf.to_string()),
            ("rx_errors", dev.rx_errors.to_string()),
            ("tx_errors", dev.tx_errors.to_string()),
        ];
        let xstats: Vec<String> = self
            .dev
            .xstats()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !xstats.is_empty() {
            st.push(("xstats", xstats.join(",")));
        }
        st
    }

    fn device_counters(&self) -> Vec<(String, u64)> {
        let dev = self.dev.stats();
        let mut c = vec![
            ("rx_missed".to_string(), dev.rx_missed),
            ("rx_nombuf".to_string(), dev.rx_nombuf),
            ("rx_errors".to_string(), dev.rx_errors),
            ("tx_errors".to_string(), dev.tx_errors),
        ];
        c.extend(self.dev.xstats().into_iter().filter(|(_, v)| *v != 0));
        c
    }
}
