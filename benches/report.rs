//! Render benchmark (not a test): `cargo bench --bench report`.
//!
//! Builds a synthetic 1-hour result (3 600 one-second intervals recorded through the metrics
//! API), saves it, then times what `chatload report` does: read result.json, render
//! report.html, write stats.csv and history.csv. Target: under 2 s in release.
//! Set `CHATLOAD_BENCH_OUT=DIR` to keep the files (e.g. to screenshot the report).

#[path = "../tests/it/report/fixture.rs"]
#[allow(dead_code)] // the tests use more of the fixture than the benchmark
mod fixture;

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = std::env::var_os("CHATLOAD_BENCH_OUT").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir()?;
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    let built = Instant::now();
    let result = fixture::synthetic_result(3_600, 100, 1.0);
    let path = dir.join("result.json");
    chatload::report::write_result(&path, &result)?;
    println!(
        "built and saved a {}-interval result ({} KiB) in {:.2?}",
        result.intermediate.len(),
        std::fs::metadata(&path)?.len() / 1024,
        built.elapsed()
    );

    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let loaded = chatload::report::read_result(&path)?;
        let html = chatload::report::render_html(&loaded)?;
        chatload::report::write_atomically(&dir.join("report.html"), html.as_bytes())?;
        chatload::report::write_csv(&loaded, &dir)?;
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "read + render HTML ({} KiB) + CSV: {secs:.3} s",
            html.len() / 1024
        );
    }
    println!("best: {best:.3} s (target < 2 s)");
    if let Some(dir) = keep {
        println!("files kept in {}", dir.display());
    }
    Ok(())
}
