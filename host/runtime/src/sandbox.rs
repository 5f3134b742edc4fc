//! The sandbox a step runs in: its resource limits, the memory limiter that
//! enforces them, and the capture of the guest's stdout and stderr.

use sluice_tables::{Reservation, Session};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Resource limits of one step execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Most linear memory the component may use, in bytes, over all its memories.
    pub memory: u64,
    /// Wall-clock time the step may run.
    pub time: Duration,
    /// Most bytes the step may write to its outputs in total.
    pub output: u64,
}

impl Limits {
    /// 1 GiB of memory.
    pub const DEFAULT_MEMORY: u64 = 1 << 30;
    /// Ten minutes.
    pub const DEFAULT_TIME: Duration = Duration::from_secs(600);
    /// 1 GiB of outputs.
    pub const DEFAULT_OUTPUT: u64 = 1 << 30;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: Self::DEFAULT_MEMORY,
            time: Self::DEFAULT_TIME,
            output: Self::DEFAULT_OUTPUT,
        }
    }
}

/// Enforces the memory limit and remembers whether it was hit and the peak.
///
/// The guest's linear memory is reserved in the step's table session's
/// budget, the same budget the host's tables and queries for the step
/// reserve in, so one limit covers both.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Bytes of linear memory and table elements currently allocated, over
    /// all memories and tables.
    current: u64,
    /// The most the step had at once: linear memory plus host-held data.
    pub(crate) peak: u64,
    /// The total a refused growth asked for (linear memory and host-held
    /// data), and the host-held part, if one was refused.
    pub(crate) refused: Option<(u64, u64)>,
    reservation: Reservation,
    session: Session,
}

impl Limiter {
    pub(crate) fn new(session: &Session) -> Self {
        Limiter {
            current: 0,
            peak: 0,
            refused: None,
            reservation: session.budget().reservation("linear memory"),
            session: session.clone(),
        }
    }

    /// Bytes of linear memory the guest has now.
    pub(crate) fn linear(&self) -> u64 {
        self.current
    }

    /// Reserves `grow` more bytes of guest memory (linear or tables) in the
    /// step's budget. Refusing makes `memory.grow` (or `table.grow`) return
    /// -1, as on a real machine out of memory; the guest decides how to
    /// fail, and the refusal is remembered for the step's error.
    fn reserve(&mut self, grow: usize) -> bool {
        if self.reservation.try_grow(grow).is_err() {
            let reserved = self.session.reserved();
            let host = reserved.saturating_sub(self.current);
            self.refused = Some((reserved + grow as u64, host));
            return false;
        }
        self.current += grow as u64;
        self.observe();
        true
    }

    /// Notes the budget's current use in the peak (after the host takes more).
    pub(crate) fn observe(&mut self) {
        self.peak = self.peak.max(self.session.reserved());
    }
}

/// Host bytes counted per Wasm table element (wasmtime stores a funcref as
/// a pointer; a continuation object as two).
const TABLE_ELEMENT_BYTES: usize = 16;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.reserve(desired - current))
    }

    /// Table elements are host memory too (a pointer or two each): they
    /// are reserved in the step's budget like linear memory, so a hundred
    /// tables of a million entries cannot get past a small limit.
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000_000 && self.reserve((desired - current) * TABLE_ELEMENT_BYTES))
    }

    fn instances(&self) -> usize {
        1_000
    }

    fn tables(&self) -> usize {
        1_000
    }

    fn memories(&self) -> usize {
        100
    }
}

/// A stdout/stderr sink that keeps the first `capacity` bytes a guest
/// writes and silently drops the rest (noting that it did), so a chatty
/// guest can neither exhaust host memory nor fail because its output is full.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    inner: Arc<Mutex<CaptureBuf>>,
}

#[derive(Debug, Default)]
struct CaptureBuf {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

impl Capture {
    pub(crate) fn new(capacity: usize) -> Self {
        Capture {
            inner: Arc::new(Mutex::new(CaptureBuf {
                capacity,
                ..Default::default()
            })),
        }
    }

    /// What was captured, as text, with a note if some was dropped.
    pub(crate) fn text(&self) -> String {
        let buf = self.inner.lock().unwrap();
        let mut s = String::from_utf8_lossy(&buf.bytes).into_owned();
        if buf.dropped > 0 {
            s.push_str(&format!("\n[… {} more bytes dropped]\n", buf.dropped));
        }
        s
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap();
        let room = buf.capacity.saturating_sub(buf.bytes.len());
        let take = room.min(bytes.len());
        buf.bytes.extend_from_slice(&bytes[..take]);
        buf.dropped += (bytes.len() - take) as u64;
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_first_bytes_and_counts_the_rest() {
        let c = Capture::new(5);
        c.push(b"hello world");
        assert_eq!(c.text(), "hello\n[… 6 more bytes dropped]\n");
    }

    #[test]
    fn limiter_refuses_growth_past_the_limit_and_tracks_the_peak() {
        let session = Session::new(100);
        let mut l = Limiter::new(&session);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(!l.memory_growing(60, 120, None).unwrap());
        assert_eq!(l.refused, Some((120, 0)));
        assert_eq!(l.peak, 60);
    }

    #[test]
    fn host_held_data_and_linear_memory_share_one_limit() {
        let session = Session::new(100);
        let _held = session.ledger().hold_bytes("a table", 50).unwrap();
        let mut l = Limiter::new(&session);
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert!(!l.memory_growing(40, 60, None).unwrap());
        assert_eq!(l.refused, Some((110, 50)), "50 held by the host, 60 asked");
    }
}
