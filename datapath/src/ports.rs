//! Builds port backends from a `PortSpec`.

use std::sync::Arc;

use crate::afxdp::{AfXdpOptions, AfXdpPort};
use crate::api::{DpError, PortSpec};
use crate::port::Port;
use crate::tunnel::{TunnelKey, VxlanConfig};
use std::net::Ipv4Addr;

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

/// `type=vxlan remote_ip=A.B.C.D [local_ip=A.B.C.D] [key=VNI|flow] [dst_port=4789] [ttl=64]`.
pub fn vxlan_config(spec: &PortSpec) -> Result<VxlanConfig, DpError> {
    crate::switch::check_port_options(spec, &["remote_ip", "local_ip", "key", "dst_port", "ttl"])?;
    let ip = |k: &str| -> Result<Option<Ipv4Addr>, DpError> {
        spec.options
            .get(k)
            .map(|v| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| DpError(format!("bad {k} {v:?} (an IPv4 address)")))
            })
            .transpose()
    };
    let remote_ip =
        ip("remote_ip")?.ok_or_else(|| DpError::new("type=vxlan needs remote_ip=A.B.C.D"))?;
    let key = match spec.options.get("key").map(String::as_str) {
        None => TunnelKey::Vni(0),
        Some("flow") => TunnelKey::Flow,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n < 1 << 24 => TunnelKey::Vni(n),
            _ => {
                return Err(DpError(format!(
                    "bad key {v:?} (a VNI 0-16777215, or flow)"
                )));
            }
        },
    };
    let dst_port = match spec.options.get("dst_port") {
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| DpError(format!("bad dst_port {v:?}")))?,
        None => vlan_vxlan::VXLAN_PORT,
    };
    let ttl = match spec.options.get("ttl") {
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|t| *t != 0)
            .ok_or_else(|| DpError(format!("bad ttl {v:?} (1-255)")))?,
        None => 64,
    };
    Ok(VxlanConfig {
        remote_ip,
        local_ip: ip("local_ip")?,
        key,
        dst_port,
        ttl,
    })
}

/// `A.B.C.D/LEN` (LEN 0-32; a bare address is /32).
pub fn parse_prefix(v: &str) -> Result<(Ipv4Addr, u8), DpError> {
    let (a, l) = v.split_once('/').unwrap_or((v, "32"));
    let ip = a
        .parse::<Ipv4Addr>()
        .map_err(|_| DpError(format!("bad address {a:?} in {v:?}")))?;
    let len = l
        .parse::<u8>()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| DpError(format!("bad prefix length in {v:?}")))?;
    Ok((ip, len))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(v: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = v.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `type=vhost-user path=SOCK [mode=client|server] [queues=N] [mtu=N] [mac=aa:bb:cc:dd:ee:ff]`.
/// Client mode (the default) connects to the front-end's socket (QEMU `server=on`) and
/// reconnects by itself; server mode creates the socket.
pub fn open_vhost_user(name: &str, spec: &PortSpec) -> Result<Arc<dyn Port>, DpError> {
    use vhost_user::{Mode, VhostUserOptions, VhostUserPort};
    crate::switch::check_port_options(spec, &["path", "mode", "queues", "mtu", "mac"])?;
    let path = spec
        .options
        .get("path")
        .ok_or_else(|| DpError::new("type=vhost-user needs path=SOCKET"))?;
    let mode = match spec.options.get("mode").map(String::as_str) {
        None | Some("client") => Mode::Client,
        Some("server") => Mode::Server,
        Some(m) => return Err(DpError(format!("bad mode {m:?} (client or server)"))),
    };
    let mut opts = VhostUserOptions::new(path, mode);
    if let Some(q) = spec.options.get("queues") {
        opts.max_queue_pairs = match q.parse::<usize>() {
            Ok(n) if (1..=vhost_user::MAX_QUEUE_PAIRS).contains(&n) => n,
            _ => {
                return Err(DpError(format!(
                    "bad queues {q:?} (1-{})",
                    vhost_user::MAX_QUEUE_PAIRS
                )));
            }
        };
    }
    if let Some(m) = spec.options.get("mtu") {
        opts.mtu = match m.parse::<u16>() {
            Ok(n) if (68..=(crate::packet::MAX_FRAME - 18) as u16).contains(&n) => n,
            _ => {
                return Err(DpError(format!(
                    "bad mtu {m:?} (68-{})",
                    crate::packet::MAX_FRAME - 18
                )));
            }
        };
    }
    if let Some(m) = spec.options.get("mac") {
        opts.mac = Some(parse_mac(m).ok_or_else(|| DpError(format!("bad mac {m:?}")))?);
    }
    let port = VhostUserPort::new(name, opts).map_err(|e| DpError(format!("port {name}: {e}")))?;
    Ok(Arc::new(port))
}
