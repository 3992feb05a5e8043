//! DPDK's errors as one-line messages.

use std::ffi::CStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A DPDK call failed: what we were doing and DPDK's own words for the error.
    #[error("{what}: {reason}")]
    Call { what: String, reason: String },
    /// The request itself is wrong (bad devargs, no such queue, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An error from a call that returned `-errno` (or -1 with `rte_errno` set).
    pub(crate) fn call(what: impl Into<String>, ret: i32) -> Error {
        let code = if ret == -1 { last_errno() } else { -ret };
        Error::Call {
            what: what.into(),
            reason: strerror(code),
        }
    }
}

/// `rte_errno` of this thread.
pub(crate) fn last_errno() -> i32 {
    // SAFETY: reads this thread's rte_errno; no arguments.
    unsafe { dpdk_sys::vs_errno() }
}

/// DPDK's message for an errno value (its own codes and the libc ones).
pub(crate) fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string (static, or in a
    // per-lcore buffer that stays valid until this thread's next call), copied at once.
    unsafe {
        let s = dpdk_sys::rte_strerror(code);
        if s.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}
