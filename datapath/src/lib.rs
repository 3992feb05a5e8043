pub mod api;
pub mod counter;
pub mod packet;
pub mod port;
pub mod switch;

pub use api::*;
pub use switch::{Switch, SwitchConfig};
