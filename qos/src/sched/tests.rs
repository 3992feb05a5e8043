use super::*;

#[derive(Debug)]
struct F(usize, u8);

impl Frame for F {
    fn frame_len(&self) -> usize {
        self.0
    }
}

fn tc(c: u8) -> TrafficClass {
    TrafficClass::new(c).unwrap()
}

const US: u64 = 1_000;
const SEC: u64 = 1_000_000_000;

/// Runs `seconds` of virtual time in PMD iterations of `step` ns: each iteration offers frames
/// at each class's rate (bytes/s, frames of `len`), then dequeues. Returns the departures as
/// (time, class, bytes).
fn simulate(
    s: &mut Scheduler<F>,
    offered: &[(u8, u64, usize)],
    seconds: u64,
    step: u64,
) -> Vec<(u64, u8, usize)> {
    let mut out = Vec::new();
    let mut owed = vec![0u64; offered.len()];
    let mut t = 0;
    while t < seconds * SEC {
        t += step;
        for (i, &(c, rate, len)) in offered.iter().enumerate() {
            // Bytes due this step, as whole frames.
            owed[i] += crate::tokens::increments(rate, t - step, t);
            while owed[i] >= len as u64 {
                owed[i] -= len as u64;
                let _ = s.enqueue(tc(c), F(len, c));
            }
        }
        s.dequeue(t, usize::MAX, |f| out.push((t, f.1, f.0)));
    }
    out
}

#[test]
fn a_shaped_port_leaves_at_its_rate_never_above_its_burst() {
    for (rate, burst, overhead) in [
        (1_250_000u64, 15_140u64, 0u32), // 10 Mbit/s
        (12_500_000, 30_000, 24),        // 100 Mbit/s, wire overhead
        (125_000_000, 60_000, 24),       // 1 Gbit/s
    ] {
        let cfg = SchedulerConfig {
            shaper: Some(Shaper { rate, burst }),
            overhead,
            ..SchedulerConfig::default()
        };
        cfg.validate().unwrap();
        let mut s = Scheduler::new(cfg, 0);
        // Three times the rate offered in 1,500 B frames (the queue overflows within the
        // second), PMD iterations of 10 µs.
        let out = simulate(&mut s, &[(0, rate * 3, 1500)], 1, 10 * US);
        let wire = |n: usize| n as u64 + u64::from(overhead);
        let sent: u64 = out.iter().map(|&(_, _, n)| wire(n)).sum();
        // The bucket starts full: one burst leaves at once, the rest at the rate.
        let err = ((sent - burst) as f64 - rate as f64) / rate as f64;
        assert!(
            err.abs() < 0.01,
            "rate {rate}: sent {sent} over 1 s ({err:+.4})"
        );
        // In any window, at most the burst plus the rate times the window.
        for w in [100 * US, 1_000 * US, 100_000 * US] {
            let mut lo = 0;
            let mut in_window = 0u64;
            for hi in 0..out.len() {
                in_window += wire(out[hi].2);
                while out[hi].0 - out[lo].0 > w {
                    in_window -= wire(out[lo].2);
                    lo += 1;
                }
                let allowed = burst + crate::tokens::increments(rate, 0, w) + 1;
                assert!(
                    in_window <= allowed,
                    "rate {rate}, window {w} ns: {in_window} > {allowed}"
                );
            }
        }
        // Tail drop kept the queue at its limit; every frame is accounted for.
        let st = s.stats(tc(0));
        let (backlog, _) = s.backlog(tc(0));
        assert_eq!(st.enqueued_packets, st.sent_packets + backlog as u64);
        assert!(st.dropped_packets > 0);
    }
}

/// OpenConfig DP-1.10 style: a strict class plus DWRR 32:16:8:4:1, every class offered the
/// port's whole rate.
#[test]
fn strict_priority_and_dwrr_shares_under_oversubscription() {
    let rate = 12_500_000; // 100 Mbit/s
    let mut cfg = SchedulerConfig {
        shaper: Some(Shaper {
            rate,
            burst: 15_140,
        }),
        ..SchedulerConfig::default()
    };
    let weights = [(4u8, 32u32), (3, 16), (2, 8), (1, 4), (0, 1)];
    for c in 0..CLASSES {
        cfg.queues[c].strict = c == 7;
        cfg.queues[c].weight = 1;
    }
    for (c, w) in weights {
        cfg.queues[usize::from(c)].weight = w;
    }
    let mut s = Scheduler::new(cfg, 0);
    // The strict class offers 10 % of the port; the weighted ones 100 % each.
    let mut offered = vec![(7u8, rate / 10, 1000usize)];
    offered.extend(weights.iter().map(|&(c, _)| (c, rate, 1000)));
    let out = simulate(&mut s, &offered, 1, 20 * US);
    let bytes = |c: u8| -> u64 {
        out.iter()
            .filter(|&&(_, k, _)| k == c)
            .map(|&(_, _, n)| n as u64)
            .sum()
    };
    let total: u64 = out.iter().map(|&(_, _, n)| n as u64).sum();
    // The strict class gets all it offers.
    let strict = bytes(7) as f64 / (rate / 10) as f64;
    assert!(strict > 0.99, "strict class got {strict:.3} of its offer");
    // The rest is shared 32:16:8:4:1.
    let rest = (total - bytes(7)) as f64;
    let sum_w: u32 = weights.iter().map(|(_, w)| w).sum();
    for (c, w) in weights {
        let want = f64::from(w) / f64::from(sum_w);
        let got = bytes(c) as f64 / rest;
        assert!(
            (got - want).abs() <= 0.02 * want.max(0.05),
            "class {c}: {got:.4} of the weighted share, want {want:.4}"
        );
    }
    // Counter identities: in = out + dropped, per class (offered = enqueued + dropped).
    for c in 0..CLASSES as u8 {
        let st = s.stats(tc(c));
        let (backlog, backlog_bytes) = s.backlog(tc(c));
        assert_eq!(st.enqueued_packets, st.sent_packets + backlog as u64);
        assert_eq!(st.enqueued_bytes, st.sent_bytes + backlog_bytes as u64);
        assert_eq!(st.sent_bytes, bytes(c));
    }
}

#[test]
fn dwrr_three_to_one_and_rates() {
    let mut cfg = SchedulerConfig {
        shaper: Some(Shaper {
            rate: 1_000_000,
            burst: 3_000,
        }),
        ..SchedulerConfig::default()
    };
    cfg.queues[1].weight = 3;
    cfg.queues[0].weight = 1;
    // Class 2 capped at 100 kB/s; class 3 guaranteed 200 kB/s.
    cfg.queues[2].max_rate = Some(100_000);
    cfg.queues[2].weight = 100;
    cfg.queues[3].min_rate = Some(200_000);
    cfg.queues[3].weight = 1;
    cfg.validate().unwrap();
    let mut s = Scheduler::new(cfg, 0);
    let out = simulate(
        &mut s,
        &[
            (0, 1_000_000, 500),
            (1, 1_000_000, 500),
            (2, 1_000_000, 500),
            (3, 1_000_000, 500),
        ],
        2,
        50 * US,
    );
    let bytes = |c: u8| {
        out.iter()
            .filter(|o| o.1 == c)
            .map(|o| o.2 as u64)
            .sum::<u64>() as f64
    };
    let per_s = |c| bytes(c) / 2.0;
    assert!(
        (per_s(2) - 100_000.0).abs() < 3_000.0,
        "max rate: {}",
        per_s(2)
    );
    assert!(per_s(3) >= 200_000.0 * 0.98, "min rate: {}", per_s(3));
    let ratio = bytes(1) / bytes(0);
    assert!((ratio - 3.0).abs() < 0.09, "DWRR 3:1 gave {ratio:.3}");
}

#[test]
fn reconfiguring_keeps_queued_frames_and_bad_settings_are_refused() {
    let mut s = Scheduler::new(
        SchedulerConfig {
            shaper: Some(Shaper {
                rate: 1_000,
                burst: 2_000,
            }),
            ..SchedulerConfig::default()
        },
        0,
    );
    for i in 0..10 {
        s.enqueue(tc(i % 8), F(100, i % 8)).unwrap();
    }
    let mut cfg = s.config().clone();
    cfg.shaper = None;
    cfg.queues[3].weight = 9;
    s.reconfigure(cfg, 5);
    let mut n = 0;
    s.dequeue(10, usize::MAX, |_| n += 1);
    assert_eq!(n, 10, "nothing lost by the change");
    assert!(s.is_empty());

    let bad = |f: &dyn Fn(&mut SchedulerConfig)| {
        let mut c = SchedulerConfig::default();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert!(
        bad(&|c| c.shaper = Some(Shaper {
            rate: 0,
            burst: 9000
        }))
        .contains("rate")
    );
    assert!(
        bad(&|c| c.shaper = Some(Shaper {
            rate: 9,
            burst: 100
        }))
        .contains("burst")
    );
    assert!(bad(&|c| c.queues[2].weight = 0).contains("queue 2: weight"));
    assert!(bad(&|c| c.queues[1].max_rate = Some(0)).contains("queue 1"));
    assert!(
        bad(&|c| {
            c.queues[1].min_rate = Some(9);
            c.queues[1].max_rate = Some(1);
        })
        .contains("min-rate")
    );
}

#[test]
fn the_budget_caps_what_leaves_per_call() {
    let mut s = Scheduler::new(SchedulerConfig::default(), 0);
    for _ in 0..100 {
        s.enqueue(tc(7), F(64, 7)).unwrap();
    }
    assert_eq!(s.dequeue(0, 32, drop), 32);
    assert_eq!(s.backlog(tc(7)).0, 68);
}

/// Bursts that an idle scheduler lets through whole leave as they came (and count as queued
/// and sent); the moment one does not fit, it is queued and the port's rate holds.
#[test]
fn pass_through_keeps_the_rate_and_the_counts() {
    let rate = 1_250_000;
    let cfg = SchedulerConfig {
        shaper: Some(Shaper {
            rate,
            burst: 15_140,
        }),
        ..SchedulerConfig::default()
    };
    let mut s: Scheduler<F> = Scheduler::new(cfg, 0);
    // Two frames of 1,000 B in class 0, one of 500 B in class 7.
    let burst = ([2, 0, 0, 0, 0, 0, 0, 1], [2000, 0, 0, 0, 0, 0, 0, 500]);
    assert!(s.pass_through(0, &burst.0, &burst.1));
    assert_eq!(s.stats(tc(0)).sent_packets, 2);
    assert_eq!(s.stats(tc(7)).enqueued_bytes, 500);
    // 12,640 tokens left: five more such bursts fit, the sixth does not.
    for _ in 0..5 {
        assert!(s.pass_through(0, &burst.0, &burst.1));
    }
    assert!(!s.pass_through(0, &burst.0, &burst.1));
    assert_eq!(s.stats(tc(0)).sent_packets, 12);
    // Queued frames come first: no pass-through past them.
    s.enqueue(tc(0), F(1000, 0)).unwrap();
    assert!(!s.pass_through(SEC, &burst.0, &burst.1));
    // Over a second of small bursts the rate still holds (burst + rate).
    let mut s: Scheduler<F> = Scheduler::new(
        SchedulerConfig {
            shaper: Some(Shaper {
                rate,
                burst: 15_140,
            }),
            ..SchedulerConfig::default()
        },
        0,
    );
    let mut sent = 0u64;
    for step in 1..=100_000u64 {
        let t = step * 10 * US;
        let one = [1, 0, 0, 0, 0, 0, 0, 0];
        let hundred = [100, 0, 0, 0, 0, 0, 0, 0];
        if s.pass_through(t, &one, &hundred) {
            sent += 100;
        } else {
            let _ = s.enqueue(tc(0), F(100, 0));
        }
        s.dequeue(t, usize::MAX, |f| sent += f.0 as u64);
    }
    assert!(sent <= rate + 15_140, "{sent}");
    assert!(sent >= rate * 99 / 100, "{sent}");
}
