//! A bridge's meters (OpenFlow `add-meter`, used by a rule's `meter:N` action): policers any
//! PMD may run a packet through, so each is behind its own lock (taken per packet that uses
//! it; uncontended unless two PMDs meter the same flow at the same instant).

use std::sync::{Arc, Mutex};

use port_api::Packet;
use qos::{Action, Policer, PolicerConfig};

use super::ColorCounts;

pub(crate) struct Meter {
    policer: Mutex<Policer>,
}

impl Meter {
    pub(crate) fn new(cfg: &PolicerConfig, now_ns: u64) -> Meter {
        Meter {
            policer: Mutex::new(Policer::from_config(cfg, now_ns)),
        }
    }

    /// Colours the packet and carries out its colour's action; false when it is dropped.
    pub(crate) fn police(&self, pkt: &mut Packet, now_ns: u64) -> bool {
        let action = {
            let mut p = self.policer.lock().unwrap_or_else(|e| e.into_inner());
            p.police(now_ns, pkt.len(), None).1
        };
        match action {
            Action::Pass => true,
            Action::Drop => false,
            Action::RemarkDscp(d) => {
                qos::set_dscp(pkt.data_mut(), d);
                true
            }
            Action::RaiseDropPrecedence(n) => {
                if let Some(d) = qos::markings(pkt.data()).dscp {
                    qos::set_dscp(pkt.data_mut(), qos::raise_drop_precedence(d, n));
                }
                true
            }
        }
    }

    pub(crate) fn config(&self) -> PolicerConfig {
        self.policer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config()
    }

    pub(crate) fn counts(&self) -> ColorCounts {
        self.policer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
    }
}

/// A bridge's meters by id, as PMDs see them (sorted: a binary search per metered packet).
#[derive(Default)]
pub(crate) struct MeterTable {
    meters: Vec<(u32, Arc<Meter>)>,
}

impl MeterTable {
    pub(crate) fn new(meters: impl Iterator<Item = (u32, Arc<Meter>)>) -> MeterTable {
        let mut meters: Vec<_> = meters.collect();
        meters.sort_unstable_by_key(|(id, _)| *id);
        MeterTable { meters }
    }

    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&Meter> {
        let i = self.meters.binary_search_by_key(&id, |(m, _)| *m).ok()?;
        Some(&self.meters[i].1)
    }
}
