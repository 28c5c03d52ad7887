//! The `triad` command. See the library's documentation (`triad::cli`) for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = triad::cli::parse();
    match triad::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

/// Asks glibc's allocator to keep freed memory for reuse: buffers up to 32 MiB (its most)
/// come from its heaps rather than from `mmap` of their own, and freed memory is not
/// handed back to the kernel below 2 GiB of free heap top. A party allocates and frees
/// buffers of the same few sizes at every layer (a LeNet step makes tensors of 11.8 MB
/// by the dozen); by default each large one was a fresh mapping whose pages the kernel
/// faulted in and zeroed, about a seventh of a training step's time in a `perf` profile
/// (`clear_page_erms`, the page-fault path; 7.3% of the samples, 1.0% after, and the
/// kernel's share 23% → 17%). Measured on 2 cores, interleaved: a LeNet training step over
/// TLS 1.36–1.38 → 1.32–1.34 s, in one process no clear change, and the peak resident
/// memory of a VGG-16 training step 2.70 → 2.76 GB (BENCHMARKS.md, with the commands).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; it is called before any thread
    // exists, and a refused value leaves glibc's default (the return value is advisory).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
