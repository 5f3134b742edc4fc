//! The process's memory allocator: mimalloc, set to give freed memory back
//! to the kernel promptly.
//!
//! Why not glibc's malloc, which `sluice` used before:
//! - **Serving.** Under 16 concurrent clients glibc spent a fifth of the
//!   server's CPU in `_int_malloc`/`_int_free`/`malloc_consolidate`, and
//!   kept what a burst of large requests freed (8 concurrent 11.5 MiB
//!   requests left 690 MB resident) until an explicit `malloc_trim`.
//!   mimalloc's per-thread pages need no locks on the request path
//!   (measured on `bench/serve`: 7,900 → 14,300 req/s at 16 clients, p99
//!   3.4 → 3.1 ms) and return pages when they empty.
//! - **The data plane.** glibc raises its mmap threshold each time a large
//!   block is freed, so later column buffers came from arenas that keep
//!   freed memory (a 20M-row run peaked at 5.1 GiB resident for 3.6 GiB in
//!   use) unless the threshold was pinned with `mallopt`. mimalloc returns
//!   an emptied page's memory by itself.
//!
//! Two options differ from mimalloc's defaults, both for resident size:
//! - `purge_delay`: how long an emptied page stays mapped before it goes
//!   back to the kernel (`MADV_DONTNEED`). mimalloc's default is a second;
//!   pipelines get 10 ms and `sluice serve` 0 (see [`return_memory_at_once`]).
//!   Measured on `bench/dataplane` at 5M rows: 1,000 ms ran in 6.5 s at
//!   1,171 MiB peak (more than pandas' 1,155), 10 ms in 7.6 s at 1,072 MiB,
//!   0 in 10.2 s at 1,013 MiB (training's chunk scratch was handed back and
//!   faulted in again on every pass).
//! - `arena_eager_commit = 0`: arenas commit memory as it is used rather
//!   than all at once, so purged memory is decommitted, not merely reset
//!   (with eager commit the same 5M run peaked 67 MiB higher, no faster).
//!
//! The options are set from an ELF constructor, which runs before Rust's
//! runtime makes its first allocation (and so before mimalloc reserves its
//! first arena), rather than from environment variables a user would have
//! to know about. `MIMALLOC_*` variables a user sets still win over them:
//! mimalloc reads the environment only for options not yet set, and the
//! constructor leaves any option whose variable is present alone.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e`.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the options above unless the user set them through the
/// environment. Runs as an ELF constructor: before `main`, before any Rust
/// allocation.
extern "C" fn configure() {
    set_unless_overridden(MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10);
    set_unless_overridden(
        MI_OPTION_ARENA_EAGER_COMMIT,
        "MIMALLOC_ARENA_EAGER_COMMIT",
        0,
    );
}

/// Makes emptied pages go back to the kernel the moment they empty, for a
/// long-running server: a quiet server after a burst of large requests
/// shrinks at once. Measured on `bench/serve` at 16 clients: RSS 82–106
/// MiB with mimalloc's default delay, 37–48 MiB with none, throughput
/// within noise. Batch work keeps its short delay (the module docs say
/// why).
pub(crate) fn return_memory_at_once() {
    set_unless_overridden(MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0);
}

fn set_unless_overridden(option: libmimalloc_sys::mi_option_t, variable: &str, value: i64) {
    // `var_os` does not allocate for a missing variable; for a present one
    // it allocates through this allocator, which merely uses defaults then.
    if std::env::var_os(variable).is_none() {
        // SAFETY: setting an option is a store into mimalloc's option
        // table, read each time it is needed; mimalloc allows it at any
        // time, and no allocation depends on a particular value.
        unsafe { libmimalloc_sys::mi_option_set(option, value as _) };
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE: extern "C" fn() = configure;

/// Sets the options on platforms without `.init_array`, as early as Rust
/// code can: the first statement of `main`.
pub(crate) fn configure_late() {
    #[cfg(not(target_os = "linux"))]
    configure();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_are_set_before_main() {
        // Test binaries get the same constructor; unless the environment
        // overrides them, the options hold sluice's values.
        for (option, variable, value) in [
            (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10),
            (
                MI_OPTION_ARENA_EAGER_COMMIT,
                "MIMALLOC_ARENA_EAGER_COMMIT",
                0,
            ),
        ] {
            if std::env::var_os(variable).is_none() {
                // SAFETY: reading an option has no preconditions.
                assert_eq!(unsafe { libmimalloc_sys::mi_option_get(option) }, value);
            }
        }
    }
}
