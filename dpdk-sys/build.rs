//! Generates the DPDK bindings and compiles the wrappers of DPDK's static inline functions.

use std::env;
use std::path::PathBuf;

fn main() {
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("DPDK 22.11 or newer (Debian: apt install libdpdk-dev)");
    // The compile flags pkg-config gives (`-include rte_config.h -march=corei7 -I...`): DPDK's
    // x86 headers need the -march for their SSE4 intrinsics.
    let cflags = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_else(|| cflags_from(&dpdk));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let wrappers = out.join("static_fns");

    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(&cflags)
        // rte_thread_register (a PMD thread takes an lcore id, so it uses mempool caches) is
        // still marked experimental in 22.11.
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_lcore_id")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_dev_remove")
        .allowlist_function("rte_dev_name")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_alloc_bulk")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("vs_.*")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_ETHDEV_QUEUE_STAT_CNTRS")
        // Rust code never looks inside an mbuf (see vs_mbuf_views); its packed, aligned unions
        // are where bindgen's layouts go wrong.
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .blocklist_type("max_align_t")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen over csrc/wrapper.h");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrappers.with_extension("c"))
        .include(env::current_dir().unwrap())
        .define("ALLOW_EXPERIMENTAL_API", None)
        .warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("dpdk_static_fns");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
}

fn cflags_from(lib: &pkg_config::Library) -> Vec<String> {
    let mut f: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    f.extend(["-include", "rte_config.h", "-march=corei7"].map(String::from));
    f
}
