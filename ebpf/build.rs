//! Compiles `bpf/xsk_redirect.c` into a BPF object in OUT_DIR with clang.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SRC: &str = "bpf/xsk_redirect.c";

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR not set")).join("xsk_redirect.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-target", "bpf"])
        // Debian's clang does not search the multiarch dir for the bpf target (asm/types.h).
        .arg("-I/usr/include/x86_64-linux-gnu")
        .args(["-c", SRC, "-o"])
        .arg(&out)
        .status();

    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`{clang}` failed to compile {SRC} ({s}); needs linux-libc-dev and libbpf-dev headers"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "`{clang}` not found: install clang (apt-get install clang libbpf-dev) or set CLANG=/path/to/clang"
            )
        }
        Err(e) => panic!("could not run `{clang}`: {e}"),
    }
}
