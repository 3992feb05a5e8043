//! Shared code of `vswitchd` (the daemon) and `vswitchctl` (its command-line client).
//!
//! - [`model`]: the configuration, the one source of truth, and its diff into datapath changes.
//! - [`parse`]: text from operators and the state file to typed values (and back).
//! - [`persist`]: the state file (atomic writes).
//! - [`daemon`]: the configuration, the datapath, and transactions between them.
//! - [`commands`]: the commands, one file per family.
//! - [`protocol`]: the management protocol (one JSON request per line, one JSON reply per line).
//! - [`results`]: typed command results, shared by the daemon (serialise) and the CLI (parse).
//! - [`format`]: text rendering of results for `vswitchctl`.
//! - [`server`]: the Unix management socket and signal handling.
//! - [`client`]: the client side of the protocol; [`capture`]: `vswitchctl capture`.

pub mod capture;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod format;
pub mod metrics;
pub mod model;
pub mod parse;
pub mod persist;
pub mod protocol;
pub mod results;
pub mod server;

/// Version of this package (reported by the `version` command).
pub const PACKAGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Default path of the management socket.
pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitchd.sock";

/// Default path of the state file.
pub const DEFAULT_STATE: &str = "/var/lib/vswitch/state.json";
