//! Shared code of `vswitchd` (the daemon) and `vswitchctl` (its command-line client).
//!
//! - [`protocol`]: the management protocol (one JSON request per line, one JSON reply per line).
//! - [`config`]: the desired configuration and its atomic persistence in the state file.
//! - [`args`]: parsing of `key=value` port options.
//! - [`commands`]: the daemon's command dispatcher over the datapath.
//! - [`results`]: typed command results, shared by the daemon (serialise) and the CLI (parse).
//! - [`format`]: text rendering of results for `vswitchctl`.
//! - [`server`]: the Unix management socket and signal handling.

pub mod args;
pub mod commands;
pub mod config;
pub mod format;
pub mod protocol;
pub mod results;
pub mod server;

/// Version of this package (reported by the `version` command).
pub const PACKAGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Default path of the management socket.
pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitchd.sock";

/// Default path of the state file.
pub const DEFAULT_STATE: &str = "/var/lib/vswitch/state.json";
