//! The threads that serve HTTP connections: one single-threaded async
//! runtime per thread, each connection pinned to one of them for its life.
//!
//! Why not one multi-threaded runtime: a one-row request is a few tens of
//! microseconds of work, and a work-stealing scheduler spends a share of
//! that on bookkeeping every request (waking an idle worker to look for
//! work, moving tasks between queues). With one client sending requests
//! one after another, the flagship model's requests cost 15–25 % less CPU
//! here than on a work-stealing runtime; at 16 clients the two are even.
//! A connection's requests arrive in order anyway, so nothing is lost by
//! keeping a connection and its requests on one thread, as nginx and
//! Envoy do; new connections go to the thread with the fewest open.
//!
//! gRPC does not use these: hyper runs each HTTP/2 stream as a task of its
//! own, and at 16 clients those cost 10–25 % more CPU here than with work
//! stealing (`bench/serve/README.md`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Threads, each running a current-thread runtime that serves the
/// connections handed to it. Dropping it stops them (tasks still running
/// on them are dropped); stop only after the connections have drained.
pub(crate) struct IoThreads {
    threads: Vec<IoThread>,
}

struct IoThread {
    handle: Handle,
    /// Connections served on it now, to hand new ones to the least loaded.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IoThreads {
    /// Starts `count` threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<IoThreads> {
        let threads = (0..count.max(1))
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name(format!("sluice-io-{i}"))
                    .spawn(move || {
                        // Tasks spawned on a current-thread runtime run
                        // while something blocks on it.
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    })?;
                Ok(IoThread {
                    handle,
                    open: Arc::default(),
                    stop: Some(stop),
                    thread: Some(thread),
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(IoThreads { threads })
    }

    /// Runs `task` on the thread serving the fewest connections; `task` is
    /// made there (so sockets it opens register with that thread's reactor).
    pub(crate) fn spawn<F, Fut>(&self, task: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let least = self
            .threads
            .iter()
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
            .expect("at least one thread");
        let open = least.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        let leave = Leave(open);
        least.handle.spawn(async move {
            let _leave = leave;
            task().await;
        });
    }
}

/// Counts a connection off its thread when its task ends (or is dropped).
struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for IoThreads {
    fn drop(&mut self) {
        for t in &mut self.threads {
            if let Some(stop) = t.stop.take() {
                let _ = stop.send(());
            }
        }
        for t in &mut self.threads {
            if let Some(thread) = t.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn each_task_runs_on_an_io_thread_and_new_ones_go_to_the_least_loaded() {
        let threads = IoThreads::start(2).unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let (hold, held) = tokio::sync::watch::channel(false);
        let (ran_tx, ran_rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let (names, ran) = (names.clone(), ran_tx.clone());
            let mut held = held.clone();
            threads.spawn(move || async move {
                let name = std::thread::current().name().unwrap().to_string();
                names.lock().unwrap().push(name);
                ran.send(()).unwrap();
                let _ = held.wait_for(|h| *h).await;
            });
        }
        for _ in 0..4 {
            ran_rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
        }
        let mut names = names.lock().unwrap().clone();
        names.sort();
        assert_eq!(
            names,
            ["sluice-io-0", "sluice-io-0", "sluice-io-1", "sluice-io-1"]
        );
        let _ = hold.send(true);
        drop(threads);
    }
}
