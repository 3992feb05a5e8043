//! `vswitchctl capture PORT ... -w FILE`: starts a capture on the port, drains the daemon's
//! capture ring into a pcapng file (one interface, nanosecond timestamps, each packet's
//! direction in its flags and the frames missed before it as its drop count, the total in an
//! interface statistics block), and stops it at the count, the time limit, or SIGINT/SIGTERM.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};

use crate::client::Client;
use crate::commands::capture::MAX_READ;
use crate::protocol::Request;
use crate::results::{CaptureFrames, CaptureStopped, CapturedFrame};

/// Frames the daemon's ring holds between two reads.
const RING: usize = 8192;
/// Pause after a read that found nothing.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// What to capture, and where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureArgs {
    pub port: String,
    pub direction: String,
    pub count: Option<u64>,
    pub snaplen: usize,
    pub seconds: Option<u64>,
    pub file: PathBuf,
}

/// Parses `PORT [--direction D] [--count N] [--snaplen N] [--seconds N] -w FILE`.
pub fn parse_args(args: &[String]) -> Result<CaptureArgs, String> {
    let usage = "usage: capture PORT [--direction rx|tx|both] [--count N] [--snaplen N] [--seconds N] -w FILE";
    let mut port = None;
    let mut c = CaptureArgs {
        port: String::new(),
        direction: "both".into(),
        count: None,
        snaplen: 65535.min(datapath::capture::MAX_SNAPLEN),
        seconds: None,
        file: PathBuf::new(),
    };
    let mut file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("capture: {name} needs a value ({usage})"))
        };
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("capture: {name} takes a number, not {v:?}"))
        };
        match a.as_str() {
            "--direction" => {
                let d = value("--direction")?;
                if !matches!(d.as_str(), "rx" | "tx" | "both") {
                    return Err("capture: --direction is rx, tx or both".into());
                }
                c.direction = d;
            }
            "--count" => c.count = Some(num("--count", value("--count")?)?),
            "--snaplen" => c.snaplen = num("--snaplen", value("--snaplen")?)? as usize,
            "--seconds" => c.seconds = Some(num("--seconds", value("--seconds")?)?),
            "-w" => file = Some(PathBuf::from(value("-w")?)),
            p if !p.starts_with('-') && port.is_none() => port = Some(p.to_string()),
            other => return Err(format!("capture: unexpected {other:?} ({usage})")),
        }
    }
    c.port = port.ok_or_else(|| format!("capture: which port? ({usage})"))?;
    c.file = file.ok_or_else(|| format!("capture: -w FILE is required ({usage})"))?;
    Ok(c)
}

/// Runs the capture; returns the summary line.
pub fn run(socket: &Path, c: &CaptureArgs) -> Result<String, String> {
    let mut client = Client::connect(socket)?;
    let file =
        File::create(&c.file).map_err(|e| format!("cannot create {}: {e}", c.file.display()))?;
    let mut pcap = PcapNgWriter::new(BufWriter::new(file)).map_err(|e| e.to_string())?;
    pcap.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: c.snaplen as u32,
        options: vec![
            InterfaceDescriptionOption::IfName(c.port.clone().into()),
            InterfaceDescriptionOption::IfDescription("vswitch port".into()),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    })
    .map_err(|e| e.to_string())?;

    client.call(&Request::new(
        "capture-start",
        vec![
            c.port.clone(),
            c.direction.clone(),
            c.snaplen.to_string(),
            RING.to_string(),
        ],
    ))?;
    crate::server::install_signal_handlers().map_err(|e| format!("cannot handle signals: {e}"))?;
    eprintln!(
        "vswitchctl: capturing {} on {}, writing {}",
        c.direction,
        c.port,
        c.file.display()
    );
    let deadline = c.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut written = 0u64;
    // Frames missed between the first and the last frame written (what is lost after the
    // last one, once the count is reached, is not a loss of this capture).
    let mut missed = 0u64;
    let result = (|| -> Result<(), String> {
        while !crate::server::stop_requested()
            && c.count.is_none_or(|n| written < n)
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            let want = c
                .count
                .map_or(MAX_READ as u64, |n| n - written)
                .min(MAX_READ as u64);
            let got: CaptureFrames = serde_json::from_value(client.call(&Request::new(
                "capture-read",
                vec![c.port.clone(), want.to_string()],
            ))?)
            .map_err(|e| format!("malformed capture-read reply: {e}"))?;
            if got.frames.is_empty() {
                std::thread::sleep(IDLE_POLL);
            }
            for f in &got.frames {
                if written > 0 {
                    missed += f.missed_before;
                }
                write_frame(&mut pcap, f, written > 0)?;
                written += 1;
            }
            pcap.get_mut().flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    let stopped = client.call(&Request::new("capture-stop", vec![c.port.clone()]));
    result?;
    serde_json::from_value::<CaptureStopped>(stopped?)
        .map_err(|e| format!("malformed capture-stop reply: {e}"))?;
    pcap.write_pcapng_block(InterfaceStatisticsBlock {
        interface_id: 0,
        timestamp: now_ns(),
        options: vec![
            InterfaceStatisticsOption::IsbIfRecv(written + missed),
            InterfaceStatisticsOption::IsbIfDrop(missed),
        ],
    })
    .map_err(|e| e.to_string())?;
    pcap.get_mut().flush().map_err(|e| e.to_string())?;
    Ok(format!(
        "{written} frames captured on {}, {missed} missed\n",
        c.port
    ))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes one frame; `after_first` says whether losses before it count (epb_dropcount).
fn write_frame<W: Write>(
    pcap: &mut PcapNgWriter<W>,
    f: &CapturedFrame,
    after_first: bool,
) -> Result<(), String> {
    let data = unhex(&f.hex).ok_or("malformed frame in a capture-read reply")?;
    // pcapng epb_flags: bits 0-1 are the direction, 1 inbound, 2 outbound.
    let flags = if f.direction == "rx" { 1 } else { 2 };
    let mut options = vec![EnhancedPacketOption::Flags(flags)];
    if after_first && f.missed_before > 0 {
        options.push(EnhancedPacketOption::DropCount(f.missed_before));
    }
    pcap.write_pcapng_block(EnhancedPacketBlock {
        interface_id: 0,
        timestamp: Duration::from_nanos(f.unix_ns),
        original_len: f.orig_len,
        data: data.into(),
        options,
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn arguments_parse_and_errors_say_what_is_wrong() {
        let c = parse_args(&args(
            "p1 --direction rx --count 1000 --snaplen 128 -w /tmp/x.pcapng",
        ))
        .unwrap();
        assert_eq!(
            c,
            CaptureArgs {
                port: "p1".into(),
                direction: "rx".into(),
                count: Some(1000),
                snaplen: 128,
                seconds: None,
                file: "/tmp/x.pcapng".into(),
            }
        );
        assert_eq!(parse_args(&args("p1 -w f")).unwrap().direction, "both");
        for (bad, want) in [
            ("-w f", "which port"),
            ("p1", "-w FILE is required"),
            ("p1 --direction up -w f", "rx, tx or both"),
            ("p1 --count x -w f", "takes a number"),
            ("p1 -w", "needs a value"),
            ("p1 p2 -w f", "unexpected"),
        ] {
            let e = parse_args(&args(bad)).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn frames_are_written_as_pcapng_that_reads_back() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 100,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })
        .unwrap();
        let f = CapturedFrame {
            unix_ns: 1_700_000_000_123_456_789,
            direction: "tx".into(),
            orig_len: 64,
            hex: "00112233".into(),
            missed_before: 0,
        };
        write_frame(&mut w, &f, false).unwrap();
        let bytes = w.into_inner();
        let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut packets = Vec::new();
        while let Some(b) = r.next_block() {
            if let pcap_file::pcapng::Block::EnhancedPacket(p) = b.unwrap() {
                packets.push((p.timestamp, p.original_len, p.data.to_vec()));
            }
        }
        assert_eq!(
            packets,
            vec![(
                Duration::from_nanos(1_700_000_000_123_456_789),
                64,
                vec![0, 0x11, 0x22, 0x33]
            )]
        );
        assert!(unhex("0g").is_none() && unhex("abc").is_none());
    }
}
