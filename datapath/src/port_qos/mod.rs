//! Quality of service in the datapath, around the pure logic of the `qos` crate:
//!
//! - [`ingress`]: on arrival at a port, its trust setting (which marking to believe, re-marking
//!   an untrusted guest's DSCP) and its policer;
//! - [`egress`]: a port's egress scheduler and shaper, wrapped around the port;
//! - [`meters`]: a bridge's OpenFlow-style meters;
//! - [`now`]: the PMD's iteration time, for the scheduler;
//! - `waits`: how long each class's frames waited in the scheduler, in 5-second windows.

pub(crate) mod egress;
pub(crate) mod ingress;
pub(crate) mod meters;
pub(crate) mod now;
mod waits;

pub(crate) use egress::QosPort;
pub use egress::QueueReport;
pub use ingress::ColorCounts;
pub(crate) use ingress::Ingress;
pub(crate) use meters::{Meter, MeterTable};
