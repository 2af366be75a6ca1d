//! Runs the real `eqlstream` binary: stdin in, stdout/stderr/exit code out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The built binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_eqlstream"))
}

/// A file under `tests/data/`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// A path in the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    /// stdout as text (panics on invalid UTF-8: use `.stdout` for byte checks).
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// The alert lines of stdout, parsed.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.stdout
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter(|v| {
                v.pointer("/event/kind").and_then(|k| k.as_str()) == Some("alert")
                    || v.pointer("/kibana/alert/rule/rule_id").is_some()
                    || v.get("kibana.alert.rule.rule_id").is_some()
            })
            .collect()
    }
}

/// A command for the binary with metrics off (tests run in parallel; the default port would clash).
/// Subcommands other than `run` serve no metrics and take no such flag.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    let other_command = matches!(args.first(), Some(&"validate" | &"rules" | &"test"));
    if !other_command && !args.contains(&"--metrics-address") {
        c.args(["--metrics-address", "off"]);
    }
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("EQLSTREAM_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs the binary with `stdin` as input and waits (at most 120 s).
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut c = cmd(args);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn eqlstream");
    let mut input = child.stdin.take().expect("stdin piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = wait_output(child, Duration::from_secs(120));
    writer.join().expect("stdin writer");
    out
}

/// Waits for a child with a deadline, collecting its output.
pub fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            if d2.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    });
    let o = child.wait_with_output().expect("wait eqlstream");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watchdog.join();
    Output {
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    }
}

/// Polls `cond` every 10 ms until it holds (true) or `limit` has passed (false): waiting on a
/// condition instead of sleeping a fixed time and hoping, so a slow machine only makes a test
/// slower, never wrong.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child's output, read on a thread as it arrives.
pub struct Collected {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Collected {
    /// Starts reading `out` until its end.
    pub fn start(mut out: impl Read + Send + 'static) -> Collected {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 65536];
            while let Ok(n @ 1..) = out.read(&mut chunk) {
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Collected { buf, reader }
    }

    /// Waits (at most `limit`) until `done` holds for the output so far; returns whether it did.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        wait_until(limit, || done(&self.buf.lock().unwrap()))
    }

    /// The output so far.
    pub fn snapshot(&self) -> Vec<u8> {
        self.buf.lock().unwrap().clone()
    }

    /// Waits for the end of the output and returns all of it.
    pub fn finish(self) -> Vec<u8> {
        self.reader.join().expect("output reader");
        Arc::try_unwrap(self.buf).map(|m| m.into_inner().unwrap()).unwrap_or_else(|b| b.lock().unwrap().clone())
    }
}

/// The number of complete lines in `out`.
pub fn line_count(out: &[u8]) -> usize {
    out.iter().filter(|b| **b == b'\n').count()
}

/// Prints both sides as text blocks when they differ (ripgrep's eqnice!).
#[macro_export]
macro_rules! eqnice {
    ($expected:expr, $got:expr) => {{
        let expected = &$expected;
        let got = &$got;
        if expected != got {
            panic!(
                "\n== expected ==\n{}\n== got ==\n{}\n== end ==",
                String::from_utf8_lossy(expected.as_ref()),
                String::from_utf8_lossy(got.as_ref())
            );
        }
    }};
}

/// Removes an alert's `event.created` (the wall clock at which it was written), so that alerts
/// of two runs compare equal.
pub fn forget_created(alert: &mut serde_json::Value) {
    if let Some(e) = alert.get_mut("event").and_then(serde_json::Value::as_object_mut) {
        e.remove("created");
    }
}

/// `stdout` with [`forget_created`] applied to its alert lines; other lines unchanged.
pub fn masked(stdout: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in stdout.split_inclusive(|b| *b == b'\n') {
        match serde_json::from_slice::<serde_json::Value>(l) {
            Ok(mut v) if v.pointer("/event/kind").and_then(|k| k.as_str()) == Some("alert") => {
                forget_created(&mut v);
                out.extend_from_slice(&serde_json::to_vec(&v).unwrap());
                out.push(b'\n');
            }
            _ => out.extend_from_slice(l),
        }
    }
    out
}
