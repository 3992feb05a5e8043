//! Policers: the single-rate three-colour marker (RFC 2697), the two-rate three-colour
//! marker (RFC 2698), and its RFC 4115 variant (committed and excess buckets filled by their
//! own rates). Each is a pure function of its state, its profile, the time and the frame's
//! length, in integers:
//!
//! A bucket filled at `rate` bytes per second gains one token (byte) at each instant
//! k·10⁹/rate ns after time 0, so between two times it gains
//! ⌊rate·t₁/10⁹⌋ − ⌊rate·t₀/10⁹⌋ tokens: exact, no rounding drift however often it is read.
//! Buckets start full, as the RFCs say.

use crate::tokens::increments;

/// The colour a policer gives a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Color {
    Green,
    Yellow,
    Red,
}

impl Color {
    pub const ALL: [Color; 3] = [Color::Green, Color::Yellow, Color::Red];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Color::Green => "green",
            Color::Yellow => "yellow",
            Color::Red => "red",
        }
    }
}

/// Rates in bytes per second, bucket sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// RFC 2697: committed rate and burst, excess burst (filled by what overflows the
    /// committed bucket).
    SrTcm { cir: u64, cbs: u64, ebs: u64 },
    /// RFC 2698: committed and peak rates and bursts; a frame over the peak is red.
    TrTcm {
        cir: u64,
        cbs: u64,
        pir: u64,
        pbs: u64,
    },
    /// RFC 4115: committed and excess rates and bursts, each bucket filled by its own rate.
    Rfc4115 {
        cir: u64,
        cbs: u64,
        eir: u64,
        ebs: u64,
    },
}

impl Profile {
    /// Checks what the types cannot: a rate and a burst to police with.
    pub fn validate(&self) -> Result<(), String> {
        let (r1, b1, r2, b2, names) = match *self {
            Profile::SrTcm { cir, cbs, ebs } => (cir, cbs, 0, ebs, ("cir", "cbs", "", "ebs")),
            Profile::TrTcm { cir, cbs, pir, pbs } => {
                (cir, cbs, pir, pbs, ("cir", "cbs", "pir", "pbs"))
            }
            Profile::Rfc4115 { cir, cbs, eir, ebs } => {
                (cir, cbs, eir, ebs, ("cir", "cbs", "eir", "ebs"))
            }
        };
        if r1 == 0 {
            return Err(format!("{} must be above 0", names.0));
        }
        if b1 == 0 {
            return Err(format!("{} must be above 0", names.1));
        }
        if let Profile::TrTcm { cir, pir, pbs, .. } = *self {
            if pir < cir {
                return Err("pir must be at least cir".into());
            }
            if pbs == 0 {
                return Err("pbs must be above 0".into());
            }
        }
        let _ = (r2, b2);
        Ok(())
    }
}

/// Token counts and the time they were last brought up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    /// The committed bucket.
    pub c: u64,
    /// The excess (srTCM, RFC 4115) or peak (trTCM) bucket.
    pub e: u64,
    pub last_ns: u64,
}

impl Buckets {
    /// Full buckets at time `now_ns`.
    pub fn full(profile: &Profile, now_ns: u64) -> Buckets {
        let (c, e) = match *profile {
            Profile::SrTcm { cbs, ebs, .. } => (cbs, ebs),
            Profile::TrTcm { cbs, pbs, .. } => (cbs, pbs),
            Profile::Rfc4115 { cbs, ebs, .. } => (cbs, ebs),
        };
        Buckets {
            c,
            e,
            last_ns: now_ns,
        }
    }
}

impl Buckets {
    /// Fills the buckets up to `now_ns` as `profile` says.
    fn fill(&mut self, p: &Profile, now_ns: u64) {
        match *p {
            Profile::SrTcm { cir, cbs, ebs } => {
                // C first; what overflows C goes to E.
                let n = increments(cir, self.last_ns, now_ns);
                let to_c = n.min(cbs.saturating_sub(self.c));
                self.c += to_c;
                self.e = self.e.saturating_add(n - to_c).min(ebs);
            }
            Profile::TrTcm { cir, cbs, pir, pbs } => {
                self.c = self
                    .c
                    .saturating_add(increments(cir, self.last_ns, now_ns))
                    .min(cbs);
                self.e = self
                    .e
                    .saturating_add(increments(pir, self.last_ns, now_ns))
                    .min(pbs);
            }
            Profile::Rfc4115 { cir, cbs, eir, ebs } => {
                self.c = self
                    .c
                    .saturating_add(increments(cir, self.last_ns, now_ns))
                    .min(cbs);
                self.e = self
                    .e
                    .saturating_add(increments(eir, self.last_ns, now_ns))
                    .min(ebs);
            }
        }
        self.last_ns = self.last_ns.max(now_ns);
    }

    /// The colour of a frame of `len` bytes at `now_ns`, taking its tokens. `pre` is the
    /// colour it already has (colour-aware mode); None is colour-blind.
    pub fn color(&mut self, p: &Profile, now_ns: u64, len: u64, pre: Option<Color>) -> Color {
        self.fill(p, now_ns);
        match *p {
            // RFC 2697 and RFC 4115 decide the same way; they differ in how E fills.
            Profile::SrTcm { .. } | Profile::Rfc4115 { .. } => {
                let may_green = matches!(pre, None | Some(Color::Green));
                let may_yellow = pre != Some(Color::Red);
                if may_green && self.c >= len {
                    self.c -= len;
                    Color::Green
                } else if may_yellow && self.e >= len {
                    self.e -= len;
                    Color::Yellow
                } else {
                    Color::Red
                }
            }
            Profile::TrTcm { .. } => {
                if pre == Some(Color::Red) || self.e < len {
                    Color::Red
                } else if pre == Some(Color::Yellow) || self.c < len {
                    self.e -= len;
                    Color::Yellow
                } else {
                    self.e -= len;
                    self.c -= len;
                    Color::Green
                }
            }
        }
    }
}

/// What a policer does with a frame of a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pass,
    /// Re-mark the DSCP (a drop precedence, e.g. AF12 for yellow).
    RemarkDscp(u8),
    /// Raise an AF frame's drop precedence by this many levels (AF11 → AF12 → AF13), as an
    /// OpenFlow `dscp_remark` meter band's `prec_level` does; other DSCPs are left alone.
    RaiseDropPrecedence(u8),
    Drop,
}

/// `dscp` with its AF drop precedence raised by `levels` (at most to 3); a DSCP that is not
/// AF is returned as it is.
pub fn raise_drop_precedence(dscp: u8, levels: u8) -> u8 {
    let (class, drop) = (dscp >> 3, (dscp >> 1) & 3);
    if (1..=4).contains(&class) && dscp & 1 == 0 && (1..=3).contains(&drop) {
        let drop = (drop + levels).min(3);
        (class << 3) | (drop << 1)
    } else {
        dscp
    }
}

/// A policer as configured: its profile, what it does with each colour, and whether it
/// takes a frame's own colour into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicerConfig {
    pub profile: Profile,
    /// Green, yellow, red.
    pub actions: [Action; 3],
    /// Colour-aware: a frame's AF drop precedence ([`af_color`]) is its colour on arrival, so
    /// it never comes out greener than it went in.
    pub color_aware: bool,
}

impl PolicerConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.profile.validate()?;
        for a in self.actions {
            if let Action::RemarkDscp(d) = a
                && d > 63
            {
                return Err(format!("DSCP {d} is out of range (0-63)"));
            }
        }
        Ok(())
    }
}

/// The colour an AF-marked frame carries in its DSCP (RFC 2597: AFx1 green, AFx2 yellow,
/// AFx3 red); every other DSCP is green.
pub fn af_color(dscp: u8) -> Color {
    let (class, drop) = (dscp >> 3, (dscp >> 1) & 3);
    if (1..=4).contains(&class) && dscp & 1 == 0 {
        match drop {
            2 => return Color::Yellow,
            3 => return Color::Red,
            _ => {}
        }
    }
    Color::Green
}

/// A policer with its actions per colour and counters per colour.
#[derive(Clone, Debug)]
pub struct Policer {
    pub profile: Profile,
    /// Green, yellow, red.
    pub actions: [Action; 3],
    pub color_aware: bool,
    buckets: Buckets,
    /// Packets and bytes per colour.
    pub counts: [(u64, u64); 3],
}

impl Policer {
    pub fn new(profile: Profile, actions: [Action; 3], color_aware: bool, now_ns: u64) -> Self {
        Policer {
            profile,
            actions,
            color_aware,
            buckets: Buckets::full(&profile, now_ns),
            counts: [(0, 0); 3],
        }
    }

    pub fn from_config(cfg: &PolicerConfig, now_ns: u64) -> Self {
        Policer::new(cfg.profile, cfg.actions, cfg.color_aware, now_ns)
    }

    pub fn config(&self) -> PolicerConfig {
        PolicerConfig {
            profile: self.profile,
            actions: self.actions,
            color_aware: self.color_aware,
        }
    }

    /// Colours a frame, counts it, and says what to do with it.
    pub fn police(&mut self, now_ns: u64, len: usize, pre: Option<Color>) -> (Color, Action) {
        let pre = if self.color_aware { pre } else { None };
        let c = self.buckets.color(&self.profile, now_ns, len as u64, pre);
        let count = &mut self.counts[c.index()];
        count.0 += 1;
        count.1 += len as u64;
        (c, self.actions[c.index()])
    }
}

#[cfg(test)]
mod tests;
