//! Flow classification for vswitch: frame parsing, OpenFlow-style rules (with `ovs-ofctl`
//! syntax), MAC learning, translation to datapath actions, and per-PMD flow caches.
//! Pure logic: no I/O, no threads.

pub mod cache;
pub mod drop_reason;
pub mod hash;
pub mod key;
pub mod mac_learning;
pub mod ofctl;
pub mod parse;
pub mod rule;
pub mod synth;
pub mod translate;

pub use cache::*;
pub use drop_reason::*;
pub use hash::KeyHasher;
pub use key::*;
pub use mac_learning::*;
pub use ofctl::*;
pub use parse::*;
pub use rule::*;
pub use synth::frame_of;
pub use translate::*;
