//! `load-breakdown`: where the time of a load from the compiled cache goes.
//!
//! A scratch program beside `runtime-bench`. It repeats, piece by piece and
//! with wasmtime directly, what `Runtime::load` does on a cache hit:
//!
//! 1. for a path: read the `.wasm` file and hash it (SHA-256);
//! 2. read the cache entry;
//! 3. check its frame: strip the 20-byte header (a `Vec::drain`, which
//!    moves the payload) and CRC-32 the payload;
//! 4. `Component::deserialize` (copies the payload into executable memory);
//! 5. enumerate the component type's imports and exports (`check_world`);
//! 6. `Linker::instantiate_pre` (type-checks every import against the
//!    linker; here WASI plus the `sluice:pipeline` imports defined as traps,
//!    which stands in for the runtime's host functions).
//!
//! It also times `Runtime::new` and, for comparison, `deserialize_file` of
//! the same payload without the frame (wasmtime maps the file instead of
//! copying it) and a read of the entry into a buffer whose pages are already
//! mapped (to separate page faults from copying). Each iteration uses a new engine and linker, as a new
//! `Runtime` would. Results go to stdout as a table.

use sluice_runtime::{CacheOutcome, ComponentSource, Digest, Runtime, RuntimeConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of the cache entry's frame: magic, length, CRC-32.
const HEADER_LEN: usize = 8 + 8 + 4;

/// Store data with a WASI context, so the WASI imports can be linked.
struct State {
    /// The WASI context.
    wasi: WasiCtx,
    /// Its resource table.
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// An engine configured the way `Runtime::new` configures its own (the
/// shared engine settings), so the runtime's cache entries deserialise
/// into it.
fn engine() -> Engine {
    let cfg = sluice_runtime::engine_config::compiling_config(None).expect("engine settings");
    Engine::new(&cfg).expect("an engine")
}

/// A linker with WASI 0.2 (async, as the runtime links it) and every other import of `component` as a trap.
fn linker(engine: &Engine, component: &Component) -> Linker<State> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("linking WASI");
    linker
        .define_unknown_imports_as_traps(component)
        .expect("defining the other imports");
    linker
}

/// Median and minimum of samples.
fn summary(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let n = samples.len();
    (
        samples[n / 2],
        samples[(n * 9).div_ceil(10) - 1],
        samples[0],
    )
}

/// Formats a duration in microseconds.
fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Times the pieces of a cache-hit load of `source`, `n` times.
fn breakdown(source: &ComponentSource, n: usize) {
    let cache = tempfile::tempdir().expect("a temporary folder");
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().join("compiled")),
        cache_key_file: Some(cache.path().join("cache.key")),
    })
    .expect("a runtime");
    let loaded = rt.load(source).expect("loading");
    let entry = rt.cache().expect("a cache").entry_path(&loaded.digest());
    drop(rt);
    let entry_bytes = std::fs::read(&entry).expect("reading the entry");
    let raw = cache.path().join("raw.cwasm");
    std::fs::write(&raw, &entry_bytes[HEADER_LEN..]).expect("writing the raw payload");
    let wasm_path: Option<PathBuf> = match source {
        ComponentSource::Path(p) => Some(p.clone()),
        _ => None,
    };

    let mut pieces: Vec<(&str, Vec<Duration>)> = [
        "read + SHA-256 of the .wasm (path only)",
        "read cache entry",
        "frame: drain header",
        "frame: CRC-32",
        "Component::deserialize",
        "component type: imports/exports",
        "Linker::instantiate_pre",
        "sum of the pieces",
        "Runtime::load (measured whole)",
        "Runtime::new (not part of load)",
        "alt: Component::deserialize_file (mmap)",
        "alt: read cache entry into a reused buffer",
    ]
    .into_iter()
    .map(|name| (name, Vec::with_capacity(n)))
    .collect();

    let mut prelink_error: Option<String> = None;
    // Reused across iterations, so its pages are already mapped.
    let mut reused: Vec<u8> = Vec::with_capacity(entry_bytes.len());
    for i in 0..n + 5 {
        let engine = engine();
        let mut t = [Duration::ZERO; 12];

        let start = Instant::now();
        if let Some(p) = &wasm_path {
            let bytes = std::fs::read(p).expect("reading the component");
            std::hint::black_box(Digest::of(&bytes));
        }
        t[0] = start.elapsed();

        let start = Instant::now();
        let mut bytes = std::fs::read(&entry).expect("reading the entry");
        t[1] = start.elapsed();

        let start = Instant::now();
        bytes.drain(..HEADER_LEN);
        t[2] = start.elapsed();

        let start = Instant::now();
        std::hint::black_box(crc32fast::hash(&bytes));
        t[3] = start.elapsed();

        let start = Instant::now();
        // SAFETY: the payload was produced by `Component::serialize` of an
        // engine configured like this one (the runtime's cache wrote it a
        // moment ago), and has not been modified.
        let component = unsafe { Component::deserialize(&engine, &bytes) }.expect("deserialising");
        t[4] = start.elapsed();

        let start = Instant::now();
        let ty = component.component_type();
        let imports = ty.imports(&engine).count();
        let exports = ty.exports(&engine).count();
        std::hint::black_box((imports, exports));
        t[5] = start.elapsed();

        // The stand-in linker cannot always type-check a component (trap
        // definitions of a newer WASI minor version clash with the linked
        // one); then the piece is left out and reported as such.
        let linker = linker(&engine, &component);
        let start = Instant::now();
        let pre = linker.instantiate_pre(&component);
        t[6] = start.elapsed();
        if let Err(e) = &pre
            && prelink_error.is_none()
        {
            prelink_error = Some(format!("{e}"));
        }
        drop(pre);
        t[7] = t[..7].iter().sum();

        let rt_start = Instant::now();
        let rt = Runtime::new(RuntimeConfig {
            cache_dir: Some(cache.path().join("compiled")),
            cache_key_file: Some(cache.path().join("cache.key")),
        })
        .expect("a runtime");
        t[9] = rt_start.elapsed();
        let start = Instant::now();
        let c = rt.load(source).expect("loading");
        t[8] = start.elapsed();
        assert_eq!(c.cache_outcome(), &CacheOutcome::Hit);
        drop(c);
        drop(rt);

        let engine2 = self::engine();
        let start = Instant::now();
        // SAFETY: as above; the file holds the same payload, unmodified.
        let mapped =
            unsafe { Component::deserialize_file(&engine2, &raw) }.expect("deserialising a file");
        t[10] = start.elapsed();
        drop(mapped);

        let start = Instant::now();
        reused.clear();
        std::fs::File::open(&entry)
            .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut reused))
            .expect("reading the entry");
        t[11] = start.elapsed();

        if i >= 5 {
            for (k, (_, samples)) in pieces.iter_mut().enumerate() {
                samples.push(t[k]);
            }
        }
    }

    println!(
        "{} (component {} bytes, cache entry {} bytes, {n} iterations)",
        source.display_name(),
        loaded.size(),
        entry_bytes.len()
    );
    println!(
        "  {:<42} {:>10} {:>10} {:>10}",
        "piece", "median", "p90", "min"
    );
    for (name, samples) in pieces {
        if name.ends_with("(path only)") && wasm_path.is_none() {
            continue;
        }
        if let Some(e) = prelink_error
            .as_ref()
            .filter(|_| name.contains("instantiate_pre"))
        {
            println!("  {name:<42} not measured: {e}");
            continue;
        }
        let (median, p90, min) = summary(samples);
        println!(
            "  {name:<42} {:>10} {:>10} {:>10}",
            us(median),
            us(p90),
            us(min)
        );
    }
    println!();
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let adversary = Path::new(sluice_std_components::TEST_PROGRAM_ADVERSARY);
    breakdown(&ComponentSource::parse("std:statistics"), n);
    breakdown(&ComponentSource::Path(adversary.to_path_buf()), n);
}
