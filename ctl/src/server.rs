//! The management socket: a Unix stream socket, one thread per connection, one JSON request per
//! line and one JSON reply per line. Plus SIGTERM/SIGINT handling for the accept loop.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tracing::{debug, error, warn};

use crate::daemon::Daemon;
use crate::protocol::{MAX_REQUEST_BYTES, Reply, decode_request};

/// Most connections served at once; more are refused with an error reply.
pub const MAX_CONNECTIONS: usize = 64;

/// A connection idle for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs SIGTERM and SIGINT handlers that set the stop flag (see [`stop_requested`]).
pub fn install_signal_handlers() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `sa` is zero-initialised (a valid `sigaction`: empty mask, no flags) and then
        // given a handler that only performs an atomic store, which is async-signal-safe.
        // `sigaction` is called with valid pointers to it and a null old-action pointer.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGTERM or SIGINT arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks the accept loop to stop (as a signal would).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Binds the management socket: creates the parent directory (0755), replaces a stale socket
/// file, refuses if another daemon answers on it or the path is not a socket, sets mode 0660.
pub fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    match fs::symlink_metadata(path) {
        Ok(md) => {
            if !md.file_type().is_socket() {
                return Err(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another vswitchd is already listening on {}",
                    path.display()
                ));
            }
            fs::remove_file(path)
                .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
            warn!(socket = %path.display(), "replaced stale socket");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set mode of {}: {e}", path.display()))?;
    Ok(listener)
}

/// Reads one line of at most `MAX_REQUEST_BYTES` (plus newline). `Ok(None)` at end of stream;
/// `Err(len)` when the line is too long (the rest of the stream is then unusable).
pub fn read_request_line<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Result<(), usize>>> {
    buf.clear();
    let limit = (MAX_REQUEST_BYTES + 2) as u64;
    let n = r.by_ref().take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() as u64 >= limit {
        return Ok(Some(Err(buf.len())));
    }
    Ok(Some(Ok(())))
}

/// Serves one connection: a reply line per request line until end of stream, an I/O error,
/// or an oversized request (answered, then the connection is closed).
pub fn serve_stream<R: BufRead, W: Write>(
    mut r: R,
    mut w: W,
    mut handle: impl FnMut(&[u8]) -> Reply,
) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        match read_request_line(&mut r, &mut buf)? {
            None => return Ok(()),
            Some(Err(_)) => {
                let reply = Reply::err(format!(
                    "request too large (limit {MAX_REQUEST_BYTES} bytes)"
                ));
                w.write_all(reply.to_line().as_bytes())?;
                return w.flush();
            }
            Some(Ok(())) => {
                let reply = handle(&buf);
                w.write_all(reply.to_line().as_bytes())?;
                w.flush()?;
            }
        }
    }
}

/// Decodes and runs one request against the daemon. A panic while handling is turned into an
/// error reply (and the lock recovered) rather than taking the connection thread down silently.
pub fn handle_request(daemon: &Mutex<Daemon>, line: &[u8]) -> Reply {
    let req = match decode_request(line) {
        Ok(r) => r,
        Err(e) => return Reply::err(e),
    };
    debug!(command = %req.command, args = ?req.args, "request");
    let mut d = daemon.lock().unwrap_or_else(|p| p.into_inner());
    match catch_unwind(AssertUnwindSafe(|| crate::commands::handle(&mut d, &req))) {
        Ok(Ok(v)) => Reply::ok(v),
        Ok(Err(e)) => {
            debug!(command = %req.command, "error: {e}");
            Reply::err(e)
        }
        Err(_) => {
            error!(command = %req.command, "internal error (panic) while handling request");
            Reply::err(format!("internal error while handling {}", req.command))
        }
    }
}

/// Accepts connections until [`stop_requested`], each served on its own thread.
pub fn accept_loop(listener: UnixListener, daemon: Arc<Mutex<Daemon>>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    while !stop_requested() {
        match listener.accept() {
            Ok((stream, _)) => {
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.set_nonblocking(false);
                    let _ = (&stream).write_all(
                        Reply::err("too many connections; try again")
                            .to_line()
                            .as_bytes(),
                    );
                    continue;
                }
                let daemon = daemon.clone();
                let active2 = active.clone();
                let spawned =
                    thread::Builder::new()
                        .name("vswitchd-conn".into())
                        .spawn(move || {
                            if let Err(e) = serve_connection(stream, &daemon) {
                                debug!("connection ended: {e}");
                            }
                            active2.fetch_sub(1, Ordering::SeqCst);
                        });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::SeqCst);
                    error!("cannot spawn connection thread: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(&listener, 100),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}

/// Waits up to `timeout_ms` for a connection to be pending on `listener` (or a signal).
fn wait_readable(listener: &UnixListener, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid, initialised pollfd for an open descriptor owned by `listener`,
    // which outlives the call; nfds is 1. Errors (EINTR) just end the wait early.
    let _ = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

fn serve_connection(stream: UnixStream, daemon: &Mutex<Daemon>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let reader = BufReader::new(stream.try_clone()?);
    serve_stream(reader, &stream, |line| handle_request(daemon, line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Config;
    use crate::protocol::decode_reply;
    use datapath::{Switch, SwitchConfig};

    fn serve(input: &[u8]) -> Vec<Reply> {
        let dir = crate::persist::tests::temp_dir("serve");
        let sw = Switch::start(SwitchConfig {
            caller_driven: true,
            ..SwitchConfig::default()
        })
        .unwrap();
        let d = Mutex::new(Daemon::new(sw, Config::default(), dir.join("state.json")));
        let mut out = Vec::new();
        serve_stream(input, &mut out, |l| handle_request(&d, l)).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| decode_reply(l.as_bytes()).unwrap())
            .collect()
    }

    #[test]
    fn one_reply_per_line() {
        let replies = serve(
            b"{\"version\":1,\"command\":\"add-br\",\"args\":[\"br0\"]}\n\
              garbage\n\
              {\"version\":1,\"command\":\"show\"}\n\
              {\"version\":1,\"command\":\"show\",\"args\":[5]}\n\
              {\"version\":1,\"command\":\"version\"}",
        );
        assert_eq!(replies.len(), 5);
        assert!(replies[0].ok);
        assert!(!replies[1].ok);
        assert_eq!(
            replies[2].result.as_ref().unwrap()["bridges"][0]["name"],
            "br0"
        );
        assert!(!replies[3].ok);
        assert!(replies[4].ok);
    }

    #[test]
    fn huge_line_is_refused() {
        let mut input = vec![b'{'; MAX_REQUEST_BYTES * 3];
        input.push(b'\n');
        input.extend_from_slice(b"{\"version\":1,\"command\":\"version\"}\n");
        let replies = serve(&input);
        assert_eq!(replies.len(), 1);
        assert!(replies[0].error.as_deref().unwrap().contains("too large"));
        // Just under the limit is read (and rejected as bad JSON, not as too large).
        let mut input = vec![b' '; MAX_REQUEST_BYTES - 10];
        input.extend_from_slice(b"x\n");
        let replies = serve(&input);
        assert!(!replies[0].error.as_deref().unwrap().contains("too large"));
    }

    #[test]
    fn socket_claiming() {
        let dir = crate::persist::tests::temp_dir("sock");
        let path = dir.join("run").join("vswitchd.sock");
        let l = bind_socket(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // Someone answers: refuse.
        assert!(
            bind_socket(&path)
                .unwrap_err()
                .contains("already listening")
        );
        drop(l);
        // Stale: replaced.
        let _l = bind_socket(&path).unwrap();
        // Not a socket: refuse.
        let f = dir.join("file");
        fs::write(&f, "x").unwrap();
        assert!(bind_socket(&f).unwrap_err().contains("not a socket"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
