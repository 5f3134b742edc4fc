//! The sluice model server and batch predictor.
//!
//! A registered model version ([`ServedModel`]) predicts from *raw* rows:
//! the server runs the transform component recorded with the model (the
//! same Wasm bytes and fitted state as in training, from pooled instances),
//! then the ONNX graph through tract. [`Server`] puts served models behind
//! the Open Inference Protocol v2 (KServe, Triton clients) and MLflow's
//! `/invocations`, with canary splits, dynamic batching, sampled request
//! logging to the store, serving statistics in the store (requests, errors
//! and latency per model version, for promotion gates), Prometheus
//! metrics, and hot reload when an alias moves. [`ServerProbe`] starts a
//! candidate model in a child `sluice serve` and measures it from outside,
//! for `std:infra-validate`.
//!
//! Features: `server` (default) is the server itself and loading models
//! from a store. Without it the crate is the prediction path alone — a
//! model assembled from its parts, request and response signatures, the
//! protocol's documents — which the edge runtime serves from a bundle.
//!
//! Neighbours: models, request-log chunks and serving statistics come
//! from and go to `sluice-store`; transforms run in `sluice-runtime`;
//! inference is `sluice-ml`'s; column types are `sluice-contract`'s.
//! `sluice-monitor` reads what this crate logs.

#[cfg(feature = "server")]
mod batcher;
#[cfg(feature = "server")]
mod connections;
#[cfg(feature = "server")]
pub mod grpc;
#[cfg(feature = "server")]
pub mod infra;
#[cfg(feature = "server")]
mod io_threads;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod parse_errors;
pub mod protocol;
pub mod reqlog;
mod served;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod shadow;
pub mod signature;
#[cfg(feature = "server")]
mod stats;

#[cfg(feature = "server")]
pub use batcher::BatchConfig;
#[cfg(feature = "server")]
pub use infra::ServerProbe;
pub use reqlog::LogConfig;
pub use served::{LoadError, PredictError, ServedModel};
#[cfg(feature = "server")]
pub use server::{ServeConfig, ServeError, Server, VariantKey, shutdown_signal};

/// How many threads "one per core" is: the cores this process may run on
/// (2 where that cannot be read). The default count of prediction workers
/// and of the threads serving HTTP connections.
#[cfg(feature = "server")]
pub fn one_per_core() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Lets the kernel take back the pages of the `sluice` executable that
/// start-up touched and serving does not use: the dynamic relocations the
/// loader read (7 MB), the code that parsed arguments, opened the store and
/// loaded and optimised the models. Measured: 40 MB of the binary's file
/// pages were resident once models were loaded, against 7 MB of heap.
/// Pages serving needs come back from the page cache on first use (the
/// binary's hot code, well under a quarter of it). Call once, after the
/// models are loaded. A no-op where the kernel lacks `MADV_PAGEOUT`
/// (Linux < 5.4) or off Linux.
pub fn release_startup_pages() {
    #[cfg(target_os = "linux")]
    {
        const MADV_PAGEOUT: i32 = 21;
        unsafe extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
            return;
        };
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        for line in maps.lines() {
            // start-end perms offset dev inode path
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                continue;
            };
            let path = fields.nth(3);
            // Read-only and executable file pages of our own binary only;
            // never writable ones (they may hold modified data).
            if path != exe.to_str() || perms.contains('w') {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            // SAFETY: the range is a whole mapping of this process, read
            // from /proc/self/maps; MADV_PAGEOUT only drops clean file
            // pages (they are read again on access) and never changes the
            // mapping's contents.
            unsafe {
                madvise(start as *mut std::ffi::c_void, end - start, MADV_PAGEOUT);
            }
        }
    }
}
