//! The writer: every input line exactly once, byte-identical and in input order, each followed by
//! `\n`; each alert right after the line whose arrival released it. It takes the sequencer's
//! batches and the partitions' outputs in the same step order, merges the alerts of a step by
//! (release line, completing ordinal, rule, key) and writes. A closed stdout (EPIPE) ends the run
//! quietly; the writer is the last stage to finish.

use std::io::Write;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::frame::{Batch, BatchPool, Piece};
use super::sequencer::WriterBatch;
use super::worker::{AlertOut, PartitionOutput};
use super::Totals;
use crate::metrics::{Handles, PipelineStage, Stats};

/// Why the writer stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing stdout or the alerts file failed (other than a closed pipe).
    #[error("writing {what}: {source}")]
    Write {
        /// What was being written.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How the writer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SinkEnd {
    /// All input was written.
    Drained,
    /// The consumer closed stdout; the rest of the stream was not written.
    BrokenPipe,
}

/// A destination that takes records one at a time (a Kafka topic) rather than a byte stream.
pub trait RecordSink: Send {
    /// Sends one record (without a trailing newline).
    fn send(&mut self, key: Option<&[u8]>, payload: &[u8]) -> std::io::Result<()>;
    /// Waits until every record sent so far is delivered (or fails).
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Where the writer writes.
pub struct Outputs {
    /// Standard output (events and alerts, or alerts only).
    pub stdout: Box<dyn Write + Send>,
    /// Pass input lines through.
    pub passthrough: bool,
    /// Optional extra alerts file.
    pub alerts: Option<Box<dyn Write + Send>>,
    /// Records in place of `stdout`: each line one record, keyed like its input record; each
    /// alert one record keyed by its `event.id`.
    pub records: Option<Box<dyn RecordSink>>,
    /// Records in place of the alerts file.
    pub alert_records: Option<Box<dyn RecordSink>>,
    /// Where finished checkpoints go (see [`super::checkpoint`]).
    pub checkpoints: Option<crossbeam_channel::Sender<super::checkpoint::CheckpointDone>>,
}

impl Outputs {
    /// Byte-stream outputs: `stdout` and an optional alerts file.
    pub fn streams(stdout: Box<dyn Write + Send>, passthrough: bool, alerts: Option<Box<dyn Write + Send>>) -> Self {
        Outputs { stdout, passthrough, alerts, records: None, alert_records: None, checkpoints: None }
    }

    /// Flushes everything written so far (records: waits for their delivery).
    fn flush_all(&mut self) -> std::io::Result<()> {
        self.stdout.flush()?;
        if let Some(a) = self.alerts.as_mut() {
            a.flush()?;
        }
        if let Some(r) = self.records.as_mut() {
            r.flush()?;
        }
        if let Some(r) = self.alert_records.as_mut() {
            r.flush()?;
        }
        Ok(())
    }
}

/// Runs the writer until the sequencer's channel closes.
pub fn run(
    mut outputs: Outputs,
    rx: Receiver<WriterBatch>,
    parts: Vec<Receiver<PartitionOutput>>,
    pool: BatchPool,
    handles: Handles,
    totals: Arc<Totals>,
) -> Result<SinkEnd, SinkError> {
    let mut stats = Stats::new(&handles);
    // Alerts not yet written: a step without lines (a large release, sent in parts) can carry
    // alerts released by a line of the batch still to come; they wait for it.
    let mut alerts: Vec<AlertOut> = Vec::new();
    // The first input line not yet written.
    let mut next_line = 0u64;
    // True while the parts of a line longer than max_line_bytes are being written: nothing else
    // may be written until its end (alerts wait).
    let mut in_long_line = false;
    for (n, wb) in rx.into_iter().enumerate() {
        super::debug_panic("writer", n as u64);
        handles.queue_popped(PipelineStage::Write, wb.batch.len() as u64);
        let mut held = super::checkpoint::Needed::default();
        for p in &parts {
            match p.recv() {
                Ok(out) => {
                    debug_assert_eq!(out.step, wb.step, "partitions answer steps in order");
                    alerts.extend(out.alerts);
                    if let Some(h) = &out.held {
                        held.merge(h);
                    }
                }
                // A partition died (it cannot panic on input, but be safe): lines still go out.
                Err(_) => tracing::error!("A partition worker stopped; its alerts are lost."),
            }
        }
        let started = std::time::Instant::now();
        if wb.batch.piece == Piece::Middle || (in_long_line && wb.batch.is_empty()) {
            in_long_line = true;
            match write_middle(&mut outputs, &wb.batch) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    stats.flush(&handles);
                    return Ok(SinkEnd::BrokenPipe);
                }
                Err(source) => {
                    stats.flush(&handles);
                    return Err(SinkError::Write { what: "output", source });
                }
            }
            pool.put(wb.batch);
            continue;
        }
        in_long_line = false;
        alerts.sort_by(|a, b| (a.release_line, &a.order).cmp(&(b.release_line, &b.order)));
        if !wb.batch.is_empty() {
            next_line = wb.batch.first_line + wb.batch.len() as u64;
        }
        // Sorted: the alerts released by lines written once this step is out come first.
        let due = alerts.partition_point(|a| a.release_line < next_line);
        match write_step(&mut outputs, &wb, &alerts[..due], &mut stats) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                stats.flush(&handles);
                return Ok(SinkEnd::BrokenPipe);
            }
            Err(source) => {
                stats.flush(&handles);
                return Err(SinkError::Write { what: "output", source });
            }
        }
        let written = std::time::Instant::now();
        for a in &alerts[..due] {
            if let Some(t) = a.arrived_at {
                handles.observe_alert_latency(written.saturating_duration_since(t).as_secs_f64());
            }
        }
        totals.add_sent(wb.batch.len() as u64, due as u64);
        pool.put(wb.batch);
        alerts.drain(..due);
        if let Some((id, mut needed)) = wb.checkpoint {
            // Every line before the checkpoint is written: flush (records: until delivered), and
            // report. An alert still waiting for its line makes the checkpoint incomplete.
            match outputs.flush_all() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(SinkEnd::BrokenPipe),
                Err(source) => return Err(SinkError::Write { what: "output", source }),
            }
            needed.merge(&held);
            let complete = alerts.is_empty() && needed.unknown == 0;
            if let Some(tx) = &outputs.checkpoints {
                let _ = tx.send(super::checkpoint::CheckpointDone { id, needed, complete });
            }
        }
        stats.flush(&handles);
        handles.observe_batch(PipelineStage::Write, started.elapsed().as_secs_f64());
    }
    // Nothing should be left (every release line is an input line); never drop an alert.
    if !alerts.is_empty() {
        let tail = WriterBatch { step: u64::MAX, batch: Batch::default(), checkpoint: None };
        match write_step(&mut outputs, &tail, &alerts, &mut stats) {
            Ok(()) => totals.add_sent(0, alerts.len() as u64),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(SinkEnd::BrokenPipe),
            Err(source) => return Err(SinkError::Write { what: "output", source }),
        }
        stats.flush(&handles);
    }
    match outputs.flush_all() {
        Ok(()) => Ok(SinkEnd::Drained),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(SinkEnd::BrokenPipe),
        Err(source) => Err(SinkError::Write { what: "output", source }),
    }
}

/// Writes a part of a line longer than max_line_bytes (nothing for an empty step).
fn write_middle(outputs: &mut Outputs, batch: &Batch) -> std::io::Result<()> {
    let bytes = batch.middle_bytes();
    // Record sources never cut a line in parts.
    if outputs.passthrough && !bytes.is_empty() && outputs.records.is_none() {
        outputs.stdout.write_all(bytes)?;
        outputs.stdout.flush()?;
    }
    Ok(())
}

fn write_step(outputs: &mut Outputs, wb: &WriterBatch, alerts: &[AlertOut], stats: &mut Stats) -> std::io::Result<()> {
    let batch = &wb.batch;
    let (first, len) = (batch.first_line, batch.len());
    let end = first + len as u64;
    let mut k = 0usize;
    let mut written = 0usize;
    if batch.piece == Piece::Tail && len > 0 {
        // The end of a long line whose parts are out: nothing may come between them.
        write_lines(outputs, batch, 0, 1, stats)?;
        written = 1;
    }
    // Alerts released by earlier lines (idle release) come before this batch's lines.
    while k < alerts.len() && alerts[k].release_line < first {
        write_alert(outputs, &alerts[k], stats)?;
        k += 1;
    }
    // Runs of lines between alert positions go out in one write each.
    while k < alerts.len() && alerts[k].release_line < end {
        let line = alerts[k].release_line;
        let upto = ((line - first) as usize + 1).max(written);
        write_lines(outputs, batch, written, upto, stats)?;
        written = upto;
        while k < alerts.len() && alerts[k].release_line == line {
            write_alert(outputs, &alerts[k], stats)?;
            k += 1;
        }
    }
    write_lines(outputs, batch, written, len, stats)?;
    for a in &alerts[k..] {
        write_alert(outputs, a, stats)?;
    }
    if outputs.records.is_none() {
        outputs.stdout.flush()?;
    }
    if let Some(f) = outputs.alerts.as_mut() {
        f.flush()?;
    }
    Ok(())
}

fn write_lines(outputs: &mut Outputs, batch: &Batch, from: usize, to: usize, stats: &mut Stats) -> std::io::Result<()> {
    if outputs.passthrough && from < to {
        match outputs.records.as_mut() {
            Some(r) => {
                for i in from..to {
                    r.send(batch.key(i), batch.line(i))?;
                }
            }
            None => outputs.stdout.write_all(batch.lines_with_newlines(from, to))?,
        }
        stats.sent_events += (to - from) as u64;
    }
    Ok(())
}

fn write_alert(outputs: &mut Outputs, a: &AlertOut, stats: &mut Stats) -> std::io::Result<()> {
    if outputs.records.is_some() || outputs.alert_records.is_some() {
        // One record per alert line, keyed by its event.id (deterministic: a replay's copies
        // share it, and a compacted topic keeps one).
        for line in a.bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let key = crate::alert::ids::event_id_of(line);
            if let Some(r) = outputs.records.as_mut() {
                r.send(key.as_deref(), line)?;
            }
            if let Some(r) = outputs.alert_records.as_mut() {
                r.send(key.as_deref(), line)?;
            }
        }
    }
    if outputs.records.is_none() {
        outputs.stdout.write_all(&a.bytes)?;
    }
    if let Some(f) = outputs.alerts.as_mut() {
        f.write_all(&a.bytes)?;
    }
    stats.sent_events += memchr::memchr_iter(b'\n', &a.bytes).count() as u64;
    Ok(())
}
