//! Peak resident memory of this process, for `triad bench` and the job reports (Linux:
//! `VmHWM` in `/proc/self/status`; elsewhere nothing is reported).
//!
//! Three parties in one process share one figure (all three parties); a `triad party`
//! process reports its own party's.

/// Starts a new peak from the current resident size (Linux `clear_refs` 5), so that a
/// benchmark's peak is its own and not an earlier one's. Best effort.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The most memory this process has had resident since it started or [`reset_peak`], in
/// bytes; `None` where the system does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark() {
        assert_eq!(parse_vm_hwm("Name:\ttriad\nVmHWM:\t  123456 kB\nVmRSS:\t 1 kB\n"), Some(123456 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS:\t 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM: lots kB\n"), None);
    }

    #[test]
    fn a_large_allocation_shows_in_the_peak() {
        let Some(before) = peak_rss_bytes() else { return };
        let v = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = peak_rss_bytes().unwrap_or(0);
        assert!(after >= before.max(64 << 20), "{before} -> {after}");
        drop(v);
    }
}
