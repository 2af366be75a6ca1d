//! The event store: the raw bytes of matched events, from decode until the last partial sequence
//! (or reorder-buffer entry) that holds them is gone. Everything else in the pipeline holds an
//! 8-byte [`StoredEvent`] handle; the bytes are read back only when an alert is rendered.
//!
//! * Events are appended to *segments*. While the memory they take stays within the budget
//!   (`event_store_memory`), new segments are 256 KiB blocks of memory; beyond it they are
//!   append-only files of up to 64 MiB in the spill directory (`spill_dir`), written through a
//!   256 KiB buffer and read back with positioned reads (`FileExt::read_at`).
//! * A spill file is unlinked as soon as it is created, so nothing is left behind, even after a
//!   crash; its space (or a memory segment's block) is released when the last handle into the
//!   segment is dropped (handles count references to their segment, not to single events).
//! * A handle is (segment id, offset): 8 bytes, as it is kept once per partial sequence (10^6
//!   of them at once is the target), where an `Arc` and an offset would take 16. Segment ids
//!   index a process-wide registry ([`SEGMENTS`]) that holds every live segment with its
//!   reference count; an event's length is stored in front of it, with its timestamp.
//! * Memory blocks of released segments are kept in a pool (within the budget) and reused, so a
//!   steady stream does not churn the allocator with megabyte blocks freed on other threads.
//! * An I/O error never loses an event: a spill file that cannot be created is replaced by a
//!   memory segment (over the budget), and a buffer that cannot be written stays in memory as
//!   part of its segment. Both are counted ([`StoreStats::io_errors`]) and logged at WARN,
//!   rate-limited (the 1st, 2nd, 4th, 8th... error).
//!
//! Thread-safe: decode workers put in parallel (one short lock per put, the copy of one line);
//! partition workers drop handles and read. Never parses the events it holds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::alert::MatchedEvent;
use crate::sync::lock;

/// Default in-memory budget of the event store (`event_store_memory`): 8 MiB.
pub const DEFAULT_EVENT_STORE_MEMORY: usize = 8 << 20;
/// Size of a memory segment (a larger event gets a segment of its own). A segment is freed only
/// when its last event is, so one long-lived partial pins a whole segment: 256 KiB segments keep
/// the budget's use (and peak RSS at 10^6 live keys: 95.9-97.5 MB in 8 runs, against 93-106 MB
/// with 1 MiB) steadier, at no measured throughput cost.
pub const MEMORY_SEGMENT_BYTES: usize = 256 << 10;
/// Size of a spill file before the next one is started.
pub const FILE_SEGMENT_BYTES: usize = 64 << 20;
/// Write buffer of the spill file being appended to.
pub const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Bytes in front of each stored event: its timestamp (ns), when its line was read
/// ([`crate::time::monotonic_ns`], for the alert-latency metrics), its input line number and
/// source (for the Kafka offsets a checkpoint may commit, see [`crate::pipeline::checkpoint`])
/// and its length (`u32::MAX` for "the rest of the segment": an event of 4 GiB or more, alone in
/// its segment), little-endian.
const HEADER: usize = 32;
/// Where the line number starts in a header.
const LINE_AT: usize = 16;
/// Where the source id starts in a header.
const SOURCE_AT: usize = 24;
/// Where the length field starts in a header.
const LEN_AT: usize = 28;

/// Where a stored event's line came from: its input source and global line number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The source ([`crate::sequence::watermark::SourceId`]).
    pub source: u32,
    /// The global input line number.
    pub line: u64,
}

/// Why a stored event could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The spill file could not be read.
    #[error("cannot read a spilled event back (offset {offset}): {source}")]
    Read {
        /// Offset of the event in its spill file.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The handle points outside what its segment holds (a bug).
    #[error("stored event out of its segment's bounds (offset {offset}, {len} bytes)")]
    OutOfBounds {
        /// Offset of the event in its segment.
        offset: u64,
        /// Bytes asked for.
        len: u64,
    },
    /// The handle names a segment that is no longer registered (a bug).
    #[error("stored event's segment {segment} is gone")]
    SegmentGone {
        /// The segment id.
        segment: u32,
    },
}

/// Every live segment of every store, by id (the index); freed ids are reused.
struct Registry {
    slots: Vec<Option<Arc<Segment>>>,
    free: Vec<u32>,
}

/// The segment registry: read-locked to clone, drop or read a handle, write-locked only to add
/// or remove a segment.
static SEGMENTS: RwLock<Registry> = RwLock::new(Registry { slots: Vec::new(), free: Vec::new() });

fn registry() -> RwLockReadGuard<'static, Registry> {
    // Every update completes under the lock, so a poisoned registry is still consistent.
    SEGMENTS.read().unwrap_or_else(|e| e.into_inner())
}

fn registry_mut() -> RwLockWriteGuard<'static, Registry> {
    SEGMENTS.write().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    fn get(&self, id: u32) -> Option<&Arc<Segment>> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }
}

/// Registers a new segment (its count already holds the store's reference) and returns its id.
fn register(seg: Arc<Segment>) -> u32 {
    let mut r = registry_mut();
    match r.free.pop() {
        Some(id) => {
            r.slots[id as usize] = Some(seg);
            id
        }
        None => {
            let id = u32::try_from(r.slots.len()).expect("fewer than 2^32 event-store segments alive at once");
            r.slots.push(Some(seg));
            id
        }
    }
}

/// Drops one reference (a handle, or the store's) to segment `id`; the last one unregisters it,
/// which releases its memory block or spill file.
fn release(id: u32) {
    let last = registry().get(id).is_some_and(|s| s.handles.fetch_sub(1, Ordering::AcqRel) == 1);
    if last {
        // No reference is left, so nobody can look the id up concurrently.
        let seg = {
            let mut r = registry_mut();
            let seg = r.slots.get_mut(id as usize).and_then(Option::take);
            if seg.is_some() {
                r.free.push(id);
            }
            seg
        };
        drop(seg);
    }
}

/// Where the store keeps events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Bytes of events kept in memory before new events go to spill files.
    pub memory_bytes: usize,
    /// Directory of the (unlinked) spill files.
    pub spill_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { memory_bytes: DEFAULT_EVENT_STORE_MEMORY, spill_dir: std::env::temp_dir() }
    }
}

/// A snapshot of the store's accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes of memory held for events (memory segments, and spill buffers kept after a write
    /// error); the active spill file's write buffer is not included.
    pub memory_bytes: usize,
    /// Live memory segments.
    pub memory_segments: usize,
    /// Live spill files.
    pub file_segments: usize,
    /// Events written to spill files so far.
    pub spilled_events: u64,
    /// I/O errors so far (each one kept its events in memory instead).
    pub io_errors: u64,
}

struct Shared {
    budget: usize,
    dir: PathBuf,
    memory_bytes: AtomicUsize,
    memory_segments: AtomicUsize,
    file_segments: AtomicUsize,
    spilled_events: AtomicU64,
    io_errors: AtomicU64,
    next_file: AtomicU64,
    /// Blocks of released memory segments (`MEMORY_SEGMENT_BYTES` each), ready for reuse.
    pool: Mutex<Vec<Vec<u8>>>,
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn io_error(&self, what: &'static str, err: &io::Error) {
        let n = self.io_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                errors = n,
                dir = %self.dir.display(),
                error = %err,
                "Event store cannot {what}; the events stay in memory."
            );
        }
    }
}

/// The event store; see the module docs.
pub struct EventStore {
    shared: Arc<Shared>,
    active: Mutex<Option<Active>>,
}

/// The segment being appended to (the store holds one reference to it).
struct Active {
    id: u32,
    seg: Arc<Segment>,
    /// Bytes appended so far.
    len: usize,
    /// Bytes it may hold.
    cap: usize,
}

impl EventStore {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        EventStore {
            shared: Arc::new(Shared {
                budget: config.memory_bytes,
                dir: config.spill_dir,
                memory_bytes: AtomicUsize::new(0),
                memory_segments: AtomicUsize::new(0),
                file_segments: AtomicUsize::new(0),
                spilled_events: AtomicU64::new(0),
                io_errors: AtomicU64::new(0),
                next_file: AtomicU64::new(0),
                pool: Mutex::new(Vec::new()),
                #[cfg(test)]
                fail_writes: std::sync::atomic::AtomicBool::new(false),
            }),
            active: Mutex::new(None),
        }
    }

    /// Stores one event (its raw line and timestamp), read now, and returns its handle.
    pub fn put(&self, raw: &[u8], timestamp_ns: i64) -> StoredEvent {
        self.put_arrived(raw, timestamp_ns, std::time::Instant::now(), Origin::default())
    }

    /// Stores one event (its raw line, its timestamp, and when its line was read) and returns
    /// its handle, with the line's `origin`. Never fails: see the module docs for what happens on
    /// I/O errors.
    pub fn put_arrived(
        &self,
        raw: &[u8],
        timestamp_ns: i64,
        arrived_at: std::time::Instant,
        origin: Origin,
    ) -> StoredEvent {
        let arrived = crate::time::monotonic_ns(arrived_at);
        let need = HEADER + raw.len();
        let mut active = lock(&self.active);
        if active.as_ref().is_some_and(|a| a.len + need > a.cap) {
            if let Some(old) = active.take() {
                old.seg.seal();
                release(old.id);
            }
        }
        let a = active.get_or_insert_with(|| self.new_segment(need));
        let offset = a.len;
        a.seg.append(offset, (timestamp_ns, arrived, origin), raw);
        a.len += need;
        a.seg.handles.fetch_add(1, Ordering::Relaxed);
        StoredEvent { seg: a.id, offset: u32::try_from(offset).unwrap_or(u32::MAX) }
    }

    /// The store's accounting now.
    pub fn stats(&self) -> StoreStats {
        let s = &self.shared;
        StoreStats {
            memory_bytes: s.memory_bytes.load(Ordering::Relaxed),
            memory_segments: s.memory_segments.load(Ordering::Relaxed),
            file_segments: s.file_segments.load(Ordering::Relaxed),
            spilled_events: s.spilled_events.load(Ordering::Relaxed),
            io_errors: s.io_errors.load(Ordering::Relaxed),
        }
    }

    fn new_segment(&self, need: usize) -> Active {
        let (seg, len, cap) = self.new_segment_data(need);
        Active { id: register(seg.clone()), seg, len, cap }
    }

    /// A new segment for an event of `need` bytes: (segment, bytes used, bytes it may hold).
    fn new_segment_data(&self, need: usize) -> (Arc<Segment>, usize, usize) {
        let s = &self.shared;
        let mem_cap = need.max(MEMORY_SEGMENT_BYTES);
        // Offsets are 32-bit: a segment holds at most 4 GiB, except one holding a single event.
        let fits = |cap: usize| cap.min(u32::MAX as usize).max(need);
        if s.memory_bytes.load(Ordering::Relaxed) + mem_cap <= s.budget {
            return (Segment::memory(s, mem_cap), 0, fits(mem_cap));
        }
        match create_spill_file(s) {
            Ok(file) => {
                s.file_segments.fetch_add(1, Ordering::Relaxed);
                let seg = Arc::new(Segment {
                    shared: s.clone(),
                    handles: AtomicUsize::new(1),
                    data: SegmentData::File {
                        file,
                        state: Mutex::new(FileState {
                            buf_start: 0,
                            buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
                            stranded: Vec::new(),
                        }),
                    },
                });
                (seg, 0, fits(need.max(FILE_SEGMENT_BYTES)))
            }
            Err(e) => {
                s.io_error("create a spill file", &e);
                (Segment::memory(s, mem_cap), 0, fits(mem_cap))
            }
        }
    }

    #[cfg(test)]
    fn fail_writes(&self, fail: bool) {
        self.shared.fail_writes.store(fail, Ordering::Relaxed);
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        // The active segment lives on while handles into it do.
        if let Some(a) = lock(&self.active).take() {
            release(a.id);
        }
    }
}

fn create_spill_file(s: &Shared) -> io::Result<File> {
    let n = s.next_file.fetch_add(1, Ordering::Relaxed);
    let path = s.dir.join(format!(".eqlstream-spill-{}-{n}.seg", std::process::id()));
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    // Unlinked at once: the file lives as long as it is open, and never outlives the process.
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// A handle to one stored event: 8 bytes (segment id, offset), and the bytes stay stored while
/// it (or a clone) lives.
pub struct StoredEvent {
    /// Id of the segment in [`SEGMENTS`].
    seg: u32,
    /// Offset of the event's header in its segment.
    offset: u32,
}

impl Clone for StoredEvent {
    fn clone(&self) -> Self {
        // This handle holds a reference, so the segment is registered.
        if let Some(s) = registry().get(self.seg) {
            s.handles.fetch_add(1, Ordering::Relaxed);
        }
        StoredEvent { seg: self.seg, offset: self.offset }
    }
}

impl Drop for StoredEvent {
    fn drop(&mut self) {
        release(self.seg);
    }
}

impl std::fmt::Debug for StoredEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEvent").field("segment", &self.seg).field("offset", &self.offset).finish()
    }
}

impl StoredEvent {
    /// Reads the event back: its raw line and timestamp.
    pub fn read(&self) -> Result<MatchedEvent, StoreError> {
        let seg = registry().get(self.seg).cloned().ok_or(StoreError::SegmentGone { segment: self.seg })?;
        let bytes = seg.read(u64::from(self.offset))?;
        let (header, body) = bytes.split_at(HEADER);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&header[..8]);
        let raw = match String::from_utf8(body.to_vec()) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(MatchedEvent { raw: raw.into_boxed_str(), timestamp_ns: i64::from_le_bytes(ts) })
    }

    /// When the event's line was read (as given to [`EventStore::put_arrived`]).
    pub fn arrived_at(&self) -> Result<std::time::Instant, StoreError> {
        let seg = registry().get(self.seg).cloned().ok_or(StoreError::SegmentGone { segment: self.seg })?;
        let bytes = seg.read(u64::from(self.offset))?;
        let mut arrived = [0u8; 8];
        arrived.copy_from_slice(&bytes[8..LINE_AT]);
        Ok(crate::time::from_monotonic_ns(u64::from_le_bytes(arrived)))
    }

    /// The input line the event came from (as given to [`EventStore::put_arrived`]).
    pub fn origin(&self) -> Result<Origin, StoreError> {
        let seg = registry().get(self.seg).cloned().ok_or(StoreError::SegmentGone { segment: self.seg })?;
        let bytes = seg.read(u64::from(self.offset))?;
        let mut line = [0u8; 8];
        line.copy_from_slice(&bytes[LINE_AT..SOURCE_AT]);
        let mut source = [0u8; 4];
        source.copy_from_slice(&bytes[SOURCE_AT..LEN_AT]);
        Ok(Origin { line: u64::from_le_bytes(line), source: u32::from_le_bytes(source) })
    }
}

/// The length field of a header (`u32::MAX`: the rest of the segment).
fn header_len(header: &[u8]) -> u32 {
    let mut len = [0u8; 4];
    len.copy_from_slice(&header[LEN_AT..HEADER]);
    u32::from_le_bytes(len)
}

struct Segment {
    shared: Arc<Shared>,
    /// References: live handles, plus one while it is a store's active segment.
    handles: AtomicUsize,
    data: SegmentData,
}

enum SegmentData {
    Memory { bytes: Mutex<Vec<u8>>, charged: usize },
    File { file: File, state: Mutex<FileState> },
}

struct FileState {
    /// File offset of `buffer[0]`; everything before it was written (or stranded).
    buf_start: u64,
    buffer: Vec<u8>,
    /// Buffers whose write failed: (file offset, bytes), kept in memory for good.
    stranded: Vec<(u64, Box<[u8]>)>,
}

impl Segment {
    fn memory(s: &Arc<Shared>, cap: usize) -> Arc<Segment> {
        s.memory_bytes.fetch_add(cap, Ordering::Relaxed);
        s.memory_segments.fetch_add(1, Ordering::Relaxed);
        let pooled = if cap == MEMORY_SEGMENT_BYTES { lock(&s.pool).pop() } else { None };
        let bytes = pooled.unwrap_or_else(|| Vec::with_capacity(cap));
        Arc::new(Segment {
            shared: s.clone(),
            handles: AtomicUsize::new(1),
            data: SegmentData::Memory { bytes: Mutex::new(bytes), charged: cap },
        })
    }

    fn append(&self, offset: usize, (ts, arrived, origin): (i64, u64, Origin), raw: &[u8]) {
        let len = u32::try_from(raw.len()).unwrap_or(u32::MAX).to_le_bytes();
        let (line, source) = (origin.line.to_le_bytes(), origin.source.to_le_bytes());
        match &self.data {
            SegmentData::Memory { bytes, .. } => {
                let mut b = lock(bytes);
                debug_assert_eq!(b.len(), offset);
                b.extend_from_slice(&ts.to_le_bytes());
                b.extend_from_slice(&arrived.to_le_bytes());
                b.extend_from_slice(&line);
                b.extend_from_slice(&source);
                b.extend_from_slice(&len);
                b.extend_from_slice(raw);
            }
            SegmentData::File { file, state } => {
                let mut st = lock(state);
                debug_assert_eq!(st.buf_start + st.buffer.len() as u64, offset as u64);
                st.buffer.extend_from_slice(&ts.to_le_bytes());
                st.buffer.extend_from_slice(&arrived.to_le_bytes());
                st.buffer.extend_from_slice(&line);
                st.buffer.extend_from_slice(&source);
                st.buffer.extend_from_slice(&len);
                st.buffer.extend_from_slice(raw);
                self.shared.spilled_events.fetch_add(1, Ordering::Relaxed);
                if st.buffer.len() >= WRITE_BUFFER_BYTES {
                    self.flush(file, &mut st);
                }
            }
        }
    }

    /// No more appends: write out and free the write buffer.
    fn seal(&self) {
        if let SegmentData::File { file, state } = &self.data {
            let mut st = lock(state);
            self.flush(file, &mut st);
            st.buffer = Vec::new();
        }
    }

    fn flush(&self, file: &File, st: &mut FileState) {
        if st.buffer.is_empty() {
            return;
        }
        let result = self.write(file, &st.buffer, st.buf_start);
        let n = st.buffer.len() as u64;
        match result {
            Ok(()) => st.buffer.clear(),
            Err(e) => {
                self.shared.io_error("write a spill file", &e);
                let kept = std::mem::replace(&mut st.buffer, Vec::with_capacity(WRITE_BUFFER_BYTES)).into_boxed_slice();
                self.shared.memory_bytes.fetch_add(kept.len(), Ordering::Relaxed);
                st.stranded.push((st.buf_start, kept));
            }
        }
        st.buf_start += n;
        if st.buffer.capacity() > 2 * WRITE_BUFFER_BYTES {
            st.buffer = Vec::with_capacity(WRITE_BUFFER_BYTES);
        }
    }

    fn write(&self, file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
        #[cfg(test)]
        if self.shared.fail_writes.load(Ordering::Relaxed) {
            return Err(io::Error::other("injected write failure"));
        }
        file.write_all_at(bytes, at)
    }

    /// The stored bytes (header included) of the event at `offset`.
    fn read(&self, offset: u64) -> Result<Vec<u8>, StoreError> {
        let out_of_bounds = |len: u32| StoreError::OutOfBounds { offset, len: u64::from(len) };
        let slice = |b: &[u8], start: u64| -> Result<Vec<u8>, StoreError> {
            let from = usize::try_from(offset - start).unwrap_or(usize::MAX);
            let header = b.get(from..from.saturating_add(HEADER)).ok_or(out_of_bounds(0))?;
            let len = header_len(header);
            let to = if len == u32::MAX { b.len() } else { from.saturating_add(HEADER + len as usize) };
            b.get(from..to).map(<[u8]>::to_vec).ok_or(out_of_bounds(len))
        };
        match &self.data {
            SegmentData::Memory { bytes, .. } => slice(&lock(bytes), 0),
            SegmentData::File { file, state } => {
                let total = {
                    let st = lock(state);
                    if offset >= st.buf_start {
                        return slice(&st.buffer, st.buf_start);
                    }
                    if let Some((start, b)) =
                        st.stranded.iter().find(|(s, b)| offset >= *s && offset < s + b.len() as u64)
                    {
                        return slice(b, *start);
                    }
                    st.buf_start
                };
                // Written bytes never change: read them without the lock, header first.
                if offset + HEADER as u64 > total {
                    return Err(out_of_bounds(0));
                }
                let mut header = [0u8; HEADER];
                file.read_exact_at(&mut header, offset).map_err(|source| StoreError::Read { offset, source })?;
                let len = header_len(&header);
                let n = if len == u32::MAX { total.saturating_sub(offset) } else { (HEADER + len as usize) as u64 };
                if n < HEADER as u64 || offset + n > total {
                    return Err(out_of_bounds(len));
                }
                let mut buf = vec![0u8; n as usize];
                buf[..HEADER].copy_from_slice(&header);
                file.read_exact_at(&mut buf[HEADER..], offset + HEADER as u64)
                    .map_err(|source| StoreError::Read { offset, source })?;
                Ok(buf)
            }
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let s = &self.shared;
        match &self.data {
            SegmentData::Memory { bytes, charged } => {
                s.memory_bytes.fetch_sub(*charged, Ordering::Relaxed);
                s.memory_segments.fetch_sub(1, Ordering::Relaxed);
                // Pooled plus live blocks stay within the budget.
                let mut b = std::mem::take(&mut *lock(bytes));
                let mut pool = lock(&s.pool);
                let in_use = s.memory_bytes.load(Ordering::Relaxed);
                if *charged == MEMORY_SEGMENT_BYTES && in_use + (pool.len() + 1) * MEMORY_SEGMENT_BYTES <= s.budget {
                    b.clear();
                    pool.push(b);
                }
            }
            SegmentData::File { state, .. } => {
                let kept: usize = lock(state).stranded.iter().map(|(_, b)| b.len()).sum();
                s.memory_bytes.fetch_sub(kept, Ordering::Relaxed);
                s.file_segments.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The spill directory a config names must exist.
pub fn check_spill_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(memory_bytes: usize, dir: &Path) -> EventStore {
        EventStore::new(StoreConfig { memory_bytes, spill_dir: dir.to_path_buf() })
    }

    fn line(i: usize) -> String {
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 3000))
    }

    fn spill_files(dir: &Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn an_event_remembers_its_line_in_memory_and_spilled() {
        let dir = tempfile::tempdir().unwrap();
        // A budget of one segment: later events spill.
        let s = store(MEMORY_SEGMENT_BYTES, dir.path());
        let now = std::time::Instant::now();
        let handles: Vec<StoredEvent> = (0..3000)
            .map(|i| {
                s.put_arrived(
                    line(i).as_bytes(),
                    i as i64,
                    now,
                    Origin { source: (i % 7) as u32, line: 1000 + i as u64 },
                )
            })
            .collect();
        assert!(s.stats().spilled_events > 0, "some events spilled");
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(h.origin().unwrap(), Origin { source: (i % 7) as u32, line: 1000 + i as u64 });
            assert_eq!(h.read().unwrap().raw.as_ref(), line(i).as_str());
        }
    }

    #[test]
    fn events_within_the_budget_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(4 * MEMORY_SEGMENT_BYTES, dir.path());
        let handles: Vec<StoredEvent> = (0..100).map(|i| s.put(line(i).as_bytes(), i as i64)).collect();
        let st = s.stats();
        assert_eq!((st.file_segments, st.spilled_events, st.io_errors), (0, 0, 0));
        assert_eq!(st.memory_bytes, st.memory_segments * MEMORY_SEGMENT_BYTES);
        assert!(st.memory_bytes <= 4 * MEMORY_SEGMENT_BYTES);
        for (i, h) in handles.iter().enumerate() {
            let ev = h.read().unwrap();
            assert_eq!((&*ev.raw, ev.timestamp_ns), (line(i).as_str(), i as i64));
        }
    }

    #[test]
    fn events_beyond_the_budget_spill_to_unlinked_files_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(MEMORY_SEGMENT_BYTES, dir.path());
        let handles: Vec<StoredEvent> = (0..3000).map(|i| s.put(line(i).as_bytes(), -(i as i64))).collect();
        let st = s.stats();
        assert_eq!(st.memory_segments, 1, "{st:?}");
        assert_eq!(st.memory_bytes, MEMORY_SEGMENT_BYTES, "budget respected");
        assert!(st.file_segments >= 1 && st.spilled_events > 1000, "{st:?}");
        assert_eq!(spill_files(dir.path()), 0, "spill files are unlinked at creation");
        // Read back from memory, from the written file, and from the unwritten buffer.
        for (i, h) in handles.iter().enumerate().rev() {
            let ev = h.read().unwrap();
            assert_eq!((&*ev.raw, ev.timestamp_ns), (line(i).as_str(), -(i as i64)), "event {i}");
        }
    }

    #[test]
    fn a_segment_is_released_with_its_last_handle() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(MEMORY_SEGMENT_BYTES, dir.path());
        let big = vec![b'y'; FILE_SEGMENT_BYTES / 2];
        let first_mem = s.put(&big[..MEMORY_SEGMENT_BYTES / 2], 0);
        let a = s.put(&big, 1); // over the budget: first spill file
        let b = s.put(&big, 2); // does not fit: second spill file
        assert_eq!(s.stats().file_segments, 2);
        let a2 = a.clone();
        drop(a);
        assert_eq!(s.stats().file_segments, 2, "a clone still holds the first file");
        drop(a2);
        assert_eq!(s.stats().file_segments, 1, "the first file is released");
        assert_eq!(b.read().unwrap().raw.len(), big.len());
        drop(first_mem);
        assert_eq!(s.stats().memory_bytes, 0);
        assert_eq!(s.stats().memory_segments, 0);
        drop(b);
        // The active segment is the store's too: released when the store goes.
        assert_eq!(s.stats().file_segments, 1);
        drop(s);
    }

    #[test]
    fn budget_accounting_returns_to_zero_and_memory_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(2 * MEMORY_SEGMENT_BYTES, dir.path());
        let chunk = vec![b'z'; MEMORY_SEGMENT_BYTES / 4 - HEADER];
        let held: Vec<StoredEvent> = (0..7).map(|i| s.put(&chunk, i)).collect();
        assert_eq!(s.stats().memory_segments, 2);
        assert_eq!(s.stats().file_segments, 0);
        drop(held);
        // The active (second) segment stays; the first one is gone.
        assert_eq!(s.stats().memory_bytes, MEMORY_SEGMENT_BYTES);
        let more: Vec<StoredEvent> = (0..5).map(|i| s.put(&chunk, i)).collect();
        assert_eq!(s.stats().file_segments, 0, "freed budget is used again before spilling");
        assert_eq!(s.stats().memory_segments, 2);
        assert_eq!(more[4].read().unwrap().raw.len(), chunk.len());
    }

    #[test]
    fn released_memory_blocks_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(2 * MEMORY_SEGMENT_BYTES, dir.path());
        let chunk = vec![b'p'; MEMORY_SEGMENT_BYTES - HEADER];
        let a = s.put(&chunk, 1); // fills the first block
        let b = s.put(&chunk, 2); // fills the second block, now the active one
        drop(a);
        assert_eq!(lock(&s.shared.pool).len(), 1, "the first block is pooled");
        let c = s.put(&chunk, 3);
        assert_eq!(lock(&s.shared.pool).len(), 0, "and taken again");
        assert_eq!(s.stats().file_segments, 0);
        assert_eq!(s.stats().memory_bytes, 2 * MEMORY_SEGMENT_BYTES);
        assert_eq!((b.read().unwrap().timestamp_ns, c.read().unwrap().timestamp_ns), (2, 3));
    }

    #[test]
    fn a_spill_dir_that_cannot_be_used_keeps_events_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let s = store(0, &missing);
        let handles: Vec<StoredEvent> = (0..50).map(|i| s.put(line(i).as_bytes(), i as i64)).collect();
        let st = s.stats();
        assert_eq!(st.file_segments, 0);
        assert!(st.io_errors >= 1 && st.memory_segments >= 1, "{st:?}");
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(&*h.read().unwrap().raw, line(i).as_str());
        }
    }

    #[test]
    fn a_failed_write_keeps_the_buffer_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(0, dir.path());
        s.fail_writes(true);
        let handles: Vec<StoredEvent> = (0..1000).map(|i| s.put(line(i).as_bytes(), i as i64)).collect();
        let st = s.stats();
        assert!(st.io_errors >= 1, "{st:?}");
        assert!(st.memory_bytes >= WRITE_BUFFER_BYTES, "stranded buffers are accounted: {st:?}");
        s.fail_writes(false);
        let later: Vec<StoredEvent> = (1000..2000).map(|i| s.put(line(i).as_bytes(), i as i64)).collect();
        for (i, h) in handles.iter().chain(&later).enumerate() {
            let ev = h.read().unwrap();
            assert_eq!((&*ev.raw, ev.timestamp_ns), (line(i).as_str(), i as i64), "event {i}");
        }
        drop((handles, later, s));
    }

    #[test]
    fn puts_from_several_threads_all_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(MEMORY_SEGMENT_BYTES, dir.path()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..500).map(|i| (t * 1000 + i, s.put(line(t * 1000 + i).as_bytes(), i as i64))).collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for (n, h) in t.join().unwrap() {
                assert_eq!(&*h.read().unwrap().raw, line(n).as_str());
            }
        }
    }

    #[test]
    fn the_handle_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<StoredEvent>(), 8);
    }

    #[test]
    fn handles_cloned_and_dropped_on_several_threads_release_every_segment() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(2 * MEMORY_SEGMENT_BYTES, dir.path()));
        let handles: Vec<StoredEvent> = (0..3000).map(|i| s.put(line(i).as_bytes(), i as i64)).collect();
        let handles = Arc::new(handles);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let handles = handles.clone();
                std::thread::spawn(move || {
                    for round in 0..3 {
                        let clones: Vec<StoredEvent> = handles.iter().skip(t + round).step_by(4).cloned().collect();
                        for c in clones.iter().step_by(97) {
                            assert!(c.read().is_ok());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for (i, h) in handles.iter().enumerate().step_by(13) {
            assert_eq!(&*h.read().unwrap().raw, line(i).as_str());
        }
        let segments = |s: &EventStore| s.stats().memory_segments + s.stats().file_segments;
        assert!(segments(&s) > 2);
        drop(handles);
        assert_eq!(segments(&s), 1, "only the active segment is left");
        let s = Arc::into_inner(s).expect("one owner left");
        let shared = s.shared.clone();
        drop(s);
        let left = shared.memory_segments.load(Ordering::Relaxed) + shared.file_segments.load(Ordering::Relaxed);
        assert_eq!(left, 0, "the active segment goes with the store");
    }
}
