//! DPDK through the safe interface, on `net_ring` loopback devices (no hugepages, no PCI, no
//! root): frames in = frames out, no mbuf leaked, bad devargs a clear error, and a device
//! removed and added again.

use dpdk::{BURST, Eal, EalArgs, EthDev, PortConfig};

fn eal() -> &'static Eal {
    let args = EalArgs {
        extra: ["--no-pci", "--no-huge", "-m", "256"]
            .map(String::from)
            .to_vec(),
        hugepages_free: 0,
    };
    Eal::init(&args).expect("EAL init")
}

fn frame(i: u64) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..22].copy_from_slice(&i.to_be_bytes());
    f
}

/// 10 M frames through a ring loopback: every one comes back intact, in order, and the pool
/// is whole afterwards.
#[test]
fn ring_loopback_loses_and_leaks_nothing() {
    let (dev, mut rxqs, mut txqs) =
        EthDev::open(eal(), "net_ring0", &PortConfig::default()).expect("open net_ring0");
    let full = dev.mbufs_available();
    assert_eq!(full, dev.info().mbufs, "a fresh pool is full");
    let (rx, tx) = (&mut rxqs[0], &mut txqs[0]);
    const TOTAL: u64 = 10_000_000;
    let (mut sent, mut received, mut bad) = (0u64, 0u64, 0u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while received < TOTAL {
        assert!(
            std::time::Instant::now() < deadline,
            "stalled: sent {sent}, received {received}"
        );
        let n = ((TOTAL - sent) as usize).min(BURST);
        let base = sent;
        sent += tx.send(
            n,
            |_| 64,
            |i, buf| buf.copy_from_slice(&frame(base + i as u64)),
        ) as u64;
        rx.recv(BURST, |f| {
            match f {
                Some(f) if f == frame(received) => {}
                _ => bad += 1,
            }
            received += 1;
        });
        assert!(received <= sent);
    }
    assert_eq!((sent, received, bad), (TOTAL, TOTAL, 0));
    assert_eq!(dev.mbufs_available(), full, "no mbuf leaked");
    let stats = dev.stats();
    assert_eq!((stats.rx_packets, stats.tx_packets), (TOTAL, TOTAL));
    assert!(dev.link().up, "a ring port's link is up");
}

/// A frame longer than a buffer is refused, not truncated; the rest of the burst goes.
#[test]
fn oversize_frames_are_not_sent() {
    let (_dev, mut rxqs, mut txqs) =
        EthDev::open(eal(), "net_ring1", &PortConfig::default()).expect("open net_ring1");
    let lens = [64usize, 9000, 100];
    let sent = txqs[0].send(3, |i| lens[i], |i, buf| buf.fill(i as u8));
    assert_eq!(sent, 2);
    let mut got = Vec::new();
    rxqs[0].recv(BURST, |f| got.push(f.map(<[u8]>::to_vec)));
    assert_eq!(got, [Some(vec![0u8; 64]), Some(vec![2u8; 100])]);
}

#[test]
fn bad_devargs_are_one_line_errors() {
    for bad in [
        "net_nosuchdriver0",
        "0000:ff:1f.7",
        "",
        "net_ring2,nodeaction=x:y:z",
    ] {
        let err = EthDev::open(eal(), bad, &PortConfig::default())
            .err()
            .unwrap_or_else(|| panic!("{bad:?} opened"));
        let msg = err.to_string();
        assert!(
            !msg.contains('\n') && msg.contains("devargs"),
            "{bad:?}: {msg}"
        );
    }
    let too_many = PortConfig {
        n_rxq: 1000,
        ..PortConfig::default()
    };
    let err = EthDev::open(eal(), "net_ring3", &too_many)
        .err()
        .expect("1000 queues");
    assert!(err.to_string().contains("at most"), "{err}");
    // The failed open released the device: it can be opened now.
    EthDev::open(eal(), "net_ring3", &PortConfig::default()).expect("net_ring3 after failure");
}

/// Dropping the port and its queues detaches the device, so the same devargs work again.
#[test]
fn a_removed_device_can_be_added_again() {
    for round in 0..3 {
        let (dev, mut rxqs, mut txqs) = EthDev::open(eal(), "net_ring4", &PortConfig::default())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(txqs[0].send(1, |_| 64, |_, b| b.fill(7)), 1);
        assert_eq!(rxqs[0].recv(BURST, |_| {}), 1);
        let again = EthDev::open(eal(), "net_ring4", &PortConfig::default());
        assert!(again.is_err(), "a device in use cannot be opened twice");
        drop((dev, rxqs, txqs));
    }
}
