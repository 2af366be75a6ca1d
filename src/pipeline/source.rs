//! Sources: standard input, a TCP listener or a Unix stream socket, framed into [`Batch`]es and
//! handed to the decode workers in one ordered stream.
//!
//! Stdin is read by a plain thread in 1 MiB blocks (pipes are enlarged to 1 MiB where the kernel
//! allows it: hops between the two vCPUs are expensive, see performance.md). Sockets are served by
//! tokio: each connection frames its own lines (so a connection's lines stay in order and a final
//! line without a newline still counts) and sends batches to one feeder thread, which numbers them
//! and passes them on. A semaphore caps simultaneous connections. Sources stop reading when the
//! [`Shutdown`] trigger fires; they never drop a line they have read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::io::AsyncReadExt;

use std::os::fd::AsFd;

use super::frame::{Batch, BatchPool, Framer, SourceInfo, SourceMarker};
use super::shutdown::Shutdown;
use crate::config::InputSpec;
use crate::metrics::{Handles, PipelineStage};

/// Size of the stdin pipe (where the kernel lets us grow it): fewer, larger hand-offs between
/// the producer's CPU and ours.
pub const PIPE_BYTES: usize = 1 << 20;
/// Largest read from stdin: one read is at most one batch, so this bounds a batch's buffer
/// (about 170 lines of 1.5 KB), and with it the memory of batches in flight.
pub const READ_BLOCK_BYTES: usize = 256 << 10;
/// How often a blocked stdin read wakes up to check for shutdown.
const POLL_INTERVAL_MS: i32 = 100;

/// Errors that stop a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the input failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The listener could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Numbers batches and lines in stream order and sends them downstream.
pub struct Feeder {
    tx: Sender<Batch>,
    pool: BatchPool,
    handles: Handles,
    seq: u64,
    next_line: u64,
}

/// The downstream stages have stopped (e.g. stdout closed): stop reading.
#[derive(Debug)]
pub struct Closed;

impl Feeder {
    /// A feeder sending into `tx`; framers take recycled batches from `pool`.
    pub fn new(tx: Sender<Batch>, pool: BatchPool, handles: Handles) -> Feeder {
        Feeder { tx, pool, handles, seq: 0, next_line: 0 }
    }

    /// Assigns the batch its sequence number and first line number, then sends it (blocking while
    /// the channel is full: this is the backpressure that bounds memory).
    pub fn send(&mut self, mut batch: Batch) -> Result<(), Closed> {
        if batch.is_empty() && batch.origin.marker.is_none() {
            return Ok(());
        }
        batch.seq = self.seq;
        batch.first_line = self.next_line;
        self.seq += 1;
        self.next_line += batch.len() as u64;
        let n = batch.len() as u64;
        self.tx.send(batch).map_err(|_| Closed)?;
        self.handles.queue_pushed(PipelineStage::Decode, n);
        Ok(())
    }
}

/// Runs the configured source until end of input, shutdown, or a closed downstream.
pub fn run(
    input: &InputSpec,
    batch_size: usize,
    max_connections: usize,
    feeder: Feeder,
    shutdown: &Shutdown,
    rt: &tokio::runtime::Handle,
) -> Result<(), SourceError> {
    match input {
        InputSpec::Stdin => read_stdin(batch_size, feeder, shutdown),
        InputSpec::Tcp(addr) => {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind(addr.as_str()))
                .map_err(|source| SourceError::Bind { addr: addr.clone(), source })?;
            if let Ok(local) = listener.local_addr() {
                // On stderr as a plain line too: with port 0 this is how callers learn the port.
                eprintln!("eqlstream: listening on tcp://{local}");
            }
            serve(Listener::Tcp(listener), batch_size, max_connections, feeder, shutdown, rt)
        }
        InputSpec::Unix(path) => {
            // A stale socket file from an earlier run would make bind fail; only remove sockets.
            remove_stale_socket(path);
            let listener = {
                let _guard = rt.enter();
                tokio::net::UnixListener::bind(path)
                    .map_err(|source| SourceError::Bind { addr: path.display().to_string(), source })?
            };
            eprintln!("eqlstream: listening on unix://{}", path.display());
            let r = serve(Listener::Unix(listener), batch_size, max_connections, feeder, shutdown, rt);
            let _ = std::fs::remove_file(path);
            r
        }
    }
}

fn remove_stale_socket(path: &PathBuf) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Grows a pipe on fd to 1 MiB where permitted (Linux `F_SETPIPE_SZ`); harmless elsewhere.
pub fn grow_pipe(fd: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl with F_SETPIPE_SZ only reads its integer argument; on a non-pipe it fails
    // with EBADF/EINVAL, which we ignore.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES as libc::c_int);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Waits until fd 0 is readable or `POLL_INTERVAL_MS` passes; true when readable (or on error,
/// so that the following read reports it).
fn stdin_ready() -> bool {
    let mut pfd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, count 1.
    let n = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL_MS) };
    // EINTR (a signal, e.g. the SIGTERM we must react to) is "not ready": loop and check.
    n > 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
}

/// The source id of standard input (connections count from 1).
pub const STDIN_SOURCE: u32 = 0;

fn read_stdin(batch_size: usize, mut feeder: Feeder, shutdown: &Shutdown) -> Result<(), SourceError> {
    grow_pipe(0);
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let info = SourceInfo { name: "stdin".into(), label: "stdin".into() };
    if feeder.send(Batch::marker(STDIN_SOURCE, SourceMarker::Opened(Arc::new(info)))).is_err() {
        return Ok(());
    }
    let result = read_stdin_lines(batch_size, &mut feeder, shutdown, fd);
    let _ = feeder.send(Batch::marker(STDIN_SOURCE, SourceMarker::Closed));
    result
}

fn read_stdin_lines(
    batch_size: usize,
    feeder: &mut Feeder,
    shutdown: &Shutdown,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<(), SourceError> {
    let mut framer = Framer::with_pool(batch_size, feeder.pool.clone()).for_source(STDIN_SOURCE);
    let mut out = Vec::new();
    loop {
        if shutdown.is_triggered() {
            tracing::info!("Shutdown requested: stopped reading standard input.");
            break;
        }
        if !stdin_ready() {
            continue;
        }
        // Straight into the batch buffer: the kernel's copy is the only one.
        match framer.read_fd(fd, READ_BLOCK_BYTES, true, &mut out) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                // Forward what was read before failing.
                framer.finish(&mut out);
                for b in out.drain(..) {
                    let _ = feeder.send(b);
                }
                return Err(SourceError::Read { what: "standard input", source });
            }
        }
        for b in out.drain(..) {
            if feeder.send(b).is_err() {
                return Ok(());
            }
        }
    }
    framer.finish(&mut out);
    for b in out.drain(..) {
        if feeder.send(b).is_err() {
            break;
        }
    }
    Ok(())
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

fn serve(
    listener: Listener,
    batch_size: usize,
    max_connections: usize,
    mut feeder: Feeder,
    shutdown: &Shutdown,
    rt: &tokio::runtime::Handle,
) -> Result<(), SourceError> {
    // Connection tasks -> this thread (the feeder): a bounded tokio channel, so a slow pipeline
    // stops the tasks from reading.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(4);
    let sem = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let sd = shutdown.clone();
    let pool = feeder.pool.clone();
    let accept_task = rt.spawn(async move {
        let mut next_conn: u32 = 0;
        loop {
            let permit = tokio::select! {
                _ = sd.wait() => break,
                p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let accepted: std::io::Result<(Box<dyn AsyncStream>, Peer)> = tokio::select! {
                _ = sd.wait() => break,
                r = accept(&listener) => r,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Source ids: 0 is stdin; connections count from 1 (wrapping past 0).
                    next_conn = next_conn.checked_add(1).unwrap_or(1);
                    let conn = next_conn;
                    let info = peer.info(conn);
                    tracing::debug!(conn, peer = %info.name, "Connection accepted.");
                    let tx = tx.clone();
                    let sd = sd.clone();
                    let framer = Framer::with_pool(batch_size, pool.clone()).for_source(conn);
                    tokio::spawn(async move {
                        // In band, so the sequencer sees the source open before its lines and
                        // close after them.
                        if tx.send(Batch::marker(conn, SourceMarker::Opened(Arc::new(info)))).await.is_err() {
                            return;
                        }
                        if let Err(e) = read_connection(stream, framer, tx.clone(), sd).await {
                            tracing::warn!(conn, error = %e, "Connection read failed; lines read before the error were kept.");
                        }
                        let _ = tx.send(Batch::marker(conn, SourceMarker::Closed)).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // Dropping `tx` here (and in every connection task when it ends) closes the channel.
    });
    while let Some(batch) = rx.blocking_recv() {
        if feeder.send(batch).is_err() {
            shutdown.trigger();
            break;
        }
    }
    let _ = rt.block_on(accept_task);
    Ok(())
}

trait AsyncStream: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> AsyncStream for T {}

/// Who is on the other end of a connection.
enum Peer {
    Tcp(std::net::SocketAddr),
    Unix,
}

impl Peer {
    fn info(&self, conn: u32) -> SourceInfo {
        match self {
            Peer::Tcp(a) => {
                SourceInfo { name: format!("tcp://{a} (connection {conn})"), label: format!("tcp:{}", a.ip()) }
            }
            Peer::Unix => SourceInfo { name: format!("unix (connection {conn})"), label: "unix".into() },
        }
    }
}

async fn accept(listener: &Listener) -> std::io::Result<(Box<dyn AsyncStream>, Peer)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s), Peer::Tcp(addr)))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Box::new(s), Peer::Unix))
        }
    }
}

async fn read_connection(
    mut stream: Box<dyn AsyncStream>,
    mut framer: Framer,
    tx: tokio::sync::mpsc::Sender<Batch>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let mut block = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    let result = loop {
        let n = tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            r = stream.read(&mut block) => match r {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            },
        };
        framer.push(&block[..n], true, &mut out);
        for b in out.drain(..) {
            if tx.send(b).await.is_err() {
                return Ok(());
            }
        }
    };
    framer.finish(&mut out);
    for b in out.drain(..) {
        if tx.send(b).await.is_err() {
            break;
        }
    }
    result
}
