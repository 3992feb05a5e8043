//! `vswitchctl capture`, the control side: starts, drains and stops a port's capture point
//! (see [`crate::capture`]).

use std::sync::Arc;

use super::Switch;
use crate::capture::{CaptureRead, CaptureSpec, MAX_RING, MAX_SNAPLEN, Tap};
use crate::info::DpError;

impl Switch {
    fn tap(&self, port: &str) -> Result<Arc<Tap>, DpError> {
        let ctl = self.lock();
        let (_, p) = ctl
            .state
            .find_port(port)
            .ok_or_else(|| DpError(format!("no port named {port}")))?;
        Ok(p.tap.clone())
    }

    /// Starts capturing on `port`. One capture per port at a time; one nobody reads for
    /// [`crate::capture::IDLE_TIMEOUT`] is stopped.
    pub fn capture_start(&self, port: &str, spec: CaptureSpec) -> Result<(), DpError> {
        if !(spec.rx || spec.tx) {
            return Err(DpError("capture: no direction to capture".into()));
        }
        if spec.snaplen == 0 || spec.snaplen > MAX_SNAPLEN {
            return Err(DpError(format!(
                "capture: snaplen must be 1 to {MAX_SNAPLEN} bytes"
            )));
        }
        if spec.ring == 0 || spec.ring > MAX_RING {
            return Err(DpError(format!(
                "capture: the ring holds 1 to {MAX_RING} frames"
            )));
        }
        if !self.tap(port)?.start(spec) {
            return Err(DpError(format!("port {port} is being captured already")));
        }
        Ok(())
    }

    /// Takes up to `max` captured frames from `port`.
    pub fn capture_read(&self, port: &str, max: usize) -> Result<CaptureRead, DpError> {
        self.tap(port)?
            .read(max)
            .ok_or_else(|| DpError(format!("no capture is running on {port}")))
    }

    /// Stops the capture on `port`; returns the frames it missed.
    pub fn capture_stop(&self, port: &str) -> Result<u64, DpError> {
        self.tap(port)?
            .stop()
            .ok_or_else(|| DpError(format!("no capture is running on {port}")))
    }
}
