//! Compiles the kernel fast path (`bpf/forward.c`, a tc classifier) with
//! clang when it is there. Without clang (or the kernel and libbpf
//! headers) the crate still builds: the relay then forwards in user space
//! only and says why when `[media] kernel_forwarding` asks for more.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/forward.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rustc-check-cfg=cfg(bpf_object)");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("forward.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch_headers = format!("/usr/include/{}-linux-gnu", std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default());
    let built = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{arch_headers}"))
        .args(["-c", "bpf/forward.c", "-o"])
        .arg(&out)
        .status();
    match built {
        Ok(s) if s.success() => println!("cargo:rustc-cfg=bpf_object"),
        Ok(s) => println!(
            "cargo:warning=bpf/forward.c did not compile ({s}): kernel forwarding is unavailable in this build"
        ),
        Err(e) => println!("cargo:warning=no {clang} ({e}): kernel forwarding is unavailable in this build"),
    }
}
