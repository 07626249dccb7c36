//! System-wide profiles of a benchmark phase: `perf record -e cpu-clock -a
//! -g` while the phase runs, then a per-core report beside it.
//!
//! This VM exposes no hardware counters, so the sampling event is the
//! cpu-clock software timer (see MACHINE-NOTES). `-a` takes every core:
//! the node under test's worker, the pods' softirq work and the other
//! node's kernel path all show, each on the core it ran on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A running `perf record`; [`Profile::finish`] stops it and writes the report.
#[derive(Debug)]
pub struct Profile {
    child: Option<Child>,
    data: PathBuf,
}

impl Profile {
    /// Start sampling every core into `data` (a `perf.data` file).
    pub fn start(data: &Path) -> Result<Profile> {
        if let Some(dir) = data.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let child = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-a",
                "-g",
                "-F",
                "2000",
                "--quiet",
                "-o",
            ])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting perf record (package linux-perf)")?;
        // perf needs a moment to open its events on every core.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Profile {
            child: Some(child),
            data: data.to_path_buf(),
        })
    }

    /// Stop sampling and write `<data>.txt`: the share of samples per core
    /// and command, then per core, command and symbol. Returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let Some(child) = self.child.take() else {
            bail!("the profile was already stopped");
        };
        let output = stop(child)?;
        if !output.status.success() && !self.data.exists() {
            bail!(
                "perf record failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        // Who used each core, then what they ran there.
        let mut report = Vec::new();
        for sort in ["cpu,comm", "cpu,comm,sym"] {
            let out = Command::new("perf")
                .args(["report", "--stdio", "--no-children", "-g", "none"])
                .args(["--sort", sort, "--percent-limit", "0.5", "-i"])
                .arg(&self.data)
                .output()
                .context("running perf report")?;
            if !out.status.success() {
                bail!(
                    "perf report on {} failed: {}",
                    self.data.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            report.extend_from_slice(&out.stdout);
        }
        let mut text = self.data.clone().into_os_string();
        text.push(".txt");
        let text = PathBuf::from(text);
        std::fs::write(&text, &report).with_context(|| format!("writing {}", text.display()))?;
        Ok(text)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = stop(child);
        }
    }
}

/// SIGINT `child` (perf then writes its file out) and wait for it.
fn stop(mut child: Child) -> Result<std::process::Output> {
    // std's Child can only SIGKILL, which leaves perf's file unfinished.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().context("waiting for perf record")
}

/// The profile of one row's phase: `<dir>/<row>-<phase>.data`, started
/// where `dir` is set.
pub fn start_in(dir: Option<&Path>, row: &str, phase: &str) -> Result<Option<Profile>> {
    let Some(dir) = dir else { return Ok(None) };
    let data = dir.join(format!("{row}-{phase}.data"));
    Profile::start(&data)
        .with_context(|| format!("profiling {row} {phase}"))
        .map(Some)
}
