//! Times sluice's inference of one ONNX model on a float32 matrix, for
//! bench/ml/trees.py, which times onnxruntime on the same files:
//!
//!     tree_bench MODEL.onnx INPUT.f32 ROWS COLS BATCH...
//!
//! For each batch size, prints one JSON line: the batch, the microseconds
//! per call (the fastest of five 300 ms windows, after a warm-up) and rows
//! per second. With batch 0 it prints the first output of a run over all
//! rows instead (for the agreement check).

use std::time::Instant;

use sluice_ml::Model;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: tree_bench MODEL.onnx INPUT.f32 ROWS COLS BATCH...");
        std::process::exit(2);
    }
    let model = Model::from_onnx(&std::fs::read(&args[1]).expect("model")).expect("load");
    let raw = std::fs::read(&args[2]).expect("input");
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let rows: usize = args[3].parse().expect("rows");
    let cols: usize = args[4].parse().expect("cols");
    assert_eq!(x.len(), rows * cols, "INPUT.f32 holds {} values", x.len());
    for batch in &args[5..] {
        let batch: usize = batch.parse().expect("batch");
        if batch == 0 {
            let out = model.predict(&x, rows, cols).expect("predict");
            let (name, t) = &out.0[out.0.len() - 1];
            let values: Vec<f64> = t
                .as_f32()
                .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                .unwrap_or_default();
            println!("{}", serde_json::json!({"output": name, "values": values}));
            continue;
        }
        let input = &x[..batch * cols];
        for _ in 0..3 {
            model.predict(input, batch, cols).expect("predict");
        }
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let (start, mut calls) = (Instant::now(), 0u32);
            while start.elapsed().as_secs_f64() < 0.3 || calls < 3 {
                model.predict(input, batch, cols).expect("predict");
                calls += 1;
            }
            best = best.min(start.elapsed().as_secs_f64() / f64::from(calls));
        }
        println!(
            "{}",
            serde_json::json!({"batch": batch, "us_per_call": best * 1e6, "rows_per_s": batch as f64 / best})
        );
    }
}
