//! Builds Fluence's RandomX fork with every symbol it defines renamed.
//!
//! The fork is the RandomX that `ccp-randomx` 0.17.0 vendors (its `randomx/` directory). It
//! defines the same C functions (`randomx_*`), assembly labels and C++ `randomx::` internals as
//! the stock RandomX that `randomx-rs` links. Two static libraries defining one symbol link
//! without an error, and the linker silently resolves every call to whichever it met first; so
//! after cmake builds the fork exactly as `ccp-randomx`'s own build script does, `objcopy
//! --redefine-syms` prefixes every global symbol the archive defines (and every reference to it
//! inside the archive) with `capminer_fluence_`, and so does the signature of every COMDAT group
//! (C++ inline functions and template instances, which the linker would otherwise merge with
//! stock's same-named groups, dropping one). The result is checked: no defined global symbol
//! and no group is left without the prefix. Symbols the fork only uses (libc, libstdc++) are
//! untouched.
//!
//! Where the sources come from: `CAPMINER_FLUENCE_RANDOMX_DIR` if set, else the package
//! `ccp-randomx` 0.17.0 as Cargo resolves it for this workspace (`cargo metadata`; the workspace
//! depends on it through `tests/fluence-kat`). The build refuses sources whose
//! `configuration.h` does not carry the fork's two parameters.

use std::path::{Path, PathBuf};
use std::process::Command;

const PREFIX: &str = "capminer_fluence_";
const LIB: &str = "capminer_randomx_fluence";
const FORK_VERSION: &str = "0.17.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CAPMINER_FLUENCE_RANDOMX_DIR");
    let sources = fork_sources();
    println!("cargo:rerun-if-changed={}", sources.join("src").display());
    check_configuration(&sources);

    // Exactly as ccp-randomx 0.17.0's build.rs configures it.
    let built = cmake::Config::new(&sources)
        .define("DARCH", "native")
        .build();
    let archive = ["lib", "lib64"]
        .iter()
        .map(|d| built.join(d).join("librandomx.a"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("cmake built no librandomx.a under {}", built.display()));

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut symbols = defined_globals(&archive);
    symbols.extend(group_signatures(&archive));
    symbols.sort();
    symbols.dedup();
    assert!(
        symbols.iter().any(|s| s == "randomx_alloc_cache"),
        "the fork's archive defines no randomx_alloc_cache: wrong archive {}",
        archive.display()
    );
    let map = out.join("fluence-renames.txt");
    let lines: String = symbols
        .iter()
        .map(|s| format!("{s} {PREFIX}{s}\n"))
        .collect();
    std::fs::write(&map, lines).expect("writing the rename map");
    let renamed = out.join(format!("lib{LIB}.a"));
    run(Command::new(tool("OBJCOPY", "objcopy"))
        .arg(format!("--redefine-syms={}", map.display()))
        .arg(&archive)
        .arg(&renamed));
    let left: Vec<String> = defined_globals(&renamed)
        .into_iter()
        .filter(|s| !s.starts_with(PREFIX))
        .collect();
    assert!(
        left.is_empty(),
        "symbols left unrenamed in {}: {left:?}",
        renamed.display()
    );
    let groups: Vec<String> = group_signatures(&renamed)
        .into_iter()
        .filter(|s| !s.starts_with(PREFIX))
        .collect();
    assert!(
        groups.is_empty(),
        "COMDAT groups left unrenamed in {}: {groups:?}",
        renamed.display()
    );

    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static={LIB}");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    println!("cargo:sources={}", sources.display());
}

/// The fork's `randomx/` directory.
fn fork_sources() -> PathBuf {
    if let Ok(dir) = std::env::var("CAPMINER_FLUENCE_RANDOMX_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&manifest)
        .output()
        .expect("running cargo metadata to find ccp-randomx's sources");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "ccp-randomx" && p["version"] == FORK_VERSION)
        .unwrap_or_else(|| {
            panic!(
                "the workspace does not depend on ccp-randomx {FORK_VERSION} (tests/fluence-kat \
                 does); or set CAPMINER_FLUENCE_RANDOMX_DIR to the fork's randomx/ directory"
            )
        });
    let manifest_path = package["manifest_path"].as_str().expect("manifest_path");
    Path::new(manifest_path)
        .parent()
        .expect("a manifest's directory")
        .join("randomx")
}

/// Refuses sources that are not the fork: its `configuration.h` sets 16 cache accesses and a
/// 4 GiB dataset base; stock RandomX sets 8 and 2 GiB.
fn check_configuration(sources: &Path) {
    let path = sources.join("src/configuration.h");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let value = |name: &str| -> Option<String> {
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define") && words.next() == Some(name))
                .then(|| words.next().unwrap_or("").to_string())
        })
    };
    for (name, want) in [
        ("RANDOMX_CACHE_ACCESSES", "16"),
        ("RANDOMX_DATASET_BASE_SIZE", "4294967296"),
    ] {
        assert_eq!(
            value(name).as_deref(),
            Some(want),
            "{} is not Fluence's fork: {name} should be {want}",
            path.display()
        );
    }
}

/// The global symbols `archive` defines (functions, data, weak and unique symbols).
fn defined_globals(archive: &Path) -> Vec<String> {
    let output = Command::new(tool("NM", "nm"))
        .args(["--defined-only", "--extern-only", "--format=posix"])
        .arg(archive)
        .output()
        .expect("running nm");
    assert!(
        output.status.success(),
        "nm failed on {}",
        archive.display()
    );
    let mut symbols: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        // POSIX format: "name type value size"; member headers end with ':' ("lib.a[x.o]:").
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let kind = words.next()?;
            (!name.ends_with(':') && !kind.is_empty()).then(|| name.to_string())
        })
        .collect();
    symbols.sort();
    symbols.dedup();
    symbols
}

/// The signatures of the COMDAT groups in `archive`'s objects (C++ inline functions and
/// template instances). The linker keeps one group per signature across the whole link, so a
/// fork group named like a stock one would be dropped for it (and the fork's calls into it
/// left dangling); a group's signature is the name of a symbol, often a local one that `nm`
/// does not list, so these are renamed too.
fn group_signatures(archive: &Path) -> Vec<String> {
    let output = Command::new(tool("READELF", "readelf"))
        .args(["--section-groups", "--wide"])
        .arg(archive)
        .output()
        .expect("running readelf");
    assert!(
        output.status.success(),
        "readelf failed on {}",
        archive.display()
    );
    // "COMDAT group section [    1] `.group' [signature] contains 2 sections:"
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("COMDAT group section"))
        .filter_map(|line| {
            let after = line.split_once("' [")?.1;
            Some(after.rsplit_once("] contains")?.0.to_string())
        })
        .collect()
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed");
}
