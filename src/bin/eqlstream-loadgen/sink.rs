//! Where lines go once their order is fixed: one writer (stdout, a file, one TCP connection), or
//! `--connections N` TCP connections, each fed by its own writer thread through a bounded
//! channel; plus the write-time stamps `--realtime` records for the truth file. Never changes,
//! drops or reorders the bytes of one connection.
//!
//! # `--connections N`
//! All N connections are opened (in index order) before anything is sent. A line goes to
//! connection [`route`]`(container.id) % N`, so every event of one container (hence every event of
//! an attack sequence) travels on one connection, in the generator's order. The main thread
//! collects each connection's lines in a chunk and hands full chunks (or, on [`Sink::flush`],
//! every non-empty chunk) to that connection's writer thread; the threads write concurrently, so
//! a receiver sees the connections interleaved arbitrarily, but each connection's byte stream is
//! a function of the seed and options only.
//!
//! # Stamps
//! A line written with a [`Stamp`] is handed to the kernel at once (its chunk is flushed), and
//! the stamp is set to the wall clock ([`unix_ns`]) right after the `write` that carried it
//! returned: the moment a reader can have it, to within that system call.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::output::{connect_with_retry, Target, TCP_CONNECT_PATIENCE};

/// Bytes collected per connection before they are handed to its writer thread.
pub const CHUNK_BYTES: usize = 1 << 18;

/// Chunks in flight per connection (bounds memory: a slow receiver stalls the generator).
pub const CHUNKS_IN_FLIGHT: usize = 16;

/// Nanoseconds since the Unix epoch (the wall clock, `CLOCK_REALTIME`); 0 before 1970.
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The stable hash that routes a container to a connection: 64-bit FNV-1a of the
/// `container.id` bytes. Fixed by this definition (not `std`'s randomised hasher), so the
/// per-connection streams depend on the seed and options only.
pub fn route(container_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A write-time cell: 0 until the line it belongs to has been written, then [`unix_ns`] of that
/// moment.
pub type Stamp = Arc<AtomicU64>;

/// A fresh, unset stamp.
pub fn new_stamp() -> Stamp {
    Arc::new(AtomicU64::new(0))
}

/// Sets `stamps` to the current wall clock.
fn set_stamps(stamps: &mut Vec<Stamp>) {
    if stamps.is_empty() {
        return;
    }
    let t = unix_ns().max(1);
    for s in stamps.drain(..) {
        s.store(t, Ordering::Release);
    }
}

struct Chunk {
    bytes: Vec<u8>,
    stamps: Vec<Stamp>,
}

/// One connection of [`Sink::Many`].
pub struct Conn {
    buf: Vec<u8>,
    stamps: Vec<Stamp>,
    tx: Option<Sender<Chunk>>,
    /// Written chunk buffers coming back for reuse (at most [`CHUNKS_IN_FLIGHT`] + 1 exist).
    free: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

/// The output: one writer, N connections (see the module docs), or a Kafka topic.
pub enum Sink {
    /// Everything to one writer, in the calling thread.
    One(Box<dyn Write>),
    /// `--connections N`: one writer thread per TCP connection.
    Many(Vec<Conn>),
    /// `-o kafka://BROKERS/TOPIC`: each line one record, keyed by its event's `container.id`
    /// (output `i` is container `i`), so that every event of a container lands in one partition.
    #[cfg(feature = "kafka")]
    Kafka {
        /// The topic.
        topic: eqlstream::kafka::producer::TopicSink,
        /// Record key of each output: the container ids.
        keys: Vec<String>,
    },
}

impl Sink {
    /// Opens `target`; with `connections > 1` (TCP only, checked by the caller) opens all of
    /// them, in index order, before returning. `nodelay`: see [`Target::open`].
    pub fn open(target: &Target, connections: usize, nodelay: bool) -> io::Result<Sink> {
        let addr = match target {
            Target::Tcp(addr) if connections > 1 => addr,
            _ => return Ok(Sink::One(target.open(nodelay)?)),
        };
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            let s = connect_with_retry(addr, TCP_CONNECT_PATIENCE)?;
            s.set_nodelay(nodelay)?;
            streams.push(s);
        }
        let conns = streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let (tx, rx) = bounded::<Chunk>(CHUNKS_IN_FLIGHT);
                let (free_tx, free) = unbounded::<Vec<u8>>();
                let handle = std::thread::Builder::new()
                    .name(format!("conn-{i}"))
                    .spawn(move || write_chunks(s, rx, free_tx))?;
                Ok(Conn {
                    buf: Vec::with_capacity(CHUNK_BYTES),
                    stamps: Vec::new(),
                    tx: Some(tx),
                    free,
                    handle: Some(handle),
                })
            })
            .collect::<io::Result<Vec<Conn>>>()?;
        Ok(Sink::Many(conns))
    }

    /// A Kafka topic, `url` (`kafka://BROKERS/TOPIC[?librdkafka settings]`), whose records are
    /// keyed by `keys[out]`.
    #[cfg(feature = "kafka")]
    pub fn kafka(url: &str, keys: Vec<String>) -> io::Result<Sink> {
        use eqlstream::kafka::{metrics::KafkaMetrics, producer::TopicSink, url::KafkaUrl};
        let url = KafkaUrl::parse(url).map_err(io::Error::other)?;
        let metrics = KafkaMetrics::register(&prometheus::Registry::new()).map_err(io::Error::other)?;
        let topic = TopicSink::connect(&url, &metrics).map_err(io::Error::other)?;
        Ok(Sink::Kafka { topic, keys })
    }

    /// Number of outputs (1, or N connections).
    pub fn outputs(&self) -> usize {
        match self {
            Sink::One(_) => 1,
            Sink::Many(c) => c.len(),
            #[cfg(feature = "kafka")]
            Sink::Kafka { keys, .. } => keys.len(),
        }
    }

    /// Appends `bytes` to output `out` (`< outputs()`). With a stamp, the bytes are handed to the
    /// kernel now and the stamp is set once they are (see the module docs).
    pub fn write(&mut self, out: usize, bytes: &[u8], stamp: Option<Stamp>) -> io::Result<()> {
        match self {
            Sink::One(w) => {
                w.write_all(bytes)?;
                if let Some(s) = stamp {
                    w.flush()?;
                    set_stamps(&mut vec![s]);
                }
                Ok(())
            }
            Sink::Many(conns) => {
                let n = conns.len();
                let c = conns.get_mut(out % n).ok_or_else(|| io::Error::other("no connection"))?;
                c.buf.extend_from_slice(bytes);
                let now = stamp.is_some();
                c.stamps.extend(stamp);
                if now || c.buf.len() >= CHUNK_BYTES {
                    c.send()?;
                }
                Ok(())
            }
            #[cfg(feature = "kafka")]
            Sink::Kafka { topic, keys } => {
                use eqlstream::pipeline::sink::RecordSink;
                let key = keys.get(out).map(String::as_bytes);
                for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    topic.send(key, line)?;
                }
                if let Some(s) = stamp {
                    topic.flush()?;
                    set_stamps(&mut vec![s]);
                }
                Ok(())
            }
        }
    }

    /// Hands everything written so far to the kernel (one writer) or to the writer threads.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::One(w) => w.flush(),
            Sink::Many(conns) => conns.iter_mut().try_for_each(Conn::send),
            #[cfg(feature = "kafka")]
            Sink::Kafka { topic, .. } => eqlstream::pipeline::sink::RecordSink::flush(topic),
        }
    }

    /// Flushes, closes the connections and waits for the writer threads; every stamp is set when
    /// this returns `Ok`.
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Sink::Many(conns) = self {
            for c in conns.iter_mut() {
                c.tx = None;
            }
            for c in conns.iter_mut() {
                c.join()?;
            }
        }
        Ok(())
    }
}

impl Conn {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Chunk {
            bytes: std::mem::replace(
                &mut self.buf,
                self.free.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES)),
            ),
            stamps: std::mem::take(&mut self.stamps),
        };
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer thread ended: report its error.
        self.tx = None;
        self.join()?;
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "connection writer stopped"))
    }

    fn join(&mut self) -> io::Result<()> {
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| io::Error::other("connection writer panicked"))?,
            None => Ok(()),
        }
    }
}

/// A connection's writer thread: writes chunks in order, stamping after each write.
/// Emptied buffers go back through `free` (ignored once the main thread is gone).
fn write_chunks(mut s: TcpStream, rx: Receiver<Chunk>, free: Sender<Vec<u8>>) -> io::Result<()> {
    for mut chunk in rx {
        s.write_all(&chunk.bytes)?;
        set_stamps(&mut chunk.stamps);
        chunk.bytes.clear();
        let _ = free.send(chunk.bytes);
    }
    s.flush()?;
    // The receiver may already have closed its side; the bytes are out either way.
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_is_fnv1a_and_spreads_containers() {
        // FNV-1a 64 reference values.
        assert_eq!(route(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(route("a"), 0xaf63_dc4c_8601_ec8c);
        let mut per = [0usize; 4];
        for i in 0..400 {
            per[(route(&format!("{i:064x}")) % 4) as usize] += 1;
        }
        assert!(per.iter().all(|&n| n > 60), "{per:?}");
    }

    #[test]
    fn one_writer_stamps_after_the_write() {
        let before = unix_ns();
        let mut sink = Sink::One(Box::new(Vec::new()));
        let s = new_stamp();
        sink.write(0, b"x\n", None).expect("write");
        assert_eq!(s.load(Ordering::Acquire), 0);
        sink.write(0, b"y\n", Some(s.clone())).expect("write");
        assert!(s.load(Ordering::Acquire) >= before);
    }
}
