//! The `eqlstream` binary: the global allocator, then [`eqlstream::app::main`] (the command
//! line, settings, rules and pipeline live in the library, `src/app/`).

use std::process::ExitCode;

// mimalloc: the pipeline allocates per batch and per matched event from several threads; the
// system allocator's contention showed up in profiles of similar designs (performance.md).
// `--features system-alloc` builds with the system allocator instead, for heap profilers such
// as heaptrack that see only malloc.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes mimalloc give memory back to the OS as soon as it is freed, and commit arena memory
/// only when used: the sequence state and the event store are bounded, and peak RSS should be
/// what they hold, not what the allocator keeps around (at 10^6 live keys the defaults add tens
/// of MiB). An environment variable (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ARENA_EAGER_COMMIT`)
/// still wins over these defaults.
fn tune_allocator() {
    // Positions in mimalloc's `mi_option_e` (same in its v2 and v3 headers).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (option, env) in [(ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT"), (PURGE_DELAY, "MIMALLOC_PURGE_DELAY")] {
        if std::env::var_os(env).is_none() {
            // SAFETY: mi_option_set only stores an integer in mimalloc's option table.
            unsafe { libmimalloc_sys::mi_option_set(option, 0) };
        }
    }
}

/// Runs [`tune_allocator`] before `main`, before the Rust runtime's first allocation creates
/// mimalloc's first arena (whose commit policy is fixed when it is created).
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn run() {
        tune_allocator();
    }
    run
};

fn main() -> ExitCode {
    eqlstream::app::main()
}
