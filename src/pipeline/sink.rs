//! The writer: every input line exactly once, byte-identical and in input order, each followed by
//! `\n`; each alert right after the line whose arrival released it. It takes the sequencer's
//! batches and the partitions' outputs in the same step order, merges the alerts of a step by
//! (release line, completing ordinal, rule, key) and writes. A closed stdout (EPIPE) ends the run
//! quietly; the writer is the last stage to finish.

use std::io::Write;
use std::sync::Arc;

use crossbeam_channel::Receiver;

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
    handles: Handles,
    totals: Arc<Totals>,
) -> Result<SinkEnd, SinkError> {
    let mut stats = Stats::new(&handles);
    let mut alerts: Vec<AlertOut> = Vec::new();
    for wb in rx {
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
        alerts.sort_by(|a, b| (a.release_line, &a.order).cmp(&(b.release_line, &b.order)));
        match write_step(&mut outputs, &wb, &alerts, &mut stats) {
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
        let latency = wb.received_at.elapsed().as_secs_f64();
        for _ in &alerts {
            handles.observe_alert_latency(latency);
        }
        totals.add_sent(wb.batch.len() as u64, alerts.len() as u64);
        alerts.clear();
        stats.flush(&handles);
        handles.observe_batch(PipelineStage::Write, started.elapsed().as_secs_f64());
    }
    outputs.stdout.flush().map_err(|source| SinkError::Write { what: "standard output", source })?;
    if let Some(a) = outputs.alerts.as_mut() {
        a.flush().map_err(|source| SinkError::Write { what: "alerts file", source })?;
    }
    Ok(SinkEnd::Drained)
}

fn write_step(outputs: &mut Outputs, wb: &WriterBatch, alerts: &[AlertOut], stats: &mut Stats) -> std::io::Result<()> {
    let first = wb.batch.first_line;
    let mut next = 0usize;
    let mut write_alerts_through =
        |outputs: &mut Outputs, line: Option<u64>, stats: &mut Stats| -> std::io::Result<()> {
            while next < alerts.len() && line.is_none_or(|l| alerts[next].release_line <= l) {
                let a = &alerts[next];
                outputs.stdout.write_all(&a.bytes)?;
                if let Some(f) = outputs.alerts.as_mut() {
                    f.write_all(&a.bytes)?;
                }
                stats.alerts[a.rule as usize] += 1;
                stats.sent_events += memchr::memchr_iter(b'\n', &a.bytes).count() as u64;
                next += 1;
            }
            Ok(())
        };
    if wb.batch.is_empty() {
        write_alerts_through(outputs, None, stats)?;
    } else {
        // Alerts released by earlier lines (idle release) come before this batch's lines.
        if first > 0 {
            write_alerts_through(outputs, Some(first - 1), stats)?;
        }
        for (i, line) in wb.batch.lines().enumerate() {
            if outputs.passthrough {
                outputs.stdout.write_all(line)?;
                outputs.stdout.write_all(b"\n")?;
                stats.sent_events += 1;
            }
            write_alerts_through(outputs, Some(first + i as u64), stats)?;
        }
        write_alerts_through(outputs, None, stats)?;
    }
    outputs.stdout.flush()?;
    if let Some(f) = outputs.alerts.as_mut() {
        f.flush()?;
    }
    Ok(())
}
