//! The device suite stamped over the CPU device.

triad_tests::device_suite!(cpu, triad_ring::CpuDevice::new());

#[test]
fn check_names_are_distinct() {
    let mut names = triad_tests::device_suite::check_names();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a check is listed twice");
}
