//! vhost-user ports of the real vswitchd with DPDK testpmd as the front-end (root, testpmd):
//! frames cross the switch with the right count, multiqueue, a vswitchd restart and a
//! front-end restart are both recovered from without touching the other side, and the switch's
//! counters match what the receiver got across both.

mod common;

use std::time::Duration;

use bench::testpmd::{self, Testpmd};
use common::{Lab, wait_until};

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

    // The front-end comes back: the client port reconnects by itself, and its counters and the
    // receiver's keep counting (the switch's counters, not testpmd's printout, show it moved).
    let mut generator = start_generator("h", &sock_tx);
    let rx0 = port_json(&lab, "vtx")["rx_packets"].as_u64().unwrap();
    wait_until(
        "the switch receiving from the restarted generator",
        30,
        || port_json(&lab, "vtx")["rx_packets"].as_u64().unwrap() > rx0 + 10_000,
    );
    generator.stop();
    let got = settled(&sink);
    let (sent, _) = forwarded(&lab);
    assert!(sent > sent0, "the switch sent nothing after the reconnect");
    assert_eq!(
        got - got0,
        sent - sent0,
        "receiver count equals switch tx count after a front-end reconnect\n{}",
        sink.output()
    );

    // vswitchd restarts under traffic: the ports come back from the state file and reconnect;
    // the front-ends were not touched.
    let mut generator = start_generator("i", &sock_tx);
    wait_until("traffic from the third generator", 30, || {
        port_json(&lab, "vtx")["rx_packets"].as_u64().unwrap() > 1_000
            && sink.counter("RX-packets:").unwrap_or(0) > got
    });
    lab.restart_daemon("d", &sw);
    // A new daemon's counters start from zero.
    wait_until("traffic through the restarted vswitchd", 30, || {
        port_json(&lab, "vrx")["tx_packets"].as_u64().unwrap() > 10_000
    });
    assert!(
        generator.is_running() && sink.is_running(),
        "front-ends kept running"
    );
    generator.stop();
    let got1 = settled(&sink);
    let (sent1, _) = forwarded(&lab);
    let rx1 = port_json(&lab, "vtx")["rx_packets"].as_u64().unwrap();

    // And they keep counting exactly after the restart too.
    let mut generator = start_generator("j", &sock_tx);
    wait_until("traffic from the fourth generator", 30, || {
        port_json(&lab, "vtx")["rx_packets"].as_u64().unwrap() > rx1 + 10_000
    });
    generator.stop();
    let got2 = settled(&sink);
    let (sent2, _) = forwarded(&lab);
    assert_eq!(
        got2 - got1,
        sent2 - sent1,
        "receiver count equals switch tx count after a vswitchd restart\n{}",
        sink.output()
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

/// The receiver's count once two of its statistics blocks, printed after the traffic stopped,
/// agree. (testpmd prints a block every `--stats-period` by its own timer, about every 2 s of
/// wall time on some machines: a wall-clock interval between two reads can see the same stale
/// block twice.)
fn settled(sink: &Testpmd) -> u64 {
    sink.settled("RX-packets:", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("receiver counters never settled\n{}", sink.output()))
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
