//! The engine settings that decide whether compiled code can be loaded.
//!
//! Wasmtime embeds its configuration in every compiled component and
//! `Component::deserialize` refuses code compiled under different settings.
//! Code compiled here is loaded elsewhere: by this process from the
//! compiled cache, and by `sluice-edge` (a build with no compiler at all)
//! from a bundle compiled on another machine for another architecture. So
//! every engine that compiles or loads sluice components starts from
//! [`apply_shared`], and nothing compatibility-relevant is left to a cargo
//! feature that one build unifies and another does not, or to an
//! environment variable (`WASMTIME_BACKTRACE_DETAILS`) set on one machine.

use wasmtime::{Config, ModuleVersionStrategy, WasmBacktraceDetails, WasmFeatures};

/// The name of this set of engine settings. Bump it whenever
/// [`apply_shared`] changes: bundles record it, and `sluice-edge` refuses a
/// bundle made under another profile before wasmtime sees its code.
pub const ENGINE_PROFILE: &str = "sluice-engine-1";

/// The exact wasmtime release compiled in (the `=` version in Cargo.toml;
/// a unit test checks the two agree). Code compiled by one wasmtime release
/// cannot be loaded by another.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The version string wasmtime embeds in compiled code and compares on
/// load: the profile and the wasmtime release, so that either differing is
/// refused (wasmtime's own default compares only the major version).
pub fn module_version() -> String {
    format!("{ENGINE_PROFILE}+wasmtime-{WASMTIME_VERSION}")
}

/// Applies the settings every sluice engine shares, compiling or not.
pub fn apply_shared(cfg: &mut Config) -> Result<(), String> {
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        // Compared on load; left to the environment, one machine's
        // WASMTIME_BACKTRACE_DETAILS=1 would make every bundle unloadable.
        .wasm_backtrace_details(WasmBacktraceDetails::Disable)
        // Relaxed SIMD gives the same answers on x86_64 and aarch64.
        .relaxed_simd_deterministic(true)
        // Their defaults follow cargo features of wasmtime
        // (component-model-async, threads, gc); pinned off.
        .concurrency_support(false)
        .wasm_features(
            WasmFeatures::THREADS | WasmFeatures::GC_TYPES | WasmFeatures::EXCEPTIONS,
            false,
        );
    cfg.module_version(ModuleVersionStrategy::Custom(module_version()))
        .map_err(|e| format!("{e:#}"))?;
    Ok(())
}

/// The configuration of an engine that compiles: `target` `None` for this
/// machine (its CPU's features are used), or a target triple for a bundle
/// (baseline code for that architecture, which any CPU of it runs).
#[cfg(feature = "compiler")]
pub fn compiling_config(target: Option<&str>) -> Result<Config, String> {
    let mut cfg = Config::new();
    apply_shared(&mut cfg)?;
    cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // For profiling only: `perf` then names each compiled Wasm function
    // (`wasm[0]::function[N]`; the component's name section maps N to its
    // source). It changes no compiled code, so nothing that loads code
    // depends on it.
    if std::env::var_os("SLUICE_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(triple) = target {
        cfg.target(triple).map_err(|e| format!("{e:#}"))?;
    }
    Ok(cfg)
}

/// A short fingerprint of everything in `engine`'s configuration that
/// compiled code depends on (wasmtime's compatibility hash): the compiled
/// cache's entries carry it, and a bundle records it.
#[cfg(feature = "compiler")]
pub fn compatibility_hash(engine: &wasmtime::Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Compiles components ahead of time for another machine (or this one),
/// as a bundle carries them: baseline code for the target's architecture,
/// under the shared settings that `sluice-edge` loads with.
#[cfg(feature = "compiler")]
pub struct CrossCompiler {
    engine: wasmtime::Engine,
    target: String,
}

#[cfg(feature = "compiler")]
impl CrossCompiler {
    /// A compiler for `target` (a Rust target triple such as
    /// `aarch64-unknown-linux-gnu`).
    pub fn new(target: &str) -> Result<Self, String> {
        let cfg = compiling_config(Some(target))
            .map_err(|e| format!("`{target}` is not a target triple wasmtime knows: {e}"))?;
        let engine = wasmtime::Engine::new(&cfg).map_err(|e| {
            format!("this sluice cannot compile for `{target}`: {e:#} (it compiles for x86_64 and aarch64)")
        })?;
        Ok(CrossCompiler {
            engine,
            target: target.to_string(),
        })
    }

    /// The target triple.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The engine's [`compatibility_hash`].
    pub fn compatibility_hash(&self) -> String {
        compatibility_hash(&self.engine)
    }

    /// Compiles a component (already checked by a loading runtime: this
    /// engine cannot instantiate it) to native code for the target.
    pub fn precompile(&self, component: &[u8]) -> Result<Vec<u8>, String> {
        self.engine
            .precompile_component(component)
            .map_err(|e| format!("{e:#}"))
    }
}

/// The configuration of an engine that only loads precompiled code.
pub fn loading_config() -> Result<Config, String> {
    let mut cfg = Config::new();
    apply_shared(&mut cfg)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasmtime_version_named_is_the_one_cargo_locks() {
        let lock = include_str!("../../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .expect("wasmtime in Cargo.lock");
        assert_eq!(locked.trim_matches('"'), WASMTIME_VERSION);
    }
}
