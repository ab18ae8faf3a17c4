//! Integration test: every committed fuzz corpus file (`fuzz/corpus/<target>/`) goes through
//! the entry point its fuzz target uses (`chatload::fuzzing`), so inputs the fuzzers found
//! interesting — and every crash once fixed — are replayed on stable by `cargo test`.

use std::path::Path;

#[test]
fn every_fuzz_corpus_file_runs_through_its_entry_point() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, entry) in chatload::fuzzing::TARGETS {
        let dir = root.join(target);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        assert!(!files.is_empty(), "no seed corpus for {target}");
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            // A panic here names the file; the fuzz target would have crashed on it.
            eprintln!("{target}: {}", file.display());
            entry(&data);
        }
    }
}
