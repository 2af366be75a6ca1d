//! Sources: standard input, a TCP listener or a Unix stream socket, framed into [`Batch`]es and
//! handed to the decode workers in one ordered stream.
//!
//! Stdin is read by a plain thread in blocks of at most [`READ_BLOCK_BYTES`] (pipes are
//! enlarged to 1 MiB where the kernel allows it: hops between the two vCPUs are expensive, see
//! performance.md). Sockets are served by tokio: each connection frames its own lines (so a
//! connection's lines stay in order and a final line without a newline still counts) and sends
//! batches to one feeder thread, which numbers them and passes them on. Every source tells the
//! sequencer in band when it opens and closes (its event clock, see
//! [`crate::sequence::watermark`]).
//!
//! Bounded by design:
//! * a line longer than `max_line_bytes` streams through in parts (see [`super::frame`]); over a
//!   socket, while one connection hands over such a line, the feeder takes that connection's
//!   batches only (from a channel of its own), so no other line lands inside it; other
//!   connections wait. Such a line that stalls for [`LONG_LINE_STALL`] is ended where it stands
//!   and its connection closed, so that it cannot hold the others for long;
//! * a semaphore caps simultaneous connections (`max_connections`; further clients wait in the
//!   listen backlog, with a warning), and a connection that sends nothing for
//!   `connection_idle_timeout` is closed;
//! * a Unix socket is created with `socket_mode` (bound in a private directory, then moved into
//!   place); a path where another process listens is refused, a stale socket replaced.
//!
//! On the [`Shutdown`] trigger sources stop reading at a line boundary: a line being read is read
//! to its end for at most half of `shutdown_timeout`; if it does not end, its unread remainder is
//! dropped and counted, and no part of it is written as a line. They never drop a line they have
//! read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tokio::io::AsyncReadExt;

use std::os::fd::AsFd;

use super::frame::{Batch, BatchPool, Framer, SourceInfo, SourceMarker};
use super::shutdown::Shutdown;
use crate::config::InputSpec;
use crate::metrics::{DiscardReason, Handles, PipelineStage};

/// Size of the stdin pipe (where the kernel lets us grow it): fewer, larger hand-offs between
/// the producer's CPU and ours.
pub const PIPE_BYTES: usize = 1 << 20;
/// Largest read from stdin: one read is at most one batch, so this bounds a batch's buffer
/// (about 170 lines of 1.5 KB), and with it the memory of batches in flight.
pub const READ_BLOCK_BYTES: usize = 256 << 10;
/// Largest read from a connection.
const CONNECTION_READ_BYTES: usize = 64 << 10;
/// How often a blocked stdin read wakes up to check for shutdown.
const POLL_INTERVAL_MS: i32 = 100;
/// A connection that hands over a long line and then sends nothing for this long (while the
/// other connections wait for it) has that line ended where it stands and is closed.
pub const LONG_LINE_STALL: Duration = Duration::from_secs(10);
/// At most one "max_connections reached" warning in this interval.
const CAP_WARN_INTERVAL: Duration = Duration::from_secs(60);

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
    /// The Unix socket path is taken (exit 78).
    #[error("cannot listen on unix://{}: {why}", path.display())]
    PathInUse {
        /// The path.
        path: PathBuf,
        /// Why it cannot be used.
        why: &'static str,
    },
}

/// How the sources read.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Lines per batch.
    pub batch_size: usize,
    /// Longer lines stream through in parts.
    pub max_line_bytes: usize,
    /// Cap on simultaneous connections.
    pub max_connections: usize,
    /// Close connections silent for this long (`None`: never).
    pub connection_idle_timeout: Option<Duration>,
    /// Permissions of the Unix socket.
    pub socket_mode: u32,
    /// How long a line being read at shutdown may take to end.
    pub line_grace: Duration,
}

/// Numbers batches and lines in stream order and sends them downstream.
pub struct Feeder {
    tx: Sender<Batch>,
    pool: BatchPool,
    handles: Handles,
    seq: u64,
    next_line: u64,
    /// Stamps each batch with the rule-set version it is evaluated with (see [`super::live`]).
    rules: Option<super::live::Stamp>,
}

/// The downstream stages have stopped (e.g. stdout closed): stop reading.
#[derive(Debug)]
pub struct Closed;

impl Feeder {
    /// A feeder sending into `tx`; framers take recycled batches from `pool`.
    pub fn new(tx: Sender<Batch>, pool: BatchPool, handles: Handles) -> Feeder {
        Feeder { tx, pool, handles, seq: 0, next_line: 0, rules: None }
    }

    /// The same feeder, stamping each batch with the version of `rules` current when the batch
    /// is handed over: the point of the stream where a reloaded rule set takes effect.
    pub fn with_rules(mut self, rules: &super::live::LiveRules) -> Feeder {
        self.rules = Some(rules.stamp());
        self
    }

    /// The global number the next line handed over will get.
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    /// An empty batch to fill: a recycled one when the pool has one.
    pub fn empty_batch(&self) -> Batch {
        self.pool.get().unwrap_or_default()
    }

    /// Assigns the batch its sequence number, first line number and rule-set version, then
    /// sends it (blocking while the channel is full: this is the backpressure that bounds
    /// memory).
    pub fn send(&mut self, mut batch: Batch) -> Result<(), Closed> {
        if !batch.has_input() && batch.origin.marker.is_none() {
            return Ok(());
        }
        batch.rules = self.rules.as_mut().map(super::live::Stamp::version);
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

/// The read stage's share of `eqlstream_batch_duration_seconds{stage="read"}`: the time spent in
/// `read(2)` and the line scan (not waiting for input, nor for room downstream), summed until
/// the framer completes batches and then split evenly among them.
#[derive(Debug, Default)]
struct ReadClock {
    spent: Duration,
}

impl ReadClock {
    /// Adds the time since `started` and records one observation per batch with input in `out`.
    fn framed(&mut self, handles: &Handles, started: Instant, out: &[Batch]) {
        self.spent += started.elapsed();
        let n = out.iter().filter(|b| b.has_input()).count();
        if n > 0 {
            let each = self.spent.as_secs_f64() / n as f64;
            for _ in 0..n {
                handles.observe_batch(PipelineStage::Read, each);
            }
            self.spent = Duration::ZERO;
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

/// Waits until `fd` is readable or `POLL_INTERVAL_MS` passes; true when readable (or on error,
/// so that the following read reports it).
fn fd_ready(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, count 1.
    let n = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL_MS) };
    // EINTR (a signal, e.g. the SIGTERM we must react to) is "not ready": loop and check.
    n > 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
}

/// The source id of standard input (connections count from 1).
pub const STDIN_SOURCE: u32 = 0;

fn read_stdin(cfg: &SourceConfig, feeder: Feeder, shutdown: &Shutdown) -> Result<(), SourceError> {
    grow_pipe(0);
    let stdin = std::io::stdin();
    let info = SourceInfo { name: "stdin".into(), label: "stdin".into() };
    read_fd(cfg, feeder, shutdown, stdin.as_fd(), info, "standard input")
}

/// A file read once to its end as the one source, as stdin is (used by `eqlstream test`).
fn read_file(cfg: &SourceConfig, feeder: Feeder, shutdown: &Shutdown, path: &Path) -> Result<(), SourceError> {
    let file = std::fs::File::open(path).map_err(|source| SourceError::Read { what: "input file", source })?;
    let info = SourceInfo { name: path.display().to_string(), label: "file".into() };
    read_fd(cfg, feeder, shutdown, file.as_fd(), info, "input file")
}

/// Reads `fd` to its end as the source [`STDIN_SOURCE`] (opened and closed in band).
fn read_fd(
    cfg: &SourceConfig,
    mut feeder: Feeder,
    shutdown: &Shutdown,
    fd: std::os::fd::BorrowedFd<'_>,
    info: SourceInfo,
    what: &'static str,
) -> Result<(), SourceError> {
    if feeder.send(Batch::marker(STDIN_SOURCE, SourceMarker::Opened(Arc::new(info)))).is_err() {
        return Ok(());
    }
    let result = read_fd_lines(cfg, &mut feeder, shutdown, fd, what);
    let _ = feeder.send(Batch::marker(STDIN_SOURCE, SourceMarker::Closed));
    result
}

/// What to do after a shutdown trigger, given how the framer stands.
enum AtShutdown {
    /// Nothing unterminated: stop now.
    Stop,
    /// A line is being read: go on until it ends or the deadline passes.
    FinishLine,
    /// The line did not end in time: drop its unread remainder and stop.
    Drop,
}

/// The shutdown rule for a framer: `deadline` is set at the first call after the trigger.
fn at_shutdown(framer: &Framer, deadline: &mut Option<Instant>, grace: Duration) -> AtShutdown {
    if framer.pending_bytes() == 0 && !framer.in_long_line() {
        return AtShutdown::Stop;
    }
    let d = *deadline.get_or_insert_with(|| Instant::now() + grace);
    if Instant::now() >= d {
        AtShutdown::Drop
    } else {
        AtShutdown::FinishLine
    }
}

/// Counts and reports a line cut short at shutdown.
fn report_dropped(handles: &Handles, source: &str, dropped: usize) {
    handles.discarded_lines(DiscardReason::UnterminatedAtShutdown, 1);
    tracing::warn!(
        source,
        dropped_bytes = dropped,
        "Shutdown: a line being read did not end in time; its unread remainder was dropped (no part of it was \
         written as a line, except a line already streaming because it is longer than max_line_bytes, which \
         was ended where it stood)."
    );
}

fn read_fd_lines(
    cfg: &SourceConfig,
    feeder: &mut Feeder,
    shutdown: &Shutdown,
    fd: std::os::fd::BorrowedFd<'_>,
    what: &'static str,
) -> Result<(), SourceError> {
    let mut framer = Framer::with_pool(cfg.batch_size, feeder.pool.clone())
        .for_source(STDIN_SOURCE)
        .with_max_line(cfg.max_line_bytes);
    let mut out = Vec::new();
    let mut deadline = None;
    let mut clock = ReadClock::default();
    loop {
        if shutdown.is_triggered() {
            match at_shutdown(&framer, &mut deadline, cfg.line_grace) {
                AtShutdown::Stop => {
                    tracing::info!("Shutdown requested: stopped reading {what}.");
                    break;
                }
                AtShutdown::Drop => {
                    let dropped = framer.finish_dropping_partial(&mut out);
                    report_dropped(&feeder.handles, "stdin", dropped);
                    for b in out.drain(..) {
                        let _ = feeder.send(b);
                    }
                    return Ok(());
                }
                AtShutdown::FinishLine => {}
            }
        }
        if !fd_ready(fd) {
            continue;
        }
        // Straight into the batch buffer: the kernel's copy is the only one.
        let started = Instant::now();
        let read = framer.read_fd(fd, READ_BLOCK_BYTES, true, &mut out);
        clock.framed(&feeder.handles, started, &out);
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                // Forward what was read before failing.
                framer.finish(&mut out);
                for b in out.drain(..) {
                    let _ = feeder.send(b);
                }
                return Err(SourceError::Read { what, source });
            }
        }
        let line_ended = out.iter().any(|b| !b.is_empty());
        for b in out.drain(..) {
            if feeder.send(b).is_err() {
                return Ok(());
            }
        }
        if shutdown.is_triggered() && line_ended && deadline.is_some() {
            // The line being read when the signal came has ended (with what came after it):
            // stop here, dropping only what was read of the next line.
            let dropped = framer.finish_dropping_partial(&mut out);
            if dropped > 0 {
                report_dropped(&feeder.handles, "stdin", dropped);
            }
            for b in out.drain(..) {
                let _ = feeder.send(b);
            }
            return Ok(());
        }
    }
    let started = Instant::now();
    framer.finish(&mut out);
    clock.framed(&feeder.handles, started, &out);
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

/// What connection tasks send the feeder: batches, or a channel of one connection's batches to
/// take exclusively until it closes (while that connection hands over a long line).
enum Item {
    Batch(Batch),
    Exclusive(tokio::sync::mpsc::Receiver<Batch>),
}

fn serve(
    listener: Listener,
    cfg: &SourceConfig,
    mut feeder: Feeder,
    shutdown: &Shutdown,
    rt: &tokio::runtime::Handle,
) -> Result<(), SourceError> {
    // Connection tasks -> this thread (the feeder): a bounded tokio channel, so a slow pipeline
    // stops the tasks from reading.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(4);
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let sd = shutdown.clone();
    let pool = feeder.pool.clone();
    let handles = feeder.handles.clone();
    let cfg2 = cfg.clone();
    let accept_task = rt.spawn(async move {
        let cfg = cfg2;
        let mut next_conn: u32 = 0;
        let mut last_cap_warning: Option<Instant> = None;
        loop {
            if sem.available_permits() == 0 && last_cap_warning.is_none_or(|t| t.elapsed() >= CAP_WARN_INTERVAL) {
                last_cap_warning = Some(Instant::now());
                tracing::warn!(
                    max_connections = cfg.max_connections,
                    "Connection cap reached: further clients wait until a connection closes \
                     (raise max_connections, or lower connection_idle_timeout to close idle ones sooner)."
                );
            }
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
                    let info = Arc::new(peer.info(conn));
                    tracing::debug!(conn, peer = %info.name, "Connection accepted.");
                    let framer = Framer::with_pool(cfg.batch_size, pool.clone())
                        .for_source(conn)
                        .with_max_line(cfg.max_line_bytes);
                    let c = Connection {
                        tx: tx.clone(),
                        exclusive: None,
                        shutdown: sd.clone(),
                        handles: handles.clone(),
                        info: info.clone(),
                        idle_timeout: cfg.connection_idle_timeout,
                        line_grace: cfg.line_grace,
                    };
                    tokio::spawn(async move {
                        // In band, so the sequencer sees the source open before its lines and
                        // close after them.
                        let mut c = c;
                        if c.send(Batch::marker(conn, SourceMarker::Opened(info))).await.is_err() {
                            return;
                        }
                        if let Err(e) = c.read(stream, framer).await {
                            tracing::warn!(conn, peer = %c.info.name, error = %e, "Connection read failed; lines read before the error were kept.");
                        }
                        let _ = c.send(Batch::marker(conn, SourceMarker::Closed)).await;
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
    'feed: while let Some(item) = rx.blocking_recv() {
        match item {
            Item::Batch(batch) => {
                if feeder.send(batch).is_err() {
                    shutdown.trigger();
                    break;
                }
            }
            Item::Exclusive(mut own) => {
                while let Some(batch) = own.blocking_recv() {
                    if feeder.send(batch).is_err() {
                        shutdown.trigger();
                        break 'feed;
                    }
                }
            }
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

/// One connection's reader: frames its lines and sends them to the feeder, through the shared
/// channel, or through a channel of its own while it hands over a long line.
struct Connection {
    tx: tokio::sync::mpsc::Sender<Item>,
    exclusive: Option<tokio::sync::mpsc::Sender<Batch>>,
    shutdown: Shutdown,
    handles: Handles,
    info: Arc<SourceInfo>,
    idle_timeout: Option<Duration>,
    line_grace: Duration,
}

/// The feeder is gone.
struct FeederGone;

impl Connection {
    async fn send(&mut self, batch: Batch) -> Result<(), FeederGone> {
        match &self.exclusive {
            Some(own) => own.send(batch).await.map_err(|_| FeederGone),
            None => self.tx.send(Item::Batch(batch)).await.map_err(|_| FeederGone),
        }
    }

    /// Sends what the framer produced; switches to (or back from) the exclusive channel when a
    /// long line starts (or ends).
    async fn forward(&mut self, out: &mut Vec<Batch>, long_after: bool) -> Result<(), FeederGone> {
        for b in out.drain(..) {
            if b.piece == super::frame::Piece::Middle && self.exclusive.is_none() {
                let (own_tx, own_rx) = tokio::sync::mpsc::channel(2);
                self.tx.send(Item::Exclusive(own_rx)).await.map_err(|_| FeederGone)?;
                self.exclusive = Some(own_tx);
            }
            self.send(b).await?;
        }
        if !long_after {
            // The long line has ended: back to the shared channel.
            self.exclusive = None;
        }
        Ok(())
    }

    async fn read(&mut self, mut stream: Box<dyn AsyncStream>, mut framer: Framer) -> std::io::Result<()> {
        let mut block = vec![0u8; CONNECTION_READ_BYTES];
        let mut out = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut clock = ReadClock::default();
        let result = loop {
            // How long a read may wait: the idle timeout; shorter while the connection holds the
            // others back with a long line, or while it finishes a line at shutdown.
            let mut wait = self.idle_timeout;
            if framer.in_long_line() {
                wait = Some(wait.map_or(LONG_LINE_STALL, |w| w.min(LONG_LINE_STALL)));
            }
            if self.shutdown.is_triggered() {
                match at_shutdown(&framer, &mut deadline, self.line_grace) {
                    AtShutdown::Stop => break Ok(()),
                    AtShutdown::Drop => {
                        let dropped = framer.finish_dropping_partial(&mut out);
                        report_dropped(&self.handles, &self.info.name, dropped);
                        let _ = self.forward(&mut out, false).await;
                        return Ok(());
                    }
                    AtShutdown::FinishLine => {
                        let left = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
                        wait = Some(wait.map_or(left, |w| w.min(left)));
                    }
                }
            }
            let read = async {
                match wait {
                    Some(w) => tokio::time::timeout(w, stream.read(&mut block)).await.ok(),
                    None => Some(stream.read(&mut block).await),
                }
            };
            let r = tokio::select! {
                _ = self.shutdown.wait(), if deadline.is_none() => continue,
                r = read => r,
            };
            let n = match r {
                None if self.shutdown.is_triggered() => continue,
                None if framer.in_long_line() => {
                    tracing::warn!(
                        peer = %self.info.name,
                        "A line longer than max_line_bytes stalled while the other connections waited for it: \
                         it was ended where it stood and the connection closed."
                    );
                    self.handles.discarded_lines(DiscardReason::StalledLongLine, 1);
                    break Ok(());
                }
                None => {
                    tracing::info!(peer = %self.info.name, "Closing a connection idle for connection_idle_timeout.");
                    break Ok(());
                }
                Some(Ok(0)) => break Ok(()),
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Some(Err(e)) => break Err(e),
            };
            let started = Instant::now();
            framer.push(&block[..n], true, &mut out);
            clock.framed(&self.handles, started, &out);
            let line_ended = out.iter().any(|b| !b.is_empty());
            if self.forward(&mut out, framer.in_long_line()).await.is_err() {
                return Ok(());
            }
            if self.shutdown.is_triggered() && deadline.is_some() && line_ended {
                let dropped = framer.finish_dropping_partial(&mut out);
                if dropped > 0 {
                    report_dropped(&self.handles, &self.info.name, dropped);
                }
                let _ = self.forward(&mut out, false).await;
                return Ok(());
            }
        };
        let started = Instant::now();
        framer.finish(&mut out);
        clock.framed(&self.handles, started, &out);
        let _ = self.forward(&mut out, false).await;
        result
    }
}

/// Runs the configured source until end of input, shutdown, or a closed downstream.
pub fn run(
    input: &InputSpec,
    cfg: &SourceConfig,
    feeder: Feeder,
    shutdown: &Shutdown,
    rt: &tokio::runtime::Handle,
) -> Result<(), SourceError> {
    match input {
        InputSpec::Stdin => read_stdin(cfg, feeder, shutdown),
        InputSpec::File(path) => read_file(cfg, feeder, shutdown, path),
        InputSpec::Tcp(addr) => {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind(addr.as_str()))
                .map_err(|source| SourceError::Bind { addr: addr.clone(), source })?;
            if let Ok(local) = listener.local_addr() {
                // On stderr as a plain line too: with port 0 this is how callers learn the port.
                eprintln!("eqlstream: listening on tcp://{local}");
            }
            serve(Listener::Tcp(listener), cfg, feeder, shutdown, rt)
        }
        InputSpec::Kafka(url) => Err(SourceError::Read {
            what: "Kafka input",
            source: std::io::Error::other(format!("{url} is read by a consumer group, not as a stream")),
        }),
        InputSpec::Unix(path) => {
            let (listener, id) = {
                let _guard = rt.enter();
                bind_unix(path, cfg.socket_mode)?
            };
            eprintln!("eqlstream: listening on unix://{}", path.display());
            let r = serve(Listener::Unix(listener), cfg, feeder, shutdown, rt);
            // Remove the socket only if it is still ours.
            if file_id(path) == Some(id) {
                let _ = std::fs::remove_file(path);
            }
            r
        }
    }
}

/// (device, inode) of a path, not following symlinks.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Makes `path` free for a new socket: nothing there, or a stale socket (nobody listening),
/// which is removed. A live socket or another kind of file is refused.
fn claim_socket_path(path: &Path) -> Result<(), SourceError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(SourceError::Bind { addr: path.display().to_string(), source }),
    };
    if !meta.file_type().is_socket() {
        return Err(SourceError::PathInUse { path: path.to_path_buf(), why: "the path exists and is not a socket" });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SourceError::PathInUse {
            path: path.to_path_buf(),
            why: "another process is listening on it (is another eqlstream running?)",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "Replacing a stale socket left by an earlier run.");
            std::fs::remove_file(path).map_err(|source| SourceError::Bind { addr: path.display().to_string(), source })
        }
        Err(source) => Err(SourceError::Bind { addr: path.display().to_string(), source }),
    }
}

/// Binds a Unix socket at `path` with permissions `mode`: bound in a fresh private directory
/// next to it (so it is never reachable with wider permissions), chmod-ed, then renamed into
/// place. Returns the listener and the socket file's (device, inode).
fn bind_unix(path: &Path, mode: u32) -> Result<(tokio::net::UnixListener, (u64, u64)), SourceError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source: std::io::Error| SourceError::Bind { addr: path.display().to_string(), source };
    claim_socket_path(path)?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let private = (0..100)
        .find_map(|i| {
            let dir = parent.join(format!(".eqlstream-{}-{i}", std::process::id()));
            std::fs::DirBuilder::new().mode(0o700).create(&dir).ok().map(|()| dir)
        })
        .ok_or_else(|| err(std::io::Error::other("cannot create a private directory next to the socket")))?;
    let tmp = private.join("s");
    let result = (|| {
        let listener = tokio::net::UnixListener::bind(&tmp).map_err(err)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        // Someone may have taken the path meanwhile: check again, then move into place.
        claim_socket_path(path)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        let id = file_id(path).ok_or_else(|| err(std::io::Error::other("the socket vanished")))?;
        Ok((listener, id))
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    result
}
