//! Every fuzz target's seed corpus (`fuzz/seeds/<target>/`) and every input a fuzzer once
//! crashed on (`fuzz/regressions/<target>/`) replayed through `voxgate::fuzz` on stable, in the
//! ordinary test run: what the long fuzz runs proved stays proved.

use std::path::Path;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("read input");
            (p.display().to_string(), data)
        })
        .collect()
}

#[test]
fn every_seed_and_past_crash_runs_clean_through_its_fuzz_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, run) in voxgate::fuzz::TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs is missing"
        );
        let seeds = inputs(&root.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (name, data) in seeds
            .iter()
            .chain(inputs(&root.join("regressions").join(target)).iter())
        {
            let outcome = std::panic::catch_unwind(|| run(data));
            assert!(outcome.is_ok(), "{target} panicked on {name}");
        }
    }
}
