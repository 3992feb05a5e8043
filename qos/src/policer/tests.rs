use super::*;
use proptest::prelude::*;

/// The RFCs' text, token by token: each bucket gains one token at each tick of its rate (the
/// tick times are the definition of "rate times per second"), and the colour rules are written
/// as the RFCs state them. Slow, literal, independent of the closed forms above.
#[derive(Debug)]
struct Reference {
    c: u64,
    e: u64,
    last: u64,
}

impl Reference {
    fn new(p: &Profile) -> Self {
        let b = Buckets::full(p, 0);
        Reference {
            c: b.c,
            e: b.e,
            last: 0,
        }
    }

    fn ticks(rate: u64, from: u64, to: u64) -> u64 {
        // Tick k is at k·10⁹/rate ns: count the k with from < tick ≤ to, one by one.
        let mut n = 0;
        let mut k = u128::from(rate) * u128::from(from) / 1_000_000_000 + 1;
        while k * 1_000_000_000 <= u128::from(rate) * u128::from(to) {
            n += 1;
            k += 1;
        }
        n
    }

    fn color(&mut self, p: &Profile, now: u64, len: u64, pre: Option<Color>) -> Color {
        match *p {
            Profile::SrTcm { cir, cbs, ebs } => {
                // RFC 2697 §3: "if Tc is less than CBS, Tc is incremented by one, else if Te is
                // less than EBS, Te is incremented by one, else neither is incremented".
                for _ in 0..Self::ticks(cir, self.last, now) {
                    if self.c < cbs {
                        self.c += 1;
                    } else if self.e < ebs {
                        self.e += 1;
                    }
                }
            }
            Profile::TrTcm { cir, cbs, pir, pbs } => {
                // RFC 2698 §3: Tp incremented PIR times a second up to PBS, Tc CIR times up
                // to CBS.
                for _ in 0..Self::ticks(pir, self.last, now) {
                    if self.e < pbs {
                        self.e += 1;
                    }
                }
                for _ in 0..Self::ticks(cir, self.last, now) {
                    if self.c < cbs {
                        self.c += 1;
                    }
                }
            }
            Profile::Rfc4115 { cir, cbs, eir, ebs } => {
                // RFC 4115 §2: Tc up to CBS at CIR, Te up to EBS at EIR, independently.
                for _ in 0..Self::ticks(cir, self.last, now) {
                    if self.c < cbs {
                        self.c += 1;
                    }
                }
                for _ in 0..Self::ticks(eir, self.last, now) {
                    if self.e < ebs {
                        self.e += 1;
                    }
                }
            }
        }
        self.last = now;
        let b = len;
        match (*p, pre) {
            // RFC 2697 §4, colour-blind: Tc ≥ B green; else Te ≥ B yellow; else red.
            (Profile::SrTcm { .. } | Profile::Rfc4115 { .. }, None) => {
                if self.c >= b {
                    self.c -= b;
                    Color::Green
                } else if self.e >= b {
                    self.e -= b;
                    Color::Yellow
                } else {
                    Color::Red
                }
            }
            // Colour-aware: green and Tc ≥ B green; (green or yellow) and Te ≥ B yellow;
            // else red.
            (Profile::SrTcm { .. } | Profile::Rfc4115 { .. }, Some(pc)) => {
                if pc == Color::Green && self.c >= b {
                    self.c -= b;
                    Color::Green
                } else if (pc == Color::Green || pc == Color::Yellow) && self.e >= b {
                    self.e -= b;
                    Color::Yellow
                } else {
                    Color::Red
                }
            }
            // RFC 2698 §4, colour-blind: Tp < B red; else Tc < B yellow (Tp -= B); else green
            // (both -= B).
            (Profile::TrTcm { .. }, None) => {
                if self.e < b {
                    Color::Red
                } else if self.c < b {
                    self.e -= b;
                    Color::Yellow
                } else {
                    self.e -= b;
                    self.c -= b;
                    Color::Green
                }
            }
            // Colour-aware: red or Tp < B red; else yellow or Tc < B yellow; else green.
            (Profile::TrTcm { .. }, Some(pc)) => {
                if pc == Color::Red || self.e < b {
                    Color::Red
                } else if pc == Color::Yellow || self.c < b {
                    self.e -= b;
                    Color::Yellow
                } else {
                    self.e -= b;
                    self.c -= b;
                    Color::Green
                }
            }
        }
    }
}

fn profile() -> impl Strategy<Value = Profile> {
    let rate = 1_000u64..200_000;
    let burst = 64u64..20_000;
    prop_oneof![
        (rate.clone(), burst.clone(), 0u64..20_000).prop_map(|(cir, cbs, ebs)| Profile::SrTcm {
            cir,
            cbs,
            ebs
        }),
        (rate.clone(), burst.clone(), 0u64..200_000, burst.clone()).prop_map(
            |(cir, cbs, extra, pbs)| Profile::TrTcm {
                cir,
                cbs,
                pir: cir + extra,
                pbs
            }
        ),
        (rate.clone(), burst.clone(), rate, 0u64..20_000)
            .prop_map(|(cir, cbs, eir, ebs)| Profile::Rfc4115 { cir, cbs, eir, ebs }),
    ]
}

fn pre() -> impl Strategy<Value = Option<Color>> {
    prop_oneof![
        Just(None),
        Just(Some(Color::Green)),
        Just(Some(Color::Yellow)),
        Just(Some(Color::Red)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
    ))]

    /// Colours, token counts and byte counts equal the literal model's, packet by packet.
    #[test]
    fn colours_equal_the_rfc_reference(
        p in profile(),
        packets in proptest::collection::vec((0u64..20_000_000, 40u64..1600, pre()), 1..200),
    ) {
        let mut b = Buckets::full(&p, 0);
        let mut r = Reference::new(&p);
        let mut now = 0;
        let mut bytes = [0u64; 3];
        let mut ref_bytes = [0u64; 3];
        for (dt, len, pc) in packets {
            now += dt;
            let got = b.color(&p, now, len, pc);
            let want = r.color(&p, now, len, pc);
            prop_assert_eq!(got, want, "at {} ns, {} B, pre {:?}, {:?}", now, len, pc, p);
            prop_assert_eq!((b.c, b.e), (r.c, r.e));
            bytes[got.index()] += len;
            ref_bytes[want.index()] += len;
        }
        prop_assert_eq!(bytes, ref_bytes);
    }
}

#[test]
fn srtcm_at_twice_its_rate_passes_its_rate() {
    // 1,000,000 B/s committed, 1,500 B frames offered at 2,000,000 B/s for one second.
    let p = Profile::SrTcm {
        cir: 1_000_000,
        cbs: 15_000,
        ebs: 0,
    };
    let mut pol = Policer::new(p, [Action::Pass, Action::Pass, Action::Drop], false, 0);
    let gap = 1_500 * 1_000_000_000 / 2_000_000; // ns between frames
    for i in 1..=1333u64 {
        pol.police(i * gap, 1500, None);
    }
    let green = pol.counts[Color::Green.index()].1;
    // The rate over the second, plus the initial burst.
    assert!(
        (1_000_000..=1_000_000 + 15_000 + 1500).contains(&green),
        "{green}"
    );
}

#[test]
fn trtcm_colours_by_peak_and_committed_rate() {
    // CIR 1 MB/s, PIR 2 MB/s; offered 3 MB/s: about a third green, a third yellow, a third red.
    let p = Profile::TrTcm {
        cir: 1_000_000,
        cbs: 3_000,
        pir: 2_000_000,
        pbs: 3_000,
    };
    let mut pol = Policer::new(
        p,
        [Action::Pass, Action::RemarkDscp(12), Action::Drop],
        false,
        0,
    );
    let gap = 1_000 * 1_000_000_000 / 3_000_000;
    for i in 1..=30_000u64 {
        pol.police(i * gap, 1000, None);
    }
    let [g, y, r] = pol.counts.map(|c| c.0);
    assert_eq!(g + y + r, 30_000);
    for n in [g, y, r] {
        assert!((9_800..=10_200).contains(&n), "{:?}", pol.counts);
    }
    assert_eq!(pol.police(30_001 * gap, 1000, None).1, Action::Drop);
}

#[test]
fn validation() {
    assert!(
        Profile::SrTcm {
            cir: 0,
            cbs: 1,
            ebs: 0
        }
        .validate()
        .is_err()
    );
    assert!(
        Profile::SrTcm {
            cir: 1,
            cbs: 0,
            ebs: 0
        }
        .validate()
        .is_err()
    );
    assert!(
        Profile::TrTcm {
            cir: 2,
            cbs: 1,
            pir: 1,
            pbs: 1
        }
        .validate()
        .is_err()
    );
    assert!(
        Profile::Rfc4115 {
            cir: 2,
            cbs: 1,
            eir: 0,
            ebs: 0
        }
        .validate()
        .is_ok()
    );
}

#[test]
fn af_drop_precedence_is_the_colour_of_a_frame() {
    // AF11/AF12/AF13 = 10/12/14, AF41/42/43 = 34/36/38.
    assert_eq!(af_color(10), Color::Green);
    assert_eq!(af_color(12), Color::Yellow);
    assert_eq!(af_color(14), Color::Red);
    assert_eq!(af_color(36), Color::Yellow);
    assert_eq!(af_color(38), Color::Red);
    // EF, CS classes and best effort are green.
    for d in [0, 8, 46, 48, 56, 13] {
        assert_eq!(af_color(d), Color::Green, "dscp {d}");
    }
}

#[test]
fn drop_precedence_rises_within_an_af_class() {
    assert_eq!(raise_drop_precedence(10, 1), 12, "AF11 -> AF12");
    assert_eq!(raise_drop_precedence(10, 2), 14, "AF11 -> AF13");
    assert_eq!(raise_drop_precedence(14, 1), 14, "AF13 stays");
    assert_eq!(raise_drop_precedence(34, 1), 36, "AF41 -> AF42");
    for d in [0, 8, 46, 48, 13] {
        assert_eq!(raise_drop_precedence(d, 1), d, "{d} is not AF");
    }
}
