//! Run-time search path for libtiledb: next to the installed binary in a virtual environment
//! (`<venv>/bin/radiobject` -> `<venv>/lib/python3.X/site-packages/tiledb.libs`), else the
//! directory the build linked against.

fn main() {
    for minor in 11..=14 {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../lib/python3.{minor}/site-packages/tiledb.libs");
    }
    if let Ok(dir) = std::env::var("DEP_TILEDB_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TILEDB_LIBDIR");
}
