//! Threads kept for the writer's parallel work.
//!
//! A commit group writes and fsyncs its temp files on up to 16 threads at
//! once (on a network filesystem each create and fsync waits on a round
//! trip, and the server commits concurrent ones together). Spawning those
//! threads for every group showed in profiles of 16 clients on CephFS
//! (`clone3`, stack set-up and tear-down: several percent of the broker's
//! CPU, on a machine where the broker, ceph-fuse and the metadata server
//! share two cores). These are started on first use and kept.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::sync::LockOrRecover;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue, started on first
/// use (a broker on a local disk that never writes a group of several
/// files never starts them).
pub(crate) struct Pool {
    name: &'static str,
    threads: usize,
    /// `None` inside once no thread could be started: jobs then run on the
    /// caller's thread.
    jobs: std::cell::OnceCell<Option<Sender<Job>>>,
}

impl Pool {
    /// A pool of `threads` threads named `name`, not yet started.
    pub(crate) fn new(name: &'static str, threads: usize) -> Pool {
        Pool {
            name,
            threads,
            jobs: std::cell::OnceCell::new(),
        }
    }

    /// The queue, the threads started the first time. A thread that cannot
    /// be started is left out (the others take its share).
    fn queue(&self) -> Option<&Sender<Job>> {
        self.jobs
            .get_or_init(|| {
                let (jobs, queue) = channel::<Job>();
                let queue = Arc::new(Mutex::new(queue));
                let mut started = 0;
                for _ in 0..self.threads {
                    let queue = queue.clone();
                    let spawned = std::thread::Builder::new()
                        .name(self.name.into())
                        .spawn(move || work(&queue));
                    match spawned {
                        Ok(_) => started += 1,
                        Err(e) => tracing::warn!("could not start a {} thread: {e}", self.name),
                    }
                }
                (started > 0).then_some(jobs)
            })
            .as_ref()
    }

    /// `f` applied to each of `items` on the pool's threads; results in
    /// the items' order, `None` where `f` panicked.
    pub(crate) fn map<T, R>(
        &self,
        items: Vec<T>,
        f: Arc<dyn Fn(T) -> R + Send + Sync>,
    ) -> Vec<Option<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        let n = items.len();
        let (done, results) = channel();
        for (i, item) in items.into_iter().enumerate() {
            let (f, done) = (f.clone(), done.clone());
            let job: Job = Box::new(move || {
                let _ = done.send((i, f(item)));
            });
            match self.queue() {
                Some(queue) => {
                    if let Err(refused) = queue.send(job) {
                        // Every thread is gone (cannot happen while `self`
                        // lives: the threads catch panics): run it here.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(refused.0));
                    }
                }
                None => {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            }
        }
        drop(done);
        let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
        // Ends when every job has answered or was dropped by a panic.
        for (i, r) in results {
            out[i] = Some(r);
        }
        out
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock_or_recover().recv() {
            Ok(job) => job,
            Err(_) => return, // the pool was dropped
        };
        // A panicking job loses its own result only.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_and_a_panic_loses_only_its_own() {
        let pool = Pool::new("test-pool", 4);
        let got = pool.map(
            (0..100).collect(),
            Arc::new(|i: u32| {
                if i == 42 {
                    panic!("job 42 fails");
                }
                i * 2
            }),
        );
        assert_eq!(got.len(), 100);
        for (i, r) in got.iter().enumerate() {
            if i == 42 {
                assert_eq!(*r, None);
            } else {
                assert_eq!(*r, Some(i as u32 * 2));
            }
        }
        // The pool still works after the panic.
        assert_eq!(
            pool.map(vec![1, 2], Arc::new(|i: u32| i + 1)),
            [Some(2), Some(3)]
        );
    }
}
