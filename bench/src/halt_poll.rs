//! `--halt-poll-ns`: the guest halt-polling window for the length of a
//! run, put back as it was afterwards (also on failure: the guard's drop).
//!
//! The window is machine-wide (`haltpoll.guest_halt_poll_ns`), so kxdp
//! never sets it; `kxdp check` recommends it. The bench sets it only when
//! asked, so that a table can be measured with the setting a reader would
//! deploy, and says so in its output. A signal that stops the bench puts
//! it back too: `main` passes [`restore_after_signal`] to the testbed's
//! signal clean-up.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The window's sysfs file on a guest with the haltpoll cpuidle driver
/// (the one `kxdp check` reads).
pub const WINDOW: &str = kxdp_node::host::HALT_POLL_WINDOW;

/// The file and old value of the window set now, for
/// [`restore_after_signal`].
static SET_NOW: Mutex<Option<(PathBuf, u64)>> = Mutex::new(None);

/// [`SET_NOW`], locked (a panic while it was held left nothing half-done:
/// it holds a plain value).
fn set_now() -> std::sync::MutexGuard<'static, Option<(PathBuf, u64)>> {
    SET_NOW
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write back the old window if a [`HaltPollWindow`] is set: for the
/// signal clean-up, on a thread of its own while the guard's drop will not
/// run.
pub fn restore_after_signal() {
    let set = set_now().take();
    if let Some((file, old)) = set {
        match write(&file, old) {
            Ok(()) => eprintln!("kxdp-bench: guest_halt_poll_ns put back to {old}"),
            Err(e) => {
                eprintln!("kxdp-bench: could not put guest_halt_poll_ns back to {old}: {e:#}")
            }
        }
    }
}

/// The window set for a run; dropping it writes the old value back.
#[derive(Debug)]
pub struct HaltPollWindow {
    file: PathBuf,
    old: u64,
    set: u64,
}

impl HaltPollWindow {
    /// Set the window in `file` to `ns`, remembering the old value.
    pub fn set_in(file: &Path, ns: u64) -> Result<HaltPollWindow> {
        let old = read(file).with_context(|| {
            format!(
                "--halt-poll-ns: cannot read {} (no haltpoll cpuidle driver on this machine?)",
                file.display()
            )
        })?;
        write(file, ns)?;
        let now = read(file)?;
        if now != ns {
            // Put back what was there before saying no.
            let _ = write(file, old);
            bail!(
                "--halt-poll-ns: wrote {ns} to {}, it reads {now}",
                file.display()
            );
        }
        *set_now() = Some((file.to_path_buf(), old));
        Ok(HaltPollWindow {
            file: file.to_path_buf(),
            old,
            set: ns,
        })
    }

    /// [`HaltPollWindow::set_in`] on this machine's [`WINDOW`].
    pub fn set(ns: u64) -> Result<HaltPollWindow> {
        HaltPollWindow::set_in(Path::new(WINDOW), ns)
    }

    /// The window for the run, ns.
    pub fn ns(&self) -> u64 {
        self.set
    }

    /// The value put back afterwards, ns.
    pub fn previous(&self) -> u64 {
        self.old
    }
}

impl Drop for HaltPollWindow {
    fn drop(&mut self) {
        // Held while writing: a signal's clean-up (`restore_after_signal`,
        // which then exits) waits for the write, or has written already.
        let mut held = set_now();
        held.take();
        if let Err(e) = write(&self.file, self.old) {
            eprintln!(
                "kxdp-bench: could not put guest_halt_poll_ns back to {}: {e:#}",
                self.old
            );
        }
    }
}

fn read(file: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{} holds {:?}, not a number", file.display(), text.trim()))
}

fn write(file: &Path, ns: u64) -> Result<()> {
    std::fs::write(file, ns.to_string()).with_context(|| format!("writing {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests that set a window: the window set now is one per
    /// process.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A scratch copy of the sysfs file, removed with its directory when
    /// the test ends, passed or failed.
    struct Scratch(PathBuf);

    impl Scratch {
        fn file(&self) -> PathBuf {
            self.0.join("guest_halt_poll_ns")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(value: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "kxdp-halt-poll-{}-{value}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let s = Scratch(dir);
        std::fs::write(s.file(), format!("{value}\n")).expect("write");
        s
    }

    #[test]
    fn the_window_holds_for_the_run_and_goes_back_after() {
        let _one = one_at_a_time();
        let s = scratch("0");
        let f = s.file();
        {
            let w = HaltPollWindow::set_in(&f, 200_000).expect("set");
            assert_eq!((w.ns(), w.previous()), (200_000, 0));
            assert_eq!(read(&f).expect("read"), 200_000);
        }
        assert_eq!(read(&f).expect("read"), 0);
    }

    #[test]
    fn a_signal_puts_the_window_back_while_the_guard_lives() {
        let _one = one_at_a_time();
        let s = scratch("5000");
        let f = s.file();
        let w = HaltPollWindow::set_in(&f, 200_000).expect("set");
        assert_eq!(read(&f).expect("read"), 200_000);
        restore_after_signal();
        assert_eq!(read(&f).expect("read"), 5000);
        drop(w);
        assert_eq!(read(&f).expect("read"), 5000);
        // Nothing set: nothing written.
        std::fs::write(&f, "7").expect("write");
        restore_after_signal();
        assert_eq!(read(&f).expect("read"), 7);
    }

    #[test]
    fn no_driver_or_garbage_is_an_error_naming_the_file() {
        let missing = std::env::temp_dir().join("kxdp-no-such-dir/guest_halt_poll_ns");
        let err = HaltPollWindow::set_in(&missing, 1).expect_err("missing");
        assert!(format!("{err:#}").contains("no haltpoll"), "{err:#}");
        let s = scratch("abc");
        let f = s.file();
        let err = HaltPollWindow::set_in(&f, 1).expect_err("garbage");
        assert!(format!("{err:#}").contains("not a number"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&f).expect("read").trim(), "abc");
    }
}
