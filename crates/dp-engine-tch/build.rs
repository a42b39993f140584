//! Link settings for binaries and tests that use libtorch (DESIGN.md section 5).
//!
//! - An rpath to libtorch's `lib` folder, so binaries and tests run without
//!   `LD_LIBRARY_PATH` (which cargo would override anyway).
//! - With the `cuda` feature or `DP_RS_CUDA=1`: keep `libtorch_cuda` linked, which
//!   `--as-needed` would otherwise drop because no symbol of it is referenced directly.
//! - With `DP_RS_EXTRA_RPATH=<dir>`: put `<dir>` first in the RUNPATH (the target machine's
//!   own `torch/lib` when binaries built here run on a CUDA machine).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=DP_RS_CUDA");
    println!("cargo:rerun-if-env-changed=DP_RS_EXTRA_RPATH");
    if let Ok(dir) = std::env::var("DP_RS_EXTRA_RPATH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some()
        || std::env::var("DP_RS_CUDA").is_ok_and(|value| value == "1");
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
