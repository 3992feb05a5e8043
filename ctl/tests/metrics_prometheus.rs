//! Root integration test: a real Prometheus server (Debian's `prometheus`) scrapes
//! `vswitchd --metrics` every 250 ms while testpmd sends through two vhost-user ports; what
//! Prometheus stored matches testpmd's own counts (totals, and rates over a 12 s window of wall
//! time, within 2 %), and `promtool check metrics` accepts the exposition. (A rate's window
//! starts and ends at the nearest scrapes, so frequent scrapes keep it aligned with testpmd's.)

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::testpmd::{self, Testpmd};
use common::{Lab, wait_until};

/// GET `path` from `port` on loopback inside `ns` (through `ip netns exec ... curl`, since the
/// server listens in the switch's namespace).
fn http_get(lab: &Lab, ns: &str, url: &str) -> Option<String> {
    let o = lab.sh(ns, &["curl", "-s", "-f", "--max-time", "5", url]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The value of a Prometheus instant query that returns one series.
fn query(lab: &Lab, ns: &str, prom: u16, q: &str) -> Option<f64> {
    query_at(lab, ns, prom, q, None)
}

/// [`query`] evaluated at `at` (now when None).
fn query_at(lab: &Lab, ns: &str, prom: u16, q: &str, at: Option<SystemTime>) -> Option<f64> {
    let time = at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| format!("&time={:.3}", d.as_secs_f64()))
        .unwrap_or_default();
    let url = format!(
        "http://127.0.0.1:{prom}/api/v1/query?query={}{time}",
        q.replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('[', "%5B")
            .replace(']', "%5D"),
    );
    let body = http_get(lab, ns, &url)?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// `promtool check metrics` must accept the exposition.
fn promtool_check(exposition: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_what_testpmd_counted() {
    if !testpmd::available()
        || Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
    {
        println!("SKIP: needs dpdk-testpmd and prometheus (apt-get install dpdk-dev prometheus)");
        return;
    }
    let Some(mut lab) = Lab::new("p") else { return };
    let sw = lab.ns("sw");
    let port = 20_000 + (std::process::id() % 10_000) as u16;
    let prom_port = port + 1;
    let (sock_tx, sock_rx) = (lab.dir.join("tx.sock"), lab.dir.join("rx.sock"));
    let mut generator = Testpmd::start(
        "pg",
        "0-1",
        &[&sock_tx],
        "server=1,queue_size=256",
        &[
            "--forward-mode=txonly",
            "--txpkts=64",
            "--nb-cores=1",
            "--auto-start",
        ],
    )
    .unwrap();
    let sink = Testpmd::start(
        "ps",
        "0-1",
        &[&sock_rx],
        "server=1,queue_size=256",
        &["--forward-mode=rxonly", "--nb-cores=1", "--auto-start"],
    )
    .unwrap();
    let metrics = format!("--metrics=127.0.0.1:{port}");
    lab.start_daemon_with("d", &sw, &[&metrics]);
    lab.ctl_ok("d", &["add-br", "br0"]);
    for (p, s) in [("vtx", &sock_tx), ("vrx", &sock_rx)] {
        lab.ctl_ok(
            "d",
            &[
                "add-port",
                "br0",
                p,
                "type=vhost-user",
                &format!("path={}", s.display()),
            ],
        );
    }
    lab.ctl_ok("d", &["add-flow", "br0", "in_port=vtx,actions=output:vrx"]);
    // A scheduler on the receiver's port (shaping far above the stream): its per-class waits
    // join the latency report and the metrics.
    lab.ctl_ok("d", &["set-qos", "vrx", "max-rate=10Gbit"]);

    let cfg = lab.dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 250ms\nscrape_configs:\n  - job_name: vswitch\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let _prom = Prometheus(
        Command::new("ip")
            .args(["netns", "exec", &sw, "prometheus"])
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                lab.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    wait_until("frames at the receiver", 30, || {
        sink.counter("RX-packets:").unwrap_or(0) > 100_000
    });
    let exposition = http_get(&lab, &sw, &format!("http://127.0.0.1:{port}/metrics")).unwrap();
    for want in [
        "vswitch_port_rx_packets_total{bridge=\"br0\",port=\"vtx\",type=\"vhost-user\"}",
        "vswitch_port_vhost_user_connected{bridge=\"br0\",port=\"vrx\",type=\"vhost-user\"} 1",
        "vswitch_pmd_busy_seconds_total",
        "vswitch_build_info{version=",
    ] {
        assert!(exposition.contains(want), "{want} in\n{exposition}");
    }
    promtool_check(&exposition);

    // While frames flow: Prometheus's rate over a window of wall time agrees with what
    // testpmd's receiver counted in that window. testpmd's own Rx-pps is not used: it divides
    // by testpmd's idea of a second, which a virtual machine's clock can make 10 % off.
    wait_until("a rate in Prometheus", 30, || {
        query(
            &lab,
            &sw,
            prom_port,
            "vswitch_port_tx_packets_total{port=\"vrx\"}",
        )
        .is_some_and(|v| v > 0.0)
    });
    // A window of at least 12 s starting at a fresh block (the stream is steady by then), so a
    // few hundred milliseconds of scheduling noise in when testpmd prints stay within 2 %.
    let now_block = sink.reading("RX-packets:").map_or(0, |r| r.block);
    let first = wait_for_block(&sink, now_block + 1);
    let mut last = first;
    while last.begun.unwrap() < first.begun.unwrap() + Duration::from_secs(12) {
        last = wait_for_block(&sink, last.block);
    }
    let (t0, t1) = (first.begun.unwrap(), last.begun.unwrap());
    let secs = t1.duration_since(t0).unwrap().as_secs_f64();
    let testpmd_pps = (last.value - first.value) as f64 / secs;
    // Prometheus has scraped past t1 once a scrape interval (250 ms) has gone by.
    std::thread::sleep(Duration::from_secs(2));
    let rate_q = format!(
        "rate(vswitch_port_tx_packets_total{{port=\"vrx\"}}[{}ms])",
        (secs * 1000.0).round()
    );
    let prom_rate = query_at(&lab, &sw, prom_port, &rate_q, Some(t1)).unwrap();
    println!(
        "METRICS rate over {secs:.2} s: Prometheus {prom_rate:.0}/s, testpmd receiver {testpmd_pps:.0}/s"
    );
    assert!(prom_rate > 0.0 && testpmd_pps > 0.0);

    // Latency of the running stream (frames received on vtx): a finished 5 s window with
    // ordered, non-zero percentiles, also in the exposition.
    wait_until("a finished latency window", 15, || {
        let v: serde_json::Value =
            serde_json::from_str(&lab.ctl_ok("d", &["--format", "json", "port-latency", "vtx"]))
                .unwrap();
        v[0]["window"]["frames"].as_u64().unwrap_or(0) > 0
    });
    let v: serde_json::Value =
        serde_json::from_str(&lab.ctl_ok("d", &["--format", "json", "port-latency", "vtx"]))
            .unwrap();
    let w = &v[0]["window"];
    let q = |k: &str| w[k].as_f64().unwrap();
    println!(
        "METRICS latency vtx: {}",
        lab.ctl_ok("d", &["port-latency", "vtx"])
    );
    assert!(
        0.0 < q("p50_us")
            && q("p50_us") <= q("p90_us")
            && q("p90_us") <= q("p99_us")
            && q("p99_us") <= q("p999_us"),
        "{v}"
    );
    let exposition = http_get(&lab, &sw, &format!("http://127.0.0.1:{port}/metrics")).unwrap();
    assert!(
        exposition.contains("vswitch_port_latency_seconds{bridge=\"br0\",port=\"vtx\",window=\"5s\",quantile=\"0.99\"}"),
        "{exposition}"
    );
    assert!(
        exposition.contains("vswitch_qos_queue_latency_seconds{bridge=\"br0\",port=\"vrx\",class=\"0\",window=\"5s\",quantile=\"0.99\"}"),
        "{exposition}"
    );
    for series in [
        "vswitch_qos_queue_sent_packets_total{bridge=\"br0\",port=\"vrx\",class=\"0\"}",
        "vswitch_rxq_packets_total{port=\"vtx\",queue=\"0\",pmd=\"0\"}",
        "vswitch_tunnel_routes 0",
        "vswitch_pmd_cache_invalidated_total{",
    ] {
        assert!(exposition.contains(series), "{series} in\n{exposition}");
    }
    let text = lab.ctl_ok("d", &["port-latency"]);
    println!("METRICS port-latency:\n{text}");
    assert!(
        text.contains("waiting in the egress scheduler, per class:"),
        "{text}"
    );
    assert!(text.contains("vrx class 0"), "{text}");
    promtool_check(&exposition);

    // Stopped: the last scraped totals equal testpmd's own counts within 2 %.
    generator.stop();
    let got = sink
        .settled("RX-packets:", Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3)); // a scrape after the counts settled
    let total_q = "vswitch_port_tx_packets_total{port=\"vrx\"}";
    let prom_total = query(&lab, &sw, prom_port, total_q).unwrap();
    println!("METRICS totals: Prometheus {prom_total:.0}, testpmd receiver {got}");
    let err = (prom_total - got as f64).abs() / got as f64;
    assert!(err <= 0.02, "Prometheus {prom_total} vs testpmd {got}");
    let rate_err = (prom_rate - testpmd_pps).abs() / testpmd_pps;
    assert!(
        rate_err <= 0.02,
        "rate: Prometheus {prom_rate} vs testpmd {testpmd_pps} ({first:?} .. {last:?})"
    );
}

/// The receiver's first complete statistics block after block `after`, with its wall time.
fn wait_for_block(sink: &Testpmd, after: u64) -> bench::testpmd::Reading {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = sink.reading("RX-packets:")
            && r.block > after
            && r.begun.is_some()
        {
            return r;
        }
        assert!(Instant::now() < deadline, "no statistics from testpmd");
        std::thread::sleep(Duration::from_millis(20));
    }
}
