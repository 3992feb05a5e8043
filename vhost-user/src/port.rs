//! The vhost-user port: options, construction, and the [`Port`] implementation.
//!
//! Queue mapping: switch receive queue `q` is the guest's TX virtqueue `2q+1`; transmits go to
//! a guest RX virtqueue `2q`. Which one: every thread that transmits gets a fixed slot number
//! the first time it transmits (round-robin over threads), and uses queue pair
//! `slot % tx_pairs`, where `tx_pairs` is 1 + the highest queue pair whose RX virtqueue runs.
//! If that queue does not run, queue pair 0 is used. So each PMD keeps its own queue when the
//! guest enabled as many pairs as there are PMDs, and frames of one PMD stay in order.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use port_api::{Batch, PacketPool, Port, PortStats};
use vhost::vhost_user::Listener;

use crate::connection::{self, Control, Endpoint};
use crate::device::Shared;
use crate::protocol::{DeviceConfig, Protocol};
use crate::server_socket;
use crate::stats::DropReason;
use crate::virtio_net;

/// Largest number of queue pairs a port can be configured with.
pub const MAX_QUEUE_PAIRS: usize = 16;

/// Who listens on the socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The front-end (QEMU `server=on`, testpmd `server=1`) listens; the port connects and
    /// reconnects. Survives a switch restart without the VM noticing more than a pause.
    #[default]
    Client,
    /// The port creates the socket and listens; the front-end connects.
    Server,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Client => "client",
            Mode::Server => "server",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostUserOptions {
    /// The vhost-user socket.
    pub path: PathBuf,
    pub mode: Mode,
    /// Queue pairs offered to the front-end (1..=16); also the number of receive queues.
    pub max_queue_pairs: usize,
    /// MTU told to the guest (VIRTIO_NET_F_MTU). At most `MAX_FRAME - 18`.
    pub mtu: u16,
    /// MAC address told to the guest (VIRTIO_NET_F_MAC); `None` lets the front-end choose.
    pub mac: Option<[u8; 6]>,
    /// Offer the checksum offloads (CSUM, GUEST_CSUM).
    pub offloads: bool,
}

impl VhostUserOptions {
    pub fn new(path: impl Into<PathBuf>, mode: Mode) -> Self {
        VhostUserOptions {
            path: path.into(),
            mode,
            max_queue_pairs: 8,
            mtu: 1500,
            mac: None,
            offloads: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VhostUserError {
    #[error("invalid vhost-user options: {0}")]
    Options(String),
    #[error("vhost-user socket {}: {cause}", path.display())]
    Socket { path: PathBuf, cause: String },
    #[error("starting the vhost-user control thread failed: {0}")]
    Thread(std::io::Error),
}

pub struct VhostUserPort {
    name: String,
    opts: VhostUserOptions,
    shared: Arc<Shared>,
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
    /// Server mode: the socket we created, removed when the port goes.
    socket_file: Option<server_socket::SocketFile>,
}

impl VhostUserPort {
    /// Creates the port and starts its control thread. In server mode the socket is created
    /// here (replacing only a stale socket, never another kind of file); in client mode the
    /// port connects in the background.
    pub fn new(name: &str, opts: VhostUserOptions) -> Result<VhostUserPort, VhostUserError> {
        if !(1..=MAX_QUEUE_PAIRS).contains(&opts.max_queue_pairs) {
            return Err(VhostUserError::Options(format!(
                "max_queue_pairs {} is not in 1..={MAX_QUEUE_PAIRS}",
                opts.max_queue_pairs
            )));
        }
        let max_mtu = port_api::MAX_FRAME - 18;
        if opts.mtu < 68 || usize::from(opts.mtu) > max_mtu {
            return Err(VhostUserError::Options(format!(
                "mtu {} is not in 68..={max_mtu}",
                opts.mtu
            )));
        }
        if opts.path.as_os_str().is_empty() {
            return Err(VhostUserError::Options("empty socket path".into()));
        }
        let socket_err = |cause: String| VhostUserError::Socket {
            path: opts.path.clone(),
            cause,
        };
        let mut socket_file = None;
        let endpoint = match opts.mode {
            Mode::Client => Endpoint::Client(opts.path.clone()),
            Mode::Server => {
                let (listener, file) = server_socket::bind(&opts.path).map_err(socket_err)?;
                listener
                    .set_nonblocking(true)
                    .map_err(|e| socket_err(e.to_string()))?;
                socket_file = Some(file);
                Endpoint::Server(Listener::from(listener))
            }
        };

        let shared = Arc::new(Shared::new(opts.max_queue_pairs));
        let config = DeviceConfig {
            max_queue_pairs: opts.max_queue_pairs,
            mtu: opts.mtu,
            mac: opts.mac,
            offloads: opts.offloads,
        };
        let protocol = Arc::new(Mutex::new(Protocol::new(Arc::clone(&shared), config)));
        let control = Arc::new(Control::default());
        let thread = {
            let (name, shared, control) =
                (name.to_string(), Arc::clone(&shared), Arc::clone(&control));
            std::thread::Builder::new()
                .name(format!("vhu-{name}"))
                .spawn(move || connection::run(name, endpoint, shared, protocol, control))
                .map_err(VhostUserError::Thread)?
        };
        tracing::info!(port = name, path = %opts.path.display(), mode = opts.mode.name(), "vhost-user port created");
        Ok(VhostUserPort {
            name: name.to_string(),
            opts,
            shared,
            control,
            thread: Some(thread),
            socket_file,
        })
    }

    /// Whether a front-end is connected.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Queue pairs with both virtqueues running.
    pub fn running_queue_pairs(&self) -> usize {
        self.shared.running_pairs()
    }

    /// Frames dropped for `reason`, all queues.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.shared
            .vrings
            .iter()
            .map(|s| s.stats.dropped_for(reason))
            .sum()
    }

    /// The guest RX virtqueue this thread transmits to.
    fn tx_queue(&self) -> usize {
        static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
        }
        let slot = SLOT.with(|s| match s.get() {
            Some(v) => v,
            None => {
                let v = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
                s.set(Some(v));
                v
            }
        });
        let pairs = self.shared.tx_pairs.load(Ordering::Relaxed);
        if pairs == 0 {
            return 0;
        }
        let q = 2 * (slot % pairs);
        if self.shared.vrings[q].is_ready() {
            q
        } else {
            0
        }
    }
}

impl Drop for VhostUserPort {
    fn drop(&mut self) {
        self.control.shutdown();
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Server mode: the listener closed with the thread; now the socket file goes.
        self.socket_file.take();
    }
}

impl Port for VhostUserPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vhost-user"
    }

    fn n_rxq(&self) -> usize {
        self.opts.max_queue_pairs
    }

    fn rx_burst(&self, qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize {
        match self.shared.vrings.get(2 * qid + 1) {
            Some(slot) => slot.receive(pool, out),
            None => 0,
        }
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        self.shared.vrings[self.tx_queue()].transmit(pkts, pool)
    }

    /// Frames with a checksum left to compute go to a guest that negotiated GUEST_CSUM as they
    /// are; the receive path completes them for one that did not.
    fn takes_partial_csum(&self) -> bool {
        true
    }

    fn link_up(&self) -> bool {
        self.is_connected() && self.shared.vrings.iter().any(|s| s.is_ready())
    }

    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for (i, slot) in self.shared.vrings.iter().enumerate() {
            let q = &slot.stats;
            if i % 2 == 1 {
                s.rx_packets += q.packets.get();
                s.rx_bytes += q.bytes.get();
                s.rx_dropped += q.dropped.get();
            } else {
                s.tx_packets += q.packets.get();
                s.tx_bytes += q.bytes.get();
                s.tx_dropped += q.dropped.get();
            }
        }
        s
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        let sh = &self.shared;
        let features = sh.features.load(Ordering::Relaxed);
        let mut out = vec![
            ("mode", self.opts.mode.name().to_string()),
            ("path", self.opts.path.display().to_string()),
            (
                "connected",
                if self.is_connected() { "yes" } else { "no" }.to_string(),
            ),
            ("features", format!("{features:#x}")),
            ("feature_names", virtio_net::feature_names(features)),
            (
                "protocol_features",
                format!("{:#x}", sh.protocol_features.load(Ordering::Relaxed)),
            ),
            (
                "queue_pairs",
                format!("{}/{}", sh.running_pairs(), sh.max_queue_pairs()),
            ),
            (
                "memory_regions",
                sh.mem_regions.load(Ordering::Relaxed).to_string(),
            ),
            (
                "connections",
                sh.connections.load(Ordering::Relaxed).to_string(),
            ),
            (
                "protocol_errors",
                sh.protocol_errors.load(Ordering::Relaxed).to_string(),
            ),
        ];
        let broken: Vec<String> = sh
            .vrings
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.broken().map(|b| format!("vq{i}: {b}")))
            .collect();
        let broken = if broken.is_empty() {
            "none".to_string()
        } else {
            broken.join("; ")
        };
        out.push(("broken", broken));
        for reason in DropReason::ALL {
            out.push((reason.status_key(), self.drops(reason).to_string()));
        }
        out
    }
}
