//! Builds port backends from a `PortSpec`.

use std::sync::Arc;

use crate::afxdp::{AfXdpOptions, AfXdpPort};
use crate::api::{DpError, PortSpec};
use crate::port::Port;

/// `type=afxdp iface=IF [xdp-mode=best-effort|native|generic] [queue=N] [frames=N]
/// [zero-copy=true|false]`.
pub fn open_afxdp(name: &str, spec: &PortSpec) -> Result<Arc<dyn Port>, DpError> {
    crate::switch::check_port_options(
        spec,
        &["iface", "xdp-mode", "queue", "frames", "zero-copy"],
    )?;
    let iface = spec
        .options
        .get("iface")
        .ok_or_else(|| DpError::new("type=afxdp needs iface=INTERFACE"))?;
    let mut opts = AfXdpOptions::default();
    if let Some(m) = spec.options.get("xdp-mode") {
        opts.mode = m
            .parse()
            .map_err(|e: crate::afxdp::ParseXdpModeError| DpError(e.to_string()))?;
    }
    if let Some(q) = spec.options.get("queue") {
        opts.queue = number("queue", q)?;
    }
    if let Some(f) = spec.options.get("frames") {
        opts.frame_count = number("frames", f)?;
    }
    if let Some(z) = spec.options.get("zero-copy") {
        opts.zero_copy = match z.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(DpError(format!(
                    "bad value {z:?} for zero-copy (true or false)"
                )));
            }
        };
    }
    let port =
        AfXdpPort::open(name, iface, opts).map_err(|e| DpError(format!("port {name}: {e}")))?;
    Ok(Arc::new(port))
}

fn number(key: &str, v: &str) -> Result<u32, DpError> {
    v.parse()
        .map_err(|_| DpError(format!("bad value {v:?} for {key} (a number)")))
}
