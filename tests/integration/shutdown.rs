//! Shutdown and flow control: SIGTERM drains what was read and exits 0; idle input releases
//! buffered events; a closed stdout ends quietly; a slow consumer keeps memory bounded.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{cmd, data, line_count, wait_output, Collected};

fn event(i: usize) -> String {
    format!("{{\"@timestamp\":\"2026-03-05T10:00:00.000Z\",\"i\":{i},\"pad\":\"{}\"}}\n", "p".repeat(200))
}

/// Reads the child's stdout on a thread, reporting how many bytes arrived so far.
fn spawn_reader(mut out: std::process::ChildStdout) -> (mpsc::Receiver<usize>, std::thread::JoinHandle<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    let _ = tx.send(all.len());
                }
            }
        }
        all
    });
    (rx, h)
}

#[test]
fn sigterm_drains_every_line_read_and_exits_0() {
    let mut child = cmd(&[]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (progress, reader) = spawn_reader(child.stdout.take().unwrap());
    let mut sent = Vec::new();
    for i in 0..5000 {
        sent.extend_from_slice(event(i).as_bytes());
    }
    stdin.write_all(&sent).unwrap();
    stdin.flush().unwrap();
    // Wait until everything written has come out (the stream stays open: no end of input).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    while seen < sent.len() && Instant::now() < deadline {
        if let Ok(n) = progress.recv_timeout(Duration::from_millis(200)) {
            seen = n;
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = wait_output(child, Duration::from_secs(30));
    drop(stdin);
    let out = reader.join().unwrap();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(out == sent, "every line read before SIGTERM comes out ({} of {} bytes)", out.len(), sent.len());
}

#[test]
fn idle_input_releases_alerts_without_end_of_input() {
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let mut child = cmd(&["--idle-release", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = Collected::start(child.stdout.take().unwrap());
    stdin.write_all(&seed).unwrap();
    stdin.flush().unwrap();
    // stdin stays open: the alerts (and every line) must come out from the idle release alone.
    let alerts = |out: &[u8]| String::from_utf8_lossy(out).matches("\"kind\":\"alert\"").count();
    let all_six = out.wait_for(Duration::from_secs(30), |o| alerts(o) >= 6);
    let lines = seed.iter().filter(|b| **b == b'\n').count();
    assert!(out.wait_for(Duration::from_secs(30), |o| line_count(o) >= lines + 6), "every line is out too");
    // SAFETY: kill(2) on our own child; SIGKILL so nothing is flushed at exit.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = wait_output(child, Duration::from_secs(10));
    drop(stdin);
    let out = out.finish();
    assert!(all_six, "the six seed sequences were not all written before end of input");
    assert_eq!(alerts(&out), 6, "all six seed sequences were written before end of input");
}

#[test]
fn closed_stdout_ends_quietly() {
    let mut child = cmd(&[]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..200_000 {
            if stdin.write_all(event(i).as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut first = [0u8; 1024];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let o = wait_output(child, Duration::from_secs(60));
    writer.join().unwrap();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stderr.contains("error"), "{}", o.stderr);
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn slow_consumer_keeps_memory_bounded() {
    // 1M events of ~270 bytes (~260 MB) pushed as fast as possible into a consumer that reads
    // 64 KiB every 1 ms: the input is far larger than what may be held in memory.
    let mut child = cmd(&[]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let total_in: usize = (0..1_000_000).map(|i| event(i).len()).sum();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..1_000_000 {
            buf.extend_from_slice(event(i).as_bytes());
            if buf.len() > 1 << 20 {
                stdin.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        stdin.write_all(&buf).unwrap();
    });
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = peak.clone();
    let sampler = std::thread::spawn(move || {
        while let Some(kib) = rss_kib(pid) {
            p2.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    writer.join().unwrap();
    let o = wait_output(child, Duration::from_secs(120));
    sampler.join().unwrap();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(got, total_in);
    let peak_mib = peak.load(std::sync::atomic::Ordering::Relaxed) / 1024;
    eprintln!("slow consumer: input {} MiB, peak RSS {peak_mib} MiB", total_in >> 20);
    assert!(peak_mib < 128, "peak RSS {peak_mib} MiB for a {} MiB stream", total_in >> 20);
}
