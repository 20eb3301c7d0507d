//! Replays the committed corpus of the `mcp` fuzz target (`fuzz/corpus/mcp/`) through the same
//! harness (`fuzz/common/mcp_session.rs`, included as the target includes it), so every input
//! the fuzzer once found interesting stays a regression test on stable `cargo test`.

#[path = "../../fuzz/common/mcp_session.rs"]
mod mcp_session;

#[test]
fn corpus_mcp() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mcp");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} holds no files", dir.display());
    let mut total = 0;
    for path in files {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Shown with the failure: which file a panic below came from.
        eprintln!("replaying {}", path.display());
        let answers = mcp_session::run(&data);
        eprintln!("  {answers} answers");
        total += answers;
    }
    // The seeds are real sessions (initialize, then tool calls): the harness reaches the tools.
    assert!(
        total >= 20,
        "the corpus got only {total} answers; is the server still reached?"
    );
}
