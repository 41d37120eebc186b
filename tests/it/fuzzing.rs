//! The fuzz corpora (`fuzz/corpus/<target>/`: the seeds, and every input that once found a
//! problem) replayed through the fuzz targets' entry points: each must run clean.

#[test]
fn fuzz_corpora_replay_without_a_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, run) in herald::fuzzing::TARGETS {
        let mut n = 0;
        for entry in std::fs::read_dir(root.join(name)).expect("corpus folder") {
            let path = entry.expect("corpus entry").path();
            if std::env::var_os("FUZZ_REPLAY_VERBOSE").is_some() {
                eprintln!("replaying {}", path.display());
            }
            run(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
        assert!(n > 0, "the {name} corpus is empty");
    }
}
