//! In CI every real e2e client is installed (`.ci/run` does it), so none of their tests may be
//! skipped there: this fails naming what is missing. Elsewhere those tests are reported as
//! skipped by nextest (build.rs probes the clients), and this test is too.

#[test]
#[cfg_attr(
    not(voxgate_ci),
    ignore = "only CI must have every e2e client (CI is not set)"
)]
fn every_e2e_client_is_installed_in_ci() {
    let clients = [
        (
            "aiortc (pip install -r e2e/requirements.txt)",
            cfg!(voxgate_e2e_aiortc),
        ),
        ("openai Python SDK (pip)", cfg!(voxgate_e2e_openai_py)),
        ("jsonschema (pip)", cfg!(voxgate_e2e_jsonschema)),
        ("codex CLI (npm ci --prefix e2e)", cfg!(voxgate_e2e_codex)),
        (
            "openai JS SDK + Node 22 (npm ci --prefix e2e)",
            cfg!(voxgate_e2e_openai_js),
        ),
        (
            "Debian chromium + playwright-core",
            cfg!(voxgate_e2e_chromium),
        ),
        ("Debian redis-server", cfg!(voxgate_e2e_redis)),
        ("Debian haproxy", cfg!(voxgate_e2e_haproxy)),
    ];
    let missing: Vec<&str> = clients
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect();
    assert!(missing.is_empty(), "e2e clients missing in CI: {missing:?}");
}
