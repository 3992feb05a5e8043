//! One AF_XDP socket: a queue of the interface, with its UMEM and its four rings.
//!
//! One UMEM of `frame_count` 2 KiB frames (1,792 bytes of frame after the kernel's 256-byte XDP
//! headroom; 4 MiB for the default 2048 frames) backs the socket. A longer frame (up to
//! [`MAX_FRAME`], jumbo) spans several UMEM frames: the socket is bound with `XDP_USE_SG`, the
//! kernel marks all but the last descriptor of such a frame `XDP_PKT_CONTD`, and the port does
//! the same on transmit ([`crate::xsk_tx`]). Half of it at most is lent to the
//! kernel through the fill ring for receive, the other half at most is in flight on transmit, so
//! neither side can starve the other. Frames are copied into and out of pool
//! [`Packet`](crate::packet::Packet)s; the socket is bound in copy mode unless zero-copy is asked
//! for.
//!
//! Locking: receive state (RX + fill rings) and transmit state (TX + completion rings) have their
//! own mutexes; the UMEM free list has a third one, held only for free-list bookkeeping (never
//! while copying frame bytes).
//!
//! Wakeups: the socket is bound with `XDP_USE_NEED_WAKEUP`, and the queue makes a syscall only
//! when the kernel's flag on a ring asks for one ([`RingFlags`]): a `sendto` kick after a
//! transmit burst, a `recvfrom` when the kernel waits for receive buffers. In copy mode (all a
//! veth offers) the kernel asks for a kick after every transmit burst and never on receive.

use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use xdp::nic::NicIndex;
use xdp::slab::Slab;
use xdp::socket::{SocketError, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{CompletionRing, RingConfigBuilder, RxRing, Umem, WakableFillRing};

use super::frames::Frames;
use super::options::{AfXdpError, AfXdpOptions};
use crate::counter::Counter;
use crate::packet::{Batch, MAX_FRAME, PacketPool};
use crate::port::{PortCounters, PortStats};
use crate::xsk_flags::RingFlags;
use crate::xsk_tx::{self, Bind, CONTINUED, Desc, TxProducer};
use port_api::copy_frame;

/// Largest ring a socket asks for (the kernel's default size).
const MAX_RING: u32 = 2048;
/// UMEM frames one frame may take: a [`MAX_FRAME`] frame in 1,792-byte pieces.
const MAX_FRAGS: usize = 6;

/// Receive side: owned by the PMD polling the queue.
struct RxState {
    ring: RxRing,
    fill: WakableFillRing,
    /// Frames given to the kernel through the fill ring and not yet back through the RX ring.
    in_kernel: u32,
    /// Fill (and RX) ring size: the most frames lent to the kernel for receive.
    budget: u32,
    /// The fragments so far of a multi-buffer frame whose last fragment is still to come
    /// (empty between frames; it keeps its capacity).
    partial: Vec<u8>,
    /// That frame has grown past [`MAX_FRAME`]: it is dropped at its last fragment.
    partial_too_long: bool,
}

/// Transmit side: any PMD, serialised by the mutex.
struct TxState {
    ring: TxProducer,
    completion: CompletionRing,
    /// UMEM frames queued for transmit and not yet back through the completion ring.
    in_flight: u32,
    /// TX (and completion) ring size: the most frames in flight.
    budget: u32,
}

pub(super) struct XskQueue {
    // Fields drop in declaration order: unmap the rings, close the socket, unmap the UMEM last.
    rx: Mutex<RxState>,
    tx: Mutex<TxState>,
    flags: RingFlags,
    /// The bound socket (the crate's builder owns its descriptor).
    socket: XdpSocketBuilder,
    umem: Mutex<Umem>,
    /// Frame bytes one UMEM frame holds.
    frag_len: usize,
    pub(super) queue: u32,
    pub(super) bind: &'static str,
    /// Frames may span UMEM frames (bound with `XDP_USE_SG`).
    pub(super) multi_buffer: bool,
    /// Syscalls the kernel asked for: receive wakeups and transmit kicks.
    pub(super) rx_wakeups: Counter,
    /// Frames received longer than [`MAX_FRAME`] (also in `rx_dropped`).
    pub(super) rx_oversize: Counter,
    pub(super) tx_kicks: Counter,
    /// Receive counters written by the PMD polling this queue, transmit ones under `tx`.
    counters: PortCounters,
    name: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The kernel's counters of one socket.
pub(super) struct KernelStats {
    pub(super) rx_dropped: u64,
    pub(super) rx_ring_full: u64,
    pub(super) fill_ring_empty: u64,
    pub(super) tx_invalid: u64,
}

impl XskQueue {
    /// Binds an AF_XDP socket to `queue` of `ifindex` with its own UMEM, and lends the kernel
    /// its receive buffers. `port` names the port in logs.
    pub(super) fn open(
        port: &str,
        ifname: &str,
        ifindex: NicIndex,
        queue: u32,
        opts: &AfXdpOptions,
    ) -> Result<XskQueue, AfXdpError> {
        // Largest power of two <= frame_count / 2.
        let ring_size = (1u32 << (opts.frame_count / 2).ilog2()).min(MAX_RING);
        let sock_err = |cause: String| AfXdpError::Socket {
            ifname: ifname.to_string(),
            queue,
            cause,
        };
        let umem_cfg = UmemCfgBuilder {
            frame_size: FrameSize::TwoK,
            frame_count: opts.frame_count,
            ..Default::default()
        }
        .build()
        .map_err(|e| AfXdpError::Options(format!("{e}")))?;
        let mut umem = Umem::map(umem_cfg).map_err(|e| AfXdpError::Umem {
            frames: opts.frame_count,
            cause: e.to_string(),
        })?;

        let mut builder = XdpSocketBuilder::new().map_err(|e| sock_err(describe(&e)))?;
        let ring_cfg = RingConfigBuilder {
            rx_count: ring_size,
            tx_count: ring_size,
            fill_count: ring_size,
            completion_count: ring_size,
        }
        .build()
        .map_err(|e| AfXdpError::Options(format!("{e}")))?;
        let (rings, _crate_flags) = builder
            .build_wakable_rings(&umem, ring_cfg)
            .map_err(|e| sock_err(describe(&e)))?;
        let bind = if opts.zero_copy { "zero-copy" } else { "copy" };
        let fd = builder.as_raw_fd();
        let mut how = Bind {
            zero_copy: opts.zero_copy,
            multi_buffer: true,
        };
        let mut bound = xsk_tx::bind(fd, ifindex.0, queue, how);
        if bound.is_err() && opts.zero_copy {
            // Multi-buffer zero-copy needs driver support: without it, frames end at one
            // UMEM frame.
            how.multi_buffer = false;
            bound = xsk_tx::bind(fd, ifindex.0, queue, how);
            if bound.is_ok() {
                tracing::warn!(
                    port,
                    ifname,
                    queue,
                    "the driver has no multi-buffer zero-copy AF_XDP: frames longer than one \
                     UMEM frame (1,792 bytes) are dropped"
                );
            }
        }
        bound.map_err(|e| {
            let hint = match e.raw_os_error() {
                _ if opts.zero_copy => " (zero-copy needs driver support)".to_string(),
                Some(libc::EINVAL) => format!(" (does {ifname} have a queue {queue}?)"),
                Some(libc::EOPNOTSUPP) => " (the kernel lacks multi-buffer AF_XDP, 6.6+)".into(),
                _ => String::new(),
            };
            sock_err(format!("bind failed: {e}{hint}"))
        })?;
        let socket = builder;
        let Some(rx_ring) = rings.rx_ring else {
            return Err(sock_err("the kernel did not map the RX ring".to_string()));
        };
        // The TX ring is written through our own mapping (multi-buffer descriptors).
        drop(rings.tx_ring);
        let tx_ring = TxProducer::map(fd, ring_size)
            .map_err(|e| sock_err(format!("mapping the TX ring failed: {e}")))?;
        // SAFETY: the frame is given straight back to the UMEM it came from.
        let frag_len = match unsafe { umem.alloc() } {
            Some(f) => {
                let len = f.capacity();
                umem.free_packet(f);
                len
            }
            None => return Err(sock_err("the UMEM has no frames".to_string())),
        };

        let flags = RingFlags::map(socket.as_raw_fd())
            .map_err(|e| sock_err(format!("mapping the rings' flags failed: {e}")))?;
        let mut fill = rings.fill_ring;
        // SAFETY: the UMEM outlives the socket: both live in the queue, which drops the socket
        // (and the rings) before the UMEM. No wakeup: nothing is bound to receive yet.
        let filled = unsafe { fill.enqueue(&mut umem, ring_size as usize, false) }
            .map_err(|e| sock_err(format!("filling the fill ring failed: {e}")))?;
        Ok(XskQueue {
            rx: Mutex::new(RxState {
                ring: rx_ring,
                fill,
                in_kernel: filled as u32,
                budget: ring_size,
                partial: Vec::new(),
                partial_too_long: false,
            }),
            tx: Mutex::new(TxState {
                ring: tx_ring,
                completion: rings.completion_ring,
                in_flight: 0,
                budget: ring_size,
            }),
            flags,
            socket,
            umem: Mutex::new(umem),
            frag_len,
            queue,
            bind,
            multi_buffer: how.multi_buffer,
            rx_wakeups: Counter::default(),
            rx_oversize: Counter::default(),
            tx_kicks: Counter::default(),
            counters: PortCounters::default(),
            name: port.to_string(),
        })
    }

    pub(super) fn socket_fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// This queue's counters, with the frames the kernel dropped for the socket (RX ring full,
    /// no fill frame) in `rx_dropped`.
    pub(super) fn stats(&self) -> PortStats {
        let mut stats = self.counters.snapshot();
        if let Some(k) = self.kernel_stats() {
            stats.rx_dropped += k.rx_dropped + k.rx_ring_full;
        }
        stats
    }

    pub(super) fn kernel_stats(&self) -> Option<KernelStats> {
        let k = xsk_tx::statistics(self.socket.as_raw_fd()).ok()?;
        Some(KernelStats {
            rx_dropped: k.rx_dropped,
            rx_ring_full: k.rx_ring_full,
            fill_ring_empty: k.rx_fill_ring_empty_descs,
            tx_invalid: k.tx_invalid_descs,
        })
    }

    pub(super) fn rx_burst(&self, pool: &mut PacketPool, out: &mut Batch) -> usize {
        let mut rx = lock(&self.rx);
        let rx = &mut *rx;
        let mut frames = Frames::new(out.room());

        let received = if frames.available() == 0 {
            0
        } else {
            let umem = lock(&self.umem);
            // SAFETY: the frames point into the UMEM, which outlives them: they are all given
            // back below, before this function returns.
            unsafe { rx.ring.recv(&umem, &mut frames) }
        };

        let mut added = 0;
        let (mut dropped, mut bytes) = (0u64, 0u64);
        for frame in frames.received() {
            let whole: &[u8] = if frame.is_continued() || !rx.partial.is_empty() {
                // A fragment of a multi-buffer frame: gathered until its last one.
                if rx.partial.len() + frame.len() > MAX_FRAME {
                    rx.partial_too_long = true;
                } else {
                    rx.partial.extend_from_slice(&frame[..]);
                }
                if frame.is_continued() {
                    continue;
                }
                if std::mem::take(&mut rx.partial_too_long) {
                    rx.partial.clear();
                    dropped += 1;
                    self.rx_oversize.add(1);
                    continue;
                }
                &rx.partial
            } else {
                &frame[..]
            };
            let len = whole.len();
            let mut pkt = pool.get_for(len);
            copy_frame(pkt.prepare(len), whole);
            rx.partial.clear();
            match out.push(pkt) {
                Ok(()) => {
                    added += 1;
                    bytes += len as u64;
                }
                Err(pkt) => {
                    pool.put(pkt);
                    dropped += 1;
                }
            }
        }

        // Give the frames back and top the fill ring up, in one UMEM lock.
        rx.in_kernel -= received as u32;
        if received > 0 || rx.in_kernel < rx.budget {
            let mut umem = lock(&self.umem);
            while let Some(frame) = frames.pop_back() {
                umem.free_packet(frame);
            }
            // At most `budget - in_kernel` frames: the fill ring has at least that much room.
            // SAFETY: as in `open`, the UMEM outlives the socket. Without a wakeup, the enqueue
            // makes no syscall and cannot fail.
            let filled = unsafe {
                rx.fill
                    .enqueue(&mut umem, (rx.budget - rx.in_kernel) as usize, false)
            };
            rx.in_kernel += filled.unwrap_or(0) as u32;
        }
        if self.flags.fill_needs_wakeup() {
            self.wake(Wakeup::Fill);
        }

        self.counters.rx_packets.add(added as u64);
        self.counters.rx_bytes.add(bytes);
        if dropped > 0 {
            self.counters.rx_dropped.add(dropped);
        }
        added
    }

    pub(super) fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let mut tx = lock(&self.tx);
        let tx = &mut *tx;

        // Reap completions, then each packet into as many UMEM frames as it needs, within the
        // in-flight budget (which also keeps the TX ring from filling up). The UMEM is locked
        // for the burst: the receive side waits at most for these copies.
        let (mut sent, mut bytes, mut dropped) = (0usize, 0u64, 0u64);
        {
            let mut umem = lock(&self.umem);
            let done = tx.completion.dequeue(&mut umem, tx.in_flight as usize);
            tx.in_flight -= done as u32;
            for pkt in pkts.drain() {
                match self.queue_frame(tx, &mut umem, pkt.data()) {
                    Some(frags) => {
                        tx.in_flight += frags;
                        sent += 1;
                        bytes += pkt.len() as u64;
                    }
                    None => dropped += 1,
                }
                pool.put(pkt);
            }
        }
        if sent > 0 {
            tx.ring.submit();
        }
        // Also with nothing new: frames an earlier kick left in the ring go out.
        if tx.in_flight > 0 && self.flags.tx_needs_wakeup() {
            self.wake(Wakeup::Tx);
        }

        self.counters.tx_packets.add(sent as u64);
        self.counters.tx_bytes.add(bytes);
        if dropped > 0 {
            self.counters.tx_dropped.add(dropped);
        }
        sent
    }

    /// Writes `frame` into UMEM frames and their descriptors into the TX ring (unsubmitted);
    /// how many frames it took, or None (nothing queued) if it is empty, too long for the
    /// socket or over the budget.
    #[inline]
    fn queue_frame(&self, tx: &mut TxState, umem: &mut Umem, frame: &[u8]) -> Option<u32> {
        let frags = frame.len().div_ceil(self.frag_len);
        if frags == 0 || (frags > 1 && !self.multi_buffer) || frags > MAX_FRAGS {
            return None;
        }
        if tx.in_flight as usize + frags > tx.budget as usize {
            return None;
        }
        if frags == 1 {
            // SAFETY: as below.
            let mut f = unsafe { umem.alloc() }?;
            if f.append(frame).is_err() {
                umem.free_packet(f);
                return None;
            }
            let d: xdp::libc::xdp::xdp_desc = f.into();
            tx.ring.push(Desc {
                addr: d.addr,
                len: d.len,
                options: 0,
            });
            return Some(1);
        }
        // Take the frames first, so that a frame goes out whole or not at all.
        let mut taken = [const { None }; MAX_FRAGS];
        for slot in taken.iter_mut().take(frags) {
            // SAFETY: the frame points into the UMEM, which outlives the socket; it goes to the
            // TX ring or back to the UMEM below.
            match unsafe { umem.alloc() } {
                Some(f) => *slot = Some(f),
                None => {
                    for f in taken.into_iter().flatten() {
                        umem.free_packet(f);
                    }
                    return None;
                }
            }
        }
        // Every frame holds `frag_len` bytes, so the appends succeed; if one did not, the
        // frames go back and the frame is dropped.
        let filled = taken
            .iter_mut()
            .flatten()
            .zip(frame.chunks(self.frag_len))
            .all(|(f, chunk)| f.append(chunk).is_ok());
        if !filled {
            for f in taken.into_iter().flatten() {
                umem.free_packet(f);
            }
            return None;
        }
        for (i, f) in taken.into_iter().flatten().enumerate() {
            let d: xdp::libc::xdp::xdp_desc = f.into();
            let desc = Desc {
                addr: d.addr,
                len: d.len,
                options: if i + 1 < frags { CONTINUED } else { 0 },
            };
            // Cannot fail: the budget is at most the ring size.
            tx.ring.push(desc);
        }
        Some(frags as u32)
    }

    pub(super) fn tx_in_flight(&self) -> usize {
        let mut tx = lock(&self.tx);
        if tx.in_flight > 0 {
            let mut umem = lock(&self.umem);
            let outstanding = tx.in_flight as usize;
            let done = tx.completion.dequeue(&mut umem, outstanding);
            tx.in_flight -= done as u32;
        }
        // A caller waiting for room sends nothing until these go: kick them out.
        if tx.in_flight > 0 && self.flags.tx_needs_wakeup() {
            self.wake(Wakeup::Tx);
        }
        tx.in_flight as usize
    }

    /// The syscall the kernel asked for through a ring's need-wakeup flag: `recvfrom` to take
    /// the receive buffers in the fill ring, `sendto` to send what the TX ring holds. Neither
    /// carries data or blocks. A failure is left for the next call: EAGAIN/EBUSY/ENOBUFS mean
    /// the kernel keeps the descriptors and goes on at the next wakeup, ENETDOWN that the link
    /// is down.
    fn wake(&self, ring: Wakeup) {
        let fd = self.socket.as_raw_fd();
        let ret = match ring {
            Wakeup::Fill => {
                self.rx_wakeups.add(1);
                // SAFETY: recvfrom(2) with no buffer and no address on our own socket.
                unsafe {
                    libc::recvfrom(
                        fd,
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                }
            }
            Wakeup::Tx => {
                self.tx_kicks.add(1);
                // SAFETY: sendto(2) with no buffer and no address on our own socket.
                unsafe {
                    libc::sendto(
                        fd,
                        std::ptr::null(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null(),
                        0,
                    )
                }
            }
        };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            tracing::trace!(port = %self.name, ?ring, "AF_XDP wakeup: {err}");
        }
    }
}

/// The ring a wakeup syscall is for.
#[derive(Clone, Copy, Debug)]
enum Wakeup {
    Fill,
    Tx,
}

/// A message for the `xdp` crate's socket errors (its Display is its Debug).
fn describe(e: &SocketError) -> String {
    match e {
        SocketError::SocketCreation(e) => {
            format!("creating the socket failed: {e} (needs root or CAP_NET_RAW)")
        }
        SocketError::Bind(e) => format!("bind failed: {e}"),
        SocketError::SetSockOpt { inner, option } => {
            format!("setsockopt {option:?} failed: {inner}")
        }
        SocketError::GetSockOpt { inner, option } => {
            format!("getsockopt {option:?} failed: {inner}")
        }
        SocketError::RingMap { inner, ring } => {
            format!("mapping the {ring:?} ring failed: {inner}")
        }
    }
}
