//! `capture-start`, `capture-read`, `capture-stop`: the daemon's half of `vswitchctl capture`
//! (the client drains the port's capture ring and writes the pcapng file).

use datapath::capture::{CaptureSpec, Direction};
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::results::{CaptureFrames, CaptureStopped, CapturedFrame};

/// Frames one `capture-read` returns at most (a reply stays a few MiB even for jumbo frames).
pub const MAX_READ: usize = 256;

/// `capture-start PORT rx|tx|both SNAPLEN RING`.
pub(super) fn start(d: &Daemon, a: &[String]) -> Result<Value, String> {
    let [port, dir, snaplen, ring] = a else {
        return Err(super::usage_error("capture-start"));
    };
    let (rx, tx) = match dir.as_str() {
        "rx" => (true, false),
        "tx" => (false, true),
        "both" => (true, true),
        _ => return Err("capture-start: direction is rx, tx or both".into()),
    };
    let num = |what: &str, v: &str| {
        v.parse::<usize>().map_err(|_| {
            format!(
                "capture-start: bad {what} {:?}",
                crate::protocol::truncate(v, 20)
            )
        })
    };
    let spec = CaptureSpec {
        rx,
        tx,
        snaplen: num("snaplen", snaplen)?,
        ring: num("ring size", ring)?,
    };
    d.datapath().capture_start(port, spec).map_err(|e| e.0)?;
    Ok(Value::Null)
}

/// `capture-read PORT [MAX]`.
pub(super) fn read(d: &Daemon, a: &[String]) -> Result<Value, String> {
    let max = match a.get(1) {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| "capture-read: MAX is a number".to_string())?
            .min(MAX_READ),
        None => MAX_READ,
    };
    let r = d.datapath().capture_read(&a[0], max).map_err(|e| e.0)?;
    to_value(&CaptureFrames {
        frames: r
            .frames
            .into_iter()
            .map(|f| CapturedFrame {
                unix_ns: f.unix_ns,
                direction: match f.direction {
                    Direction::Rx => "rx",
                    Direction::Tx => "tx",
                }
                .to_string(),
                orig_len: f.orig_len,
                hex: hex(&f.data),
                missed_before: f.missed_before,
            })
            .collect(),
        missed: r.missed,
    })
}

/// `capture-stop PORT`.
pub(super) fn stop(d: &Daemon, a: &[String]) -> Result<Value, String> {
    let missed = d.datapath().capture_stop(&a[0]).map_err(|e| e.0)?;
    to_value(&CaptureStopped { missed })
}

fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}
