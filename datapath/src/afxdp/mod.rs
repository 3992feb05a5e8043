//! AF_XDP port: queues of a kernel interface, each through its own AF_XDP socket and UMEM
//! (the `xdp` crate, [`queue`]), and one `xsk_redirect` XDP program per interface (the `ebpf`
//! crate) that steers each receive queue to its socket.
//!
//! `n_rxq` queues starting at `queue` are opened; each is a receive queue the switch places on a
//! PMD like any other, so a NIC's RSS spreads flows over PMDs (as Open vSwitch's afxdp
//! `n_rxq`). Transmit goes out on the queue with the sending PMD's index (modulo the count), so
//! PMDs do not share a transmit ring unless there are more PMDs than queues.

mod frames;
mod options;
mod queue;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ebpf::XskRedirect;

use crate::packet::{Batch, PacketPool};
use crate::port::{Port, PortStats};
pub use options::{AfXdpError, AfXdpOptions, ParseXdpModeError, XdpModeRequest};
use queue::XskQueue;

const MIN_FRAMES: u32 = 2 * crate::packet::MAX_BURST as u32;

pub struct AfXdpPort {
    // Fields drop in declaration order: detach the XDP program first, then the sockets.
    redirect: Mutex<XskRedirect>,
    queues: Vec<XskQueue>,
    /// Datagram socket in the interface's network namespace, for link state ioctls.
    ctl: OwnedFd,
    name: String,
    ifname: String,
    xdp_mode: &'static str,
    /// Why native XDP was refused, when it fell back to generic.
    native_refused: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AfXdpPort {
    /// Attaches the XDP program to `ifname`, binds an AF_XDP socket to each of the queues
    /// `opts.queue .. opts.queue + opts.n_rxq` and registers them in the program's XSKMAP. The
    /// interface is looked up in the calling thread's network namespace. Needs root
    /// (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF).
    pub fn open(name: &str, ifname: &str, opts: AfXdpOptions) -> Result<AfXdpPort, AfXdpError> {
        if opts.frame_count < MIN_FRAMES {
            return Err(AfXdpError::Options(format!(
                "frame_count {} is below the minimum {MIN_FRAMES}",
                opts.frame_count
            )));
        }
        if opts.n_rxq == 0 {
            return Err(AfXdpError::Options("n_rxq must be at least 1".into()));
        }
        let last = opts.queue.checked_add(opts.n_rxq - 1);
        if last.is_none_or(|q| q >= ebpf::MAX_QUEUES) {
            return Err(AfXdpError::Options(format!(
                "queues {}..{} go past the maximum {}",
                opts.queue,
                u64::from(opts.queue) + u64::from(opts.n_rxq),
                ebpf::MAX_QUEUES - 1
            )));
        }
        let c_ifname =
            CString::new(ifname).map_err(|_| AfXdpError::InterfaceNotFound(ifname.to_string()))?;
        let ifindex = match xdp::nic::NicIndex::lookup_by_name(&c_ifname) {
            Ok(Some(index)) => index,
            _ => return Err(AfXdpError::InterfaceNotFound(ifname.to_string())),
        };
        let mut redirect = XskRedirect::attach(ifname, opts.mode.into())?;
        let mut queues = Vec::new();
        for queue in opts.queue..opts.queue + opts.n_rxq {
            let q = XskQueue::open(name, ifname, ifindex, queue, &opts)?;
            redirect.register_socket(queue, q.socket_fd())?;
            queues.push(q);
        }

        // SAFETY: plain socket(2) call; the result is checked before use.
        let ctl = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if ctl < 0 {
            return Err(AfXdpError::Socket {
                ifname: ifname.to_string(),
                queue: opts.queue,
                cause: format!(
                    "creating the control socket failed: {}",
                    std::io::Error::last_os_error()
                ),
            });
        }
        // SAFETY: `ctl` is a freshly created descriptor that nothing else owns.
        let ctl = unsafe { OwnedFd::from_raw_fd(ctl) };

        let xdp_mode = redirect.mode_in_use();
        let native_refused = redirect.native_refused().map(str::to_string);
        if let Some(why) = &native_refused {
            tracing::warn!(
                port = name,
                ifname,
                "native XDP refused ({why}): the program runs in generic mode, which copies \
                 every frame into an skb first (slower)"
            );
        }
        tracing::info!(
            port = name,
            ifname,
            queue = opts.queue,
            n_rxq = opts.n_rxq,
            xdp_mode,
            bind = queues[0].bind,
            "AF_XDP port open"
        );
        Ok(AfXdpPort {
            redirect: Mutex::new(redirect),
            queues,
            ctl,
            name: name.to_string(),
            ifname: ifname.to_string(),
            xdp_mode,
            native_refused,
        })
    }

    /// The queue this thread transmits on: its PMD's, or the first.
    fn tx_queue(&self) -> &XskQueue {
        &self.queues[crate::pmd_index::get().unwrap_or(0) % self.queues.len()]
    }

    /// Runs a read-only interface ioctl (`SIOCGIF*`) on the port's interface.
    fn ifreq_get(&self, request: libc::c_ulong) -> Option<libc::ifreq> {
        let mut req = libc::ifreq {
            ifr_name: [0; libc::IFNAMSIZ],
            // SAFETY: the union is plain integers; all zeroes is valid.
            ifr_ifru: unsafe { std::mem::zeroed() },
        };
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(self.ifname.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        // SAFETY: a SIOCGIF* request reads the name from and writes one union member of `req`,
        // which is a valid ifreq for the duration of the call.
        let ret = unsafe { libc::ioctl(self.ctl.as_raw_fd(), request, &mut req) };
        (ret >= 0).then_some(req)
    }

    pub fn xdp_mode(&self) -> &'static str {
        self.xdp_mode
    }

    /// Frames the XDP program (redirected to a socket, passed to the kernel), all queues.
    pub fn xdp_counters(&self) -> Option<(u64, u64)> {
        lock(&self.redirect).counters().ok()
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "afxdp"
    }

    fn n_rxq(&self) -> usize {
        self.queues.len()
    }

    fn rx_burst(&self, qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize {
        self.queues.get(qid).map_or(0, |q| q.rx_burst(pool, out))
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        self.tx_queue().tx_burst(pkts, pool)
    }

    fn tx_in_flight(&self) -> usize {
        self.tx_queue().tx_in_flight()
    }

    fn mac(&self) -> Option<[u8; 6]> {
        let req = self.ifreq_get(libc::SIOCGIFHWADDR)?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Some(mac)
    }

    fn mtu(&self) -> Option<usize> {
        let req = self.ifreq_get(libc::SIOCGIFMTU)?;
        // SAFETY: SIOCGIFMTU filled the mtu member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        usize::try_from(mtu).ok()
    }

    fn link_up(&self) -> bool {
        let Some(req) = self.ifreq_get(libc::SIOCGIFFLAGS) else {
            return false;
        };
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
        flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
    }

    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for q in &self.queues {
            let t = q.stats();
            s.rx_packets += t.rx_packets;
            s.rx_bytes += t.rx_bytes;
            s.rx_dropped += t.rx_dropped;
            s.tx_packets += t.tx_packets;
            s.tx_bytes += t.tx_bytes;
            s.tx_dropped += t.tx_dropped;
        }
        s
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        let sum = |f: &dyn Fn(&XskQueue) -> u64| self.queues.iter().map(f).sum::<u64>();
        let mut status = vec![
            ("iface", self.ifname.clone()),
            ("queue", self.queues[0].queue.to_string()),
            ("n_rxq", self.queues.len().to_string()),
            ("xdp_mode", self.xdp_mode.to_string()),
            ("bind", self.queues[0].bind.to_string()),
            (
                "multi_buffer",
                if self.queues[0].multi_buffer {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            ),
            ("need_wakeup", "yes".to_string()),
            ("rx_wakeups", sum(&|q| q.rx_wakeups.get()).to_string()),
            ("rx_oversize", sum(&|q| q.rx_oversize.get()).to_string()),
            ("tx_kicks", sum(&|q| q.tx_kicks.get()).to_string()),
        ];
        if let Some(why) = &self.native_refused {
            status.push(("xdp_native_refused", why.clone()));
        }
        if let Some((redirected, passed)) = self.xdp_counters() {
            status.push(("xdp_redirected", redirected.to_string()));
            status.push(("xdp_passed", passed.to_string()));
        }
        let kernel: Vec<_> = self
            .queues
            .iter()
            .filter_map(XskQueue::kernel_stats)
            .collect();
        if !kernel.is_empty() {
            let k = |f: &dyn Fn(&queue::KernelStats) -> u64| kernel.iter().map(f).sum::<u64>();
            status.push(("xsk_rx_dropped", k(&|s| s.rx_dropped).to_string()));
            status.push(("xsk_rx_ring_full", k(&|s| s.rx_ring_full).to_string()));
            status.push(("xsk_fill_ring_empty", k(&|s| s.fill_ring_empty).to_string()));
            status.push(("xsk_tx_invalid", k(&|s| s.tx_invalid).to_string()));
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_reported() {
        let err = AfXdpPort::open("p1", "vsw-no-such-if0", AfXdpOptions::default())
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "interface \"vsw-no-such-if0\" not found");
    }
}
