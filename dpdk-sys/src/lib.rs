//! Raw bindings to DPDK (Debian's libdpdk 22.11), generated at build time.
//!
//! Everything here is `unsafe` C. The safe interface is the `dpdk` crate. DPDK's static inline
//! functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc_bulk`, ...) are reached through C
//! wrappers that bindgen generates and `cc` compiles, one call per burst.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all, unnecessary_transmutes, unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
