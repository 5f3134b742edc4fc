//! `adversary`: a step that misbehaves on purpose, for the host's sandbox
//! tests. Not a standard step.
//!
//! The `behaviour` param picks what it does: `noop`, `loop`, `memory`,
//! `probe`, `panic`, `oversized`, `random`, `fail`, `invalid`, `reject`,
//! `clock`, `sleep` (blocks in a host call), `busy` (computes for `size` ms),
//! `lie` (succeeds without writing its declared output), `big-column`
//! (moves a float64 column of `size` rows into the host and back, in one
//! call and in chunks), `host-hog` (asks the host for tables of `size`
//! rows, keeping every one, until something stops it), `train-huge` (asks
//! the host to train an MLP with two hidden layers of 6,000), `train-long`
//! (an MLP of two layers of `size` units for a million epochs: only the
//! time limit stops it), `log-flood` (10,000 log lines of 1 MiB),
//! `metric-flood` (2,000 metrics with 1 MiB names), `exit` (calls
//! `exit(0)` from `run`), `deep` (recurses with 64 KiB frames until the
//! stack runs out), `handles` (keeps table builders until the host says
//! no) or `predict-long` (trains a small MLP, then asks the host to predict
//! `size` rows with it in one call) or `bulk-columns` (builds and reads
//! `size` columns in one call each, and tries both calls with bad input).

use std::hint::black_box;

use sluice_sdk::{
    Column, Context, Manifest, Param, Port, Step, StepError, TableBuilder, export_step, sql,
};

/// The behaviours the step knows.
const BEHAVIOURS: &[&str] = &[
    "noop",
    "loop",
    "memory",
    "probe",
    "panic",
    "oversized",
    "random",
    "fail",
    "invalid",
    "reject",
    "clock",
    "nan-metric",
    "sleep",
    "busy",
    "lie",
    "big-column",
    "host-hog",
    "train-huge",
    "train-long",
    "log-flood",
    "metric-flood",
    "exit",
    "deep",
    "handles",
    "predict-long",
    "bulk-columns",
];

struct Adversary;

impl Step for Adversary {
    fn describe() -> Manifest {
        Manifest::new("adversary", "0.1.0")
            .doc("Misbehaves on purpose, to test the sandbox.")
            .output(Port::file("out").doc("Whatever the behaviour writes."))
            .param(
                Param::text("behaviour")
                    .required()
                    .doc(format!("One of: {}.", BEHAVIOURS.join(", "))),
            )
            .param(Param::integer("size").default(0).doc(
                "Bytes written by `oversized`; rows of `big-column` and `host-hog`; ms of `busy`.",
            ))
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let behaviour: String = ctx.param("behaviour")?;
        match behaviour.as_str() {
            "noop" => ctx.output_bytes("out", &[]),
            "loop" => spin(),
            "memory" => hog_memory(),
            "probe" => ctx.output_bytes("out", probe().to_string().as_bytes()),
            "panic" => panic!("deliberate panic from the adversary"),
            "oversized" => {
                let size: usize = ctx.param("size")?;
                ctx.output_bytes("out", &vec![7u8; size])
            }
            "random" => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|e| StepError::failed(format!("getrandom: {e}")))?;
                ctx.output_bytes("out", &bytes)
            }
            "fail" => Err(StepError::failed("deliberate failure")),
            "invalid" => Err(StepError::invalid_input("deliberate invalid input")),
            "reject" => Err(StepError::rejected("deliberate rejection")),
            // Claims success without writing the output its manifest declares.
            "lie" => Ok(()),
            "busy" => {
                // Computes for `size` milliseconds, then succeeds with a
                // deterministic output: a slow but well-behaved step.
                let until = std::time::Instant::now()
                    + std::time::Duration::from_millis(ctx.param::<u64>("size")?);
                let mut spins = 0u64;
                while std::time::Instant::now() < until {
                    spins = std::hint::black_box(spins + 1);
                }
                ctx.output_bytes("out", b"done")
            }
            "sleep" => {
                // Blocks in a host call (wasi:io/poll) rather than computing.
                std::thread::sleep(std::time::Duration::from_secs(3600));
                ctx.output_bytes("out", b"woke up")
            }
            "big-column" => big_column(ctx, ctx.param("size")?),
            "bulk-columns" => bulk_columns(ctx, ctx.param("size")?),
            "host-hog" => host_hog(ctx.param("size")?),
            "train-huge" => train_mlp(&[6000, 6000], 10).map(drop),
            "predict-long" => predict_long(ctx, ctx.param("size")?),
            "train-long" => {
                let width: usize = ctx.param("size")?;
                train_mlp(&[width, width], 1_000_000).map(drop)
            }
            "log-flood" => {
                let line = "x".repeat(1 << 20);
                for _ in 0..10_000 {
                    ctx.info(&line);
                }
                ctx.output_bytes("out", b"flooded")
            }
            "exit" => std::process::exit(0),
            "deep" => {
                let depth = recurse(black_box(1 << 40));
                ctx.output_bytes("out", depth.to_string().as_bytes())
            }
            "handles" => {
                let mut kept = Vec::new();
                loop {
                    kept.push(black_box(TableBuilder::new()));
                }
            }
            "nan-metric" => {
                ctx.metric("loss", f64::NAN);
                ctx.output_bytes("out", b"diverged")
            }
            "metric-flood" => {
                for i in 0..2_000 {
                    let name = format!("{i:04}{}", "m".repeat(1 << 20));
                    ctx.metric(&name, i as f64);
                }
                ctx.output_bytes("out", b"flooded")
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos().to_string())
                    .unwrap_or_else(|e| format!("error: {e}"));
                ctx.output_bytes("out", now.as_bytes())
            }
            other => Err(StepError::invalid_input(format!(
                "unknown behaviour `{other}`; expected one of: {}",
                BEHAVIOURS.join(", ")
            ))),
        }
    }
}

/// Builds a float64 column `x` of `rows` rows (x = row index) in one
/// `add-column` call, then reads it back whole (`Table::column`, in chunks)
/// and chunk by chunk; writes `rows=N sum=S chunked=S`.
fn big_column(ctx: &Context, rows: usize) -> Result<(), StepError> {
    let mut builder = TableBuilder::new();
    builder.add_f64("x", (0..rows).map(|i| Some(i as f64)).collect())?;
    let table = builder.finish()?;
    let whole: f64 = table.column_f64("x")?.into_iter().flatten().sum();
    let mut chunked = 0.0;
    let mut offset = 0u64;
    while offset < table.num_rows() {
        if let Column::Float64(v) = table.column_chunk("x", offset, 1 << 20)? {
            chunked += v.into_iter().flatten().sum::<f64>();
        }
        offset += 1 << 20;
    }
    let out = format!("rows={} sum={whole} chunked={chunked}", table.num_rows());
    ctx.output_bytes("out", out.as_bytes())
}

/// Adds `width` float64 columns `c0`.. (three rows: `c{j}` holds `j`, a
/// null, `-j`) in one `add-columns` call, and then a batch whose second
/// column is one row short (refused whole); reads them back in one
/// `columns` call, in reverse, and asks for a column that is not there.
/// Writes one line per outcome.
fn bulk_columns(ctx: &Context, width: usize) -> Result<(), StepError> {
    let column = |j: usize| Column::Float64(vec![Some(j as f64), None, Some(-(j as f64))]);
    let mut builder = TableBuilder::new();
    builder.add_columns((0..width).map(|j| (format!("c{j}"), column(j))).collect())?;
    let refused = builder
        .add_columns(vec![
            ("late".into(), column(0)),
            ("short".into(), Column::Float64(vec![Some(1.0)])),
        ])
        .err()
        .map(|e| e.to_string());
    let table = builder.finish()?;
    let names: Vec<String> = (0..width).rev().map(|j| format!("c{j}")).collect();
    let asked: Vec<&str> = names.iter().map(String::as_str).collect();
    let read = table.columns(&asked)?;
    let matches = read
        .iter()
        .zip((0..width).rev())
        .filter(|(c, j)| **c == column(*j))
        .count();
    let missing = table.columns(&["c0", "nope"]);
    let out = format!(
        "columns={}\nread back equal={matches}\nrefused={}\nmissing={}\n",
        table.column_names().join(","),
        refused.unwrap_or_default(),
        missing.err().map(|e| e.to_string()).unwrap_or_default(),
    );
    ctx.output_bytes("out", out.as_bytes())
}

/// Asks the host for a table of `rows` float64 rows, again and again,
/// keeping every handle: only the step's memory limit can stop it.
fn host_hog(rows: u64) -> Result<(), StepError> {
    let mut kept = Vec::new();
    loop {
        let query = format!("SELECT CAST(value AS DOUBLE) AS x FROM generate_series(1, {rows})");
        kept.push(black_box(sql(&query, &[])?));
    }
}

/// Asks the host to train an MLP with `hidden` layers for `epochs` epochs
/// on 2,000 rows of four features.
fn train_mlp(hidden: &[usize], epochs: u64) -> Result<sluice_sdk::ml::Model, StepError> {
    let data = four_features(2000, true)?;
    let features: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let params = serde_json::json!({
        "hidden_layers": hidden,
        "epochs": epochs,
        "early_stopping": false,
        "tol": 0.0,
        "n_iter_no_change": 1_000_000,
    });
    sluice_sdk::ml::train("mlp-regressor", &data, &features, "y", &params)
}

/// `rows` rows of features `a`..`d` (and the label `y`).
fn four_features(rows: usize, label: bool) -> Result<sluice_sdk::Table, StepError> {
    let mut builder = TableBuilder::new();
    for (j, name) in ["a", "b", "c", "d"].iter().enumerate() {
        builder.add_f64(
            name,
            (0..rows)
                .map(|i| Some(((i * (j + 3)) % 17) as f64))
                .collect(),
        )?;
    }
    if label {
        builder.add_f64("y", (0..rows).map(|i| Some((i % 5) as f64)).collect())?;
    }
    Ok(builder.finish()?)
}

/// Trains an MLP of two 512-unit layers for one epoch (quick), then asks the
/// host to predict `rows` rows in one call (slow: about 270,000
/// multiply-adds a row).
fn predict_long(ctx: &Context, rows: usize) -> Result<(), StepError> {
    let model = train_mlp(&[512, 512], 1)?;
    let data = four_features(rows, false)?;
    ctx.info(format!("predicting {rows} rows"));
    model.predict(&data)?;
    ctx.output_bytes("out", b"predicted")
}

/// Recurses `n` levels with a 64 KiB frame each (the stack runs out long
/// before); `black_box` keeps the frames and the recursion.
fn recurse(n: u64) -> u64 {
    let mut frame = [0u8; 64 * 1024];
    frame[(n % 1024) as usize] = 1;
    black_box(&mut frame);
    if n == 0 {
        return 0;
    }
    1 + recurse(black_box(n - 1)) + u64::from(frame[0])
}

/// Spins forever; `black_box` keeps the optimiser from removing the loop.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 16 MiB chunks forever, touching every page and keeping them.
fn hog_memory() -> ! {
    const CHUNK: usize = 16 << 20;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        // Non-zero, so the allocation is written (not left to zeroed pages).
        let mut chunk = vec![1u8; CHUNK];
        for page in chunk.chunks_mut(4096) {
            page[0] = black_box(1);
        }
        kept.push(black_box(chunk));
    }
}

/// `"ok: …"` or `"error: …"`.
fn outcome<T>(result: std::io::Result<T>, show: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(v) => format!("ok: {}", show(v)),
        Err(e) => format!("error: {e}"),
    }
}

fn list_dir(path: &str) -> String {
    outcome(std::fs::read_dir(path), |entries| {
        let names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.join(", ")
    })
}

/// Tries every way out of the sandbox it can think of, and reports.
fn probe() -> serde_json::Value {
    use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
    serde_json::json!({
        "read_file": outcome(std::fs::read_to_string("/etc/passwd"), |s| s.chars().take(200).collect()),
        "write_file": outcome(std::fs::write("escape.txt", b"x"), |()| "written".to_owned()),
        "read_dir_root": list_dir("/"),
        "read_dir_cwd": list_dir("."),
        "env_vars": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "env_home": std::env::var("HOME").ok(),
        "args": std::env::args().collect::<Vec<_>>(),
        "tcp_connect": outcome(TcpStream::connect("127.0.0.1:80"), |_| "connected".to_owned()),
        "udp_bind": outcome(UdpSocket::bind("0.0.0.0:0"), |_| "bound".to_owned()),
        "dns_lookup": outcome(("localhost", 80).to_socket_addrs(), |addrs| {
            addrs.map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        }),
    })
}

export_step!(Adversary);
