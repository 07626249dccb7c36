//! `kxdp-bench nut --profile`'s recorder: a system-wide cpu-clock profile
//! of a phase, and a per-core report that names what ran there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kxdp_bench::profile::{start_in, Profile};
use kxdp_testbed::privileged_test;

#[test]
fn no_directory_no_profile() {
    assert!(start_in(None, "kxdp-r1", "tcp-1to2").unwrap().is_none());
}

#[test]
#[cfg_attr(not(kxdp_privileged), ignore = "needs root (system-wide perf record)")]
fn a_profile_names_the_core_and_the_function_that_ran() {
    privileged_test("a_profile_names_the_core_and_the_function_that_ran");
    let dir = std::env::temp_dir().join(format!("kxdp-profile-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let profile: Profile = start_in(Some(&dir), "row", "phase").unwrap().unwrap();
    // Spin on core 0 for a while: the report must show it there.
    let spinner = std::thread::Builder::new()
        .name("kxdp-spinner".into())
        .spawn(|| {
            assert!(kxdp_dataplane::worker::pin_to_core(Some(0)));
            let until = Instant::now() + Duration::from_millis(600);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            x
        });
    spinner.unwrap().join().unwrap();
    let report = profile.finish().unwrap();
    assert_eq!(report, dir.join("row-phase.data.txt"));
    assert!(dir.join("row-phase.data").exists());
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // perf's --sort cpu,comm: "<share>%  <cpu>  <comm>", then per symbol.
    let spinning = text.lines().find(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.len() >= 3 && fields[1] == "000" && fields[2] == "kxdp-spinner"
    });
    assert!(
        spinning.is_some(),
        "no samples of the spinning test thread on core 0:\n{text}"
    );
}
