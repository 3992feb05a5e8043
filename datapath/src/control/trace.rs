//! `vswitchctl trace`: runs one frame through a bridge as its PMDs would, without sending,
//! learning or policing anything, and reports every decision: the parse, the input port's
//! trust, the slow path's steps, the datapath actions, what each output port would do with
//! the frame as modified (QoS class, tunnel header, bond member), and what each PMD's caches
//! hold for it.

use std::time::Duration;

use flowtable::{
    BridgeView, DpAction, DropReason, FlowKey, PeekMacs, TraceStep, extract, translate_traced,
};
use port_api::Packet;
use qos::Trust;

use super::Switch;
use crate::actions;
use crate::info::DpError;
use crate::pmd::{CachedDecision, ask_cache};

/// How long a trace waits for a PMD to answer about its caches (one iteration, normally
/// microseconds; an idle PMD naps 200 µs).
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);

/// Everything a trace found.
#[derive(Debug)]
pub struct Trace {
    pub in_port: String,
    /// The frame as it arrived.
    pub frame: Vec<u8>,
    /// The parsed key (after the input port's trust), or why the frame was dropped unparsed.
    pub key: Result<FlowKey, DropReason>,
    /// What the input port does to arriving frames.
    pub ingress: Vec<String>,
    pub steps: Vec<TraceStep>,
    pub actions: Vec<DpAction>,
    pub outputs: Vec<TraceOutput>,
    /// Why nothing would be sent.
    pub drop: Option<DropReason>,
    pub caches: Vec<PmdCache>,
}

/// One output of the decision: the port and the frame as it would be handed to it.
#[derive(Debug)]
pub struct TraceOutput {
    pub port: String,
    pub ofport: u32,
    pub kind: &'static str,
    pub frame: Vec<u8>,
    /// What the port would do with the frame (QoS class, encapsulation, bond member).
    pub details: Vec<(&'static str, String)>,
}

/// What one PMD's caches hold for the traced key.
#[derive(Debug)]
pub struct PmdCache {
    pub pmd: usize,
    /// None: the PMD did not answer in time. Some(None): neither cache holds the key.
    pub held: Option<Option<CachedDecision>>,
}

impl Switch {
    /// Traces `frame` arriving on port `in_port` of `bridge`, with tunnel metadata `tun`
    /// (VNI, outer source, outer destination) for a frame arriving through a tunnel port.
    pub fn trace(
        &self,
        bridge: &str,
        in_port: &str,
        frame: &[u8],
        tun: (u64, u32, u32),
    ) -> Result<Trace, DpError> {
        let ctl = self.lock();
        let b = ctl.state.bridge(bridge)?;
        let entry = b
            .port(in_port)
            .ok_or_else(|| DpError(format!("no port named {in_port} on bridge {bridge}")))?;
        let snap = b
            .snapshot
            .clone()
            .ok_or_else(|| DpError(format!("bridge {bridge} is not running yet")))?;
        let mut trace = Trace {
            in_port: entry.name.clone(),
            frame: frame.to_vec(),
            key: Err(DropReason::Runt),
            ingress: Vec::new(),
            steps: Vec::new(),
            actions: Vec::new(),
            outputs: Vec::new(),
            drop: None,
            caches: Vec::new(),
        };
        let mut pkt = if frame.len() > port_api::SMALL_FRAME {
            Packet::new_large()
        } else {
            Packet::new()
        };
        if !pkt.set_data(frame) {
            return Err(DpError(format!(
                "a {}-byte frame does not fit a packet buffer",
                frame.len()
            )));
        }
        (pkt.tun_id, pkt.tun_src, pkt.tun_dst) = tun;
        if entry.settings.vtep.is_some() {
            trace.ingress.push(
                "VTEP port: VXLAN frames to its address are decapsulated and enter the bridge through their tunnel port (trace those with in_port=TUNNEL,tun_id=VNI)".into(),
            );
        }
        let mut key = match extract(frame, entry.ofport) {
            Ok(k) => k,
            Err(reason) => {
                trace.key = Err(reason);
                trace.drop = Some(reason);
                return Ok(trace);
            }
        };
        (key.tun_id, key.tun_src, key.tun_dst) = tun;

        trace.ingress.push(match entry.settings.trust {
            Trust::Dscp => "trust dscp: the frame's DSCP (else its PCP) classes it".to_string(),
            Trust::Pcp => "trust pcp: the outer tag's PCP classes it".to_string(),
            Trust::Untrusted { dscp } => {
                format!("untrusted: DSCP re-marked to {dscp}, its PCP ignored")
            }
        });
        if let Some(ingress) = &entry.ingress {
            ingress.classify(&mut pkt, &mut key);
        }
        if entry.settings.policer.is_some() {
            trace.ingress.push(
                "policer: frames beyond its rate are dropped or re-marked (not applied in a trace)"
                    .into(),
            );
        }
        trace.key = Ok(key);

        let now_ns = self.rt.now_ns();
        let view = BridgeView {
            ports: &snap.port_nos,
            vlan_modes: &snap.vlan_modes,
            rules: &snap.rules,
        };
        let decision = {
            let macs = snap.shared.macs.lock();
            translate_traced(&key, &view, &mut PeekMacs(&macs), now_ns, &mut trace.steps)
        };
        trace.actions = decision.actions.clone();
        trace.drop = decision.drop;

        // The actions on a copy of the frame, as the pipeline runs them: each output gets the
        // frame as modified so far.
        for a in &decision.actions {
            match a {
                DpAction::Output(p) => {
                    let Some(out) = b.ports.iter().find(|e| e.ofport == *p) else {
                        continue;
                    };
                    let port = out.tx_port();
                    trace.outputs.push(TraceOutput {
                        port: out.name.clone(),
                        ofport: *p,
                        kind: port.kind(),
                        frame: pkt.data().to_vec(),
                        details: port.explain_tx(&pkt),
                    });
                }
                DpAction::Meter(_) => {}
                other => {
                    if !actions::apply(&mut pkt, other) {
                        trace.drop = Some(DropReason::TooBig);
                        break;
                    }
                }
            }
        }
        let id = b.id;
        drop(ctl);
        trace.caches = self
            .rt
            .pmds
            .iter()
            .enumerate()
            .map(|(pmd, (shared, threaded))| PmdCache {
                pmd,
                held: if *threaded {
                    ask_cache(shared, id, &key, PROBE_TIMEOUT)
                } else {
                    None
                },
            })
            .collect();
        Ok(trace)
    }
}
