//! Whether the node is ready (`/readyz`, the API's status): every worker
//! in its loop, kxdp's XDP program on every interface, tables published,
//! not stopping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kxdp_dataplane::bpf::XdpAttachment;
use kxdp_dataplane::tables::TableHandle;

/// Counts the worker threads inside their loop: a worker holds a
/// [`RunningWorker`] while it runs, so a worker that died (a panic, an
/// early return) no longer counts and `/readyz` fails.
#[derive(Debug)]
pub struct RunningWorker {
    running: Arc<AtomicUsize>,
}

impl RunningWorker {
    /// Count one more running worker until the guard is dropped.
    pub fn enter(running: Arc<AtomicUsize>) -> RunningWorker {
        running.fetch_add(1, Ordering::Relaxed);
        RunningWorker { running }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What `/readyz` checks: every worker in its loop, kxdp's XDP program on
/// every interface, tables published, not stopping.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// Workers inside their loop ([`RunningWorker`]).
    pub running_workers: Arc<AtomicUsize>,
    /// Workers started.
    pub workers: usize,
    /// The XDP attachments, one per interface.
    pub attachments: Arc<Mutex<Vec<XdpAttachment>>>,
    /// The interfaces (one XDP attachment each); an interface that is gone
    /// (deleted, not yet re-created) makes the node not ready.
    pub interfaces: Vec<String>,
    /// The tables.
    pub tables: TableHandle,
    /// Set when the node is stopping.
    pub stop: Arc<AtomicBool>,
}

impl Readiness {
    /// What is not ready (empty: ready).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.stop.load(Ordering::Relaxed) {
            problems.push("stopping".to_string());
        }
        let running = self.running_workers.load(Ordering::Relaxed);
        if running != self.workers {
            problems.push(format!("{running} of {} workers running", self.workers));
        }
        let attached = self
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if attached != self.interfaces.len() {
            problems.push(format!(
                "XDP attached to {attached} of {} interfaces",
                self.interfaces.len()
            ));
        }
        for name in &self.interfaces {
            if kxdp_dataplane::xsk::interface_index(name).is_err() {
                problems.push(format!("interface {name} is gone"));
            }
        }
        if self.tables.current().generation() == 0 {
            problems.push("no tables published".to_string());
        }
        problems
    }
}
