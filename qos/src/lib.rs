//! Quality of service: DSCP/PCP re-marking now; classification, meters and the egress scheduler
//! with the QoS issue. Pure: no I/O, no clock of its own.

pub mod remark;

pub use remark::set_dscp;
