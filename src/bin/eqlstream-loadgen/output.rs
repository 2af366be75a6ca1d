//! Where lines go and when: the sink (stdout, a file or `tcp://HOST:PORT`), the bounded-lateness
//! reorder that implements `--disorder`, and the `--rate` limiter. Never changes line bytes.
//!
//! # What `--disorder MS` guarantees
//!
//! Each event `i` (logical order, `@timestamp` `t_i`) gets an arrival key
//! `a_i = t_i + d_i`, `d_i` uniform in `[0, MS]`; within a run of events with equal `@timestamp`
//! the keys are made non-decreasing (`a_i = max(a_i, a_{i-1})`). Lines are written by ascending
//! `(a_i, i)`. Hence:
//! 1. no event is written after an event whose `@timestamp` is more than `MS` later
//!    (if `j` is written before `i` then `t_j <= a_j <= a_i <= t_i + MS`): lateness <= MS;
//! 2. events with equal `@timestamp` keep their logical order, so the order
//!    `(@timestamp, arrival)` an engine reconstructs equals the logical order exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Write buffer size of every sink.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// How long `tcp://` output keeps retrying a refused connection (the receiver may still be
/// starting).
pub const TCP_CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// Connects to `addr`, retrying every 100 ms for up to `patience`.
pub fn connect_with_retry(addr: &str, patience: Duration) -> io::Result<TcpStream> {
    let started = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if started.elapsed() >= patience => {
                return Err(io::Error::new(e.kind(), format!("connect to {addr}: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Where the output goes, parsed from `-o`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `-`: standard output.
    Stdout,
    /// A file path (truncated).
    File(String),
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `kafka://BROKERS/TOPIC`: records keyed by `container.id`.
    Kafka(String),
}

impl Target {
    /// Parses `-`, `tcp://HOST:PORT` or a path.
    pub fn parse(s: &str) -> Target {
        if s == "-" {
            Target::Stdout
        } else if let Some(addr) = s.strip_prefix("tcp://") {
            Target::Tcp(addr.to_string())
        } else if s.starts_with("kafka://") {
            Target::Kafka(s.to_string())
        } else {
            Target::File(s.to_string())
        }
    }

    /// Opens the sink behind a large buffer; `nodelay` sets `TCP_NODELAY` (for `--realtime`,
    /// which writes small chunks that must leave at once).
    pub fn open(&self, nodelay: bool) -> io::Result<Box<dyn Write>> {
        Ok(match self {
            Target::Stdout => Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, io::stdout().lock())),
            Target::File(p) => Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, File::create(p)?)),
            Target::Tcp(addr) => {
                let s = connect_with_retry(addr, TCP_CONNECT_PATIENCE)?;
                s.set_nodelay(nodelay)?;
                Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, s))
            }
            Target::Kafka(url) => {
                return Err(io::Error::other(format!("{url}: a Kafka topic is not a byte stream")));
            }
        })
    }
}

struct Pending<M> {
    key: u64,
    idx: u64,
    line: Vec<u8>,
    meta: M,
}

impl<M> PartialEq for Pending<M> {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.idx) == (o.key, o.idx)
    }
}
impl<M> Eq for Pending<M> {}
impl<M> PartialOrd for Pending<M> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<M> Ord for Pending<M> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        Reverse((self.key, self.idx)).cmp(&Reverse((o.key, o.idx)))
    }
}

/// The `--disorder` reorder buffer (see the module docs for the guarantee). Each line carries a
/// `M` (where it goes, what to record when it is written) that is handed back with it.
pub struct Disorder<M> {
    heap: BinaryHeap<Pending<M>>,
    free: Vec<Vec<u8>>,
    idx: u64,
    last_ts: Option<u64>,
    last_key: u64,
}

impl<M> Default for Disorder<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> Disorder<M> {
    /// An empty buffer.
    pub fn new() -> Self {
        Disorder { heap: BinaryHeap::new(), free: Vec::new(), idx: 0, last_ts: None, last_key: 0 }
    }

    /// A spare line buffer (recycled from written lines).
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.free.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// The smallest arrival key still buffered.
    pub fn next_key(&self) -> Option<u64> {
        self.heap.peek().map(|p| p.key)
    }

    /// Adds the line of an event with `@timestamp` `ts` and delay `delay`, then hands every line
    /// that may now be written (arrival key <= `ts`) to `emit`, in arrival order.
    pub fn push(
        &mut self,
        ts: u64,
        delay: u64,
        line: Vec<u8>,
        meta: M,
        emit: impl FnMut(&[u8], M) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut key = ts + delay;
        if self.last_ts == Some(ts) {
            key = key.max(self.last_key);
        }
        self.last_ts = Some(ts);
        self.last_key = key;
        self.idx += 1;
        self.heap.push(Pending { key, idx: self.idx, line, meta });
        // Every later event has a key >= its timestamp >= ts, and a larger idx.
        self.release(ts, emit)
    }

    /// Hands every line whose arrival key is <= `until` to `emit`, in arrival order. Sound (the
    /// guarantee holds) as long as every event pushed later has `@timestamp >= until`: its key is
    /// then >= `until`, and ties go by the larger idx.
    pub fn release(&mut self, until: u64, mut emit: impl FnMut(&[u8], M) -> io::Result<()>) -> io::Result<()> {
        while self.heap.peek().is_some_and(|p| p.key <= until) {
            let Some(p) = self.heap.pop() else { break };
            emit(&p.line, p.meta)?;
            self.free.push(p.line);
        }
        Ok(())
    }

    /// Writes everything still buffered, in arrival order.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], M) -> io::Result<()>) -> io::Result<()> {
        while let Some(p) = self.heap.pop() {
            emit(&p.line, p.meta)?;
        }
        Ok(())
    }
}

/// `--rate`: paces lines to `rate` per second, sleeping in small steps; never bursts more than
/// [`RateLimiter::MAX_DEBT`] behind schedule.
pub struct RateLimiter {
    rate: f64,
    start: Instant,
    sent: u64,
}

impl RateLimiter {
    /// How far behind schedule the limiter lets itself fall before resetting (no catch-up burst).
    pub const MAX_DEBT: Duration = Duration::from_millis(250);

    /// A limiter for `rate` lines per second (`0` = unlimited).
    pub fn new(rate: f64) -> Self {
        RateLimiter { rate, start: Instant::now(), sent: 0 }
    }

    /// Accounts one line; sleeps if ahead of schedule.
    pub fn tick(&mut self) {
        if self.rate <= 0.0 {
            return;
        }
        self.sent += 1;
        if self.sent % 64 != 0 && self.rate > 1000.0 {
            return;
        }
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate);
        let now = self.start.elapsed();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Self::MAX_DEBT {
            // Fell behind (slow sink): restart the schedule instead of bursting.
            self.start = Instant::now();
            self.sent = 0;
        }
    }
}
