//! vhost-user ports of the real vswitchd with DPDK testpmd as the front-end (root, testpmd):
//! frames cross the switch with the right count, multiqueue, a vswitchd restart and a
//! front-end restart are both recovered from without touching the other side.

mod common;

use std::time::{Duration, Instant};

use bench::testpmd::{self, Testpmd};
use common::Lab;

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn port_json(lab: &Lab, port: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&lab.ctl_ok("d", &["--format", "json", "dump-ports", "br0"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port)
        .cloned()
        .unwrap()
}

#[test]
fn testpmd_through_vswitchd_survives_restarts() {
    if !testpmd::available() {
        println!("SKIP: dpdk-testpmd not installed (apt-get install dpdk-dev)");
        return;
    }
    let Some(mut lab) = Lab::new("v") else { return };
    let sw = lab.ns("sw");
    let (sock_tx, sock_rx) = (lab.dir.join("tx.sock"), lab.dir.join("rx.sock"));
    // The generator (txonly, 2 queue pairs) and the receiver (rxonly) listen; vswitchd connects.
    let mut generator = start_generator("g", &sock_tx);
    let mut sink = Testpmd::start(
        "s",
        "0-1",
        &[&sock_rx],
        "server=1,queue_size=256",
        &["--forward-mode=rxonly", "--nb-cores=1", "--auto-start"],
    )
    .unwrap();
    lab.start_daemon("d", &sw);
    lab.ctl_ok("d", &["add-br", "br0"]);
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "vtx",
            "type=vhost-user",
            &format!("path={}", sock_tx.display()),
        ],
    );
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "vrx",
            "type=vhost-user",
            &format!("path={}", sock_rx.display()),
        ],
    );
    lab.ctl_ok("d", &["add-flow", "br0", "in_port=vtx,actions=output:vrx"]);

    wait_until("frames at the receiver", 30, || {
        sink.counter("RX-packets:").unwrap_or(0) > 10_000
    });
    let status = port_json(&lab, "vtx");
    let show = lab.ctl_ok("d", &["show"]);
    assert!(show.contains("connected=yes"), "{show}");
    assert!(
        show.contains("queue_pairs=2/"),
        "both queue pairs of the generator run:\n{show}"
    );
    assert!(status["rx_packets"].as_u64().unwrap() > 10_000, "{status}");
    let pmd = lab.ctl_ok("d", &["pmd-stats"]);
    assert!(
        pmd.contains("vtx queue 0") && pmd.contains("vtx queue 1"),
        "{pmd}"
    );

    // Every frame the switch took in was sent on or counted as dropped.
    generator.stop();
    let got0 = settled(&sink);
    let (sent0, _) = forwarded(&lab);

    // The front-end comes back: the client port reconnects by itself.
    let mut generator = start_generator("h", &sock_tx);
    wait_until("traffic after the generator restarted", 30, || {
        sink.counter("RX-packets:").unwrap_or(0) > got0 + 10_000
    });

    // Count check on a running ring: stop the generator, let the pipe drain, then what the
    // switch sent to the receiver since the baseline is what the receiver got.
    generator.stop();
    let got = settled(&sink);
    let (sent, _) = forwarded(&lab);
    assert_eq!(
        got - got0,
        sent - sent0,
        "receiver count equals switch tx count\n{}",
        sink.output()
    );

    // vswitchd restarts: the ports come back from the state file and reconnect; the front-ends
    // were not touched.
    let generator = start_generator("i", &sock_tx);
    wait_until("traffic from the third generator", 30, || {
        sink.counter("RX-packets:").unwrap_or(0) > got + 1_000
    });
    lab.restart_daemon("d", &sw);
    let before = sink.counter("RX-packets:").unwrap_or(0);
    wait_until("traffic after the vswitchd restart", 30, || {
        sink.counter("RX-packets:").unwrap_or(0) > before + 10_000
    });
    let mut generator = generator;
    assert!(
        generator.is_running() && sink.is_running(),
        "front-ends kept running"
    );
}

fn start_generator(tag: &str, sock: &std::path::Path) -> Testpmd {
    Testpmd::start(
        tag,
        "0-1",
        &[sock],
        "server=1,queue_size=256,queues=2",
        &[
            "--forward-mode=txonly",
            "--txpkts=64",
            "--rxq=2",
            "--txq=2",
            "--nb-cores=1",
            "--auto-start",
        ],
    )
    .unwrap()
}

/// The receiver's count once two readings a statistics period apart agree.
fn settled(sink: &Testpmd) -> u64 {
    let mut last = sink.counter("RX-packets:").unwrap_or(0);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(1100));
        let now = sink.counter("RX-packets:").unwrap_or(0);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("receiver counters never settled")
}

/// What the switch sent to the receiver; checks that every frame it took in from the generator
/// was sent or counted as dropped.
fn forwarded(lab: &Lab) -> (u64, u64) {
    let vrx = port_json(lab, "vrx");
    let vtx = port_json(lab, "vtx");
    let sent = vrx["tx_packets"].as_u64().unwrap();
    let dropped = vrx["tx_dropped"].as_u64().unwrap();
    let rx = vtx["rx_packets"].as_u64().unwrap();
    assert_eq!(
        rx,
        sent + dropped,
        "every frame received is sent or counted as dropped"
    );
    (sent, dropped)
}
