//! Accepting and driving connections: a limit on how many are open, idle
//! ones given up for new ones when the limit is reached, and a drain on
//! shutdown. The HTTP/1 port and the gRPC (HTTP/2) port share this loop.
//!
//! Why evict: a limit alone lets a flood of idle or half-open connections
//! (or of clients that keep connections alive and quiet) hold every slot,
//! and then a health check waits behind them until the header timeout
//! frees one. Here a new connection that finds every slot taken closes the
//! connection that has been idle longest instead, the way a reverse proxy
//! sheds idle keep-alive connections; only when every connection is busy
//! with a request does it wait for one to finish (backpressure).

use crate::io_threads::IoThreads;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// How long a drain may take before the server gives up on the
/// connections still busy.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// One open connection, as the accept loop sees it.
pub(crate) struct Tracked {
    /// Requests (HTTP/2: streams) being answered on it now.
    in_flight: AtomicUsize,
    /// When it last started or finished a request, in ms since `epoch`.
    last_active: AtomicU64,
    /// Set once it has been picked for eviction.
    evicted: AtomicBool,
    /// Wakes its task to close it gracefully.
    evict: Notify,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.last_active
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Marks a request as in flight on this connection until the guard
    /// drops.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Busy(self.clone())
    }
}

/// A request in flight on a connection.
pub(crate) struct Busy(Arc<Tracked>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open connections of one listener.
struct Registry {
    open: Mutex<HashMap<u64, Arc<Tracked>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Tracked>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tracked = Arc::new(Tracked {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
            epoch: self.epoch,
        });
        tracked.touch();
        self.open.lock().unwrap().insert(id, tracked.clone());
        (id, tracked)
    }

    fn remove(&self, id: u64) {
        self.open.lock().unwrap().remove(&id);
    }

    /// Asks the connection idle longest to close; false when every
    /// connection is busy (or already closing).
    fn evict_idlest(&self) -> bool {
        let open = self.open.lock().unwrap();
        let victim = open
            .values()
            .filter(|t| {
                t.in_flight.load(Ordering::SeqCst) == 0 && !t.evicted.load(Ordering::SeqCst)
            })
            .min_by_key(|t| t.last_active.load(Ordering::Relaxed));
        match victim {
            Some(t) => {
                t.evicted.store(true, Ordering::SeqCst);
                t.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Drives one accepted connection until it ends or `stop` resolves; then
/// asks it to finish gracefully (`drain`: after the request in flight) and
/// waits for that, dropping it outright if it is still open a second
/// later with no request in flight (a client halfway through sending
/// headers does not count as one).
pub(crate) async fn drive<C>(
    connection: C,
    tracked: Arc<Tracked>,
    stop: impl Future<Output = ()>,
    drain: impl FnOnce(Pin<&mut C>),
) where
    C: Future,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stop => {}
    }
    drain(connection.as_mut());
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if tracked.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
            }
        }
    }
}

/// What to do with each accepted connection: given the socket, the
/// connection's tracker (for its requests to mark themselves busy) and a
/// future that resolves when it should close, a future that serves it.
pub(crate) type ServeOne = Arc<
    dyn Fn(
            TokioIo<TcpStream>,
            Arc<Tracked>,
            Pin<Box<dyn Future<Output = ()> + Send>>,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Accepts connections on `listener` until `shutdown` resolves, each
/// served on one of the `io` threads (if given; else on this runtime), at
/// most `max_connections` open at once (at the limit, the idlest is closed for
/// the newcomer; when all are busy, accepting waits). Then drains: no new
/// connections, every open one closes after the request it is answering,
/// and this returns when all have (or after 30 s, with an error).
pub(crate) async fn serve(
    listener: TcpListener,
    io: Option<&IoThreads>,
    max_connections: usize,
    serve_one: ServeOne,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let registry = Arc::new(Registry {
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        epoch: Instant::now(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection's task holds a sender; all dropped = all done.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the limit: close the idlest connection for the newcomer, and
        // another every 100 ms while none frees up (all busy: wait).
        let permit = loop {
            if let Ok(p) = permits.clone().try_acquire_owned() {
                break Some(p);
            }
            registry.evict_idlest();
            tokio::select! {
                () = &mut shutdown => break None,
                p = permits.clone().acquire_owned() => break p.ok(),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let Some(permit) = permit else { break };
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // Out of file descriptors and the like: wait, then go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small responses go out at once, not after a delayed ACK.
        let _ = tcp.set_nodelay(true);
        let (id, tracked) = registry.add();
        let mut stop_rx = stop_rx.clone();
        let evicted = tracked.clone();
        let stop: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            tokio::select! {
                _ = stop_rx.wait_for(|stop| *stop) => {}
                () = evicted.evict.notified() => {}
            }
        });
        let (registry, done) = (registry.clone(), done_tx.clone());
        let forget = move || {
            registry.remove(id);
            drop(permit);
            drop(done);
        };
        match io {
            Some(io) => {
                let serve_one = serve_one.clone();
                // The socket leaves this thread's reactor for its I/O
                // thread's.
                let Ok(tcp) = tcp.into_std() else {
                    forget();
                    continue;
                };
                io.spawn(move || async move {
                    if let Ok(tcp) = TcpStream::from_std(tcp) {
                        serve_one(TokioIo::new(tcp), tracked, stop).await;
                    }
                    forget();
                });
            }
            None => {
                let served = serve_one(TokioIo::new(tcp), tracked, stop);
                tokio::spawn(async move {
                    served.await;
                    forget();
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    tokio::time::timeout(DRAIN_LIMIT, done_rx.recv())
        .await
        .map(|_| ())
        .map_err(|_| "some connections were still busy 30 s after the shutdown signal".to_string())
}
