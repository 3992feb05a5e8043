//! A trace's question to a PMD: does your cache hold a decision for this key, and which?
//! The PMD owns its caches, so the control thread leaves the question in the PMD's shared
//! state and the PMD answers it between two polls (one relaxed load per iteration to notice).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowtable::{CacheLevel, DpAction, DropReason, FlowKey};

use super::{Pmd, PmdShared};
use crate::bridge::BridgeId;

/// What a PMD's caches hold for a key: the cache that answers, and its decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDecision {
    pub level: CacheLevel,
    pub actions: Vec<DpAction>,
    pub drop: Option<DropReason>,
}

pub(crate) struct CacheProbe {
    bridge: BridgeId,
    key: FlowKey,
    /// Set by the PMD: Some(None) when neither cache holds the key.
    answer: Option<Option<CachedDecision>>,
}

impl Pmd {
    /// Answers the question left in the shared state, if any.
    #[cold]
    pub(crate) fn answer_probe(&self) {
        let mut slot = self.shared.probe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.as_mut()
            && p.answer.is_none()
        {
            let held = self
                .locals
                .iter()
                .find(|l| l.id == p.bridge)
                .and_then(|l| l.cache.holds(&p.key))
                .map(|(level, d)| CachedDecision {
                    level,
                    actions: d.actions.clone(),
                    drop: d.drop,
                });
            p.answer = Some(held);
        }
        self.shared.probe_asked.store(false, Ordering::Release);
    }
}

/// Asks the PMD behind `shared` what its caches hold for `key` on bridge `bridge`; None if it
/// did not answer within `timeout` (a PMD the caller drives answers only when driven).
pub(crate) fn ask(
    shared: &PmdShared,
    bridge: BridgeId,
    key: &FlowKey,
    timeout: Duration,
) -> Option<Option<CachedDecision>> {
    *shared.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(CacheProbe {
        bridge,
        key: *key,
        answer: None,
    });
    shared.probe_asked.store(true, Ordering::Release);
    let deadline = Instant::now() + timeout;
    loop {
        {
            let mut slot = shared.probe.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(answer) = slot.as_ref().and_then(|p| p.answer.clone()) {
                *slot = None;
                return Some(answer);
            }
            if Instant::now() >= deadline {
                *slot = None;
                shared.probe_asked.store(false, Ordering::Release);
                return None;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
