//! LACP for one bond (IEEE 802.1AX in the simplified form Open vSwitch implements: receive
//! states CURRENT / EXPIRED / DEFAULTED, periodic and need-to-transmit PDUs with the standard's
//! rate limit, one aggregator chosen by a lead member, coupled collecting/distributing, Marker
//! responder; no churn machines). Pure: time is passed in, frames come in as bytes and go out
//! as bytes, so tests run two bonds against each other on a virtual clock.

pub mod member;
pub mod pdu;

use std::time::Duration;

pub use member::{FAST_PERIOD, Member, MemberCounters, RxStatus, SLOW_PERIOD};
pub use pdu::{Lacpdu, MarkerPdu, PduError, PortInfo, SlowPdu, State, SystemId};

use member::{MAX_PENDING_MARKERS, RX_MULTIPLIER};

/// How a bond runs LACP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LacpConfig {
    /// Our system: priority and MAC address.
    pub system: SystemId,
    /// Our aggregation key (the same on every member).
    pub key: u16,
    /// Active: send PDUs unprompted. Passive: only answer an active partner.
    pub active: bool,
    /// Ask the partner for fast PDUs (1 s) and expire it after 3 s; else slow (30 s, 90 s).
    pub fast: bool,
    /// When negotiation fails, run the members as active-backup instead of disabling them.
    pub fallback_ab: bool,
}

/// The bond-wide outcome of LACP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// Some member has a current or expired partner: the aggregator follows its lead.
    Negotiated,
    /// No partner on any member.
    NotNegotiated,
}

/// LACP state of one bond.
#[derive(Clone, Debug)]
pub struct Lacp {
    config: LacpConfig,
    members: Vec<Member>,
    negotiated: bool,
}

impl Lacp {
    pub fn new(config: LacpConfig) -> Lacp {
        Lacp {
            config,
            members: Vec::new(),
            negotiated: false,
        }
    }

    pub fn config(&self) -> &LacpConfig {
        &self.config
    }

    /// Changes the configuration live; members keep their partners, and every member says the
    /// news at once.
    pub fn reconfigure(&mut self, config: LacpConfig) {
        if config != self.config {
            self.config = config;
            self.members.iter_mut().for_each(|m| m.ntt = true);
            self.update_attached();
        }
    }

    /// Adds a member (carrier down, no partner); returns its index.
    pub fn add_member(&mut self, port: u16, port_priority: u16, mac: [u8; 6]) -> usize {
        self.members.push(Member::new(port, port_priority, mac));
        self.members.len() - 1
    }

    pub fn remove_member(&mut self, idx: usize) {
        if idx < self.members.len() {
            self.members.remove(idx);
            self.update_attached();
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn negotiation(&self) -> Negotiation {
        if self.negotiated {
            Negotiation::Negotiated
        } else {
            Negotiation::NotNegotiated
        }
    }

    /// Carrier (link) change of a member. A member that loses its link loses its partner's
    /// sync at once and no longer counts for the aggregator; when the link comes back it
    /// starts from EXPIRED and asks for fast PDUs (802.1AX PORT_DISABLED → EXPIRED).
    pub fn set_carrier(&mut self, idx: usize, up: bool, now: Duration) {
        let short = self.short_timeout();
        let Some(m) = self.members.get_mut(idx) else {
            return;
        };
        if m.carrier == up {
            return;
        }
        m.carrier = up;
        m.counters.carrier_changes += 1;
        if m.status == RxStatus::Current {
            m.status = RxStatus::Expired;
            m.counters.link_expired += 1;
        }
        m.partner.state = m.partner.state.with(State::SYNCHRONIZATION, false);
        m.rx_deadline = Some(now + short);
        m.ntt = true;
        self.update_attached();
    }

    fn short_timeout(&self) -> Duration {
        FAST_PERIOD * RX_MULTIPLIER
    }

    /// How long a partner stays current without a PDU, by our own timeout setting.
    fn rx_timeout(&self) -> Duration {
        let period = if self.config.fast {
            FAST_PERIOD
        } else {
            SLOW_PERIOD
        };
        period * RX_MULTIPLIER
    }

    /// Handles a Slow Protocols frame received on member `idx`. Malformed PDUs are counted and
    /// ignored; the error says why.
    pub fn receive(&mut self, idx: usize, frame: &[u8], now: Duration) -> Result<(), PduError> {
        let own = (self.config.system, self.config.key);
        let timeout = self.rx_timeout();
        let Some(m) = self.members.get_mut(idx) else {
            return Ok(());
        };
        let pdu = match pdu::parse(frame) {
            Ok(p) => p,
            Err(e) => {
                m.counters.rx_bad += 1;
                return Err(e);
            }
        };
        let pdu = match pdu {
            SlowPdu::Marker(mk) if mk.response => {
                m.counters.rx_marker_responses += 1;
                return Ok(());
            }
            SlowPdu::Marker(mk) => {
                m.counters.rx_markers += 1;
                if m.markers.len() < MAX_PENDING_MARKERS {
                    m.markers.push(mk);
                }
                return Ok(());
            }
            SlowPdu::Lacp(p) => p,
        };
        if (pdu.actor.system, pdu.actor.key) == own {
            m.counters.rx_looped += 1;
            return Ok(());
        }
        m.counters.rx_pdus += 1;
        if !m.carrier {
            // A frame on a link we think is down: count it, act on carrier news only.
            return Ok(());
        }
        let changed = !m.partner.same_port(&pdu.actor) || m.partner.state != pdu.actor.state;
        m.partner = pdu.actor;
        m.status = RxStatus::Current;
        m.rx_deadline = Some(now + timeout);
        // The partner's view of us must match what we are; if not, tell it again.
        let ours = self.actor_info(idx);
        let m = &mut self.members[idx];
        if !pdu.partner.same_port(&ours) || pdu.partner.state != ours.state {
            m.ntt = true;
        }
        if changed {
            self.update_attached();
        }
        Ok(())
    }

    /// Runs the timers: partners expire and default. Call at least every 100 ms.
    pub fn run(&mut self, now: Duration) {
        let short = self.short_timeout();
        let mut changed = false;
        for m in &mut self.members {
            let Some(deadline) = m.rx_deadline else {
                continue;
            };
            if now < deadline {
                continue;
            }
            match m.status {
                RxStatus::Current => {
                    m.status = RxStatus::Expired;
                    m.counters.link_expired += 1;
                    m.partner.state = m
                        .partner
                        .state
                        .with(State::SYNCHRONIZATION, false)
                        .with(State::TIMEOUT, true);
                    m.rx_deadline = Some(now + short);
                }
                RxStatus::Expired | RxStatus::Defaulted => {
                    if m.status == RxStatus::Expired {
                        m.counters.link_defaulted += 1;
                    }
                    m.status = RxStatus::Defaulted;
                    m.partner = PortInfo::default();
                    m.rx_deadline = None;
                }
            }
            m.ntt = true;
            changed = true;
        }
        if changed {
            self.update_attached();
        }
    }

    /// Frames due on the members at `now` (PDUs, then marker responses), as (member, frame).
    pub fn transmit(&mut self, now: Duration, mut send: impl FnMut(usize, &[u8])) {
        for idx in 0..self.members.len() {
            let actor = self.actor_info(idx);
            let fast_tx = self.config.fast;
            let active = self.config.active;
            let m = &mut self.members[idx];
            if !m.carrier {
                continue;
            }
            for mk in m.markers.drain(..) {
                let reply = MarkerPdu {
                    response: true,
                    ..mk
                };
                send(idx, &pdu::build_marker(m.mac, &reply));
                m.counters.tx_marker_responses += 1;
            }
            // Passive members speak only to an active partner.
            if !active && !m.partner.state.has(State::ACTIVITY) {
                continue;
            }
            if m.last_sent != Some(actor) {
                m.ntt = true;
            }
            if !(m.ntt || now >= m.next_tx) || !m.may_send(now) {
                continue;
            }
            let pdu = Lacpdu {
                actor,
                partner: m.partner,
                collector_max_delay: 0,
            };
            send(idx, &pdu::build_lacpdu(m.mac, &pdu));
            m.counters.tx_pdus += 1;
            m.note_sent(now);
            m.ntt = false;
            m.last_sent = Some(actor);
            // The partner's timeout bit sets our pace; without a current partner we keep to
            // our own setting, so a returning partner hears from us soon.
            let fast = match m.status {
                RxStatus::Current => m.partner.state.has(State::TIMEOUT),
                RxStatus::Expired | RxStatus::Defaulted => fast_tx,
            };
            m.next_tx = now + if fast { FAST_PERIOD } else { SLOW_PERIOD };
        }
    }

    /// The earliest time a timer of this bond fires (for the caller's sleep).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.members
            .iter()
            .filter(|m| m.carrier)
            .flat_map(|m| [m.rx_deadline, Some(m.next_tx)])
            .flatten()
            .min()
    }

    /// What we say about ourselves on member `idx` (the actor information of its PDUs).
    pub fn actor_info(&self, idx: usize) -> PortInfo {
        let c = &self.config;
        let m = &self.members[idx];
        let in_sync = m.attached && m.partner.state.has(State::SYNCHRONIZATION);
        let state = State(State::AGGREGATION)
            .with(State::ACTIVITY, c.active)
            .with(State::TIMEOUT, c.fast || m.status == RxStatus::Expired)
            .with(State::SYNCHRONIZATION, m.attached)
            .with(State::COLLECTING, in_sync)
            .with(State::DISTRIBUTING, in_sync)
            .with(State::DEFAULTED, m.status == RxStatus::Defaulted)
            .with(State::EXPIRED, m.status == RxStatus::Expired);
        PortInfo {
            system: c.system,
            key: c.key,
            port_priority: m.port_priority,
            port: m.port,
            state,
        }
    }

    /// Whether member `idx` may carry the bond's traffic as far as LACP is concerned: attached
    /// to the aggregator with a partner in sync; or, if no member negotiated and fallback to
    /// active-backup is on, whenever its link is up.
    pub fn may_enable(&self, idx: usize) -> bool {
        let Some(m) = self.members.get(idx) else {
            return false;
        };
        if self.negotiated {
            m.attached && m.partner.state.has(State::SYNCHRONIZATION)
        } else {
            self.config.fallback_ab && m.carrier
        }
    }

    /// Chooses the aggregator: the lead is the member with the best port priority (the port
    /// of whichever system has the better system id decides, as 802.1AX §6.4.14.1 says); the
    /// members whose partner is the lead's partner system and key attach with it.
    fn update_attached(&mut self) {
        let ours = self.config.system;
        let candidate = |m: &Member| m.carrier && m.status != RxStatus::Defaulted;
        let rank = |m: &Member| {
            if ours <= m.partner.system {
                (m.port_priority, m.port)
            } else {
                (m.partner.port_priority, m.partner.port)
            }
        };
        let lead = self
            .members
            .iter()
            .filter(|m| candidate(m))
            .min_by_key(|m| rank(m))
            .map(|m| (m.partner.system, m.partner.key));
        self.negotiated = lead.is_some();
        for m in &mut self.members {
            let attached = candidate(m) && lead == Some((m.partner.system, m.partner.key));
            if attached != m.attached {
                m.attached = attached;
                m.ntt = true;
            }
        }
    }
}
