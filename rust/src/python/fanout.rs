//! `_speedups.Fanout`: the rust twin of `crewai_rust/tasks/_fanout_py.py`.
//!
//! Jobs run on the blocking pool of the one shared Tokio runtime, bounded by a
//! Tokio semaphore (one permit per running callable). A worker is attached to
//! Python only while it runs callables and detaches whenever it waits for a
//! permit; the caller waits with the GIL released and wakes at least every
//! `POLL` to check for signals (Ctrl-C) and deadlines.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyList;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::fanout::{shared_runtime, ClaimCounter, Collector, Settled};

/// Longest the waiting caller goes without checking signals and deadlines.
const POLL: Duration = Duration::from_millis(50);

/// Jobs (batch workers and submitted callables) that may still take the GIL.
/// A Rust thread that re-takes the GIL once the interpreter finalizes is
/// killed by `pthread_exit`, whose forced unwind aborts the process when it
/// meets a Rust frame; so `crewai_rust.tasks._exit` waits for this to reach 0
/// before finalization starts (as stock waits for its non-daemon threads).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: batch workers claim no further items.
static CLOSING: AtomicBool = AtomicBool::new(false);

/// Counts one job in `ACTIVE` from its scheduling until its thread has left Python for good.
struct ActiveJob;

impl ActiveJob {
    fn new() -> Self {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        ActiveJob
    }
}

impl Drop for ActiveJob {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many fan-out jobs may still run Python code (read by the exit hook).
#[pyfunction]
fn fanout_active() -> usize {
    ACTIVE.load(Ordering::SeqCst)
}

/// Interpreter exit: cancel every batch item not started (submitted jobs still run, as stock's threads do).
#[pyfunction]
fn fanout_close() {
    CLOSING.store(true, Ordering::SeqCst);
}

enum Event {
    Started(usize, Instant),
    Returned(usize, PyResult<Py<PyAny>>),
}

/// What the workers of one batch share.
struct Batch {
    func: Py<PyAny>,
    items: Py<PyList>,
    ctx: Py<PyAny>,
    claims: ClaimCounter,
    track_start: bool,
    fail_fast: bool,
}

/// Bounded concurrent execution of Python callables (the rust twin).
#[pyclass(module = "crewai_rust._speedups", frozen)]
pub struct Fanout {
    permits: Arc<Semaphore>,
    #[pyo3(get)]
    max_concurrency: usize,
}

/// A permit without touching Python: the fast path keeps the thread attached.
fn acquire(py: Python<'_>, permits: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Some(permit);
    }
    let permits = permits.clone();
    py.detach(move || shared_runtime().block_on(permits.acquire_owned()).ok())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run_worker(batch: Arc<Batch>, permits: Arc<Semaphore>, events: Sender<Event>, active: ActiveJob) {
    // try_attach: a worker woken while the interpreter shuts down just stops.
    let _ = Python::try_attach(|py| {
        let run = intern!(py, "run");
        let copy = intern!(py, "copy");
        loop {
            let Some(permit) = acquire(py, &permits) else { return };
            if CLOSING.load(Ordering::SeqCst) {
                batch.claims.cancel();
                return;
            }
            let Some(index) = batch.claims.claim() else { return };
            if batch.track_start {
                let _ = events.send(Event::Started(index, Instant::now()));
            }
            let outcome = batch.items.bind(py).get_item(index).and_then(|item| {
                let ctx = batch.ctx.bind(py).call_method0(copy)?;
                ctx.call_method1(run, (batch.func.bind(py), item)).map(Bound::unbind)
            });
            drop(permit);
            if batch.fail_fast && outcome.is_err() {
                batch.claims.cancel(); // stop the rest now, not when the caller wakes
            }
            if events.send(Event::Returned(index, outcome)).is_err() {
                return; // the caller has gone (Ctrl-C): run nothing more
            }
        }
    });
    drop(active); // only now is this thread done with the GIL
}

impl Fanout {
    fn wait(
        &self,
        py: Python<'_>,
        batch: &Batch,
        events: &Mutex<Receiver<Event>>,
        collector: &mut Collector<Py<PyAny>, PyErr>,
        on_progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<PyErr>> {
        let n = collector.len();
        let mut started_total: Option<usize> = None;
        let mut returned = 0usize;
        let mut progress_error: Option<PyErr> = None;
        loop {
            if started_total.is_none() && collector.should_cancel() {
                started_total = Some(batch.claims.cancel());
            }
            match started_total {
                Some(total) if returned >= total => break,
                None if returned == n => break,
                _ => {}
            }
            let mut wait = POLL;
            if let Some(deadline) = collector.next_deadline() {
                wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            }
            let first = py.detach(|| match lock(events).recv_timeout(wait) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
            });
            let before = collector.settled_count();
            let mut next = first;
            while let Some(event) = next {
                match event {
                    Event::Started(index, at) => collector.started(index, at),
                    Event::Returned(index, outcome) => {
                        if !batch.track_start {
                            collector.started(index, Instant::now());
                        }
                        collector.returned(index, outcome);
                        returned += 1;
                    }
                }
                next = lock(events).try_recv().ok();
            }
            if collector.next_deadline().is_some() {
                collector.expire(Instant::now());
            }
            if let (Some(callback), None) = (on_progress, progress_error.as_ref()) {
                for done in before + 1..=collector.settled_count() {
                    if let Err(err) = callback.call1((done, n)) {
                        if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
                            return Err(err); // Ctrl-C inside the callback: leave now
                        }
                        progress_error = Some(err);
                        if started_total.is_none() {
                            started_total = Some(batch.claims.cancel());
                        }
                        break;
                    }
                }
            }
            py.check_signals()?;
        }
        Ok(progress_error)
    }
}

#[pymethods]
impl Fanout {
    #[new]
    fn new(max_concurrency: usize) -> PyResult<Self> {
        if max_concurrency == 0 || max_concurrency > Semaphore::MAX_PERMITS {
            return Err(PyValueError::new_err(format!("max_concurrency must be at least 1, got {max_concurrency}")));
        }
        Ok(Fanout { permits: Arc::new(Semaphore::new(max_concurrency)), max_concurrency })
    }

    /// Run `ctx.copy().run(fn)` when a permit is free; errors go to `sys.unraisablehook`.
    fn submit(&self, func: Py<PyAny>, ctx: Py<PyAny>) {
        let permits = self.permits.clone();
        let runtime = shared_runtime();
        let active = ActiveJob::new();
        runtime.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else { return };
            let _ = shared_runtime()
                .spawn_blocking(move || {
                    let _ = Python::try_attach(|py| {
                        let func = func.bind(py);
                        let outcome = ctx
                            .bind(py)
                            .call_method0(intern!(py, "copy"))
                            .and_then(|c| c.call_method1(intern!(py, "run"), (func,)));
                        if let Err(err) = outcome {
                            err.write_unraisable(py, Some(func));
                        }
                    });
                    drop(permit);
                    drop(active);
                })
                .await;
        });
    }

    /// `[fn(item) for item in items]` run concurrently, in input order (rules in `crate::fanout`).
    /// (The arguments mirror the python twin's signature one to one.)
    #[pyo3(signature = (func, items, ctx, timeout, return_exceptions, on_progress))]
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        items: Bound<'_, PyList>,
        ctx: Py<PyAny>,
        timeout: Option<f64>,
        return_exceptions: bool,
        on_progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyList>> {
        super::errors::no_panic(|| self.run_batch_inner(py, func, items, ctx, timeout, return_exceptions, on_progress))
    }

    fn __repr__(&self) -> String {
        format!("Fanout(max_concurrency={})", self.max_concurrency)
    }
}

impl Fanout {
    #[allow(clippy::too_many_arguments)]
    fn run_batch_inner(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        items: Bound<'_, PyList>,
        ctx: Py<PyAny>,
        timeout: Option<f64>,
        return_exceptions: bool,
        on_progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyList>> {
        let n = items.len();
        if n == 0 {
            return Ok(PyList::empty(py).unbind());
        }
        let timeout_span = match timeout {
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err(format!("timeout must be at most {} seconds, got {t}", Duration::MAX.as_secs()))
            })?),
            Some(t) => return Err(PyValueError::new_err(format!("timeout must be positive, got {t}"))),
            None => None,
        };
        let make_timeout_error = {
            let factory =
                py.import(intern!(py, "crewai_rust.tasks._collect"))?.getattr(intern!(py, "timeout_error"))?;
            move |index: usize| -> PyResult<PyErr> {
                let exc = factory.call1((index, timeout.unwrap_or(0.0)))?;
                Ok(PyErr::from_value(exc))
            }
        };
        let batch = Arc::new(Batch {
            func,
            items: items.unbind(),
            ctx,
            claims: ClaimCounter::new(n),
            track_start: timeout_span.is_some(),
            fail_fast: !return_exceptions,
        });
        let (tx, rx) = mpsc::channel();
        let rx = Mutex::new(rx);
        let runtime = shared_runtime();
        for _ in 0..n.min(self.max_concurrency) {
            let (batch, permits, tx) = (batch.clone(), self.permits.clone(), tx.clone());
            let active = ActiveJob::new();
            runtime.spawn_blocking(move || run_worker(batch, permits, tx, active));
        }
        drop(tx);
        let mut collector: Collector<Py<PyAny>, PyErr> = Collector::new(n, timeout_span, !return_exceptions);
        let progress_error = match self.wait(py, &batch, &rx, &mut collector, on_progress.as_ref()) {
            Ok(progress_error) => progress_error,
            Err(err) => {
                batch.claims.cancel(); // Ctrl-C: start nothing more, leave at once
                return Err(err);
            }
        };
        if let Some(err) = progress_error {
            return Err(err);
        }
        if !return_exceptions {
            if let Some(index) = collector.first_error() {
                return Err(match collector.take(index) {
                    Some(Settled::Error(err)) => err,
                    _ => make_timeout_error(index)?,
                });
            }
        }
        let mut values: Vec<Py<PyAny>> = Vec::with_capacity(n);
        for index in 0..n {
            values.push(match collector.take(index) {
                Some(Settled::Value(v)) => v,
                Some(Settled::Error(err)) => err.into_value(py).into_any(),
                Some(Settled::TimedOut) => make_timeout_error(index)?.into_value(py).into_any(),
                None => py.None(),
            });
        }
        Ok(PyList::new(py, values)?.unbind())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Fanout>()?;
    m.add_function(wrap_pyfunction!(fanout_active, m)?)?;
    m.add_function(wrap_pyfunction!(fanout_close, m)?)?;
    Ok(())
}
