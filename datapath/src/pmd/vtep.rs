//! The receive path of a VTEP port: ARP for the VTEP address is answered, VXLAN packets for
//! local tunnel ports continue decapsulated on those ports' bridges, the rest is switched as
//! usual.

use crate::capture::Direction;
use crate::packet::{Batch, PacketPool};
use crate::pipeline::{BridgeLocal, process_batch};
use crate::tunnel::{Terminated, terminate};

use super::Snapshot;

/// Per-PMD buffers of the VTEP receive path.
#[derive(Default)]
pub(crate) struct RxScratch {
    pass: Batch,
    /// One batch per tunnel port of the snapshot.
    decap: Vec<Batch>,
    replies: Vec<[u8; 60]>,
}

impl RxScratch {
    /// One decapsulation batch per tunnel port (batches are empty between bursts).
    pub(crate) fn resize(&mut self, tunnel_ports: usize) {
        self.decap.resize_with(tunnel_ports, Batch::new);
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn receive(
    snap: &Snapshot,
    locals: &mut [BridgeLocal],
    bridge: usize,
    port: usize,
    batch: &mut Batch,
    pool: &mut PacketPool,
    now_ns: u64,
    scratch: &mut RxScratch,
) {
    let Some(bp) = snap.bridges.get(bridge).and_then(|b| b.ports.get(port)) else {
        batch.recycle(pool);
        return;
    };
    let Some(vtep) = &bp.vtep else {
        batch.recycle(pool);
        return;
    };
    scratch.pass.set_csum_marks(batch.csum_marks());
    for mut p in batch.drain() {
        match terminate(
            p.data(),
            vtep,
            &snap.tunnels,
            &snap.tunnel_ports,
            &mut scratch.replies,
        ) {
            Terminated::Pass => {
                let _ = scratch.pass.push(p);
            }
            Terminated::Consumed => pool.put(p),
            Terminated::Drop(reason) => {
                bp.drops.add(reason, 1);
                pool.put(p);
            }
            Terminated::Decap {
                target,
                vni,
                src,
                dst,
                offset,
                len,
            } => {
                let (_, start, _) = p.raw_mut();
                if !p.set_bounds(start + offset, len) {
                    bp.drops.add(flowtable::DropReason::TnlMalformed, 1);
                    pool.put(p);
                    continue;
                }
                p.tun_id = u64::from(vni);
                p.tun_src = u32::from(src);
                p.tun_dst = u32::from(dst);
                match scratch.decap.get_mut(target) {
                    Some(b) => {
                        let _ = b.push(p);
                    }
                    None => pool.put(p),
                }
            }
        }
    }
    if !scratch.replies.is_empty() {
        let mut out = Batch::new();
        for r in scratch.replies.drain(..) {
            let mut p = pool.get();
            p.set_data(&r);
            let _ = out.push(p);
        }
        if bp.tap.armed(Direction::Tx) {
            bp.tap.record(Direction::Tx, out.as_slice());
        }
        bp.port.tx_burst(&mut out, pool);
    }
    if !scratch.pass.is_empty() {
        match (snap.bridges.get(bridge), locals.get_mut(bridge)) {
            (Some(b), Some(local)) => {
                process_batch(b, local, port, &mut scratch.pass, pool, now_ns)
            }
            _ => scratch.pass.recycle(pool),
        }
    }
    for (i, b) in scratch.decap.iter_mut().enumerate() {
        if b.is_empty() {
            continue;
        }
        let Some(t) = snap.tunnel_ports.get(i) else {
            b.recycle(pool);
            continue;
        };
        let bytes: usize = b.iter().map(|p| p.len()).sum();
        t.vxlan.count_rx(b.len() as u64, bytes as u64);
        match (snap.bridges.get(t.bridge), locals.get_mut(t.bridge)) {
            (Some(tb), Some(local)) => {
                if let Some(tp) = tb.ports.get(t.port)
                    && tp.tap.armed(Direction::Rx)
                {
                    tp.tap.record(Direction::Rx, b.as_slice());
                }
                process_batch(tb, local, t.port, b, pool, now_ns)
            }
            _ => b.recycle(pool),
        }
    }
}
