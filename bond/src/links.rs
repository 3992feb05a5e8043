//! Which members of a bond carry traffic: a member is enabled once it has been usable (link up
//! and, with LACP, in the aggregator) for `updelay`, and disabled once it has been unusable for
//! `downdelay`; one enabled member is the active one (all traffic in active-backup, floods in
//! balance-slb). Open vSwitch's rules: updelay is skipped when no member is enabled (a bond
//! with no link takes the first that comes), the primary member takes over when it comes
//! back, and otherwise the active member stays until it fails.

use std::time::Duration;

/// Enablement of one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Usable right now (link up, and in the LACP aggregator when LACP runs).
    pub usable: bool,
    /// Carrying traffic (usable for updelay, not yet unusable for downdelay).
    pub enabled: bool,
    /// When a pending up or down change takes effect.
    pub pending_until: Option<Duration>,
}

/// What changed in one [`Links::update`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkChanges {
    pub enabled_changed: bool,
    /// The active member changed (learning packets are due on the new one).
    pub active_changed: Option<(Option<usize>, Option<usize>)>,
}

/// Enablement of every member and the active one.
#[derive(Clone, Debug, Default)]
pub struct Links {
    links: Vec<Link>,
    active: Option<usize>,
    pub updelay: Duration,
    pub downdelay: Duration,
    pub primary: Option<usize>,
}

impl Links {
    pub fn new(n: usize) -> Links {
        Links {
            links: vec![Link::default(); n],
            ..Links::default()
        }
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn active(&self) -> Option<usize> {
        self.active
    }

    pub fn enabled(&self) -> Vec<bool> {
        self.links.iter().map(|l| l.enabled).collect()
    }

    /// Makes `idx` the active member (operator's choice); it must be enabled.
    pub fn set_active(&mut self, idx: usize) -> Result<(), &'static str> {
        match self.links.get(idx) {
            Some(l) if l.enabled => {
                self.active = Some(idx);
                Ok(())
            }
            Some(_) => Err("member is not enabled"),
            None => Err("no such member"),
        }
    }

    /// Applies what each member's usability is now, and the delays.
    pub fn update(&mut self, usable: &[bool], now: Duration) -> LinkChanges {
        let mut changes = LinkChanges::default();
        let any_enabled = self.links.iter().any(|l| l.enabled);
        let mut came_up = Vec::new();
        for (i, l) in self.links.iter_mut().enumerate() {
            l.usable = usable.get(i).copied().unwrap_or(false);
            if l.usable == l.enabled {
                l.pending_until = None;
                continue;
            }
            let delay = match (l.usable, any_enabled) {
                (true, false) => Duration::ZERO,
                (true, true) => self.updelay,
                (false, _) => self.downdelay,
            };
            let due = *l.pending_until.get_or_insert(now + delay);
            if now >= due {
                l.enabled = l.usable;
                l.pending_until = None;
                changes.enabled_changed = true;
                if l.enabled {
                    came_up.push(i);
                }
            }
        }
        let before = self.active;
        let active_ok = self
            .active
            .is_some_and(|a| self.links.get(a).is_some_and(|l| l.enabled));
        let primary_back = self.primary.filter(|p| came_up.contains(p));
        if let Some(p) = primary_back {
            self.active = Some(p);
        } else if !active_ok {
            let primary = self
                .primary
                .filter(|&p| self.links.get(p).is_some_and(|l| l.enabled));
            self.active = primary.or_else(|| self.links.iter().position(|l| l.enabled));
        }
        if self.active != before {
            changes.active_changed = Some((before, self.active));
        }
        changes
    }

    /// The earliest pending change.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.links.iter().filter_map(|l| l.pending_until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_link_comes_up_at_once_then_delays_apply() {
        let mut l = Links::new(2);
        l.updelay = ms(200);
        l.downdelay = ms(100);
        let c = l.update(&[true, false], ms(0));
        assert_eq!(c.active_changed, Some((None, Some(0))));
        l.update(&[true, true], ms(10));
        assert_eq!(l.enabled(), [true, false], "updelay");
        l.update(&[true, true], ms(209));
        assert_eq!(l.enabled(), [true, false]);
        l.update(&[true, true], ms(210));
        assert_eq!(l.enabled(), [true, true]);
        assert_eq!(l.active(), Some(0), "active stays");
        l.update(&[false, true], ms(300));
        assert_eq!(l.active(), Some(0), "downdelay");
        let c = l.update(&[false, true], ms(400));
        assert_eq!(c.active_changed, Some((Some(0), Some(1))));
        // A blip shorter than the downdelay changes nothing.
        l.update(&[false, false], ms(500));
        l.update(&[false, true], ms(550));
        l.update(&[false, true], ms(700));
        assert_eq!(l.enabled(), [false, true]);
    }

    #[test]
    fn primary_takes_over_when_it_returns_and_operator_choice_holds_otherwise() {
        let mut l = Links::new(3);
        l.primary = Some(2);
        l.update(&[true, true, false], ms(0));
        assert_eq!(l.active(), Some(0));
        l.update(&[true, true, true], ms(1));
        assert_eq!(l.active(), Some(2));
        l.set_active(1).unwrap();
        l.update(&[true, true, true], ms(2));
        assert_eq!(l.active(), Some(1));
        assert!(l.set_active(7).is_err());
        l.update(&[true, true, false], ms(3));
        l.update(&[true, false, false], ms(4));
        assert_eq!(l.active(), Some(0));
        assert!(l.set_active(2).is_err());
    }
}
