//! The metrics endpoint: a minimal HTTP/1.1 server for `GET /metrics`, one connection at a
//! time on its own thread. Requests are untrusted bytes: read with a size cap and a deadline,
//! parsed by [`parse_request`] (fuzzed), answered and closed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemon::Daemon;

/// The most a request head may take (request line and headers).
pub const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path without its query string.
    pub path: String,
}

/// Why a request is refused, with the status to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

const BAD: HttpError = HttpError {
    status: 400,
    reason: "Bad Request",
};

/// Parses a request head (everything up to the blank line). Only the request line matters:
/// `METHOD SP TARGET SP HTTP/1.x`.
pub fn parse_request(head: &[u8]) -> Result<Request, HttpError> {
    let line_end = head.iter().position(|&b| b == b'\n').ok_or(BAD)?;
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    let line = std::str::from_utf8(line).map_err(|_| BAD)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(HttpError {
            status: 505,
            reason: "HTTP Version Not Supported",
        });
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => {
            return Err(HttpError {
                status: 405,
                reason: "Method Not Allowed",
            });
        }
    };
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(BAD);
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    Ok(Request { method, path })
}

/// Reads a request head: until the blank line, at most [`MAX_REQUEST`] bytes.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HttpError> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Err(HttpError {
                status: 431,
                reason: "Request Header Fields Too Large",
            });
        }
        match stream.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return Err(BAD),
            Ok(k) => n += k,
        }
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
            || buf[..n].windows(2).any(|w| w == b"\n\n")
        {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, reason: &str, ctype: &str, body: &str, head: bool) {
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes());
    if !head {
        let _ = stream.write_all(body.as_bytes());
    }
}

fn handle(mut stream: TcpStream, daemon: &Mutex<Daemon>) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let req = read_head(&mut stream).and_then(|h| parse_request(&h));
    match req {
        Err(e) => respond(
            &mut stream,
            e.status,
            e.reason,
            "text/plain",
            e.reason,
            false,
        ),
        Ok(r) if r.path == "/metrics" => {
            let body = {
                let d = daemon.lock().unwrap_or_else(|p| p.into_inner());
                super::render(d.datapath())
            };
            respond(
                &mut stream,
                200,
                "OK",
                super::CONTENT_TYPE,
                &body,
                r.method == Method::Head,
            );
        }
        Ok(r) => respond(
            &mut stream,
            404,
            "Not Found",
            "text/plain",
            "vswitchd serves /metrics\n",
            r.method == Method::Head,
        ),
    }
}

/// Serves `listener` on a thread of its own until the process ends.
pub fn spawn(listener: TcpListener, daemon: Arc<Mutex<Daemon>>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => handle(stream, &daemon),
                    Err(e) => tracing::warn!("metrics endpoint: accept failed: {e}"),
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let ok = parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((ok.method, ok.path.as_str()), (Method::Get, "/metrics"));
        assert_eq!(
            parse_request(b"HEAD / HTTP/1.0\n\n").unwrap().method,
            Method::Head
        );
        for (bad, status) in [
            (&b"POST /metrics HTTP/1.1\r\n\r\n"[..], 405),
            (b"GET /metrics HTTP/2\r\n\r\n", 505),
            (b"GET metrics HTTP/1.1\r\n\r\n", 400),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", 400),
            (b"GET /a\x01 HTTP/1.1\r\n\r\n", 400),
            (b"\xff\xfe\r\n\r\n", 400),
            (b"GET /metrics HTTP/1.1", 400),
        ] {
            assert_eq!(parse_request(bad).unwrap_err().status, status, "{bad:?}");
        }
    }
}
