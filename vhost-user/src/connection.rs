//! The control thread: gets a front-end connection (connects in client mode, accepts in server
//! mode), serves its messages until it goes away, forgets its state, and starts over, until the
//! port is dropped.
//!
//! Client mode retries with back-off (100 ms doubling to 2 s), forever. Server mode accepts the
//! next front-end once the previous one is gone. The thread sleeps with `park_timeout`; the
//! port's `Drop` sets the stop flag, shuts the current socket down (which ends a blocking read)
//! and unparks the thread.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use vhost::vhost_user::{BackendReqHandler, Error, Listener, VhostUserBackendReqHandlerMut};

use crate::device::Shared;
use crate::protocol::Protocol;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often server mode looks for a new front-end.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// Where the front-end comes from.
pub enum Endpoint {
    Client(PathBuf),
    Server(Listener),
}

/// What the port and its control thread share to stop the thread.
#[derive(Default)]
pub struct Control {
    pub stop: AtomicBool,
    /// A clone of the current connection, to shut it down from `Drop`.
    pub conn: Mutex<Option<UnixStream>>,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps up to `d`, returning early (true) when the port is stopping.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        while !self.stopped() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::park_timeout(deadline - now);
        }
        true
    }

    /// Wakes the control thread and ends its current connection.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(conn) = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Runs the control loop until the port stops.
pub fn run(
    name: String,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    protocol: Arc<Mutex<Protocol>>,
    control: Arc<Control>,
) {
    while let Some(stream) = next_connection(&name, &endpoint, &control) {
        // Register the connection for Drop, unless the port is already stopping.
        {
            let mut slot = control.conn.lock().unwrap_or_else(PoisonError::into_inner);
            if control.stopped() {
                break;
            }
            *slot = stream.try_clone().ok();
        }
        shared.connections.fetch_add(1, Ordering::Relaxed);
        shared.connected.store(true, Ordering::Release);
        tracing::info!(port = %name, "vhost-user front-end connected");

        let early = stream.try_clone().ok();
        let mut handler = BackendReqHandler::from_stream(stream, Arc::clone(&protocol));
        let reason = serve(&mut handler, early.as_ref(), &protocol, &shared);

        shared.connected.store(false, Ordering::Release);
        *control.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
        protocol
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
        if control.stopped() {
            break;
        }
        tracing::info!(port = %name, "vhost-user front-end disconnected: {reason}");
    }
    tracing::debug!(port = %name, "vhost-user control thread stopped");
}

/// Serves messages until the connection ends; returns why it ended.
fn serve(
    handler: &mut BackendReqHandler<Mutex<Protocol>>,
    early: Option<&UnixStream>,
    protocol: &Mutex<Protocol>,
    shared: &Shared,
) -> Error {
    loop {
        if let Some(stream) = early {
            match early_vring_enable(stream, protocol) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Error::SocketError(e),
            }
        }
        match handler.handle_request() {
            Ok(()) => {}
            // The handler refused the request; the front-end got an error reply if it asked
            // for one (REPLY_ACK). The stream is still in sync.
            Err(
                e @ (Error::ReqHandlerError(_)
                | Error::InvalidParam
                | Error::InvalidOperation(_)
                | Error::InactiveFeature(_)
                | Error::InactiveOperation(_)),
            ) => {
                shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("vhost-user request refused: {e}");
            }
            // Socket errors, or a malformed message after which the stream cannot be trusted.
            Err(e) => {
                if !matches!(e, Error::Disconnected) {
                    shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
                }
                return e;
            }
        }
    }
}

/// Waits for the next front-end; `None` when the port stops.
fn next_connection(name: &str, endpoint: &Endpoint, control: &Control) -> Option<UnixStream> {
    let mut backoff = BACKOFF_MIN;
    loop {
        if control.stopped() {
            return None;
        }
        match endpoint {
            Endpoint::Client(path) => match UnixStream::connect(path) {
                Ok(s) => return Some(s),
                Err(e) => {
                    tracing::debug!(port = name, "vhost-user connect to {}: {e}", path.display());
                    if control.sleep(backoff) {
                        return None;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            },
            Endpoint::Server(listener) => match listener.accept() {
                Ok(Some(s)) => {
                    // The listener is non-blocking; the connection must not be.
                    if s.set_nonblocking(false).is_ok() {
                        return Some(s);
                    }
                }
                Ok(None) => {
                    if control.sleep(ACCEPT_POLL) {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::warn!(port = name, "vhost-user accept: {e}");
                    if control.sleep(backoff) {
                        return None;
                    }
                }
            },
        }
    }
}

/// vhost-user request code of SET_VRING_ENABLE, and header flag bits.
const SET_VRING_ENABLE: u32 = 18;
const FLAG_VERSION_1: u32 = 0x1;
const FLAG_REPLY: u32 = 0x4;
const FLAG_NEED_REPLY: u32 = 0x8;
const HEADER_LEN: usize = 12;
const VRING_STATE_LEN: usize = 8;

/// QEMU (7.2 and older) sends SET_VRING_ENABLE before SET_FEATURES once the protocol features
/// were exchanged; the `vhost` crate refuses it until SET_FEATURES has acknowledged
/// PROTOCOL_FEATURES, which would leave the rings disabled for good. Such an early request is
/// read and applied here instead (as DPDK's vhost library does). Returns true if it handled the
/// next message.
fn early_vring_enable(stream: &UnixStream, protocol: &Mutex<Protocol>) -> std::io::Result<bool> {
    if protocol
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .protocol_features_acked()
    {
        return Ok(false);
    }
    let mut peek = [0u8; HEADER_LEN + VRING_STATE_LEN];
    // SAFETY: recv writes at most `peek.len()` bytes into `peek`, which outlives the call; the
    // fd belongs to `stream`, which is borrowed for the duration. MSG_PEEK leaves the data in
    // the socket for the `vhost` crate's handler when the message is not ours.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            peek.as_mut_ptr().cast(),
            peek.len(),
            libc::MSG_PEEK,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let word = |i: usize| u32::from_le_bytes([peek[i], peek[i + 1], peek[i + 2], peek[i + 3]]);
    if (n as usize) < peek.len() || word(0) != SET_VRING_ENABLE || word(8) != VRING_STATE_LEN as u32
    {
        return Ok(false);
    }
    let flags = word(4);
    let mut msg = [0u8; HEADER_LEN + VRING_STATE_LEN];
    let mut reader = stream;
    reader.read_exact(&mut msg)?;
    let (index, num) = (word(12), word(16));
    let result = match num {
        0 | 1 => protocol
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_vring_enable(index, num == 1),
        _ => Err(Error::InvalidParam),
    };
    tracing::debug!(
        index,
        enable = num,
        ok = result.is_ok(),
        "vhost-user SET_VRING_ENABLE before SET_FEATURES"
    );
    let reply_ack = protocol
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .reply_ack();
    if flags & FLAG_NEED_REPLY != 0 && reply_ack {
        let mut reply = [0u8; HEADER_LEN + 8];
        reply[0..4].copy_from_slice(&SET_VRING_ENABLE.to_le_bytes());
        reply[4..8].copy_from_slice(&(FLAG_VERSION_1 | FLAG_REPLY).to_le_bytes());
        reply[8..12].copy_from_slice(&8u32.to_le_bytes());
        reply[12..20].copy_from_slice(&u64::from(result.is_err()).to_le_bytes());
        let mut writer = stream;
        writer.write_all(&reply)?;
    }
    Ok(true)
}
