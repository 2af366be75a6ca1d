//! TCP and Unix-socket sources, two real clients at once: every line of each connection comes
//! out once and in that connection's order; a final line without a newline counts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::util::{cmd, line_count, wait_output, Collected};

fn client_lines(client: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"client\":{client},\"i\":{i},\"@timestamp\":\"2026-03-05T10:00:00Z\"}}")).collect()
}

/// Starts eqlstream on `input`, returns the child once it prints its listening line.
fn start(input: &str) -> (Child, String) {
    let mut child = cmd(&["--input", input])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("eqlstream exited before listening");
        }
        if let Some(rest) = line.trim().strip_prefix("eqlstream: listening on ") {
            break rest.to_string();
        }
    };
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    (child, addr)
}

fn check_output(stdout: &[u8], clients: &[Vec<String>]) {
    let text = String::from_utf8(stdout.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), clients.iter().map(Vec::len).sum::<usize>());
    for (c, expected) in clients.iter().enumerate() {
        let got: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with(&format!("{{\"client\":{c},"))).collect();
        assert_eq!(got, expected.iter().map(String::as_str).collect::<Vec<_>>(), "client {c} lines in order");
    }
}

/// Waits until every client line is out (the connections are closed, but SIGTERM stops reading
/// at once: lines not read yet would be lost), then stops the child and checks its output.
fn finish(mut child: Child, clients: &[Vec<String>]) {
    let out = Collected::start(child.stdout.take().unwrap());
    let total: usize = clients.iter().map(Vec::len).sum();
    let all_out = out.wait_for(Duration::from_secs(60), |o| line_count(o) >= total);
    terminate(&child);
    let o = wait_output(child, Duration::from_secs(30));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let stdout = out.finish();
    assert!(all_out, "{} of {total} lines out", line_count(&stdout));
    check_output(&stdout, clients);
}

fn terminate(child: &Child) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

#[test]
fn tcp_source_serves_two_clients_at_once() {
    let (child, addr) = start("tcp://127.0.0.1:0");
    let addr = addr.strip_prefix("tcp://").unwrap().to_string();
    let clients: Vec<Vec<String>> = (0..2).map(|c| client_lines(c, 2000)).collect();
    let mut socks: Vec<std::net::TcpStream> = (0..2).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    // Interleave writes from both clients while both connections are open.
    for chunk in 0..20 {
        for (c, s) in socks.iter_mut().enumerate() {
            let mut buf = String::new();
            for l in &clients[c][chunk * 100..(chunk + 1) * 100] {
                buf.push_str(l);
                buf.push('\n');
            }
            if chunk == 19 && c == 1 {
                buf.pop(); // the last line of client 1 has no newline
            }
            s.write_all(buf.as_bytes()).unwrap();
        }
    }
    drop(socks);
    finish(child, &clients);
}

#[test]
fn unix_source_serves_two_clients_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.sock");
    let (child, _) = start(&format!("unix://{}", path.display()));
    let clients: Vec<Vec<String>> = (0..2).map(|c| client_lines(c, 1000)).collect();
    let mut socks: Vec<std::os::unix::net::UnixStream> =
        (0..2).map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap()).collect();
    for chunk in 0..10 {
        for (c, s) in socks.iter_mut().enumerate() {
            let mut buf = String::new();
            for l in &clients[c][chunk * 100..(chunk + 1) * 100] {
                buf.push_str(l);
                buf.push('\n');
            }
            s.write_all(buf.as_bytes()).unwrap();
        }
    }
    drop(socks);
    finish(child, &clients);
}
