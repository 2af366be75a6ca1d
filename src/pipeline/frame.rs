//! NDJSON framing: bytes in, batches of complete lines out.
//!
//! A line is everything up to (not including) `\n`; a `\r` before it stays part of the line, so
//! pass-through is byte-exact. A final line without a newline still counts (the writer adds the
//! `\n`). Framing never looks inside a line.
//!
//! **Long lines stream through.** A line longer than the framer's limit (`max_line_bytes`) is
//! never held whole: once its unterminated part passes the limit, the framer hands that part
//! over as a [`Piece::Middle`] batch (no line, just bytes) and keeps handing over what follows as
//! it is read; the batch holding its end has [`Piece::Tail`]: its line 0 is the line's last part.
//! The writer writes the parts as they come, so memory is bounded by the read size, not by the
//! line; the decode stage counts the line once (`too_long`) and never parses it.

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
    /// A checkpoint with this id (see [`super::checkpoint`]): report what is still needed of
    /// the lines before this point.
    Checkpoint(u64),
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

/// Whether a batch carries part of a line longer than the limit (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Piece {
    /// Only whole lines.
    #[default]
    None,
    /// No line: the bytes of a long line that goes on in the next batch of the same source.
    Middle,
    /// Line 0 is the last part of a long line whose earlier parts came as [`Piece::Middle`]
    /// batches; the other lines are whole.
    Tail,
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
    /// Part of a long line?
    pub piece: Piece,
    /// The rule-set version the batch is evaluated with, stamped by the feeder (`None`: the
    /// run's first version; see [`super::live`]).
    pub rules: Option<Arc<super::live::RuleVersion>>,
    /// The lines' bytes, each followed by `\n` (also the last line of the stream, whose newline
    /// may be missing in the input), so the writer can pass a run of lines through in one write.
    buf: Vec<u8>,
    /// End offset in `buf` of each line (where its `\n` is); line i is
    /// `buf[ends[i-1] + 1..ends[i]]`.
    ends: Vec<usize>,
    /// The record key of each line, for batches of records (Kafka messages): empty for byte
    /// streams, else one entry per line, a range of `key_bytes` or `None`.
    key_spans: Vec<Option<(u32, u32)>>,
    /// The keys' bytes.
    key_bytes: Vec<u8>,
}

impl Batch {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of a [`Piece::Middle`] batch (empty for other batches).
    pub fn middle_bytes(&self) -> &[u8] {
        if self.piece == Piece::Middle {
            &self.buf
        } else {
            &[]
        }
    }

    /// True when the batch carries input (lines or a part of one), as opposed to a marker.
    pub fn has_input(&self) -> bool {
        !self.is_empty() || self.piece == Piece::Middle
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

    /// The record key of line `i` (a Kafka message's key), if it came with one.
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        let (from, to) = (*self.key_spans.get(i)?)?;
        self.key_bytes.get(from as usize..to as usize)
    }

    /// Appends a whole record as a line (without its trailing newline, if any; a record with
    /// newlines inside stays one line), with its key. Call [`Batch::seal`] before handing the
    /// batch over.
    pub fn push_record(&mut self, payload: &[u8], key: Option<&[u8]>) {
        let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
        let start = self.ends.last().map_or(0, |e| e + 1);
        self.buf.truncate(start);
        self.buf.extend_from_slice(payload);
        self.ends.push(self.buf.len());
        self.buf.push(b'\n');
        let span = key.map(|k| {
            let from = self.key_bytes.len();
            self.key_bytes.extend_from_slice(k);
            (u32::try_from(from).unwrap_or(u32::MAX), u32::try_from(self.key_bytes.len()).unwrap_or(u32::MAX))
        });
        self.key_spans.push(span);
    }

    /// Pads a batch of records for in-place parsing and stamps its arrival time.
    pub fn seal(&mut self) {
        let end = self.byte_len();
        self.buf.resize(end + simd_json::INPUT_PADDING, b' ');
        self.origin.arrived_at = Some(Instant::now());
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
        batch.key_spans.clear();
        batch.key_bytes.clear();
        batch.seq = 0;
        batch.first_line = 0;
        // An old rule-set version must not live on in a recycled batch.
        batch.rules = None;
        batch.origin = Origin::default();
        batch.piece = Piece::None;
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
    /// Longest unterminated line held before it is handed over in parts.
    max_line_bytes: usize,
    pool: Option<BatchPool>,
    /// Complete lines (listed in `ends`), then the bytes of the incomplete line.
    current: Batch,
    /// Bytes of `current.buf` holding complete lines.
    complete: usize,
    /// True while a long line is being handed over: `current.buf` starts with its next part.
    in_long_line: bool,
}

impl Framer {
    /// A framer producing batches of at most `batch_size` (>= 1) lines.
    pub fn new(batch_size: usize) -> Framer {
        Framer {
            batch_size: batch_size.max(1),
            max_line_bytes: usize::MAX,
            pool: None,
            current: Batch::default(),
            complete: 0,
            in_long_line: false,
        }
    }

    /// Hands lines longer than `max_line_bytes` over in parts (see the module docs).
    pub fn with_max_line(mut self, max_line_bytes: usize) -> Framer {
        self.max_line_bytes = max_line_bytes.max(1);
        self
    }

    /// True while a long line is being handed over in parts.
    pub fn in_long_line(&self) -> bool {
        self.in_long_line
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
        if self.in_long_line {
            // `current.buf` holds only the long line's next part (no complete line before it).
            match memchr::memchr(b'\n', &self.current.buf[search..]) {
                None => {
                    self.hand_over_part(out);
                    return;
                }
                Some(i) => {
                    let nl = search + i;
                    self.current.ends.push(nl);
                    self.current.piece = Piece::Tail;
                    self.complete = nl + 1;
                    self.in_long_line = false;
                    search = nl + 1;
                    if self.current.len() >= self.batch_size {
                        self.cut(out);
                        search = 0;
                    }
                }
            }
        }
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
        if self.pending_bytes() > self.max_line_bytes {
            // A line longer than the limit: its lines before it go as a batch, then its first
            // part; the rest follows as it is read.
            if !self.current.is_empty() {
                self.cut(out);
            }
            self.in_long_line = true;
            self.hand_over_part(out);
            return;
        }
        if flush && !self.current.is_empty() {
            self.cut(out);
        }
    }

    /// Hands over everything held (the current part of a long line, no complete line) as a
    /// [`Piece::Middle`] batch.
    fn hand_over_part(&mut self, out: &mut Vec<Batch>) {
        debug_assert!(self.current.is_empty() && self.complete == 0);
        if self.current.buf.is_empty() {
            return;
        }
        let mut part = self.current.take_sized(self.pool.as_ref());
        part.piece = Piece::Middle;
        self.current.piece = Piece::None;
        out.push(part);
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

    /// End of input: the final line without a newline (if any) becomes a line of its own; a long
    /// line being handed over gets its end.
    pub fn finish(&mut self, out: &mut Vec<Batch>) {
        if self.in_long_line {
            self.current.piece = Piece::Tail;
            self.in_long_line = false;
            self.current.ends.push(self.current.buf.len());
            self.current.buf.push(b'\n');
            self.complete = self.current.buf.len();
        } else if self.current.buf.len() > self.complete {
            self.current.ends.push(self.current.buf.len());
            self.current.buf.push(b'\n');
            self.complete = self.current.buf.len();
        }
        if !self.current.is_empty() {
            self.cut(out);
        }
    }

    /// Shutdown while a line is being read and it did not end in time: hands over the complete
    /// lines and drops the unread remainder of the unterminated line. Returns the bytes dropped.
    /// A long line whose first parts were already handed over is ended (with a newline) where it
    /// stands, so that nothing else is ever glued to it.
    pub fn finish_dropping_partial(&mut self, out: &mut Vec<Batch>) -> usize {
        if self.in_long_line {
            let dropped = 0;
            self.finish(out);
            return dropped;
        }
        let dropped = self.pending_bytes();
        self.current.buf.truncate(self.complete);
        if !self.current.is_empty() {
            self.cut(out);
        }
        dropped
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

    #[test]
    fn records_become_lines_with_their_keys_and_padding() {
        let mut b = Batch::default();
        b.push_record(b"{\"a\":1}\n", Some(b"c1"));
        b.push_record(b"two\nlines", None);
        b.push_record(b"", Some(b""));
        b.seal();
        assert_eq!(b.len(), 3);
        assert_eq!((b.line(0), b.key(0)), (&b"{\"a\":1}"[..], Some(&b"c1"[..])));
        assert_eq!((b.line(1), b.key(1)), (&b"two\nlines"[..], None));
        assert_eq!((b.line(2), b.key(2)), (&b""[..], Some(&b""[..])));
        assert_eq!(b.lines_with_newlines(0, 3), b"{\"a\":1}\ntwo\nlines\n\n");
        let (buf, len) = b.line_in_place(0);
        assert_eq!(len, 7);
        assert!(buf.len() >= len + simd_json::INPUT_PADDING, "padded for in-place parsing");
        let pool = BatchPool::new(1);
        pool.put(b);
        let again = pool.get().unwrap();
        assert_eq!((again.len(), again.key(0)), (0, None), "a recycled batch has no keys left");
    }

    fn frame(chunks: &[&[u8]], batch_size: usize) -> Vec<Vec<u8>> {
        frame_with_limit(chunks, batch_size, usize::MAX).0
    }

    /// The lines, with the parts of long lines joined again, and the most bytes any batch held.
    fn frame_with_limit(chunks: &[&[u8]], batch_size: usize, max_line: usize) -> (Vec<Vec<u8>>, usize) {
        let mut f = Framer::new(batch_size).with_max_line(max_line);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, true, &mut out);
        }
        f.finish(&mut out);
        let mut lines = Vec::new();
        let mut part: Option<Vec<u8>> = None;
        let mut largest = 0;
        for b in &out {
            largest = largest.max(b.byte_len() + b.middle_bytes().len());
            match b.piece {
                Piece::Middle => {
                    assert!(b.is_empty());
                    part.get_or_insert_with(Vec::new).extend_from_slice(b.middle_bytes());
                    continue;
                }
                Piece::Tail => assert!(part.is_some(), "a tail follows parts"),
                Piece::None => assert!(part.is_none(), "nothing comes between a long line's parts"),
            }
            for (i, l) in b.lines().enumerate() {
                match (i, part.take()) {
                    (0, Some(mut p)) => {
                        p.extend_from_slice(l);
                        lines.push(p);
                    }
                    _ => lines.push(l.to_vec()),
                }
            }
        }
        assert!(part.is_none(), "every long line ends");
        (lines, largest)
    }

    #[test]
    fn a_long_line_is_handed_over_in_parts_and_never_held_whole() {
        let long = vec![b'x'; 100_000];
        let mut input = b"a\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nb\n");
        let chunks: Vec<&[u8]> = input.chunks(4096).collect();
        let (lines, largest) = frame_with_limit(&chunks, 8, 1000);
        assert_eq!(lines, vec![b"a".to_vec(), long, b"b".to_vec()]);
        assert!(largest < 2 * 4096 + 1000, "no batch held the long line: {largest}");
        // Without a final newline, the long line still ends.
        let (lines, _) = frame_with_limit(&[&[b'y'; 5000][..]], 8, 100);
        assert_eq!(lines, vec![vec![b'y'; 5000]]);
    }

    #[test]
    fn at_shutdown_only_the_unterminated_remainder_is_dropped() {
        let mut f = Framer::new(8);
        let mut out = Vec::new();
        f.push(b"a\nb\npartial", true, &mut out);
        assert_eq!(f.finish_dropping_partial(&mut out), 7);
        let lines: Vec<Vec<u8>> = out.iter().flat_map(|b| b.lines().map(<[u8]>::to_vec).collect::<Vec<_>>()).collect();
        assert_eq!(lines, vec![b"a".to_vec(), b"b".to_vec()]);
        // A long line already streaming is ended where it stands.
        let mut f = Framer::new(8).with_max_line(10);
        let mut out = Vec::new();
        f.push(&[b'z'; 50], true, &mut out);
        assert!(f.in_long_line());
        assert_eq!(f.finish_dropping_partial(&mut out), 0);
        assert_eq!(out.last().map(|b| b.piece), Some(Piece::Tail));
        assert!(!f.in_long_line());
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

        /// The same with long lines handed over in parts, whatever the limit.
        #[test]
        fn framing_with_long_lines_is_lossless(data in proptest::collection::vec(prop_oneof![1 => Just(b'\n'), 8 => any::<u8>()], 0..600),
                               cuts in proptest::collection::vec(0usize..600, 0..10),
                               batch_size in 1usize..9, max_line in 1usize..40) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&data[prev..c]); prev = c; }
            chunks.push(&data[prev..]);
            let (lines, _) = frame_with_limit(&chunks, batch_size, max_line);
            let mut expected: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            if data.last() == Some(&b'\n') || data.is_empty() { expected.pop(); }
            prop_assert_eq!(lines, expected);
        }
    }
}
