//! Builds the XDP program in `ebpf/` with clang into OUT_DIR; `src/io/xdp/loader.rs` embeds the
//! object with `include_bytes_aligned!`, so the installed binary needs no extra files.
//! (Pattern from aya's `test/integration-test/build.rs`.)

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCES: &[&str] = &[
    "xdp_dhcp6",
    "xdp_pass_test",
    "xdp_bench_sink",
    "xdp_loadgen",
    "xdp_reflector",
];

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("XDHCP6_CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=XDHCP6_CLANG");

    // Debian keeps asm/types.h under the multiarch directory; libbpf-dev provides bpf_helpers.h.
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "/usr/include/aarch64-linux-gnu",
        _ => "/usr/include/x86_64-linux-gnu",
    };

    for name in SOURCES {
        let src = PathBuf::from("ebpf").join(format!("{name}.c"));
        let obj = out_dir.join(format!("{name}.o"));
        println!("cargo:rerun-if-changed={}", src.display());
        let output = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-I{multiarch}"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output();
        match output {
            Err(e) => panic!(
                "\n\nxdhcp6: cannot run `{clang}` to build the XDP program ({e}).\n\
                 Install it with: apt-get install clang libbpf-dev\n\
                 (or point XDHCP6_CLANG at a clang that targets bpf)\n\n"
            ),
            Ok(out) if !out.status.success() => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let hint = if stderr.contains("bpf/bpf_helpers.h") || stderr.contains("asm/") {
                    "\nMissing headers: apt-get install clang libbpf-dev\n"
                } else {
                    ""
                };
                panic!(
                    "\n\nxdhcp6: clang failed on {}:\n{stderr}{hint}\n",
                    src.display()
                );
            }
            Ok(_) => {}
        }
    }
}
