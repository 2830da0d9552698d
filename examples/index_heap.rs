//! Exact heap of the state index at 5,000 nodes and 100,000 pods, via `dhat` (allocator-independent: bytes
//! and blocks requested), under the same load as `examples/index_memory.rs` (benches/support/index_load.rs).
//! With `--system-rss` it runs without the profiler and prints RSS under the system allocator (glibc), to
//! compare allocators. docs/memory.md records the results.
//!
//! ```text
//! cargo run --release --no-default-features --example index_heap                 # heap (slow)
//! cargo run --release --no-default-features --example index_heap -- --system-rss  # RSS with glibc malloc
//! ```

#[path = "../benches/support/index_load.rs"]
mod index_load;

// Passes straight through to the system allocator unless a dhat profiler is running.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let mut system_rss = false;
    let size = match index_load::parse_args(|arg| {
        system_rss |= arg == "--system-rss";
        arg == "--system-rss"
    }) {
        Ok(size) => size,
        Err(e) => {
            eprintln!("index_heap: {e}; use --system-rss, --nodes N, --pods N");
            std::process::exit(2);
        }
    };
    let _profiler = (!system_rss).then(|| dhat::Profiler::builder().testing().build());
    index_load::run(&size, |phase| {
        let (rss, peak) = index_load::rss();
        if system_rss {
            println!("{phase:<34} RSS {rss:>7.1} MiB (peak {peak:>7.1} MiB, glibc malloc)");
        } else {
            // dhat's own bookkeeping inflates RSS here, so only the heap is printed.
            let s = dhat::HeapStats::get();
            println!(
                "{phase:<34} heap {:>7.1} MiB (peak {:>7.1} MiB, {:>9} blocks)",
                s.curr_bytes as f64 / MIB,
                s.max_bytes as f64 / MIB,
                s.curr_blocks,
            );
        }
    });
}
