//! Quality of service, pure (no I/O, no clock of its own: time is passed in):
//!
//! - [`class`]: traffic classes from DSCP or 802.1p (trust settings, the default RFC 4594 map);
//! - [`policer`]: srTCM (RFC 2697), trTCM (RFC 2698) and RFC 4115 colour markers;
//! - [`sched`]: the egress scheduler (strict priority, DWRR, per-queue rates, port shaper);
//! - [`sojourn`]: how long frames waited in a queue (a histogram);
//! - [`tokens`]: integer token buckets;
//! - [`frame`]: a frame's markings (DSCP, PCP);
//! - [`remark`]: DSCP re-marking of a frame.

pub mod class;
pub mod frame;
pub mod policer;
pub mod remark;
pub mod sched;
pub mod sojourn;
pub mod tokens;

pub use class::{CLASSES, ClassMap, TrafficClass, Trust};
pub use frame::{Markings, markings};
pub use policer::{
    Action, Buckets, Color, Policer, PolicerConfig, Profile, af_color, raise_drop_precedence,
};
pub use remark::set_dscp;
pub use sched::{Frame, QueueConfig, QueueStats, Scheduler, SchedulerConfig, Shaper};
pub use sojourn::Sojourn;
