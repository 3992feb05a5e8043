//! What an AF_XDP port is opened with, and what can go wrong.

use std::str::FromStr;

use ebpf::XdpAttachMode;

/// How the XDP program is attached (`xdp-mode=` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpModeRequest {
    /// `best-effort`: native (driver) XDP if the driver supports it, else generic.
    #[default]
    Auto,
    /// `native`: driver XDP or fail.
    Native,
    /// `generic`: skb XDP, works on every interface.
    Generic,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown xdp-mode {0:?} (expected best-effort, native or generic)")]
pub struct ParseXdpModeError(String);

impl FromStr for XdpModeRequest {
    type Err = ParseXdpModeError;

    /// Accepts `best-effort`, `native`, `generic`, with or without the `xdp-mode=` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = s.strip_prefix("xdp-mode=").unwrap_or(s);
        match value {
            "best-effort" => Ok(XdpModeRequest::Auto),
            "native" => Ok(XdpModeRequest::Native),
            "generic" => Ok(XdpModeRequest::Generic),
            _ => Err(ParseXdpModeError(value.to_string())),
        }
    }
}

impl XdpModeRequest {
    /// The `xdp-mode=` value.
    pub fn name(self) -> &'static str {
        match self {
            XdpModeRequest::Auto => "best-effort",
            XdpModeRequest::Native => "native",
            XdpModeRequest::Generic => "generic",
        }
    }
}

impl From<XdpModeRequest> for XdpAttachMode {
    fn from(m: XdpModeRequest) -> Self {
        match m {
            XdpModeRequest::Auto => XdpAttachMode::Auto,
            XdpModeRequest::Native => XdpAttachMode::Native,
            XdpModeRequest::Generic => XdpAttachMode::Generic,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpOptions {
    pub mode: XdpModeRequest,
    /// The first interface queue a socket binds to.
    pub queue: u32,
    /// Receive queues (and sockets): `queue`, `queue + 1`, ...; the NIC's RSS spreads flows
    /// over them.
    pub n_rxq: u32,
    /// UMEM frames (2 KiB each) per queue; at least 64. Each ring gets the largest power of two up to
    /// `frame_count / 2`, capped at 2048.
    pub frame_count: u32,
    /// Bind in zero-copy mode (fails if the driver does not support it; veth does not).
    pub zero_copy: bool,
}

impl Default for AfXdpOptions {
    fn default() -> Self {
        AfXdpOptions {
            mode: XdpModeRequest::Auto,
            queue: 0,
            n_rxq: 1,
            frame_count: 2048,
            zero_copy: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("interface {0:?} not found")]
    InterfaceNotFound(String),
    #[error("invalid AF_XDP options: {0}")]
    Options(String),
    #[error(transparent)]
    Xdp(#[from] ebpf::EbpfError),
    #[error("mapping the UMEM ({frames} frames) failed: {cause}")]
    Umem { frames: u32, cause: String },
    #[error("AF_XDP socket on {ifname} queue {queue}: {cause}")]
    Socket {
        ifname: String,
        queue: u32,
        cause: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xdp_mode() {
        assert_eq!(
            "best-effort".parse::<XdpModeRequest>().unwrap(),
            XdpModeRequest::Auto
        );
        assert_eq!(
            "xdp-mode=native".parse::<XdpModeRequest>().unwrap(),
            XdpModeRequest::Native
        );
        assert_eq!(
            "generic".parse::<XdpModeRequest>().unwrap(),
            XdpModeRequest::Generic
        );
        let err = "xdp-mode=fast".parse::<XdpModeRequest>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown xdp-mode \"fast\" (expected best-effort, native or generic)"
        );
    }
}
