//! The datapath: packet buffers, the `Port` trait and its backends, PMD threads and the
//! pipeline they run, and the `Switch` control API that publishes configuration to them.

pub mod actions;
pub mod afxdp;
pub mod api;
pub mod bridge;
pub mod pipeline;
pub mod pmd;
pub mod ports;
pub mod ring;
pub mod switch;
pub mod tunnel;
mod xsk_flags;

pub use port_api::{counter, packet, port};

pub use api::*;
pub use switch::{Switch, SwitchConfig};
