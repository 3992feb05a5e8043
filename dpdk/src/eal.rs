//! DPDK's Environment Abstraction Layer: initialised once per process, on first use.
//!
//! vswitch runs its own PMD threads, so the EAL gets one lcore (the thread that initialises
//! it) and launches nothing. DPDK pins that thread, so its CPU affinity is put back afterwards:
//! the switch places its threads itself.

use std::ffi::CString;
use std::sync::OnceLock;

use crate::error::{Error, strerror};

/// The EAL command line: our defaults, with the operator's arguments after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EalArgs {
    /// The operator's EAL arguments (`vswitchd --dpdk-eal "..."`), e.g. `-a 0000:03:00.1`,
    /// `--socket-mem 1024`, `--no-pci`. A default is left out when these set the same thing.
    pub extra: Vec<String>,
    /// Hugepages free on the host; without any, the EAL runs on ordinary memory (`--no-huge`).
    pub hugepages_free: u64,
}

impl EalArgs {
    pub fn new(extra: Vec<String>) -> EalArgs {
        EalArgs {
            extra,
            hugepages_free: hugepages_free(),
        }
    }

    /// The full argument list after the program name.
    pub fn argv(&self, main_cpu: usize) -> Vec<String> {
        let has = |opts: &[&str]| {
            self.extra.iter().any(|a| {
                opts.iter()
                    .any(|o| a == o || a.starts_with(&format!("{o}=")))
            })
        };
        let mut v = Vec::new();
        if !has(&["-l", "--lcores", "-c"]) {
            v.extend(["-l".to_string(), main_cpu.to_string()]);
        }
        if !has(&["--file-prefix"]) {
            v.push(format!("--file-prefix=vswitchd-{}", std::process::id()));
        }
        let no_huge = if has(&["--no-huge"]) {
            true
        } else if self.hugepages_free == 0 && !has(&["-m", "--socket-mem", "--in-memory"]) {
            v.extend(["--no-huge".to_string(), "-m".to_string(), "512".to_string()]);
            true
        } else {
            false
        };
        // No files under /var/run/dpdk, no multi-process channel: one switch, one process.
        // (`--in-memory` is refused with `--no-huge`, which needs `--no-shconf` instead.)
        let private = if no_huge {
            "--no-shconf"
        } else {
            "--in-memory"
        };
        if !has(&["--in-memory", "--no-shconf"]) {
            v.push(private.into());
        }
        if !has(&["--telemetry", "--no-telemetry"]) {
            v.push("--no-telemetry".into());
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

/// Free hugepages of the default size, from /proc/meminfo (0 if unreadable).
fn hugepages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Proof that the EAL is up. Only [`Eal::init`] makes one.
#[derive(Debug)]
pub struct Eal {
    argv: Vec<String>,
}

static EAL: OnceLock<Result<Eal, Error>> = OnceLock::new();

impl Eal {
    /// Initialises the EAL with `args` the first time; later calls return that first outcome
    /// (the EAL cannot be initialised twice in a process, nor retried after a failure).
    pub fn init(args: &EalArgs) -> Result<&'static Eal, Error> {
        EAL.get_or_init(|| init_once(args))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The EAL if it is up.
    pub fn get() -> Option<&'static Eal> {
        EAL.get().and_then(|r| r.as_ref().ok())
    }

    /// The arguments it was started with.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Gives the calling thread an lcore id, so that it uses mempool caches (cheaper buffer
    /// allocation). Harmless to call again; a failure (all lcore ids taken) only loses the
    /// caches.
    pub fn register_thread(&self) {
        // SAFETY: both calls only read or set this thread's lcore id.
        unsafe {
            if dpdk_sys::rte_lcore_id() == u32::MAX {
                dpdk_sys::rte_thread_register();
            }
        }
    }
}

fn init_once(args: &EalArgs) -> Result<Eal, Error> {
    let saved = cpu_affinity();
    let main_cpu = saved
        .as_ref()
        .and_then(|set| (0..libc::CPU_SETSIZE as usize).find(|&c| unsafe_cpu_isset(c, set)))
        .unwrap_or(0);
    let argv = args.argv(main_cpu);
    let mut owned = vec![CString::new("vswitchd").expect("no NUL")];
    for a in &argv {
        owned.push(
            CString::new(a.as_str())
                .map_err(|_| Error::Invalid(format!("EAL argument {a:?} has a NUL byte")))?,
        );
    }
    // The EAL may keep pointers into argv for the life of the process: leak it (once).
    let owned: &'static [CString] = Box::leak(owned.into_boxed_slice());
    let ptrs: &'static mut [*mut libc::c_char] = Box::leak(
        owned
            .iter()
            .map(|c| c.as_ptr().cast_mut())
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    // SAFETY: argc matches the array, every entry is a NUL-terminated string that lives for
    // the rest of the process (leaked above); the EAL may reorder the array, which is ours.
    let ret = unsafe { dpdk_sys::rte_eal_init(ptrs.len() as i32, ptrs.as_mut_ptr()) };
    if let Some(set) = saved {
        set_cpu_affinity(&set);
    }
    if ret < 0 {
        let code = crate::error::last_errno();
        return Err(Error::Call {
            what: format!("DPDK EAL init with `{}`", argv.join(" ")),
            reason: strerror(code),
        });
    }
    Ok(Eal { argv })
}

fn cpu_affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data (all zeroes is the empty set); sched_getaffinity writes
    // at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
            .then_some(set)
    }
}

fn set_cpu_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
    }
}

fn unsafe_cpu_isset(cpu: usize, set: &libc::cpu_set_t) -> bool {
    // SAFETY: CPU_ISSET only reads the set; `cpu` < CPU_SETSIZE (the caller's range).
    unsafe { libc::CPU_ISSET(cpu, set) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str], huge: u64) -> EalArgs {
        EalArgs {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            hugepages_free: huge,
        }
    }

    #[test]
    fn defaults_give_way_to_the_operators_arguments() {
        let pid = std::process::id();
        assert_eq!(
            args(&[], 0).argv(1),
            [
                "-l".to_string(),
                "1".into(),
                format!("--file-prefix=vswitchd-{pid}"),
                "--no-huge".into(),
                "-m".into(),
                "512".into(),
                "--no-shconf".into(),
                "--no-telemetry".into()
            ]
        );
        let with_huge = args(&["--socket-mem", "1024", "--file-prefix=x", "-l", "3"], 512);
        assert_eq!(
            with_huge.argv(0),
            [
                "--in-memory",
                "--no-telemetry",
                "--socket-mem",
                "1024",
                "--file-prefix=x",
                "-l",
                "3"
            ]
        );
    }
}
