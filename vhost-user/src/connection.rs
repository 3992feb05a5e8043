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

use vhost::vhost_user::{BackendReqHandler, Error, Listener};

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

        let mut handler = BackendReqHandler::from_stream(stream, Arc::clone(&protocol));
        let reason = serve(&mut handler, &shared);

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
fn serve(handler: &mut BackendReqHandler<Mutex<Protocol>>, shared: &Shared) -> Error {
    loop {
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
