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
fn connect_with_retry(addr: &str, patience: Duration) -> io::Result<TcpStream> {
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
}

impl Target {
    /// Parses `-`, `tcp://HOST:PORT` or a path.
    pub fn parse(s: &str) -> Target {
        if s == "-" {
            Target::Stdout
        } else if let Some(addr) = s.strip_prefix("tcp://") {
            Target::Tcp(addr.to_string())
        } else {
            Target::File(s.to_string())
        }
    }

    /// Opens the sink behind a large buffer.
    pub fn open(&self) -> io::Result<Box<dyn Write>> {
        Ok(match self {
            Target::Stdout => Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, io::stdout().lock())),
            Target::File(p) => Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, File::create(p)?)),
            Target::Tcp(addr) => {
                let s = connect_with_retry(addr, TCP_CONNECT_PATIENCE)?;
                s.set_nodelay(false)?;
                Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, s))
            }
        })
    }
}

struct Pending {
    key: u64,
    idx: u64,
    line: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.idx) == (o.key, o.idx)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        Reverse((self.key, self.idx)).cmp(&Reverse((o.key, o.idx)))
    }
}

/// The `--disorder` reorder buffer (see the module docs for the guarantee).
pub struct Disorder {
    heap: BinaryHeap<Pending>,
    free: Vec<Vec<u8>>,
    idx: u64,
    last_ts: Option<u64>,
    last_key: u64,
}

impl Default for Disorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Disorder {
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

    /// Adds the line of an event with `@timestamp` `ts` and delay `delay`, then hands every line
    /// that may now be written (arrival key <= `ts`) to `emit`, in arrival order.
    pub fn push(
        &mut self,
        ts: u64,
        delay: u64,
        line: Vec<u8>,
        mut emit: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut key = ts + delay;
        if self.last_ts == Some(ts) {
            key = key.max(self.last_key);
        }
        self.last_ts = Some(ts);
        self.last_key = key;
        self.idx += 1;
        self.heap.push(Pending { key, idx: self.idx, line });
        // Every later event has a key >= its timestamp >= ts, and a larger idx.
        while self.heap.peek().is_some_and(|p| p.key <= ts) {
            let p = self.heap.pop().expect("peeked just above");
            emit(&p.line)?;
            self.free.push(p.line);
        }
        Ok(())
    }

    /// Writes everything still buffered, in arrival order.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        while let Some(p) = self.heap.pop() {
            emit(&p.line)?;
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
