//! Password hashing: Argon2id (RustCrypto `argon2`, its default parameters m = 19 MiB,
//! t = 2, p = 1, the OWASP minimum) in the PHC string format. Hashing and verifying run in
//! one fewer slot than the cores (at least one), each slot a thread of its own, so logins
//! waiting for a hash never hold up the runtime workers that answer other clients, and the
//! 19 MiB working memory of a hash stays with its slot's thread (run on the blocking pool's
//! many threads, each kept its own and 40 bad logins left 240–480 MB resident: red team
//! round 11). A free slot goes to
//! the [`Lane::Clean`] checks first: a login from an address or for a username with recent
//! failures waits behind every other one, so clients looping bad logins do not delay the
//! logins of everybody else by the length of their queue (50 addresses looping bad logins
//! put a legitimate login at 2–3 s: red team round 10).

use std::collections::VecDeque;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::ServerError;

/// Which queue a password check waits in for a hashing slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// No recent failure from the address or for the username (and administrators'
    /// hashes): served first.
    Clean,
    /// From a clean address, for a username with recent failures: served after the clean
    /// checks but before any from a suspect address (one wrong password against a user
    /// otherwise put that user's own login behind every attacker's check for 15 minutes:
    /// 27–51 s in red team round 12).
    Watched,
    /// The address has failed lately or has another check running: served when no other
    /// check waits.
    Suspect,
}

/// The hashing slots: a count of free ones and the two queues of waiters.
struct Slots {
    state: Mutex<SlotState>,
}

struct SlotState {
    /// The indexes of the free slots.
    free: Vec<usize>,
    clean: VecDeque<oneshot::Sender<Permit>>,
    watched: VecDeque<oneshot::Sender<Permit>>,
    suspect: VecDeque<oneshot::Sender<Permit>>,
}

/// One hashing slot, given back (to the next waiter, clean ones first) when dropped.
struct Permit {
    slots: Arc<Slots>,
    /// Which slot (and so which hashing thread).
    index: usize,
    /// `false` for a permit that was never handed over (its slot is passed on by the loop
    /// that made it).
    live: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.live {
            self.slots.release(self.index);
        }
    }
}

/// Waiters queued at once before the queues drop those whose request went away.
const SWEEP_AT: usize = 1_024;

impl Slots {
    fn new(slots: usize) -> Arc<Self> {
        Arc::new(Slots {
            state: Mutex::new(SlotState {
                free: (0..slots.max(1)).collect(),
                clean: VecDeque::new(),
                watched: VecDeque::new(),
                suspect: VecDeque::new(),
            }),
        })
    }

    async fn acquire(self: &Arc<Self>, lane: Lane) -> Result<Permit, ServerError> {
        let waiting = {
            let mut state = self.state.lock();
            // A slot is free only when nobody waits: `release` hands slots to waiters first.
            if let Some(index) = state.free.pop() {
                return Ok(Permit {
                    slots: Arc::clone(self),
                    index,
                    live: true,
                });
            }
            let (tx, rx) = oneshot::channel();
            let queue = match lane {
                Lane::Clean => &mut state.clean,
                Lane::Watched => &mut state.watched,
                Lane::Suspect => &mut state.suspect,
            };
            if queue.len() >= SWEEP_AT {
                queue.retain(|waiter| !waiter.is_closed());
            }
            queue.push_back(tx);
            rx
        };
        // The sender is only ever dropped after a send: an error cannot happen, but is
        // answered rather than assumed away.
        waiting.await.map_err(ServerError::internal)
    }

    /// Hands a freed slot to the first waiter still waiting: clean ones first, then
    /// watched, then suspect.
    fn release(self: &Arc<Self>, index: usize) {
        loop {
            let next = {
                let mut state = self.state.lock();
                let next = state
                    .clean
                    .pop_front()
                    .or_else(|| state.watched.pop_front())
                    .or_else(|| state.suspect.pop_front());
                match next {
                    Some(waiter) => waiter,
                    None => {
                        state.free.push(index);
                        return;
                    }
                }
            };
            let permit = Permit {
                slots: Arc::clone(self),
                index,
                live: true,
            };
            match next.send(permit) {
                Ok(()) => return,
                // That waiter went away: the slot goes to the next one.
                Err(mut unsent) => unsent.live = false,
            }
        }
    }
}

/// Hashes and verifies passwords off the runtime workers.
pub(crate) struct Hasher {
    slots: Arc<Slots>,
    /// The job queue of each slot's thread, by slot index.
    threads: Vec<std::sync::mpsc::Sender<Job>>,
    /// A hash of a random password, verified for unknown usernames so that their answer
    /// takes as long as a wrong password's.
    dummy: String,
}

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

impl Hasher {
    /// A hasher running at most `slots` hashes at once, each slot on a thread of its own
    /// (`noex-hash-N`; they end with the hasher).
    pub(crate) fn new(slots: usize) -> Result<Self, ServerError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(ServerError::internal)?;
        let dummy = hash_now(&hex(&random))?;
        let slots = slots.max(1);
        let mut threads = Vec::with_capacity(slots);
        for index in 0..slots {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name(format!("noex-hash-{index}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        // A panic ends that one job (its caller sees an error), not the
                        // slot's thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(ServerError::internal)?;
            threads.push(tx);
        }
        Ok(Hasher {
            slots: Slots::new(slots),
            threads,
            dummy,
        })
    }

    /// Runs `work` on the thread of `permit`'s slot. The permit goes with the work: a
    /// request that goes away mid-hash does not free its slot before the hash is done.
    async fn run<T: Send + 'static>(
        &self,
        permit: Permit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServerError> {
        let (tx, rx) = oneshot::channel();
        let thread = self
            .threads
            .get(permit.index)
            .ok_or_else(|| ServerError::internal("no thread for a hashing slot"))?;
        let job: Job = Box::new(move || {
            let result = work();
            // The slot is free before its caller goes on.
            drop(permit);
            let _ = tx.send(result);
        });
        thread
            .send(job)
            .map_err(|_| ServerError::internal("a hashing thread has stopped"))?;
        rx.await.map_err(ServerError::internal)
    }

    /// The PHC string of `password` (administrators' and users' own password changes:
    /// the clean lane).
    pub(crate) async fn hash(&self, password: String) -> Result<String, ServerError> {
        let permit = self.slots.acquire(Lane::Clean).await?;
        self.run(permit, move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash` (the comparison is the crate's, in constant time).
    /// `None` verifies against the dummy hash and answers `false`.
    pub(crate) async fn verify(&self, password: String, hash: Option<String>, lane: Lane) -> bool {
        let Ok(permit) = self.slots.acquire(lane).await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let matched = self
            .run(permit, move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await
            .unwrap_or(false);
        known && matched
    }
}

fn hash_now(password: &str) -> Result<String, ServerError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ServerError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ServerError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ServerError::internal)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_free_slot_goes_to_clean_then_watched_then_suspect_waiters() {
        let slots = Slots::new(1);
        let held = slots.acquire(Lane::Clean).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, lane) in [
            Lane::Suspect,
            Lane::Suspect,
            Lane::Watched,
            Lane::Clean,
            Lane::Clean,
        ]
        .into_iter()
        .enumerate()
        {
            let (mine, order) = (Arc::clone(&slots), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _permit = mine.acquire(lane).await.unwrap();
                order.lock().push(i);
            }));
            // Each waiter is queued before the next one starts.
            loop {
                let queued = {
                    let state = slots.state.lock();
                    state.clean.len() + state.watched.len() + state.suspect.len()
                };
                if queued > i {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock(), vec![3, 4, 2, 0, 1]);
        assert_eq!(slots.state.lock().free.len(), 1, "every slot came back");
    }

    #[tokio::test]
    async fn a_waiter_that_went_away_passes_the_slot_on() {
        let slots = Slots::new(1);
        let held = slots.acquire(Lane::Clean).await.unwrap();
        let gone = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(Lane::Clean).await.map(drop) })
        };
        while slots.state.lock().clean.is_empty() {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        let next = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(Lane::Suspect).await.map(drop) })
        };
        while slots.state.lock().suspect.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(held);
        next.await.unwrap().unwrap();
        assert_eq!(slots.state.lock().free.len(), 1);
    }

    #[tokio::test]
    async fn hashes_run_on_the_slots_own_threads() {
        let hasher = Hasher::new(2).unwrap();
        let permit = hasher.slots.acquire(Lane::Clean).await.unwrap();
        let name = hasher
            .run(permit, || std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("noex-hash-")));
        let hash = hasher.hash("correct horse".to_owned()).await.unwrap();
        assert!(
            hasher
                .verify("correct horse".to_owned(), Some(hash.clone()), Lane::Clean)
                .await
        );
        assert!(
            !hasher
                .verify("wrong horse".to_owned(), Some(hash), Lane::Suspect)
                .await
        );
        assert_eq!(
            hasher.slots.state.lock().free.len(),
            2,
            "every slot came back"
        );
    }
}
