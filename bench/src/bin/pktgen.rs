//! vswitch-pktgen: sends UDP frames with N flows, at a set rate or flat out, out of one port and
//! counts what comes back on another, with a sequence number and a send timestamp in every
//! frame: reports Mpps, loss and latency percentiles.
//!
//! Ports: AF_XDP on kernel interfaces (`--tx-iface`, `--rx-iface`, e.g. veths towards a switch
//! under test), or `--ring`: an in-process vswitch bridge between two ring ports.
//!
//! Usage:
//!   vswitch-pktgen --tx-iface IF --rx-iface IF [--xdp-mode best-effort|native|generic]
//!   vswitch-pktgen --ring [--rules normal|port]
//!   vswitch-pktgen --tx-iface IF --random-src-mac   (a MAC flood: each frame from a new
//!           random source MAC, nothing counted back)
//!   common: [--size 64..1518] [--flows N] [--rate PPS (0 = flat out)] [--seconds S]
//!           [--count N] [--warmup S] [--drain S] [--max-loss PCT] [--dscp N]
//!           [--stream DSCP:PPS[:SIZE]]...  (several paced streams at once, each with its own
//!           DSCP, rate and size; counted and timed per stream: QoS tests)

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::histogram::Histogram;
use datapath::afxdp::{AfXdpOptions, AfXdpPort};
use datapath::packet::{Batch, MAX_BURST, PacketPool};
use datapath::port::Port;
use datapath::ring::RingPort;
use datapath::{Change, PortSettings, Switch, SwitchConfig};

/// The probe: magic (2 bytes), sequence number (8), send time in ns (8) = 18 bytes, which fits
/// the UDP payload of a 64-byte frame. The magic is this value with a tag of the run mixed in
/// ([`run_magic`]).
const MAGIC: u16 = 0x7670;

/// This run's probe magic: frames of an earlier run still on their way (held in a transmit
/// ring of a link that was down, say) are then "other frames", not this run's duplicates.
fn run_magic() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tag = (t ^ std::process::id().rotate_left(16)) as u16 ^ (t >> 16) as u16;
    match MAGIC ^ tag {
        0 => MAGIC,
        m => m,
    }
}
/// Offset of the probe payload: Ethernet 14 + IPv4 20 + UDP 8.
const PAYLOAD: usize = 42;

struct Args {
    tx_iface: Option<String>,
    rx_iface: Option<String>,
    ring: bool,
    rules: String,
    xdp_mode: String,
    size: usize,
    flows: u32,
    rate: f64,
    seconds: f64,
    count: u64,
    warmup: f64,
    /// How long to keep counting after the last frame is sent (frames queued on the way).
    drain: f64,
    /// Exit with status 4 if the loss exceeds this percentage (smoke tests).
    max_loss: Option<f64>,
    /// Every frame from a new random (unicast) source MAC: a MAC flood, as a hostile guest
    /// would send. Nothing is counted back (`--rx-iface` is not needed).
    random_src_mac: bool,
    /// DSCP of the frames (without `--stream`).
    dscp: u8,
    streams: Vec<StreamSpec>,
}

/// One paced stream of `--stream DSCP:PPS[:SIZE]`.
#[derive(Clone, Copy, Debug)]
struct StreamSpec {
    dscp: u8,
    rate: f64,
    size: usize,
}

fn parse_stream(v: &str, default_size: usize) -> Result<StreamSpec, String> {
    let bad = || format!("bad --stream {v:?} (DSCP:PPS[:SIZE])");
    let parts: Vec<&str> = v.split(':').collect();
    let (d, r, z) = match parts.as_slice() {
        [d, r] => (d, r, None),
        [d, r, z] => (d, r, Some(z)),
        _ => return Err(bad()),
    };
    let dscp: u8 = d.parse().ok().filter(|d| *d < 64).ok_or_else(bad)?;
    let rate: f64 = r.parse().ok().filter(|r: &f64| *r > 0.0).ok_or_else(bad)?;
    let size = match z {
        Some(z) => z.parse().map_err(|_| bad())?,
        None => default_size,
    };
    Ok(StreamSpec { dscp, rate, size })
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        tx_iface: None,
        rx_iface: None,
        ring: false,
        rules: "normal".into(),
        xdp_mode: "best-effort".into(),
        size: 64,
        flows: 1,
        rate: 0.0,
        seconds: 5.0,
        count: u64::MAX,
        warmup: 0.5,
        drain: 0.5,
        max_loss: None,
        random_src_mac: false,
        dscp: 0,
        streams: Vec::new(),
    };
    let mut stream_args = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|_| format!("bad number {v:?}"));
        match flag.as_str() {
            "--tx-iface" => a.tx_iface = Some(val()?),
            "--rx-iface" => a.rx_iface = Some(val()?),
            "--ring" => a.ring = true,
            "--rules" => a.rules = val()?,
            "--xdp-mode" => a.xdp_mode = val()?,
            "--size" => a.size = num(val()?)? as usize,
            "--flows" => a.flows = num(val()?)? as u32,
            "--rate" => a.rate = num(val()?)?,
            "--seconds" => a.seconds = num(val()?)?,
            "--count" => a.count = num(val()?)? as u64,
            "--warmup" => a.warmup = num(val()?)?,
            "--drain" => a.drain = num(val()?)?,
            "--max-loss" => a.max_loss = Some(num(val()?)?),
            "--random-src-mac" => a.random_src_mac = true,
            "--dscp" => {
                a.dscp = num(val()?)? as u8;
                if a.dscp > 63 {
                    return Err("--dscp must be 0-63".into());
                }
            }
            "--stream" => stream_args.push(val()?),
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    for v in &stream_args {
        a.streams.push(parse_stream(v, a.size)?);
    }
    if a.streams.is_empty() {
        a.streams.push(StreamSpec {
            dscp: a.dscp,
            rate: a.rate,
            size: a.size,
        });
    } else if a.random_src_mac {
        return Err("--stream and --random-src-mac do not go together".into());
    }
    if a.streams.len() > 16 {
        return Err("at most 16 streams".into());
    }
    if a.streams.iter().any(|s| !(64..=1518).contains(&s.size)) {
        return Err("--size must be 64-1518 (bytes on the wire, FCS included)".into());
    }
    if a.flows == 0 {
        return Err("--flows must be at least 1".into());
    }
    if !a.ring && (a.tx_iface.is_none() || (a.rx_iface.is_none() && !a.random_src_mac)) {
        return Err(format!(
            "give --tx-iface and --rx-iface, or --ring\n{}",
            usage()
        ));
    }
    Ok(a)
}

fn usage() -> String {
    "usage: vswitch-pktgen (--tx-iface IF --rx-iface IF [--xdp-mode M] | --ring [--rules normal|port]) \
     [--size 64] [--flows 1] [--rate PPS] [--seconds 5] [--count N] [--warmup 0.5] [--drain 0.5] [--dscp N]\n\
     \x20      [--stream DSCP:PPS[:SIZE]]...   (paced streams, counted per stream)\n\
     \x20      vswitch-pktgen --tx-iface IF --random-src-mac [--rate PPS] [--seconds 5]   (a MAC flood)"
        .into()
}

/// UDP destination port of stream `i`: how a received frame is told apart.
const STREAM_PORT: u16 = 9;

/// Frame of flow `flow` of stream `stream` (size without FCS = `size - 4`), probe payload
/// left zero.
fn template(flow: u32, size: usize, stream: usize, dscp: u8) -> Vec<u8> {
    let len = size - 4;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let src = 0x0a00_0000u32 | (flow >> 16);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[1] = dscp << 2;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&[10, 1, 0, 1]);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&((flow & 0xffff) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&(STREAM_PORT + stream as u16).to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// The two ports the generator uses, and what keeps them alive.
struct Rig {
    tx: Arc<dyn Port>,
    /// None when nothing is counted back (a MAC flood).
    rx: Option<Arc<dyn Port>>,
    _switch: Option<Switch>,
}

fn rig(a: &Args) -> Result<Rig, String> {
    if a.ring {
        let sw = Switch::start(SwitchConfig::default()).map_err(|e| e.to_string())?;
        sw.apply(vec![Change::AddBridge { name: "br0".into() }])
            .map_err(|e| e.to_string())?;
        let (p1, h1) = RingPort::pair("p1", "h1");
        let (p2, h2) = RingPort::pair("p2", "h2");
        for (name, port) in [("p1", p1), ("p2", p2)] {
            sw.attach_port("br0", name, Arc::new(port), PortSettings::default())
                .map_err(|e| e.to_string())?;
        }
        if a.rules == "port" {
            let rule = flowtable::parse_rule("in_port=1,actions=output:2", &|_| None)
                .map_err(|e| e.to_string())?;
            sw.apply(vec![Change::AddRule {
                bridge: "br0".into(),
                rule,
            }])
            .map_err(|e| e.to_string())?;
        }
        return Ok(Rig {
            tx: Arc::new(h1),
            rx: Some(Arc::new(h2)),
            _switch: Some(sw),
        });
    }
    let opts = AfXdpOptions {
        mode: a
            .xdp_mode
            .parse()
            .map_err(|e: datapath::afxdp::ParseXdpModeError| e.to_string())?,
        ..AfXdpOptions::default()
    };
    let open = |name: &str, ifname: &str| {
        AfXdpPort::open(name, ifname, opts.clone()).map_err(|e| e.to_string())
    };
    let tx = open("gen-tx", a.tx_iface.as_deref().unwrap_or_default())?;
    let rx = match (&a.rx_iface, a.random_src_mac) {
        (Some(ifname), false) => Some(Arc::new(open("gen-rx", ifname)?) as Arc<dyn Port>),
        _ => None,
    };
    Ok(Rig {
        tx: Arc::new(tx),
        rx,
        _switch: None,
    })
}

/// What came back of one stream.
struct Tally {
    sent: u64,
    received: u64,
    /// Frames of the stream that arrived in the measurement window, whenever they were sent:
    /// the receive rate, whatever queues (or a generator pushed back by the path) held.
    arrived_in_window: u64,
    out_of_order: u64,
    last_seq: u64,
    latency: Histogram,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sent: 0,
            received: 0,
            arrived_in_window: 0,
            out_of_order: 0,
            last_seq: 0,
            latency: Histogram::default(),
        }
    }
}

/// Counts what `rx` has for us into the tally of the stream each frame belongs to; frames that
/// are not ours are counted in `foreign`.
fn receive(
    rx: Option<&dyn Port>,
    pool: &mut PacketPool,
    tallies: &mut [Tally],
    foreign: &mut u64,
    epoch: Instant,
    (magic, count_from): (u16, u64),
    window_ns: (u64, u64),
) {
    let Some(rx) = rx else { return };
    let mut b = Batch::new();
    if rx.rx_burst(0, pool, &mut b) == 0 {
        return;
    }
    let now = epoch.elapsed().as_nanos() as u64;
    for p in b.drain() {
        let d = p.data();
        let probe = d.get(PAYLOAD..PAYLOAD + 18);
        let stream = d
            .get(36..38)
            .map(|b| u16::from_be_bytes([b[0], b[1]]).wrapping_sub(STREAM_PORT) as usize);
        match (probe, stream.and_then(|i| tallies.get_mut(i))) {
            (Some(pr), Some(t)) if u16::from_le_bytes([pr[0], pr[1]]) == magic => {
                let seq = u64::from_le_bytes(pr[2..10].try_into().unwrap_or_default());
                let ts = u64::from_le_bytes(pr[10..18].try_into().unwrap_or_default());
                if (window_ns.0..window_ns.1).contains(&now) {
                    t.arrived_in_window += 1;
                }
                if seq >= count_from {
                    t.received += 1;
                    if seq < t.last_seq {
                        t.out_of_order += 1;
                    }
                    t.last_seq = seq;
                    t.latency.record(now.saturating_sub(ts));
                }
            }
            _ => *foreign += 1,
        }
        pool.put(p);
    }
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vswitch-pktgen: {e}");
            std::process::exit(2);
        }
    };
    let rig = match rig(&a) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vswitch-pktgen: {e}");
            std::process::exit(1);
        }
    };
    // Templates per stream and flow.
    let templates: Vec<Vec<Vec<u8>>> = a
        .streams
        .iter()
        .enumerate()
        .map(|(i, st)| {
            (0..a.flows)
                .map(|f| template(f, st.size, i, st.dscp))
                .collect()
        })
        .collect();
    let mut pool = PacketPool::with_capacity(1024);
    let epoch = Instant::now();
    let mut tallies: Vec<Tally> = a.streams.iter().map(|_| Tally::new()).collect();
    let mut foreign = 0u64;
    // Frames sent during the warm-up (learning, cache fill) are not counted.
    let warm_end = epoch + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.seconds);
    let window_ns = (
        (a.warmup * 1e9) as u64,
        ((a.warmup + a.seconds) * 1e9) as u64,
    );
    let magic = run_magic();
    let mut seq: u64 = 0;
    let mut first_counted: Option<u64> = None;
    let mut counted_start = None;
    // Per stream: frames sent so far (for pacing) and the next flow.
    let mut stream_sent = vec![0u64; a.streams.len()];
    let mut next = vec![0usize; a.streams.len()];
    // Frames sent after the warm-up (what `--count` limits).
    let mut counted_sent = 0u64;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    loop {
        let now = Instant::now();
        if now >= end || counted_sent >= a.count {
            break;
        }
        if now >= warm_end && first_counted.is_none() {
            first_counted = Some(seq);
            counted_start = Some(now);
        }
        let elapsed = now.duration_since(epoch).as_secs_f64();
        let mut b = Batch::new();
        let ts = epoch.elapsed().as_nanos() as u64;
        for (i, st) in a.streams.iter().enumerate() {
            // Pacing: how many frames of this stream are due by now.
            let due = if st.rate > 0.0 {
                ((elapsed * st.rate) as u64).saturating_sub(stream_sent[i])
            } else {
                MAX_BURST as u64
            };
            let due = due.min(b.room() as u64);
            for _ in 0..due {
                let mut p = pool.get();
                let t = &templates[i][next[i]];
                let f = p.prepare(t.len());
                f.copy_from_slice(t);
                f[PAYLOAD..PAYLOAD + 2].copy_from_slice(&magic.to_le_bytes());
                f[PAYLOAD + 2..PAYLOAD + 10].copy_from_slice(&seq.to_le_bytes());
                f[PAYLOAD + 10..PAYLOAD + 18].copy_from_slice(&ts.to_le_bytes());
                if a.random_src_mac {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let r = rng.to_le_bytes();
                    // Unicast, locally administered.
                    f[6..12].copy_from_slice(&[(r[0] & 0xfc) | 0x02, r[1], r[2], r[3], r[4], r[5]]);
                }
                let _ = b.push(p);
                seq += 1;
                stream_sent[i] += 1;
                if first_counted.is_some() {
                    tallies[i].sent += 1;
                    counted_sent += 1;
                }
                next[i] = (next[i] + 1) % templates[i].len();
            }
        }
        if !b.is_empty() {
            rig.tx.tx_burst(&mut b, &mut pool);
        }
        receive(
            rig.rx.as_deref(),
            &mut pool,
            &mut tallies,
            &mut foreign,
            epoch,
            (magic, first_counted.unwrap_or(u64::MAX)),
            window_ns,
        );
    }
    // Let what is in flight arrive (bounded).
    let drain_end = Instant::now() + Duration::from_secs_f64(a.drain);
    while Instant::now() < drain_end {
        receive(
            rig.rx.as_deref(),
            &mut pool,
            &mut tallies,
            &mut foreign,
            epoch,
            (magic, first_counted.unwrap_or(u64::MAX)),
            window_ns,
        );
    }
    let secs = counted_start
        .map(|s| s.elapsed().as_secs_f64() - a.drain)
        .unwrap_or(0.0)
        .max(1e-9);
    let us = |ns: u64| ns as f64 / 1000.0;
    let loss_of = |t: &Tally| {
        if t.sent > 0 {
            100.0 * (t.sent.saturating_sub(t.received)) as f64 / t.sent as f64
        } else {
            0.0
        }
    };
    let sent: u64 = tallies.iter().map(|t| t.sent).sum();
    let received: u64 = tallies.iter().map(|t| t.received).sum();
    let reordered: u64 = tallies.iter().map(|t| t.out_of_order).sum();
    let mut latency = Histogram::default();
    for t in &tallies {
        latency.merge(&t.latency);
    }
    let loss = if sent > 0 {
        100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
    } else {
        0.0
    };
    let rate = match a.streams.as_slice() {
        [one] if one.rate > 0.0 => format!("{:.0} pps", one.rate),
        [_] => "flat out".into(),
        many => format!("{} streams", many.len()),
    };
    println!(
        "pktgen: size {} B, {} flow(s), rate {rate}, {:.1} s: sent {} ({:.3} Mpps), received {} ({:.3} Mpps), loss {:.2} %",
        a.streams[0].size,
        a.flows,
        secs,
        sent,
        sent as f64 / secs / 1e6,
        received,
        received as f64 / secs / 1e6,
        loss
    );
    println!(
        "pktgen: latency us P50 {:.1} P90 {:.1} P99 {:.1} max {:.1}; reordered {}, other frames {}",
        us(latency.percentile(50.0)),
        us(latency.percentile(90.0)),
        us(latency.percentile(99.0)),
        us(latency.max()),
        reordered,
        foreign
    );
    println!(
        "PKTGEN_RESULT sent={} received={} tx_mpps={:.4} rx_mpps={:.4} loss_pct={:.3} p50_us={:.1} p90_us={:.1} p99_us={:.1}",
        sent,
        received,
        sent as f64 / secs / 1e6,
        received as f64 / secs / 1e6,
        loss,
        us(latency.percentile(50.0)),
        us(latency.percentile(90.0)),
        us(latency.percentile(99.0))
    );
    {
        for (i, (st, t)) in a.streams.iter().zip(&tallies).enumerate() {
            // Frame bits without FCS (as a shaper with no overhead counts them) that arrived in
            // the window.
            let rx_mbps = t.arrived_in_window as f64 * (st.size - 4) as f64 * 8.0 / a.seconds / 1e6;
            println!(
                "PKTGEN_STREAM stream={i} dscp={} size={} sent={} received={} loss_pct={:.3} rx_mbps={:.3} p50_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.1}",
                st.dscp,
                st.size,
                t.sent,
                t.received,
                loss_of(t),
                rx_mbps,
                us(t.latency.percentile(50.0)),
                us(t.latency.percentile(90.0)),
                us(t.latency.percentile(99.0)),
                us(t.latency.max()),
            );
        }
    }
    if received == 0 && !a.random_src_mac {
        eprintln!("vswitch-pktgen: nothing came back");
        std::process::exit(3);
    }
    if let Some(max) = a.max_loss
        && loss > max
    {
        eprintln!("vswitch-pktgen: loss {loss:.3} % is above the allowed {max} %");
        std::process::exit(4);
    }
}
