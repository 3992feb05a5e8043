//! A port that takes everything and sends it nowhere: the sink of pipeline benchmarks.

use datapath::counter::Counter;
use datapath::packet::{Batch, PacketPool};
use datapath::port::{Port, PortStats};

#[derive(Default)]
pub struct NullPort {
    name: String,
    tx_packets: Counter,
    tx_bytes: Counter,
}

impl NullPort {
    pub fn new(name: &str) -> Self {
        NullPort {
            name: name.into(),
            ..Default::default()
        }
    }
}

impl Port for NullPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "null"
    }

    fn rx_burst(&self, _qid: usize, _pool: &mut PacketPool, _out: &mut Batch) -> usize {
        0
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let n = pkts.len();
        let bytes: usize = pkts.iter().map(|p| p.len()).sum();
        self.tx_packets.add(n as u64);
        self.tx_bytes.add(bytes as u64);
        pkts.recycle(pool);
        n
    }

    fn link_up(&self) -> bool {
        true
    }

    fn stats(&self) -> PortStats {
        PortStats {
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            ..Default::default()
        }
    }
}
