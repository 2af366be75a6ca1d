//! NDJSON framing: bytes in, batches of complete lines out.
//!
//! A line is everything up to (not including) `\n`; a `\r` before it stays part of the line, so
//! pass-through is byte-exact. A final line without a newline still counts (the writer adds the
//! `\n`). Lines longer than `max_line_bytes` are kept whole (never truncated, never dropped): the
//! decode stage passes them through unparsed. Framing never looks inside a line.

use std::sync::Arc;
use std::time::Instant;

use crate::sequence::watermark::SourceId;

/// Where a batch's lines come from, and whether it opens or closes that source.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The source (stdin, or one connection); see [`crate::sequence::watermark`].
    pub source: SourceId,
    /// When its bytes were read (stamped as the batch is cut).
    pub arrived_at: Option<Instant>,
    /// Set on the empty batches that tell the sequencer a source opened or closed.
    pub marker: Option<SourceMarker>,
}

/// A source's life, told in band so that the sequencer sees it in stream order.
#[derive(Clone, Debug)]
pub enum SourceMarker {
    /// The source opened (before any of its lines).
    Opened(Arc<SourceInfo>),
    /// The source closed (after all of its lines).
    Closed,
}

/// How a source is named in logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// For log lines: e.g. `tcp://127.0.0.1:50432 (connection 3)`.
    pub name: String,
    /// The bounded `source` label of the per-source metrics: `stdin`, `tcp:IP` (the peer's
    /// address without its port, so that reconnections share one series), `unix`.
    pub label: String,
}

/// A batch of complete input lines in one buffer, with their positions in the stream.
#[derive(Debug, Default)]
pub struct Batch {
    /// Position of this batch in the stream (0, 1, 2, ...), assigned by the feeder.
    pub seq: u64,
    /// Global line number of the first line.
    pub first_line: u64,
    /// The source of the lines and when they were read.
    pub origin: Origin,
    /// The lines' bytes, each followed by `\n` (also the last line of the stream, whose newline
    /// may be missing in the input), so the writer can pass a run of lines through in one write.
    buf: Vec<u8>,
    /// End offset in `buf` of each line (where its `\n` is); line i is
    /// `buf[ends[i-1] + 1..ends[i]]`.
    ends: Vec<usize>,
}

impl Batch {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no line.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of line `i` (without its newline).
    pub fn line(&self, i: usize) -> &[u8] {
        &self.buf[self.start(i)..self.ends[i]]
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1] + 1
        }
    }

    /// Lines `from..to`, each followed by `\n`, as one slice.
    pub fn lines_with_newlines(&self, from: usize, to: usize) -> &[u8] {
        if from >= to {
            return &[];
        }
        &self.buf[self.start(from)..self.ends[to - 1] + 1]
    }

    /// Bytes of all lines, counting one newline per line.
    pub fn byte_len(&self) -> usize {
        self.ends.last().map_or(0, |e| e + 1)
    }

    /// Line `i` for parsing where it lies: the buffer from the line's start to its end (the
    /// line, then the following lines and at least [`simd_json::INPUT_PADDING`] bytes of
    /// padding in batches made by a [`Framer`]), and the line's length.
    pub fn line_in_place(&mut self, i: usize) -> (&mut [u8], usize) {
        let start = self.start(i);
        let len = self.ends[i] - start;
        (&mut self.buf[start..], len)
    }

    /// Iterates over the lines.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(move |i| self.line(i))
    }

    /// An empty batch that tells the sequencer that `source` opened or closed.
    pub fn marker(source: SourceId, marker: SourceMarker) -> Batch {
        Batch { origin: Origin { source, arrived_at: Some(Instant::now()), marker: Some(marker) }, ..Batch::default() }
    }

    /// Hands the batch over and leaves an empty one in its place: a recycled one from `pool`,
    /// else a new one with the same capacity, so the next batch does not regrow its buffer by
    /// doubling nor fault in fresh pages (both measurable in profiles).
    fn take_sized(&mut self, pool: Option<&BatchPool>) -> Batch {
        let mut next = pool.and_then(BatchPool::get).unwrap_or_else(|| Batch {
            buf: Vec::with_capacity(self.buf.capacity()),
            ends: Vec::with_capacity(self.ends.capacity()),
            ..Batch::default()
        });
        next.origin.source = self.origin.source;
        let mut full = std::mem::replace(self, next);
        full.origin.arrived_at = Some(Instant::now());
        full
    }
}

/// Batches whose lines have been written, handed back from the writer to the reader so their
/// buffers are reused instead of allocated (and page-faulted in) again. Holds at most a fixed
/// number of batches; a batch that does not fit, or whose buffer grew past
/// [`BatchPool::MAX_KEPT_BYTES`] (a huge line), is freed instead.
#[derive(Clone, Debug)]
pub struct BatchPool {
    tx: crossbeam_channel::Sender<Batch>,
    rx: crossbeam_channel::Receiver<Batch>,
}

impl BatchPool {
    /// Larger buffers are not kept.
    pub const MAX_KEPT_BYTES: usize = 8 << 20;

    /// A pool keeping at most `capacity` batches.
    pub fn new(capacity: usize) -> BatchPool {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        BatchPool { tx, rx }
    }

    /// A recycled, empty batch, if one is available.
    pub fn get(&self) -> Option<Batch> {
        self.rx.try_recv().ok()
    }

    /// Gives a batch back for reuse.
    pub fn put(&self, mut batch: Batch) {
        if batch.buf.capacity() > Self::MAX_KEPT_BYTES {
            return;
        }
        batch.buf.clear();
        batch.ends.clear();
        batch.seq = 0;
        batch.first_line = 0;
        batch.origin = Origin::default();
        let _ = self.tx.try_send(batch);
    }
}

/// Splits a byte stream into batches of at most `batch_size` lines.
///
/// Feed it with [`Framer::push`] (or let it read a file descriptor straight into the batch
/// buffer with [`Framer::read_fd`], so that input bytes are copied once, by the kernel) and call
/// [`Framer::finish`] at end of input. Each call pushes the batches that became complete; an
/// incomplete last line stays at the end of the buffer and moves to the next batch.
#[derive(Debug)]
pub struct Framer {
    batch_size: usize,
    pool: Option<BatchPool>,
    /// Complete lines (listed in `ends`), then the bytes of the incomplete line.
    current: Batch,
    /// Bytes of `current.buf` holding complete lines.
    complete: usize,
}

impl Framer {
    /// A framer producing batches of at most `batch_size` (>= 1) lines.
    pub fn new(batch_size: usize) -> Framer {
        Framer { batch_size: batch_size.max(1), pool: None, current: Batch::default(), complete: 0 }
    }

    /// A framer that takes its batches from `pool` when it can.
    pub fn with_pool(batch_size: usize, pool: BatchPool) -> Framer {
        Framer { pool: Some(pool), ..Framer::new(batch_size) }
    }

    /// Stamps the batches it makes as lines of `source`.
    pub fn for_source(mut self, source: SourceId) -> Framer {
        self.current.origin.source = source;
        self
    }

    /// Adds bytes; pushes onto `out` every batch that is full, then (if `flush`) the batch holding
    /// whatever complete lines remain, so that a slow producer's lines are not held back.
    pub fn push(&mut self, bytes: &[u8], flush: bool, out: &mut Vec<Batch>) {
        let from = self.current.buf.len();
        self.current.buf.extend_from_slice(bytes);
        self.scan(from, flush, out);
    }

    /// Reads once from the file descriptor `fd` (at most `max` bytes) straight into the batch
    /// buffer, then frames like [`Framer::push`]. Returns the number of bytes read (0 at end of
    /// input). The caller owns `fd` and keeps it open for the call.
    pub fn read_fd(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        max: usize,
        flush: bool,
        out: &mut Vec<Batch>,
    ) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let buf = &mut self.current.buf;
        if buf.capacity() - buf.len() < max {
            // Exactly: a doubling would make every recycled buffer twice the read size.
            buf.reserve_exact(max);
        }
        let from = buf.len();
        let spare = (buf.capacity() - from).min(max);
        // SAFETY: read(2) writes at most `spare` bytes into the vector's spare capacity, which
        // starts at `as_mut_ptr() + from` and is `spare` bytes long; `set_len` then covers only
        // the `n <= spare` bytes it wrote.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().add(from).cast(), spare) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: see above; `from + n <= capacity`.
        unsafe { buf.set_len(from + n) };
        self.scan(from, flush, out);
        Ok(n)
    }

    /// Finds the lines completed by the bytes from `from` on.
    fn scan(&mut self, from: usize, flush: bool, out: &mut Vec<Batch>) {
        let mut search = from;
        while let Some(i) = memchr::memchr(b'\n', &self.current.buf[search..]) {
            let nl = search + i;
            self.current.ends.push(nl);
            self.complete = nl + 1;
            search = nl + 1;
            if self.current.len() >= self.batch_size {
                self.cut(out);
                // The rest moved to the start of the new buffer.
                search = 0;
            }
        }
        if flush && !self.current.is_empty() {
            self.cut(out);
        }
    }

    /// Hands over the complete lines; the incomplete line moves to the next batch.
    fn cut(&mut self, out: &mut Vec<Batch>) {
        let mut full = self.current.take_sized(self.pool.as_ref());
        self.current.buf.extend_from_slice(&full.buf[self.complete..]);
        full.buf.truncate(self.complete);
        // So that every line can be parsed in place (see `Batch::line_in_place`).
        full.buf.resize(self.complete + simd_json::INPUT_PADDING, b' ');
        self.complete = 0;
        out.push(full);
    }

    /// End of input: the final line without a newline (if any) becomes a line of its own.
    pub fn finish(&mut self, out: &mut Vec<Batch>) {
        if self.current.buf.len() > self.complete {
            self.current.ends.push(self.current.buf.len());
            self.current.buf.push(b'\n');
            self.complete = self.current.buf.len();
        }
        if !self.current.is_empty() {
            self.cut(out);
        }
    }

    /// Bytes of an incomplete line currently held.
    pub fn pending_bytes(&self) -> usize {
        self.current.buf.len() - self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(chunks: &[&[u8]], batch_size: usize) -> Vec<Vec<u8>> {
        let mut f = Framer::new(batch_size);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, true, &mut out);
        }
        f.finish(&mut out);
        out.iter().flat_map(|b| b.lines().map(<[u8]>::to_vec).collect::<Vec<_>>()).collect()
    }

    #[test]
    fn splits_lines_and_keeps_carriage_returns() {
        let lines = frame(&[b"a\r\nb\n\nc"], 2);
        assert_eq!(lines, vec![b"a\r".to_vec(), b"b".to_vec(), b"".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn a_line_split_across_chunks_is_joined() {
        let lines = frame(&[b"{\"a\":", b"1}\n{\"b\"", b":2}\n"], 7);
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
    }

    #[test]
    fn batches_never_exceed_batch_size() {
        let mut f = Framer::new(3);
        let mut out = Vec::new();
        f.push(b"1\n2\n3\n4\n5\n6\n7\n", false, &mut out);
        assert_eq!(out.iter().map(Batch::len).collect::<Vec<_>>(), vec![3, 3]);
        f.finish(&mut out);
        assert_eq!(out.iter().map(Batch::len).collect::<Vec<_>>(), vec![3, 3, 1]);
    }

    proptest! {
        /// Every byte of input comes back as lines, whatever the chunking and batch size.
        #[test]
        fn framing_is_lossless(data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400),
                               cuts in proptest::collection::vec(0usize..400, 0..10),
                               batch_size in 1usize..9) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&data[prev..c]); prev = c; }
            chunks.push(&data[prev..]);
            let lines = frame(&chunks, batch_size);
            let mut expected: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            if data.last() == Some(&b'\n') || data.is_empty() { expected.pop(); }
            prop_assert_eq!(lines, expected);
        }
    }
}
