//! A valid wasm32-wasip2 component that does not implement the step world:
//! it exports no `describe` or `run`. The host must say so, precisely.

/// A function the component lowers but never exports at the component level.
#[unsafe(no_mangle)]
pub extern "C" fn answer() -> i32 {
    42
}
