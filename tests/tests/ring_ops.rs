//! The device suite stamped over the CPU device.

triad_tests::device_suite!(cpu, triad_ring::CpuDevice::new());

// The `optional` form, as a device that may be absent uses it (here: always absent, so
// every test reports "skipped" and passes; this keeps the arm compiling).
triad_tests::device_suite!(absent_device, optional None::<triad_ring::CpuDevice>);

#[test]
fn every_check_is_stamped() {
    // `all` is the one-call form of the same template.
    let _f: fn(&triad_ring::CpuDevice) = triad_tests::device_suite::all::<triad_ring::CpuDevice>;
    assert_eq!(triad_tests::device_suite::CHECKS.len(), 17);
}
