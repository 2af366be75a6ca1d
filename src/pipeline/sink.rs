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

/// Where the writer writes.
pub struct Outputs {
    /// Standard output (events and alerts, or alerts only).
    pub stdout: Box<dyn Write + Send>,
    /// Pass input lines through.
    pub passthrough: bool,
    /// Optional extra alerts file.
    pub alerts: Option<Box<dyn Write + Send>>,
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
        for p in &parts {
            match p.recv() {
                Ok(out) => {
                    debug_assert_eq!(out.step, wb.step, "partitions answer steps in order");
                    alerts.extend(out.alerts);
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
        stats.flush(&handles);
        handles.observe_batch(PipelineStage::Write, started.elapsed().as_secs_f64());
    }
    // Nothing should be left (every release line is an input line); never drop an alert.
    if !alerts.is_empty() {
        let tail = WriterBatch { step: u64::MAX, batch: Batch::default() };
        match write_step(&mut outputs, &tail, &alerts, &mut stats) {
            Ok(()) => totals.add_sent(0, alerts.len() as u64),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(SinkEnd::BrokenPipe),
            Err(source) => return Err(SinkError::Write { what: "output", source }),
        }
        stats.flush(&handles);
    }
    outputs.stdout.flush().map_err(|source| SinkError::Write { what: "standard output", source })?;
    if let Some(a) = outputs.alerts.as_mut() {
        a.flush().map_err(|source| SinkError::Write { what: "alerts file", source })?;
    }
    Ok(SinkEnd::Drained)
}

/// Writes a part of a line longer than max_line_bytes (nothing for an empty step).
fn write_middle(outputs: &mut Outputs, batch: &Batch) -> std::io::Result<()> {
    let bytes = batch.middle_bytes();
    if outputs.passthrough && !bytes.is_empty() {
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
    outputs.stdout.flush()?;
    if let Some(f) = outputs.alerts.as_mut() {
        f.flush()?;
    }
    Ok(())
}

fn write_lines(outputs: &mut Outputs, batch: &Batch, from: usize, to: usize, stats: &mut Stats) -> std::io::Result<()> {
    if outputs.passthrough && from < to {
        outputs.stdout.write_all(batch.lines_with_newlines(from, to))?;
        stats.sent_events += (to - from) as u64;
    }
    Ok(())
}

fn write_alert(outputs: &mut Outputs, a: &AlertOut, stats: &mut Stats) -> std::io::Result<()> {
    outputs.stdout.write_all(&a.bytes)?;
    if let Some(f) = outputs.alerts.as_mut() {
        f.write_all(&a.bytes)?;
    }
    stats.sent_events += memchr::memchr_iter(b'\n', &a.bytes).count() as u64;
    Ok(())
}
