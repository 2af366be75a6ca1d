//! Faults an operator meets (issue 13): a crashed thread, a signal in the middle of a line, a
//! socket path in use, idle connections, endless lines, a reorder buffer that would grow without
//! bound. Each test fails on the code before its fix.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{cmd, data, wait_output};

/// Runs with `EQLSTREAM_DEBUG_PANIC=stage` (debug builds: that stage panics on its second batch).
fn run_with_panic(stage: &str) -> crate::util::Output {
    let input = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let mut c = cmd(&["--batch-size", "4", "--workers", "2"]);
    c.env("EQLSTREAM_DEBUG_PANIC", stage).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let o = wait_output(child, Duration::from_secs(60));
    let _ = w.join();
    o
}

#[test]
fn a_panicking_thread_makes_the_run_exit_70_with_the_cause() {
    for stage in ["sequencer", "decode", "partition", "writer"] {
        let o = run_with_panic(stage);
        assert_eq!(o.code, 70, "{stage}: {}", o.stderr);
        assert!(
            o.stderr.contains("panicked") && o.stderr.contains(&format!("EQLSTREAM_DEBUG_PANIC={stage}")),
            "{stage}: {}",
            o.stderr
        );
        assert!(o.stderr.contains("eqlstream: error: internal error: the "), "{stage}: {}", o.stderr);
        // What was written is whole lines only.
        assert!(o.stdout.is_empty() || o.stdout.ends_with(b"\n"), "{stage}");
    }
}

/// A running eqlstream on stdin whose stdout is read line by line.
struct Piped {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Piped {
    fn start(args: &[&str]) -> Piped {
        let mut child = cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            use std::io::BufRead;
            let mut l = Vec::new();
            match out.read_until(b'\n', &mut l) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
            }
        });
        Piped { child, stdin, lines }
    }

    fn write(&mut self, b: &[u8]) {
        use std::io::Write;
        let s = self.stdin.as_mut().unwrap();
        s.write_all(b).unwrap();
        s.flush().unwrap();
    }

    fn next_line(&self) -> Vec<u8> {
        self.lines.recv_timeout(Duration::from_secs(20)).expect("a line within 20 s")
    }

    fn term(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// Waits for exit (stdin stays open until then); returns the code, the rest of stdout and
    /// stderr.
    fn finish(&mut self) -> (i32, Vec<Vec<u8>>, String) {
        let mut err = String::new();
        use std::io::Read;
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        drop(self.stdin.take());
        let rest: Vec<Vec<u8>> = self.lines.try_iter().collect();
        (code, rest, err)
    }
}

impl Drop for Piped {
    /// A test that fails leaves no eqlstream behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LINE: &[u8] = br#"{"@timestamp":"2026-03-05T10:00:00Z","n":1}"#;

#[test]
fn sigterm_in_the_middle_of_a_line_finishes_it_when_it_comes_in_time() {
    let mut e = Piped::start(&["--shutdown-timeout", "10s"]);
    e.write(&[LINE, b"\n", &LINE[..20]].concat());
    assert_eq!(e.next_line(), [LINE, b"\n"].concat());
    e.term();
    std::thread::sleep(Duration::from_millis(300));
    e.write(&[&LINE[20..], b"\n", LINE, b"\n", &LINE[..10]].concat());
    let (code, rest, err) = e.finish();
    assert_eq!(code, 0, "{err}");
    // The line being read came out whole; the line after it too; the next one, begun but
    // unfinished, was dropped and counted, never written cut.
    assert_eq!(rest, vec![[LINE, b"\n"].concat(), [LINE, b"\n"].concat()], "{err}");
    assert!(err.contains("unread remainder was dropped"), "{err}");
}

#[test]
fn sigterm_in_the_middle_of_a_line_never_writes_it_cut() {
    let mut e = Piped::start(&["--shutdown-timeout", "2s"]);
    e.write(&[LINE, b"\n", &LINE[..20]].concat());
    assert_eq!(e.next_line(), [LINE, b"\n"].concat());
    e.term();
    // The rest never comes: after the grace period (1 s) the partial line is dropped.
    let (code, rest, err) = e.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        rest.is_empty(),
        "nothing else written: {:?}",
        rest.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>()
    );
    assert!(err.contains("dropped_bytes=20"), "{err}");
}

/// Starts eqlstream with `args` (an --input socket among them), returns it with the address it
/// listens on and a reader of its stdout lines.
fn start_listening(args: &[&str]) -> (std::process::Child, String, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::BufRead;
    let mut child = cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut l = String::new();
        assert!(err.read_line(&mut l).unwrap() > 0, "exited before listening");
        if let Some(a) = l.trim().strip_prefix("eqlstream: listening on ") {
            break a.to_string();
        }
    };
    std::thread::spawn(move || for _ in err.lines() {});
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        let mut l = Vec::new();
        match out.read_until(b'\n', &mut l) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(l).is_err() {
                    return;
                }
            }
        }
    });
    (child, addr, rx)
}

fn sigterm(child: &std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

#[test]
fn sigterm_in_the_middle_of_a_tcp_line_never_writes_it_cut() {
    use std::io::Write;
    let (mut child, addr, lines) = start_listening(&["--input", "tcp://127.0.0.1:0", "--shutdown-timeout", "2s"]);
    let mut s = std::net::TcpStream::connect(addr.trim_start_matches("tcp://")).unwrap();
    s.write_all(&[LINE, b"\n", &LINE[..20]].concat()).unwrap();
    assert_eq!(lines.recv_timeout(Duration::from_secs(20)).unwrap(), [LINE, b"\n"].concat());
    sigterm(&child);
    let code = child.wait().unwrap().code();
    drop(s);
    assert_eq!(code, Some(0));
    let rest: Vec<Vec<u8>> = lines.try_iter().collect();
    assert!(rest.is_empty(), "{:?}", rest.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>());
}

#[test]
fn a_unix_socket_in_use_is_refused_a_stale_one_replaced_and_the_mode_is_0600() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.sock");
    // A stale socket: bound, then its listener gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let input = format!("unix://{}", path.display());
    // Under umask 000, the socket must still be 0600.
    let mut c = cmd(&["--input", &input]);
    // SAFETY: umask(2) only, between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let first = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&path).is_err() {
        assert!(std::time::Instant::now() < deadline, "the first instance never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    // A second instance on the same path refuses to start (78) and leaves the first alone.
    let second = crate::util::run(&["--input", &input], b"");
    assert_eq!(second.code, 78, "{}", second.stderr);
    assert!(second.stderr.contains("another process is listening"), "{}", second.stderr);
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("the first instance's socket is still there");
    s.write_all(&[LINE, b"\n"].concat()).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&first);
    let o = wait_output(first, Duration::from_secs(30));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, [LINE, b"\n"].concat());
    assert!(!path.exists(), "its own socket is removed at exit");
}

#[test]
fn idle_connections_are_closed_so_they_cannot_lock_other_clients_out() {
    use std::io::Write;
    let (child, addr, lines) =
        start_listening(&["--input", "tcp://127.0.0.1:0", "--max-connections", "4", "--connection-idle-timeout", "1s"]);
    let addr = addr.trim_start_matches("tcp://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..4).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = std::net::TcpStream::connect(&addr).unwrap();
    fifth.write_all(&[LINE, b"\n"].concat()).unwrap();
    // Read once the four idle connections have been closed (1 s).
    let got = lines.recv_timeout(Duration::from_secs(20)).expect("the fifth client is read");
    assert_eq!(got, [LINE, b"\n"].concat());
    drop((idle, fifth));
    sigterm(&child);
    assert_eq!(wait_output(child, Duration::from_secs(30)).code, 0);
}

/// Peak resident memory (VmHWM) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_line_longer_than_max_line_bytes_streams_through_without_being_held() {
    use std::io::{Read, Write};
    // 256 MiB without a newline over TCP, then a newline and a normal line; max_line_bytes 1 MiB.
    let mut child = cmd(&["--input", "tcp://127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        use std::io::BufRead;
        let mut l = String::new();
        assert!(err.read_line(&mut l).unwrap() > 0);
        if let Some(a) = l.trim().strip_prefix("eqlstream: listening on tcp://") {
            break a.to_string();
        }
    };
    std::thread::spawn(move || {
        use std::io::BufRead;
        for _ in err.lines() {}
    });
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        // Count what comes out without keeping it.
        let (mut n, mut newlines, mut first, mut last) = (0usize, 0usize, Vec::new(), Vec::new());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = out.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            if first.len() < 8 {
                first.extend_from_slice(&buf[..k.min(8)]);
            }
            newlines += buf[..k].iter().filter(|b| **b == b'\n').count();
            n += k;
            last = buf[..k].to_vec();
        }
        (n, newlines, first, last)
    });
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..256 {
        s.write_all(&block).unwrap();
    }
    let peak_during = peak_rss_kib(child.id());
    s.write_all(&[b"\n", LINE, b"\n"].concat()).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    let peak = peak_rss_kib(child.id()).max(peak_during);
    sigterm(&child);
    let code = child.wait().unwrap().code();
    let (n, newlines, first, last) = reader.join().unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(n, (256 << 20) + 1 + LINE.len() + 1, "every byte out once");
    assert_eq!(newlines, 2);
    assert_eq!(first, b"xxxxxxxx");
    assert!(last.ends_with(&[b"x\n", LINE, b"\n"].concat()));
    assert!(peak < 128 << 10, "peak RSS {peak} KiB: the 256 MiB line was held");
}

#[test]
fn a_long_line_in_the_middle_changes_no_alert_and_nothing_lands_inside_it() {
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let lines: Vec<&[u8]> = seed.split_inclusive(|b| *b == b'\n').collect();
    let long = [&vec![b'z'; 3 << 20][..], b"\n"].concat();
    let mut input = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        input.extend_from_slice(l);
        if i == 2 || i == 30 {
            input.extend_from_slice(&long);
        }
    }
    // Held whole (limit above the line) and streamed in parts (default 1 MiB): same output.
    let whole = crate::util::run(&["--max-line-bytes", "8388608", "--batch-size", "7"], &input);
    let parts = crate::util::run(&["--batch-size", "7"], &input);
    assert_eq!((whole.code, parts.code), (0, 0));
    let mask = |o: &crate::util::Output| {
        o.stdout
            .split(|b| *b == b'\n')
            .map(|l| {
                let s = String::from_utf8_lossy(l).into_owned();
                match s.find("\"created\":\"") {
                    Some(i) => format!("{}{}", &s[..i], &s[i + 36..]),
                    None => s,
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(parts.alerts().len(), 6);
    assert!(mask(&whole) == mask(&parts), "streaming the long lines changed the output");
    assert!(parts.stderr.contains(" invalid=2 "), "{}", parts.stderr);
}

#[test]
fn the_reorder_buffer_is_bounded_and_its_overflow_counted() {
    // 20,000 stage matches with one timestamp, buffer capped at 1,000: the oldest go early.
    let seed = std::fs::read_to_string(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let creation = seed.lines().next().unwrap();
    let mut input = String::new();
    for _ in 0..20_000 {
        input.push_str(creation);
        input.push('\n');
    }
    let o = crate::util::run(&["--max-buffered-events", "1000", "--metrics-address", "off"], input.as_bytes());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.len(), input.len());
    let m = scrape_once(&["--max-buffered-events", "1000"], input.as_bytes());
    let v = |s: &str| m.lines().find_map(|l| l.strip_prefix(s)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
    assert_eq!(v("eqlstream_reorder_overflow_events_total"), Some(19_000.0), "{m}");
    assert!(v("eqlstream_reorder_buffered_events").is_some_and(|b| b <= 1000.0), "{m}");
}

/// Runs on `input` with the metrics on a free port, keeps stdin open until every line is out,
/// and returns one scrape.
fn scrape_once(args: &[&str], input: &[u8]) -> String {
    use std::io::{BufRead, Read, Write};
    let mut a = vec!["--metrics-address", "127.0.0.1:0"];
    a.extend_from_slice(args);
    let mut child = cmd(&a).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut l = String::new();
        assert!(err.read_line(&mut l).unwrap() > 0);
        if let Some(a) = l.trim().strip_prefix("eqlstream: metrics on http://") {
            break a.trim_end_matches("/metrics").to_string();
        }
    };
    std::thread::spawn(move || for _ in err.lines() {});
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
        std::thread::sleep(Duration::from_secs(3));
    });
    let mut out = child.stdout.take().unwrap();
    let want = input.len();
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    while got < want {
        let k = out.read(&mut buf).unwrap();
        assert!(k > 0, "output ended early");
        got += k;
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut m = String::new();
    s.read_to_string(&mut m).unwrap();
    sigterm(&child);
    let _ = child.wait();
    m
}
