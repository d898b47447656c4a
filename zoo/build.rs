//! Feature `onednn`: compiles `src/ops/onednn/shim.c` against oneDNN's headers (Debian's
//! `libdnnl-dev`, oneDNN 2.x, by default; or `DNNL_ROOT/include`, 2.x or 3.x, e.g. a virtual
//! environment with PyPI's `onednn-devel-cpu-gomp`). The library itself is opened at run time.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "onednn")]
    onednn();
}

#[cfg(feature = "onednn")]
fn onednn() {
    println!("cargo:rerun-if-changed=src/ops/onednn/shim.c");
    println!("cargo:rerun-if-env-changed=DNNL_ROOT");
    let mut build = cc::Build::new();
    build.file("src/ops/onednn/shim.c").opt_level(2).warnings(true).extra_warnings(true);
    if let Some(root) = std::env::var_os("DNNL_ROOT") {
        let root = std::path::PathBuf::from(root);
        build.include(root.join("include"));
        // Where the run time looks first (then the loader's own search path).
        println!("cargo:rustc-env=ZOO_DNNL_DIR={}", root.join("lib").display());
    }
    build.compile("zoo_dnnl_shim");
    println!("cargo:rustc-link-lib=dylib=dl");
}
