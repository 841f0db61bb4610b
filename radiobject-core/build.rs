//! Locates libtiledb 2.30 and links it.
//!
//! The library comes from PyPI's `tiledb==0.36.1` wheel (`site-packages/tiledb.libs/libtiledb-*.so.2.30`).
//! Resolution order:
//! 1. `TILEDB_LIB`: the full path of a `libtiledb*.so*` file;
//! 2. `TILEDB_PYTHON` (default: `.venv/bin/python` at the workspace root, then `python3`): asked where the
//!    `tiledb` package lives, *without importing it* (no numpy import, fast).
//!
//! The crate declares `links = "tiledb"` and emits `cargo:libdir=…`, so final binaries and cdylibs read
//! `DEP_TILEDB_LIBDIR` and set their own rpath (`rustc-link-arg` does not reach dependents).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIND_LIB: &str = "import importlib.util as u, glob, os\n\
s = u.find_spec('tiledb')\n\
d = os.path.dirname(list(s.submodule_search_locations)[0]) if s else ''\n\
c = sorted(glob.glob(os.path.join(d, 'tiledb.libs', 'libtiledb*.so*'))) if d else []\n\
print(c[0] if c else '')";

fn python_candidates(workspace: &Path) -> Vec<String> {
    if let Ok(py) = env::var("TILEDB_PYTHON") {
        return vec![py];
    }
    let venv = workspace.join(".venv").join("bin").join("python");
    let mut out = Vec::new();
    if venv.exists() {
        out.push(venv.display().to_string());
    }
    out.push("python3".to_owned());
    out
}

fn find_library(workspace: &Path) -> Result<PathBuf, String> {
    if let Ok(p) = env::var("TILEDB_LIB") {
        return Ok(PathBuf::from(p));
    }
    let mut tried = Vec::new();
    for py in python_candidates(workspace) {
        match Command::new(&py).arg("-c").arg(FIND_LIB).output() {
            Ok(out) if out.status.success() => {
                let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if !s.is_empty() {
                    return Ok(PathBuf::from(s));
                }
                tried.push(format!("{py}: the `tiledb` package (with tiledb.libs/) is not installed"));
            }
            Ok(out) => tried.push(format!("{py}: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => tried.push(format!("{py}: {e}")),
        }
    }
    Err(format!(
        "libtiledb not found. Install PyPI's `tiledb==0.36.1` (the set-up scripts do: `bash scripts/setup.sh`), \
         or set TILEDB_LIB=/path/to/libtiledb-*.so.2.30 or TILEDB_PYTHON=/path/to/python. Tried: {}",
        tried.join("; ")
    ))
}

fn main() {
    println!("cargo:rerun-if-env-changed=TILEDB_LIB");
    println!("cargo:rerun-if-env-changed=TILEDB_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(&manifest).to_path_buf();
    let lib = match find_library(&workspace) {
        Ok(lib) => lib,
        Err(msg) => panic!("{msg}"),
    };
    let lib = lib.canonicalize().unwrap_or_else(|e| panic!("TileDB library {} is not readable: {e}", lib.display()));
    let libdir = lib.parent().expect("a library file has a parent directory").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The wheel's file is libtiledb-<hash>.so.2.30; `-ltiledb` needs libtiledb.so, so link through a symlink.
    let link = out_dir.join("libtiledb.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link).expect("symlink libtiledb.so into OUT_DIR");
    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=dylib=tiledb");
    // RUNPATH for this crate's own tests, examples and benches.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libdir.display());
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:libdir={}", libdir.display());
}
