//! The process metrics: the prometheus crate's process collector (memory, file descriptors,
//! threads, start time) with its CPU counter replaced by one in fractional seconds.
//!
//! The crate computes `process_cpu_seconds_total` as `(utime + stime) / CLK_TCK` in integer
//! arithmetic (prometheus 0.14 `process_collector.rs`), so a process that used 0.9 s reads 0 and
//! a `rate()` over it is a staircase. [`ProcessMetrics`] reads `/proc/self/stat` itself and
//! reports the same clock ticks divided as floats (10 ms resolution with the usual
//! `CLK_TCK` = 100). Linux only, like the crate's collector.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Opts};

/// The name of the CPU counter (as the crate and the Prometheus client conventions name it).
pub const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// The crate's process collector without its CPU counter, plus [`CPU_SECONDS`] as a float.
pub struct ProcessMetrics {
    inner: ProcessCollector,
    cpu: Counter,
    descs: Vec<Desc>,
    clock_ticks: f64,
}

impl ProcessMetrics {
    /// The collector for this process.
    pub fn for_self() -> prometheus::Result<ProcessMetrics> {
        let inner = ProcessCollector::for_self();
        let cpu = Counter::with_opts(Opts::new(CPU_SECONDS, "Total user and system CPU time spent in seconds."))?;
        let mut descs: Vec<Desc> = inner.desc().into_iter().filter(|d| d.fq_name != CPU_SECONDS).cloned().collect();
        descs.extend(cpu.desc().into_iter().cloned());
        Ok(ProcessMetrics { inner, cpu, descs, clock_ticks: clock_ticks() })
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> =
            self.inner.collect().into_iter().filter(|f| f.name() != CPU_SECONDS).collect();
        if let Some(ticks) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(cpu_ticks) {
            let total = ticks as f64 / self.clock_ticks;
            // A counter only goes up; several scrapes may race here, hence the difference.
            let delta = total - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
        }
        families.extend(self.cpu.collect());
        families
    }
}

/// `sysconf(_SC_CLK_TCK)`, or Linux's 100 if it fails.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `utime + stime` (clock ticks) from the text of `/proc/<pid>/stat`: fields 14 and 15, counted
/// after the command name, which is in parentheses and may itself contain spaces and `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name, so fields 14 and 15 are at 11 and 12.
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_reads_utime_and_stime_after_an_awkward_command_name() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1234 0 0 0 37 5 0 0 20 0 9 0 1000 1 1 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(42));
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn cpu_seconds_are_fractional_and_the_crate_counter_is_gone() {
        let p = ProcessMetrics::for_self().unwrap();
        // Burn a little CPU so that the counter is not 0.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let families = p.collect();
        let cpu: Vec<&MetricFamily> = families.iter().filter(|f| f.name() == CPU_SECONDS).collect();
        assert_eq!(cpu.len(), 1, "one CPU family");
        let ticks = cpu_ticks(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        let v = cpu[0].get_metric()[0].get_counter().get_value();
        assert!(v > 0.0, "{v}");
        // The value is ticks / CLK_TCK, not rounded down to whole seconds.
        assert!((v - ticks as f64 / clock_ticks()).abs() <= 0.1, "{v} vs {ticks} ticks");
        assert!(families.iter().any(|f| f.name() == "process_resident_memory_bytes"));
    }
}
