//! Loader for the XDP program behind AF_XDP ports.
//!
//! `bpf/xsk_redirect.c` is compiled by `build.rs` with clang and embedded here. [`XskRedirect`]
//! loads it with aya, attaches it to an interface (native or generic XDP) and fills its XSKMAP
//! with AF_XDP sockets, one per receive queue. Frames on a queue without a socket are passed to
//! the kernel stack. Dropping the [`XskRedirect`] detaches the program.

use std::os::fd::AsRawFd;

use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId};

/// The compiled XDP object.
static XSK_REDIRECT_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xsk_redirect.bpf.o"));

const PROGRAM: &str = "xsk_redirect";
const XSKS_MAP: &str = "xsks_map";
const COUNTERS_MAP: &str = "xsk_counters";
/// Size of `xsks_map`: the highest queue number a socket can be registered for, plus one.
pub const MAX_QUEUES: u32 = 64;

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Driver (native) XDP only.
    Native,
    /// Generic (skb) XDP only: works on any interface, slower.
    Generic,
    /// Native first, generic if the driver refuses.
    #[default]
    Auto,
}

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("interface {0:?} not found")]
    InterfaceNotFound(String),
    #[error("loading the XDP program failed (needs root or CAP_BPF + CAP_NET_ADMIN): {0}")]
    Load(String),
    #[error("XDP attach failed on {ifname} ({mode}): {cause}")]
    Attach {
        ifname: String,
        mode: &'static str,
        cause: String,
    },
    #[error("queue {queue} is out of range (the XSKMAP has {MAX_QUEUES} entries)")]
    QueueOutOfRange { queue: u32 },
    #[error("registering the AF_XDP socket for queue {queue} in the XSKMAP failed: {cause}")]
    Register { queue: u32, cause: String },
    #[error("reading the XDP counters failed: {0}")]
    Counters(String),
}

/// The `xsk_redirect` program attached to one interface. Detached on drop.
pub struct XskRedirect {
    // Field order is drop order: the maps and the link go before the object that owns them.
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    link: Option<XdpLinkId>,
    ebpf: Ebpf,
    ifname: String,
    mode: &'static str,
    /// Why the driver refused native XDP, when `Auto` fell back to generic.
    native_refused: Option<String>,
}

impl std::fmt::Debug for XskRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskRedirect")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .finish()
    }
}

impl XskRedirect {
    /// Loads the program and attaches it to `ifname` (in the calling thread's network namespace).
    pub fn attach(ifname: &str, mode: XdpAttachMode) -> Result<XskRedirect, EbpfError> {
        if_index(ifname)?;
        raise_memlock_limit();

        let mut ebpf = Ebpf::load(XSK_REDIRECT_OBJ).map_err(|e| EbpfError::Load(chain(&e)))?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| EbpfError::Load(format!("program {PROGRAM} missing from the object")))?
            .try_into()
            .map_err(|e: ProgramError| EbpfError::Load(chain(&e)))?;
        program.load().map_err(|e| EbpfError::Load(chain(&e)))?;

        let attach_err = |mode: &'static str, e: ProgramError| EbpfError::Attach {
            ifname: ifname.to_string(),
            mode,
            cause: chain(&e),
        };
        let mut native_refused = None;
        let (link, mode) = match mode {
            XdpAttachMode::Native => (
                program
                    .attach(ifname, XdpMode::Driver)
                    .map_err(|e| attach_err("native", e))?,
                "native",
            ),
            XdpAttachMode::Generic => (
                program
                    .attach(ifname, XdpMode::Skb)
                    .map_err(|e| attach_err("generic", e))?,
                "generic",
            ),
            XdpAttachMode::Auto => match program.attach(ifname, XdpMode::Driver) {
                Ok(link) => (link, "native"),
                Err(native) => match program.attach(ifname, XdpMode::Skb) {
                    Ok(link) => {
                        native_refused = Some(chain(&native));
                        (link, "generic")
                    }
                    Err(generic) => {
                        return Err(EbpfError::Attach {
                            ifname: ifname.to_string(),
                            mode: "native, then generic",
                            cause: format!(
                                "native: {}; generic: {}",
                                chain(&native),
                                chain(&generic)
                            ),
                        });
                    }
                },
            },
        };

        let missing = |name: &str| EbpfError::Load(format!("map {name} missing from the object"));
        let xsks = ebpf.take_map(XSKS_MAP).ok_or_else(|| missing(XSKS_MAP))?;
        let xsks = XskMap::try_from(xsks).map_err(|e| EbpfError::Load(chain(&e)))?;
        let counters = ebpf
            .take_map(COUNTERS_MAP)
            .ok_or_else(|| missing(COUNTERS_MAP))?;
        let counters = PerCpuArray::try_from(counters).map_err(|e| EbpfError::Load(chain(&e)))?;

        Ok(XskRedirect {
            xsks,
            counters,
            link: Some(link),
            ebpf,
            ifname: ifname.to_string(),
            mode,
            native_refused,
        })
    }

    /// `"native"` or `"generic"`: how the program is actually attached.
    pub fn mode_in_use(&self) -> &'static str {
        self.mode
    }

    /// Why native XDP was refused, if the program runs generic after trying native.
    pub fn native_refused(&self) -> Option<&str> {
        self.native_refused.as_deref()
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Directs frames received on `queue` to the AF_XDP socket `socket` (bound to that queue of
    /// this interface). Accepts anything with a descriptor: `BorrowedFd`, `RawFd`, the socket.
    pub fn register_socket(&mut self, queue: u32, socket: impl AsRawFd) -> Result<(), EbpfError> {
        if queue >= MAX_QUEUES {
            return Err(EbpfError::QueueOutOfRange { queue });
        }
        self.xsks
            .set(queue, socket, 0)
            .map_err(|e| EbpfError::Register {
                queue,
                cause: chain(&e),
            })
    }

    /// Stops redirecting `queue` (frames go to the kernel stack again). Closing the socket has
    /// the same effect.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), EbpfError> {
        if queue >= MAX_QUEUES {
            return Err(EbpfError::QueueOutOfRange { queue });
        }
        self.xsks.unset(queue).map_err(|e| EbpfError::Register {
            queue,
            cause: chain(&e),
        })
    }

    /// Frames (redirected to a socket, passed to the stack), summed over CPUs.
    pub fn counters(&self) -> Result<(u64, u64), EbpfError> {
        let sum = |idx: u32| -> Result<u64, EbpfError> {
            let values = self
                .counters
                .get(&idx, 0)
                .map_err(|e| EbpfError::Counters(chain(&e)))?;
            Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok((sum(0)?, sum(1)?))
    }
}

impl Drop for XskRedirect {
    fn drop(&mut self) {
        // Dropping `ebpf` would detach the link too; do it explicitly so it happens first and
        // does not depend on aya's internals.
        if let Some(link) = self.link.take()
            && let Some(program) = self.ebpf.program_mut(PROGRAM)
            && let Ok(xdp) = <&mut Xdp>::try_from(program)
            && let Err(e) = xdp.detach(link)
        {
            tracing::warn!(ifname = %self.ifname, "detaching the XDP program failed: {e}");
        }
    }
}

/// `e` and its sources, `: `-separated (aya puts the OS error in the source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = s.source();
    }
    msg
}

fn if_index(ifname: &str) -> Result<u32, EbpfError> {
    let not_found = || EbpfError::InterfaceNotFound(ifname.to_string());
    let c_name = std::ffi::CString::new(ifname).map_err(|_| not_found())?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(not_found())
    } else {
        Ok(index)
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. Newer ones use memcg accounting, and
/// the call may be refused in containers: failure is ignored.
fn raise_memlock_limit() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_embedded() {
        assert_eq!(&XSK_REDIRECT_OBJ[..4], b"\x7fELF");
    }

    #[test]
    fn missing_interface_is_reported() {
        let err = XskRedirect::attach("vsw-no-such-if0", XdpAttachMode::Auto).unwrap_err();
        assert_eq!(err.to_string(), "interface \"vsw-no-such-if0\" not found");
    }
}
