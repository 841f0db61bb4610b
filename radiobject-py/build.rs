//! Sets the extension's run-time search path for libtiledb.
//!
//! Installed, the extension lives at `site-packages/radiobject/_radiobject*.so` and the library at
//! `site-packages/tiledb.libs/` (PyPI's `tiledb` wheel, a declared dependency), hence
//! `$ORIGIN/../tiledb.libs`: the extension loads without `import tiledb`. The absolute directory the
//! build linked against comes second, for `cargo test` and uninstalled builds.

fn main() {
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../tiledb.libs");
    if let Ok(dir) = std::env::var("DEP_TILEDB_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TILEDB_LIBDIR");
}
