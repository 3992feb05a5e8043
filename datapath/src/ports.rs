//! Builds port backends from a `PortSpec`.

use std::sync::Arc;

use crate::api::{DpError, PortSpec};
use crate::port::Port;

pub fn open_afxdp(name: &str, spec: &PortSpec) -> Result<Arc<dyn Port>, DpError> {
    crate::switch::check_port_options(spec, &["iface", "xdp-mode", "queue"])?;
    let _ = name;
    Err(DpError("type=afxdp is not available yet".into()))
}
