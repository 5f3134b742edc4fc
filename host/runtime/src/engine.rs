//! The engine: loading, checking, compiling (through the compiled cache),
//! pre-linking and running components.

use crate::bindings::{self, StepPre};
#[cfg(feature = "compiler")]
use crate::cache::{CacheKey, CompiledCache, Lookup};
use crate::clocks::{ClockMode, ClockReads};
use crate::dataplane::HostMemoryExceeded;
use crate::error::RuntimeError;
use crate::host::{OutputLimitExceeded, StepIo, StepState};
use crate::manifest::{ArtifactKind, Manifest, ParamSpec, Port, Value, ValueType};
use crate::outcome::{Invocation, LogLevel, StepFailure, StepOutcome};
use crate::sandbox::{Capture, Limiter, Limits};
use rand::SeedableRng;
use sluice_digest::Digest;
use sluice_tables::Session;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable, types::ComponentItem};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::WasiCtx;

/// The WIT package every step implements.
pub const WIT_PACKAGE: &str = "sluice:pipeline@0.1.4";

/// How often the engine's epoch advances; the granularity of time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The preamble of a WebAssembly component (magic, version 0x0d, layer 1).
#[cfg(feature = "compiler")]
const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\0\x01\0";
/// The preamble of a core WebAssembly module (magic, version 1, layer 0).
#[cfg(feature = "compiler")]
const CORE_MODULE_HEADER: &[u8] = b"\0asm\x01\0\0\0";
/// Host handles (tables, builders, models, WASI streams) a step may hold
/// at once.
const MAX_HANDLES: usize = 100_000;
/// Bytes of guest stdout and of stderr kept per execution.
const CAPTURE_BYTES: usize = 1 << 20;

/// How a component's native code was obtained.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "reason")]
pub enum CacheOutcome {
    /// Read from the compiled cache.
    Hit,
    /// Not in the cache: compiled and stored.
    Compiled,
    /// In the cache but unusable (the reason says why): compiled and stored again.
    Recompiled(String),
    /// Already loaded by this process.
    Memory,
    /// Compiled without a cache (none configured).
    Uncached,
    /// Compiled ahead of time, elsewhere (an edge bundle's code).
    Precompiled,
}

/// Counters of what the cache did, for tests and `--verbose` output.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Entries read and used.
    pub hits: u64,
    /// Components compiled because no entry existed.
    pub misses: u64,
    /// Entries found unusable and replaced.
    pub recompiled: u64,
}

/// How a [`Runtime`] is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Folder of the compiled-component cache; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The file of the secret that authenticates cache entries (created if
    /// absent; see [`crate::cache`]'s trust model). It must not be inside
    /// the cache folder. `None`: a key kept in memory for this process.
    pub cache_key_file: Option<PathBuf>,
}

/// Where a component's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A standard step embedded in this build: `std:NAME`.
    Std(String),
    /// A `.wasm` file.
    Path(PathBuf),
    /// Bytes already in memory, with a name for messages.
    Bytes {
        /// Shown in messages.
        name: String,
        /// The component.
        bytes: Vec<u8>,
    },
}

impl ComponentSource {
    /// `std:NAME` is a standard step; anything else is a path.
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix("std:") {
            Some(name) => ComponentSource::Std(name.to_string()),
            None => ComponentSource::Path(PathBuf::from(s)),
        }
    }

    /// The source of the component a digest names (as a model card's
    /// transform records it): a standard step of this build, else the
    /// bytes `objects` holds under that digest.
    #[cfg(feature = "compiler")]
    pub fn of_digest(
        digest: &Digest,
        objects: Option<&sluice_store::ObjectStore>,
    ) -> Result<Self, String> {
        if let Some(std) = sluice_std_components::by_sha256(&digest.to_hex()) {
            return Ok(ComponentSource::Std(std.name.to_string()));
        }
        let bytes = objects
            .ok_or_else(|| format!("component {digest} is not a standard step of this build"))?
            .get(digest)
            .map_err(|e| {
                format!(
                    "component {digest} is neither a standard step of this build nor in the store: {e}"
                )
            })?;
        Ok(ComponentSource::Bytes {
            name: digest.to_string(),
            bytes,
        })
    }

    /// The component's bytes and their digest.
    #[cfg(feature = "compiler")]
    pub fn read(&self) -> Result<(std::borrow::Cow<'_, [u8]>, Digest), RuntimeError> {
        Ok(match self {
            ComponentSource::Std(n) => {
                let c = sluice_std_components::get(n).ok_or_else(|| RuntimeError::UnknownStd {
                    name: n.clone(),
                    available: sluice_std_components::names().map(str::to_string).collect(),
                })?;
                let digest = c.sha256.parse().expect("build script writes valid digests");
                (c.bytes.into(), digest)
            }
            ComponentSource::Path(p) => {
                let bytes = std::fs::read(p).map_err(|source| RuntimeError::Read {
                    path: p.clone(),
                    source,
                })?;
                let digest = Digest::of(&bytes);
                (bytes.into(), digest)
            }
            ComponentSource::Bytes { bytes, .. } => (bytes.as_slice().into(), Digest::of(bytes)),
        })
    }

    /// How the component is named in messages.
    pub fn display_name(&self) -> String {
        match self {
            ComponentSource::Std(n) => format!("std:{n}"),
            ComponentSource::Path(p) => p.display().to_string(),
            ComponentSource::Bytes { name, .. } => name.clone(),
        }
    }
}

/// A wasmtime engine configured for sluice steps, its linker, and the
/// compiled-component cache. Cheap to clone (clones share all of it) and to
/// share between threads.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Linker<StepState>,
    #[cfg(feature = "compiler")]
    cache: Option<Arc<CompiledCache>>,
    loaded: Arc<Mutex<HashMap<Digest, Component>>>,
}

impl Runtime {
    /// An engine with epoch interruption and the component model, a linker
    /// holding the contract's imports and a WASI with no authority, and an
    /// epoch ticker thread that lives as long as the engine.
    #[cfg(feature = "compiler")]
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let cfg = crate::engine_config::compiling_config(None).map_err(RuntimeError::Engine)?;
        let engine = Engine::new(&cfg).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = match config.cache_dir {
            None => None,
            Some(dir) => {
                let key = match &config.cache_key_file {
                    None => CacheKey::ephemeral(),
                    Some(path) => CacheKey::load_or_create(path).map_err(|e| {
                        RuntimeError::Engine(format!(
                            "the compiled cache's key {} cannot be used: {e} (or run with --no-compile-cache)",
                            path.display()
                        ))
                    })?,
                };
                Some(Arc::new(CompiledCache::new(dir, &engine, key)))
            }
        };
        let mut runtime = Runtime::with_engine(engine)?;
        runtime.cache = cache;
        Ok(runtime)
    }

    /// A runtime that cannot compile: it loads only code compiled ahead of
    /// time for this machine ([`Runtime::load_precompiled`]), as the edge
    /// runtime, built without a compiler, does.
    pub fn precompiled_only() -> Result<Self, RuntimeError> {
        let cfg = crate::engine_config::loading_config().map_err(RuntimeError::Engine)?;
        let engine = Engine::new(&cfg).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        Runtime::with_engine(engine)
    }

    fn with_engine(engine: Engine) -> Result<Self, RuntimeError> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        bindings::Step::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("starting the epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            linker,
            #[cfg(feature = "compiler")]
            cache: None,
            loaded: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// What the compiled cache has done in this process.
    pub fn cache_stats(&self) -> CacheStats {
        #[cfg(feature = "compiler")]
        if let Some(c) = &self.cache {
            return c.stats();
        }
        CacheStats::default()
    }

    /// The compiled cache, if one is configured.
    #[cfg(feature = "compiler")]
    pub fn cache(&self) -> Option<&CompiledCache> {
        self.cache.as_deref()
    }

    /// Resolves, checks, compiles (or loads from the cache) and pre-links a
    /// component. Loading the same bytes again in this process is free.
    #[cfg(feature = "compiler")]
    pub fn load(&self, source: &ComponentSource) -> Result<Component, RuntimeError> {
        let start = Instant::now();
        let name = source.display_name();
        let (bytes, digest) = source.read()?;
        if let Some(c) = self.loaded.lock().unwrap().get(&digest) {
            return Ok(c.renamed(name, CacheOutcome::Memory, start.elapsed()));
        }

        let (component, outcome) = self.compile(&name, &bytes, &digest)?;
        self.link(name, component, digest, bytes.len(), outcome, start)
    }

    /// Loads code that `Engine::precompile_component` produced for this
    /// machine under the shared engine settings (a bundle's), then checks
    /// and pre-links it as [`Runtime::load`] does. `digest` and `size` are
    /// the original component's, whose identity the code carries.
    ///
    /// # Safety
    ///
    /// wasmtime only lightly validates precompiled code: arbitrary bytes
    /// can run arbitrary native code. The caller must have established that
    /// `code` is exactly what the compiler produced, unmodified: its digest
    /// matched a manifest that was signed by a trusted key, or that came
    /// from a source the caller trusts as much as this binary.
    pub unsafe fn load_precompiled(
        &self,
        name: &str,
        digest: Digest,
        size: usize,
        code: &[u8],
    ) -> Result<Component, RuntimeError> {
        let start = Instant::now();
        if let Some(c) = self.loaded.lock().unwrap().get(&digest) {
            return Ok(c.renamed(name.to_string(), CacheOutcome::Memory, start.elapsed()));
        }
        // SAFETY: the caller's contract above.
        let component = unsafe { wasmtime::component::Component::deserialize(&self.engine, code) }
            .map_err(|e| RuntimeError::Invalid {
                name: name.to_string(),
                detail: format!("its precompiled code cannot be loaded here: {e:#}"),
            })?;
        self.link(
            name.to_string(),
            component,
            digest,
            size,
            CacheOutcome::Precompiled,
            start,
        )
    }

    /// Checks a compiled component against the step world and pre-links it.
    fn link(
        &self,
        name: String,
        component: wasmtime::component::Component,
        digest: Digest,
        size: usize,
        outcome: CacheOutcome,
        start: Instant,
    ) -> Result<Component, RuntimeError> {
        let (imports, exports) = check_world(&self.engine, &name, &component)?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| RuntimeError::NotAStep {
                    name: name.clone(),
                    problems: vec![format!("{e:#}")],
                })?;
        let pre = StepPre::new(instance_pre).map_err(|e| RuntimeError::NotAStep {
            name: name.clone(),
            problems: vec![format!("{e:#}")],
        })?;
        let loaded = Component {
            inner: Arc::new(Inner {
                engine: self.engine.clone(),
                pre,
                digest,
                size,
                imports,
                exports,
            }),
            name,
            cache: outcome,
            load_time: start.elapsed(),
        };
        self.loaded.lock().unwrap().insert(digest, loaded.clone());
        Ok(loaded)
    }

    /// Loads the component a digest names (as a model card's transform
    /// records it): a standard step of this build, else the bytes the object
    /// store holds under that digest.
    #[cfg(feature = "compiler")]
    pub fn load_digest(
        &self,
        digest: &Digest,
        objects: Option<&sluice_store::ObjectStore>,
    ) -> Result<Component, String> {
        let source = ComponentSource::of_digest(digest, objects)?;
        self.load(&source).map_err(|e| e.to_string())
    }

    #[cfg(feature = "compiler")]
    fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(wasmtime::component::Component, CacheOutcome), RuntimeError> {
        let invalid = |e: wasmtime::Error| RuntimeError::Invalid {
            name: name.to_string(),
            detail: format!("{e:#}"),
        };
        if !bytes.starts_with(COMPONENT_HEADER) {
            return Err(RuntimeError::Invalid {
                name: name.to_string(),
                detail: if bytes.starts_with(CORE_MODULE_HEADER) {
                    "it is a core WebAssembly module, not a component; build it for \
                     wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
                        .into()
                } else {
                    "it does not start with the WebAssembly magic number".into()
                },
            });
        }
        let Some(cache) = &self.cache else {
            let c = wasmtime::component::Component::new(&self.engine, bytes).map_err(invalid)?;
            return Ok((c, CacheOutcome::Uncached));
        };
        let outcome = match cache.lookup(digest) {
            Lookup::Found(path) => {
                // SAFETY: the file was written by `Component::serialize` of
                // this engine configuration (the entry's name carries the
                // engine's compatibility hash) and its length and CRC-32
                // matched its check record, so it is the bytes wasmtime
                // produced, unmodified; entries are replaced by rename only.
                match unsafe {
                    wasmtime::component::Component::deserialize_file(&self.engine, &path)
                } {
                    Ok(c) => {
                        cache.record(&CacheOutcome::Hit);
                        return Ok((c, CacheOutcome::Hit));
                    }
                    Err(e) => CacheOutcome::Recompiled(format!("rejected by wasmtime: {e}")),
                }
            }
            Lookup::Absent => CacheOutcome::Compiled,
            Lookup::Corrupt(why) => CacheOutcome::Recompiled(why),
        };
        let c = wasmtime::component::Component::new(&self.engine, bytes).map_err(invalid)?;
        if let Ok(serialized) = c.serialize() {
            // A cache that cannot be written only costs speed next time.
            let _ = cache.store(digest, &serialized);
        }
        cache.record(&outcome);
        Ok((c, outcome))
    }
}

/// Checks the component's exports and imports against the step world and
/// the sandbox, naming every problem. Returns the import and export names.
fn check_world(
    engine: &Engine,
    name: &str,
    component: &wasmtime::component::Component,
) -> Result<(Vec<String>, Vec<String>), RuntimeError> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    // A world-level `use` (as in `transform`) imports a type at the root;
    // types carry no authority, so only instances and functions are checked.
    let imports: Vec<String> = ty
        .imports(engine)
        .filter(|(_, item)| !matches!(item.ty, ComponentItem::Resource(_) | ComponentItem::Type(_)))
        .map(|(n, _)| n.to_string())
        .collect();
    let exports: Vec<(String, ComponentItem)> = ty
        .exports(engine)
        .map(|(n, t)| (n.to_string(), t.ty))
        .collect();

    for required in ["describe", "run"] {
        match exports.iter().find(|(n, _)| n == required) {
            None => problems.push(format!("missing export `{required}` (a function)")),
            Some((_, ComponentItem::ComponentFunc(_))) => {}
            Some(_) => problems.push(format!("export `{required}` is not a function")),
        }
    }
    for import in &imports {
        if let Some(why) = refused_import(import) {
            problems.push(why);
        }
    }
    if problems.is_empty() {
        Ok((imports, exports.into_iter().map(|(n, _)| n).collect()))
    } else {
        Err(RuntimeError::NotAStep {
            name: name.to_string(),
            problems,
        })
    }
}

/// Why the sandbox refuses an import, or `None` if it provides it.
fn refused_import(import: &str) -> Option<String> {
    let (path, version) = import.split_once('@').unwrap_or((import, ""));
    if let Some(iface) = path.strip_prefix("sluice:pipeline/") {
        if !["types", "tables", "ml", "context", "serving"].contains(&iface) {
            return Some(format!(
                "imports `{import}`, which {WIT_PACKAGE} does not define (it has types, tables, ml, context, serving)"
            ));
        }
        if !version.starts_with("0.1.") {
            return Some(format!(
                "imports `{import}`: this host implements {WIT_PACKAGE}; rebuild the component against that version"
            ));
        }
        return None;
    }
    if path.starts_with("wasi:http/") {
        return Some(format!(
            "imports `{import}`: steps have no network, so the sandbox does not provide wasi:http. \
             jco adds it by default; build JavaScript steps with `jco componentize … -d http fetch-event` \
             (what `sluice component build` does)"
        ));
    }
    if path.starts_with("wasi:") {
        if version.starts_with("0.2.") {
            return None;
        }
        return Some(format!(
            "imports `{import}`: the sandbox provides WASI 0.2 (wasi:*@0.2.x) only"
        ));
    }
    Some(format!(
        "imports `{import}`, which the sandbox does not provide; steps may import only \
         {WIT_PACKAGE} interfaces and WASI 0.2"
    ))
}

struct Inner {
    engine: Engine,
    pre: StepPre<StepState>,
    digest: Digest,
    size: usize,
    imports: Vec<String>,
    exports: Vec<String>,
}

/// A loaded, checked, pre-linked step component. Cheap to clone.
#[derive(Clone)]
pub struct Component {
    inner: Arc<Inner>,
    name: String,
    cache: CacheOutcome,
    load_time: Duration,
}

impl Component {
    fn renamed(&self, name: String, cache: CacheOutcome, load_time: Duration) -> Self {
        Component {
            inner: self.inner.clone(),
            name,
            cache,
            load_time,
        }
    }

    /// The component as the user named it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the component's bytes: its identity.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Where its native code came from on this load.
    pub fn cache_outcome(&self) -> &CacheOutcome {
        &self.cache
    }

    /// How long loading took (reading, hashing, compiling or deserialising, linking).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The interfaces the component imports.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// The names the component exports.
    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    /// The pre-linked component, for other worlds' export bindings.
    pub(crate) fn instance_pre(&self) -> &wasmtime::component::InstancePre<StepState> {
        self.inner.pre.instance_pre()
    }

    pub(crate) fn store(
        &self,
        io: StepIo,
        limits: &Limits,
        seed: [u8; 32],
        clocks: Option<ClockReads>,
        stdout: Capture,
        stderr: Capture,
    ) -> Store<StepState> {
        let mut wasi = WasiCtx::builder();
        // No preopens, environment, arguments or network: the defaults, made
        // explicit. Randomness is derived from the caller's seed.
        wasi.stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .secure_random(rand::rngs::ChaCha20Rng::from_seed(seed))
            .insecure_random(rand::rngs::ChaCha20Rng::from_seed(derive(seed, 1)))
            .insecure_random_seed(u128::from_le_bytes(
                derive(seed, 2)[..16].try_into().unwrap(),
            ));
        if let Some(reads) = clocks {
            wasi.wall_clock(reads.wall())
                .monotonic_clock(reads.monotonic());
        }
        let session = Session::new(limits.memory);
        let state = StepState {
            wasi: wasi.build(),
            resources: {
                // Each handle's data is counted against the memory limit;
                // the count itself is bounded too, so a step that leaks
                // handles gets a clear error long before the table's own
                // cap of a million.
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_HANDLES);
                table
            },
            limiter: Limiter::new(&session),
            io,
            session,
        };
        let mut store = Store::new(&self.inner.engine, state);
        // A step may move any value that fits its memory in one call (the
        // default budget, 128 MiB, would cap a column at 16M floats).
        store.set_hostcall_fuel(usize::try_from(limits.memory).unwrap_or(usize::MAX));
        store.limiter(|s| &mut s.limiter);
        set_deadline(&mut store, limits.time);
        store.epoch_deadline_trap();
        store
    }

    /// Calls `describe()` in a fresh instance and converts the manifest,
    /// checking it is well formed (unique port and param names, defaults of
    /// the declared type).
    pub fn describe(&self) -> Result<Manifest, RuntimeError> {
        let fail = |detail: String| RuntimeError::Describe {
            name: self.name.clone(),
            detail,
        };
        let limits = Limits {
            time: Duration::from_secs(10),
            ..Limits::default()
        };
        let stderr = Capture::new(CAPTURE_BYTES);
        let mut store = self.store(
            StepIo::default(),
            &limits,
            [0; 32],
            Some(ClockReads::default()),
            Capture::new(CAPTURE_BYTES),
            stderr.clone(),
        );
        let pre = &self.inner.pre;
        let called = block_on(async {
            let step = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (true, e))?;
            step.call_describe(&mut store).await.map_err(|e| (false, e))
        });
        let m = called.map_err(|(instantiating, e)| {
            // In the words of a step's failure: the time limit, memory,
            // the panic's own message.
            let why = match classify_trap(e, store.data(), &limits, &stderr.text()) {
                StepFailure::TimeLimit(t) => format!(
                    "it did not return within {} (a loop?)",
                    crate::outcome::humantime(t)
                ),
                other => other.to_string(),
            };
            fail(if instantiating {
                format!("instantiation failed: {why}")
            } else {
                why
            })
        })?;
        let manifest = convert_manifest(m);
        validate_manifest(&manifest).map_err(fail)?;
        Ok(manifest)
    }

    /// Instantiates the component and drops the instance; for benchmarks.
    #[doc(hidden)]
    pub fn instantiate_only(&self) -> Result<(), RuntimeError> {
        let mut store = self.store(
            StepIo::default(),
            &Limits::default(),
            [0; 32],
            Some(ClockReads::default()),
            Capture::new(0),
            Capture::new(0),
        );
        block_on(self.inner.pre.instantiate_async(&mut store))
            .map(|_| ())
            .map_err(|e| RuntimeError::Describe {
                name: self.name.clone(),
                detail: format!("instantiation failed: {e:#}"),
            })
    }

    /// Runs the step in a fresh sandboxed instance, blocking the calling
    /// thread. Never panics on guest misbehaviour: every failure comes back
    /// in [`StepOutcome::result`]. Must not be called from inside an async
    /// runtime; use [`Component::run_async`] there.
    pub fn run(&self, invocation: Invocation) -> StepOutcome {
        block_on(self.run_async(invocation))
    }

    /// [`Component::run`] as a future, for callers on an async runtime
    /// (tokio, with its timer enabled).
    pub async fn run_async(&self, invocation: Invocation) -> StepOutcome {
        let started = Instant::now();
        let Invocation {
            params,
            inputs,
            input_names,
            outputs,
            limits,
            seed,
            clock,
            events,
            components,
            serving,
        } = invocation;
        let io = StepIo {
            params,
            inputs,
            input_names,
            declared_outputs: outputs,
            output_limit: limits.output,
            started: Some(started),
            events,
            component: Some(self.digest()),
            components,
            serving,
            limits: Some(limits),
            ..StepIo::default()
        };
        let stdout = Capture::new(CAPTURE_BYTES);
        let stderr = Capture::new(CAPTURE_BYTES);
        let clock_reads = ClockReads::default();
        let mut store = self.store(
            io,
            &limits,
            seed,
            (clock == ClockMode::Virtual).then(|| clock_reads.clone()),
            stdout.clone(),
            stderr.clone(),
        );

        // Computation is stopped by the epoch deadline (a trap); a guest
        // blocked in a host call (e.g. sleeping) by this timeout.
        let pre = &self.inner.pre;
        let call = tokio::time::timeout(limits.time, async {
            let step = pre.instantiate_async(&mut store).await?;
            step.call_run(&mut store).await
        })
        .await;
        let state = store.data();
        let call = match call {
            Ok(call) => call,
            Err(_elapsed) => Err(wasmtime::Error::new(Trap::Interrupt)),
        };
        let result = match call {
            Ok(Ok(())) => {
                let missing: Vec<String> = state
                    .io
                    .declared_outputs
                    .iter()
                    .filter(|p| !state.io.outputs.contains_key(&p.name))
                    .map(|p| p.name.clone())
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(StepFailure::MissingOutputs(missing))
                }
            }
            Ok(Err(e)) => Err(match e {
                crate::bindings::sluice::pipeline::types::StepError::InvalidInput(m) => {
                    StepFailure::InvalidInput(m)
                }
                crate::bindings::sluice::pipeline::types::StepError::Rejected(m) => {
                    StepFailure::Rejected(m)
                }
                crate::bindings::sluice::pipeline::types::StepError::Failed(m) => {
                    StepFailure::Failed(m)
                }
            }),
            Err(e) => Err(classify_trap(e, state, &limits, &stderr.text())),
        };
        let state = store.into_data();
        let mut logs = state.io.logs;
        // What the bounds left out, said at the end of the log.
        let dropped = [
            (
                state.io.dropped_logs,
                format!(
                    "more log lines dropped: a step keeps at most {} lines and {} KiB of log",
                    crate::host::MAX_LOG_LINES,
                    crate::host::MAX_LOG_BYTES / 1024
                ),
            ),
            (
                state.io.dropped_metrics,
                format!(
                    "more metrics dropped: a step keeps at most {}",
                    crate::host::MAX_METRICS
                ),
            ),
        ];
        for (count, what) in dropped {
            if count > 0 {
                logs.push(crate::outcome::LogLine {
                    level: LogLevel::Warn,
                    message: format!("[{count} {what}]"),
                    at: started.elapsed(),
                });
            }
        }
        // Outputs and registrations of a failed execution are never recorded.
        let (outputs, registrations) = if result.is_ok() {
            (state.io.outputs, state.io.registrations)
        } else {
            Default::default()
        };
        StepOutcome {
            result,
            outputs,
            logs,
            metrics: state.io.metrics,
            stdout: stdout.text(),
            stderr: stderr.text(),
            duration: started.elapsed(),
            peak_memory: state.limiter.peak,
            clock_reads: clock_reads.count(),
            registrations,
            probed: state.io.probed,
        }
    }
}

/// Explains a trap in the user's terms: which limit was hit, or the panic
/// message, or the raw trap.
fn classify_trap(
    err: wasmtime::Error,
    state: &StepState,
    limits: &Limits,
    stderr: &str,
) -> StepFailure {
    if let Some(o) = err.downcast_ref::<OutputLimitExceeded>() {
        return StepFailure::OutputLimit {
            port: o.port.clone(),
            attempted: o.attempted,
            limit: limits.output,
        };
    }
    if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>() {
        return StepFailure::TimeLimit(limits.time);
    }
    if let Some(HostMemoryExceeded(e)) = err.downcast_ref::<HostMemoryExceeded>() {
        return StepFailure::MemoryLimit {
            limit: limits.memory,
            requested: e.held + e.requested,
            host_held: e.held.saturating_sub(state.limiter.linear()),
            what: Some(e.what.clone()),
        };
    }
    if let Some((requested, host_held)) = state.limiter.refused {
        return StepFailure::MemoryLimit {
            limit: limits.memory,
            requested,
            host_held,
            what: None,
        };
    }
    if let Some(line) = state
        .io
        .logs
        .iter()
        .rev()
        .find(|l| l.level == LogLevel::Error && l.message.starts_with("panic: "))
    {
        return StepFailure::Panicked(line.message["panic: ".len()..].to_string());
    }
    // Python first: componentize-py reports an escaped exception by printing
    // its traceback and then panicking in its own (Rust) runtime, whose
    // panic text says only that an exception was thrown.
    if let Some(msg) = python_exception(stderr) {
        return StepFailure::Panicked(msg);
    }
    if let Some(msg) = rust_panic_message(stderr) {
        return StepFailure::Panicked(msg);
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return StepFailure::Trap(format!(
            "the step called exit({}) instead of returning from `run`; a step ends by returning (an error, to fail)",
            exit.0
        ));
    }
    StepFailure::Trap(trap_message(&err, stderr))
}

/// A trap in one line a user can act on: the trap's own words, what it
/// usually means, and the last line the guest printed to stderr that is
/// not a stack frame (where JavaScript and C runtimes write the error that
/// made them abort).
pub(crate) fn trap_message(err: &wasmtime::Error, stderr: &str) -> String {
    let mut message = match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => {
            "stack overflow: the step recursed too deeply".to_string()
        }
        Some(Trap::MemoryOutOfBounds) => "out of bounds memory access (in a step built from Rust or C this is usually its stack overflowing into its data: deep recursion or a large local array)".to_string(),
        Some(t) => t.to_string(),
        None => {
            let root = err.root_cause().to_string();
            let first = root.lines().next().unwrap_or("").trim().to_string();
            if first.contains("resource table has no free keys") {
                format!("the step holds more than {MAX_HANDLES} host handles at once (tables, builders, models); drop those it no longer needs")
            } else {
                first
            }
        }
    };
    // The last line that is not a stack frame (JavaScript's `at …`).
    if let Some(last) = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("at "))
    {
        message.push_str(&format!("; it last printed to stderr: {}", cut(last, 300)));
    }
    message
}

/// `text` cut to at most `max` bytes, on a character boundary, with `…`.
fn cut(text: &str, max: usize) -> String {
    match crate::outcome::cut_text(text, max) {
        (all, 0) => all.to_string(),
        (kept, _) => format!("{kept}…"),
    }
}

/// The last line of the last Python traceback printed to stderr (the
/// exception and its message), as componentize-py prints an exception that
/// escaped a step.
fn python_exception(stderr: &str) -> Option<String> {
    let at = stderr.rfind("Traceback (most recent call last):")?;
    // The frames are indented; the exception is the first line after them
    // that starts in column 0 (whatever the runtime printed afterwards).
    let last = stderr[at..]
        .lines()
        .skip(1)
        .find(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))?;
    Some(format!("Python exception: {}", cut(last.trim_end(), 500)))
}

/// The message of the last Rust panic printed to stderr by the default hook
/// (`thread '…' panicked at FILE:LINE:COL:\nMESSAGE`).
fn rust_panic_message(stderr: &str) -> Option<String> {
    let at = stderr.rfind("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n")?;
    let message = message.lines().next().unwrap_or("").trim();
    Some(format!("{message} at {location}"))
}

/// Makes the store trap once `time` has passed from now.
pub(crate) fn set_deadline<T>(store: &mut Store<T>, time: Duration) {
    let ticks = time.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks + 1);
}

/// Drives a future to completion on this thread's current-thread tokio
/// runtime (created on first use), which WASI's timers need.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread tokio runtime can always be built");
    }
    RT.with(|rt| rt.block_on(fut))
}

fn derive(seed: [u8; 32], n: u8) -> [u8; 32] {
    let mut parts = seed.to_vec();
    parts.push(n);
    *Digest::of(&parts).as_bytes()
}

fn convert_manifest(m: bindings::sluice::pipeline::types::Manifest) -> Manifest {
    use bindings::sluice::pipeline::types as t;
    let kind = |k: t::ArtifactKind| match k {
        t::ArtifactKind::Table => ArtifactKind::Table,
        t::ArtifactKind::Model => ArtifactKind::Model,
        t::ArtifactKind::Schema => ArtifactKind::Schema,
        t::ArtifactKind::Statistics => ArtifactKind::Statistics,
        t::ArtifactKind::Metrics => ArtifactKind::Metrics,
        t::ArtifactKind::Transform => ArtifactKind::Transform,
        t::ArtifactKind::File => ArtifactKind::File,
    };
    let port = |p: t::Port| Port {
        name: p.name,
        kind: kind(p.kind),
        optional: p.optional,
        doc: p.doc,
    };
    let value = |v: t::Value| match v {
        t::Value::Boolean(b) => Value::Boolean(b),
        t::Value::Integer(i) => Value::Integer(i),
        t::Value::Float(f) => Value::Float(f),
        t::Value::Text(s) => Value::Text(s),
        t::Value::Json(s) => Value::Json(s),
    };
    Manifest {
        name: m.name,
        version: m.version,
        doc: m.doc,
        inputs: m.inputs.into_iter().map(port).collect(),
        outputs: m.outputs.into_iter().map(port).collect(),
        params: m
            .params
            .into_iter()
            .map(|p| ParamSpec {
                name: p.name,
                value_type: match p.value_type {
                    t::ValueType::Boolean => ValueType::Boolean,
                    t::ValueType::Integer => ValueType::Integer,
                    t::ValueType::Float => ValueType::Float,
                    t::ValueType::Text => ValueType::Text,
                    t::ValueType::Json => ValueType::Json,
                },
                default: p.default.map(value),
                required: p.required,
                doc: p.doc,
            })
            .collect(),
    }
}

/// Checks a manifest is well formed; the message names the offending item.
pub(crate) fn validate_manifest(m: &Manifest) -> Result<(), String> {
    let mut problems = Vec::new();
    if m.name.trim().is_empty() {
        problems.push("the manifest has an empty name".to_string());
    }
    for (what, ports) in [("input", &m.inputs), ("output", &m.outputs)] {
        let mut seen = std::collections::HashSet::new();
        for p in ports.iter() {
            if p.name.trim().is_empty() {
                problems.push(format!("an {what} port has an empty name"));
            } else if !seen.insert(&p.name) {
                problems.push(format!("{what} port `{}` is declared twice", p.name));
            }
        }
    }
    if let Some(p) = m.outputs.iter().find(|p| p.optional) {
        problems.push(format!(
            "output port `{}` is marked optional; outputs are always produced",
            p.name
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for p in &m.params {
        if !seen.insert(&p.name) {
            problems.push(format!("param `{}` is declared twice", p.name));
        }
        if let Some(d) = &p.default {
            if !p.value_type.accepts(d.value_type()) {
                problems.push(format!(
                    "param `{}` is declared {} but its default {d} is {}",
                    p.name,
                    p.value_type,
                    d.value_type()
                ));
            }
            if p.required {
                problems.push(format!("param `{}` is required but has a default", p.name));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    // A manifest written to break the host (100,000 duplicate ports) gets
    // a message of a few lines, not a megabyte.
    const SHOWN: usize = 10;
    let more = problems.len().saturating_sub(SHOWN);
    problems.truncate(SHOWN);
    let mut message = format!("malformed manifest: {}", problems.join("; "));
    if more > 0 {
        message.push_str(&format!("; and {more} more problem(s)"));
    }
    Err(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_with_thousands_of_problems_gets_a_short_message() {
        let mut m = Manifest::new("evil", "0.1.0");
        for _ in 0..100_000 {
            m.outputs.push(Port::new("out", ArtifactKind::File));
        }
        let e = validate_manifest(&m).unwrap_err();
        assert!(e.len() < 1000, "{} bytes", e.len());
        assert!(e.ends_with("; and 99989 more problem(s)"), "{e}");
    }

    #[test]
    fn traps_read_as_what_happened_with_the_guests_last_words() {
        let e = wasmtime::Error::new(Trap::MemoryOutOfBounds);
        let m = trap_message(&e, "");
        assert!(m.contains("usually its stack overflowing"), "{m}");
        let e = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let m = trap_message(&e, "\nError: bad row 7\n   at run (step.js:3)\n\n");
        assert_eq!(
            m,
            "wasm trap: wasm `unreachable` instruction executed; it last printed to stderr: Error: bad row 7"
        );
        let py = "Traceback (most recent call last):\n  File \"app.py\", line 9, in run\n    int(x)\n    ^^^^^^\nValueError: invalid literal for int() with base 10: 'a'\nthread '<unnamed>' panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\n";
        assert_eq!(
            python_exception(py).unwrap(),
            "Python exception: ValueError: invalid literal for int() with base 10: 'a'"
        );
    }

    #[test]
    fn imports_outside_the_sandbox_are_refused_with_a_reason() {
        let http = refused_import("wasi:http/types@0.2.3").unwrap();
        assert!(http.contains("-d http"), "{http}");
        assert!(refused_import("wasi:cli/environment@0.2.6").is_none());
        assert!(refused_import("sluice:pipeline/context@0.1.0").is_none());
        assert!(
            refused_import("sluice:pipeline/context@0.2.0")
                .unwrap()
                .contains("rebuild")
        );
        assert!(
            refused_import("sluice:pipeline/gpu@0.1.0")
                .unwrap()
                .contains("does not define")
        );
        assert!(
            refused_import("wasi:io/streams@0.2.0").is_none(),
            "other wasi 0.2 interfaces are linked or fail in instantiate_pre"
        );
        assert!(
            refused_import("acme:evil/net")
                .unwrap()
                .contains("does not provide")
        );
        assert!(
            refused_import("wasi:cli/environment@0.3.0")
                .unwrap()
                .contains("WASI 0.2")
        );
    }

    #[test]
    fn panic_messages_are_extracted_from_rust_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\nnote: run with RUST_BACKTRACE=1\n";
        assert_eq!(
            rust_panic_message(stderr).unwrap(),
            "boom at src/lib.rs:10:5"
        );
        assert!(rust_panic_message("all good").is_none());
    }
}
