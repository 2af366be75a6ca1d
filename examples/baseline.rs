//! Baselines for the end-to-end benchmark (benches/e2e.sh), reading NDJSON on stdin:
//!
//! - `split`: split lines with memchr and write each line plus `\n` to stdout: the cost of a
//!   pass-through with no parsing at all (the floor for eqlstream).
//! - `parse`: simd-json parse of every line (reused tape and buffers, one padded copy) on all
//!   cores, batches of 1024 lines over crossbeam channels, no detection and no output: the
//!   parse-every-line ceiling eqlstream is compared with.
//!
//! Both print one line on stderr: lines, bytes, seconds.

use std::io::{Read, Write};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BLOCK: usize = 1 << 20;

fn grow_pipe(fd: i32) {
    // SAFETY: fcntl(F_SETPIPE_SZ) reads only its integer argument; errors are ignored.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, BLOCK as libc::c_int);
    }
}

fn split() -> std::io::Result<(u64, u64)> {
    let mut input = std::io::stdin().lock();
    let mut out = std::io::BufWriter::with_capacity(BLOCK, std::io::stdout().lock());
    let mut buf = vec![0u8; BLOCK];
    let mut carry: Vec<u8> = Vec::new();
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let mut rest = &buf[..n];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if carry.is_empty() {
                out.write_all(&rest[..i])?;
            } else {
                carry.extend_from_slice(&rest[..i]);
                out.write_all(&carry)?;
                carry.clear();
            }
            out.write_all(b"\n")?;
            lines += 1;
            rest = &rest[i + 1..];
        }
        carry.extend_from_slice(rest);
    }
    if !carry.is_empty() {
        out.write_all(&carry)?;
        out.write_all(b"\n")?;
        lines += 1;
    }
    out.flush()?;
    Ok((lines, bytes))
}

struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

fn parse() -> std::io::Result<(u64, u64)> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(8);
    let mut handles = Vec::new();
    for _ in 0..workers {
        let rx = rx.clone();
        handles.push(std::thread::spawn(move || {
            let mut ok = 0u64;
            let mut padded: Vec<u8> = Vec::new();
            let mut buffers = simd_json::Buffers::default();
            let mut spare: simd_json::Tape<'static> = simd_json::Tape::null();
            for b in rx {
                let mut start = 0;
                for &end in &b.ends {
                    let line = &b.buf[start..end];
                    start = end;
                    padded.clear();
                    padded.extend_from_slice(line);
                    padded.resize(line.len() + simd_json::INPUT_PADDING, 0);
                    let mut tape = std::mem::replace(&mut spare, simd_json::Tape::null()).reset();
                    if simd_json::fill_tape_padded(&mut padded, line.len(), &mut buffers, &mut tape).is_ok() {
                        ok += 1;
                    }
                    spare = tape.reset();
                }
            }
            ok
        }));
    }
    drop(rx);
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; BLOCK];
    let mut cur = Batch { buf: Vec::new(), ends: Vec::new() };
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let mut rest = &buf[..n];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            cur.buf.extend_from_slice(&rest[..i]);
            cur.ends.push(cur.buf.len());
            lines += 1;
            rest = &rest[i + 1..];
            if cur.ends.len() == 1024 {
                let full = std::mem::replace(&mut cur, Batch { buf: Vec::with_capacity(BLOCK * 2), ends: Vec::new() });
                tx.send(full).map_err(|_| std::io::Error::other("workers gone"))?;
            }
        }
        cur.buf.extend_from_slice(rest);
    }
    if !cur.ends.is_empty() {
        tx.send(cur).map_err(|_| std::io::Error::other("workers gone"))?;
    }
    drop(tx);
    let parsed: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    eprintln!("parsed={parsed}");
    Ok((lines, bytes))
}

fn main() {
    grow_pipe(0);
    grow_pipe(1);
    let mode = std::env::args().nth(1).unwrap_or_default();
    let started = Instant::now();
    let r = match mode.as_str() {
        "split" => split(),
        "parse" => parse(),
        _ => {
            eprintln!("usage: baseline split|parse < FILE");
            std::process::exit(64);
        }
    };
    match r {
        Ok((lines, bytes)) => eprintln!("lines={lines} bytes={bytes} seconds={:.3}", started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("baseline: {e}");
            std::process::exit(74);
        }
    }
}
