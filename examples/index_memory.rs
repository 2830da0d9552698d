//! RSS of the state index at 5,000 nodes and 100,000 pods (issue 5's memory goal: ≤ 256 MiB for the whole
//! process), with the allocator the `ballast` binary uses (mimalloc). The load: benches/support/index_load.rs;
//! exact heap bytes: `examples/index_heap.rs`. docs/memory.md records the results.
//!
//! ```text
//! cargo run --release --no-default-features --example index_memory
//! cargo run --release --no-default-features --example index_memory -- --nodes 500 --pods 10000
//! ```

#[path = "../benches/support/index_load.rs"]
mod index_load;

// As in src/main.rs, so the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let size = match index_load::parse_args(|_| false) {
        Ok(size) => size,
        Err(e) => {
            eprintln!("index_memory: {e}; use --nodes N, --pods N");
            std::process::exit(2);
        }
    };
    index_load::run(&size, |phase| {
        let (rss, peak) = index_load::rss();
        println!("{phase:<34} RSS {rss:>7.1} MiB (peak {peak:>7.1} MiB)");
    });
}
