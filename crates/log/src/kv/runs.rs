//! The runs backend of the projection store ([`crate::ProjectionBackend::Runs`]):
//! immutable sorted run files in `DIR/index/projections/`, on the sorted-run machinery
//! the stream index uses too (`crate::sorted_run`).
//!
//! * A **run** `{seq:020}.kvrun` (`run_file`) holds entries sorted by key, one per key,
//!   each a value or a tombstone (a delete), in CRC'd blocks of about 4 KiB, with fences,
//!   a Bloom filter and a footer.
//! * The **manifest** `MANIFEST` (`manifest`) lists the live runs, oldest first, and the
//!   checkpoint. Replacing it (write `MANIFEST.tmp`, fdatasync, rename, fsync the
//!   directory) is the commit point of every change: a run is written and synced before a
//!   manifest names it, and deleted only after a manifest no longer does. At open, files
//!   the manifest does not name are deleted.
//! * `apply` writes its (sorted, deduplicated) writes as a new run, then a manifest naming
//!   it with the new checkpoint. Then runs are merged as `sorted_run::merge::next_merge`
//!   says (the newest two while the newest is at least half the size of the one before;
//!   above [`RUNS_MAX`] runs, the adjacent pair with the fewest bytes). Merges stream one
//!   block per input.
//! * A lookup reads the runs newest first: a run whose key range or Bloom filter rules the
//!   key out is skipped; otherwise a binary search in its fences (in memory since open) and
//!   one positioned read of one block.
//!
//! Not for: anything that cannot be rebuilt from the log. Invariant: readers see only
//! states a manifest on disk names (a snapshot is published after its manifest landed);
//! a manifest or a run that fails its checks at open makes the store start empty, without
//! a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::manifest::{Manifest, MANIFEST};
use super::run_file::{load_run, run_name, KvWrite, Merge, Run, RunWriter};
use crate::error::LogError;
use crate::sorted_run::merge::next_merge;
use crate::sorted_run::{list_files, remove_file};

/// Above this many runs, the adjacent pair with the fewest bytes is merged.
pub(crate) const RUNS_MAX: usize = 10;

/// A key and its value, as a scan yields them.
type KvPair = (Vec<u8>, Vec<u8>);

/// The live runs and the checkpoint, as readers see them.
#[derive(Default)]
struct Snapshot {
    /// Oldest first.
    runs: Vec<Arc<Run>>,
    checkpoint: Option<u64>,
}

impl Snapshot {
    fn manifest(&self, next_seq: u64) -> Manifest {
        Manifest {
            next_seq,
            checkpoint: self.checkpoint,
            runs: self.runs.iter().map(|r| (r.seq, r.bytes)).collect(),
        }
    }
}

struct Shared {
    dir: PathBuf,
    /// Readers take a clone of the `Arc`; a writer replaces it after the
    /// manifest naming the new state is in place.
    current: RwLock<Arc<Snapshot>>,
    /// Held by every writer: the seq of the next run to write.
    next_seq: Mutex<u64>,
}

/// The projection store in run files. Clones share it.
#[derive(Clone)]
pub(crate) struct RunsKv {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RunsKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunsKv")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl RunsKv {
    /// Opens the store in `dir` (creating it). Returns it and, if it was
    /// unusable and emptied, why.
    pub(crate) fn open(dir: &Path) -> Result<(RunsKv, Option<String>), LogError> {
        crate::files::ensure_dir(dir, "creating projection store directory")?;
        let manifest_path = dir.join(MANIFEST);
        let (snapshot, next_seq, unusable) =
            match crate::files::read(&manifest_path, "reading projection manifest") {
                Err(e) if crate::files::is_not_found(&e) => (Snapshot::default(), 0, None),
                Err(e) => return Err(e),
                Ok(bytes) => match Manifest::decode(&bytes) {
                    Err(why) => (
                        Snapshot::default(),
                        0,
                        Some(format!("the manifest {} {why}", manifest_path.display())),
                    ),
                    Ok(manifest) => {
                        let mut runs = Vec::with_capacity(manifest.runs.len());
                        let mut unusable = None;
                        for &(seq, bytes) in &manifest.runs {
                            match load_run(dir, seq, bytes)? {
                                Ok(run) => runs.push(Arc::new(run)),
                                Err(why) => {
                                    unusable = Some(why);
                                    break;
                                }
                            }
                        }
                        if unusable.is_some() {
                            (Snapshot::default(), 0, unusable)
                        } else {
                            let snapshot = Snapshot {
                                runs,
                                checkpoint: manifest.checkpoint,
                            };
                            (snapshot, manifest.next_seq, None)
                        }
                    }
                },
            };
        if unusable.is_some() {
            for (_, path) in list_files(dir)? {
                remove_file(&path)?;
            }
        } else {
            // Orphans of a crash: runs written but never named, or no longer
            // named, and temporary files.
            let named: Vec<String> = snapshot.runs.iter().map(|r| run_name(r.seq)).collect();
            for (name, path) in list_files(dir)? {
                if name != MANIFEST && !named.contains(&name) {
                    remove_file(&path)?;
                }
            }
        }
        let store = RunsKv {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                current: RwLock::new(Arc::new(snapshot)),
                next_seq: Mutex::new(next_seq),
            }),
        };
        Ok((store, unusable))
    }

    /// The store over `runs` (oldest first) with `checkpoint`, as a manifest named them: for
    /// reading only (the read-only overlay's base never writes).
    pub(crate) fn of_runs(dir: &Path, runs: Vec<Arc<Run>>, checkpoint: Option<u64>) -> RunsKv {
        RunsKv {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                current: RwLock::new(Arc::new(Snapshot { runs, checkpoint })),
                next_seq: Mutex::new(0),
            }),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn publish(&self, snapshot: Snapshot) {
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        let snapshot = self.snapshot();
        for run in snapshot.runs.iter().rev() {
            if let Some(found) = run.get(key)? {
                return Ok(found);
            }
        }
        Ok(None)
    }

    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> RunsScan {
        RunsScan {
            runs: self.snapshot().runs.clone(),
            prefix: prefix.to_vec(),
            merge: None,
            done: false,
        }
    }

    pub(crate) fn checkpoint(&self) -> Option<u64> {
        self.snapshot().checkpoint
    }

    /// Writes `writes` (the last write of a key counts) as a new run and sets
    /// the checkpoint if one is given, atomically; then merges runs.
    pub(crate) fn apply(
        &self,
        mut writes: Vec<KvWrite>,
        checkpoint: Option<u64>,
    ) -> Result<(), LogError> {
        let mut next_seq = self
            .shared
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        // Sorted by key; for each key, the last write (a stable sort keeps
        // writes of one key in order; reversed, dedup keeps the first).
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        writes.reverse();
        writes.dedup_by(|later, earlier| later.0 == earlier.0);
        writes.reverse();
        let checkpoint = checkpoint.or(current.checkpoint);
        let mut runs = current.runs.clone();
        if !writes.is_empty() {
            let seq = *next_seq;
            *next_seq += 1;
            let mut writer = RunWriter::create(&self.shared.dir, seq)?;
            for (key, value) in &writes {
                writer.push(key, value.as_deref())?;
            }
            let run = writer.finish()?.expect("at least one entry was pushed");
            runs.push(Arc::new(run));
        } else if checkpoint == current.checkpoint {
            return Ok(());
        }
        let snapshot = Snapshot { runs, checkpoint };
        snapshot.manifest(*next_seq).write(&self.shared.dir)?;
        self.publish(snapshot);
        self.compact(&mut next_seq)
    }

    /// Merges runs until the policy in the module documentation is met.
    fn compact(&self, next_seq: &mut u64) -> Result<(), LogError> {
        loop {
            let current = self.snapshot();
            let runs = &current.runs;
            let sizes: Vec<u64> = runs.iter().map(|r| r.bytes).collect();
            let Some(inputs) = next_merge(&sizes, RUNS_MAX) else {
                return Ok(());
            };
            // A tombstone hides older entries: it can go only when no older run is left.
            let drop_tombstones = inputs.start == 0;
            let seq = *next_seq;
            *next_seq += 1;
            let mut merge = Merge::new(&runs[inputs.clone()], &[])?;
            let mut writer = RunWriter::create(&self.shared.dir, seq)?;
            while merge.next_with(&mut |key, value| {
                if value.is_some() || !drop_tombstones {
                    writer.push(key, value)?;
                }
                Ok(())
            })? {}
            let merged = writer.finish()?;
            let mut new_runs = runs[..inputs.start].to_vec();
            new_runs.extend(merged.map(Arc::new));
            new_runs.extend_from_slice(&runs[inputs.end..]);
            let snapshot = Snapshot {
                runs: new_runs,
                checkpoint: current.checkpoint,
            };
            snapshot.manifest(*next_seq).write(&self.shared.dir)?;
            self.publish(snapshot);
            // Readers holding the old snapshot keep the files open.
            for run in &runs[inputs] {
                remove_file(&run.path)?;
            }
        }
    }

    /// Empties the store: a manifest without runs or checkpoint, then the
    /// run files go.
    pub(crate) fn clear(&self) -> Result<(), LogError> {
        let next_seq = self
            .shared
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let empty = Snapshot::default();
        empty.manifest(*next_seq).write(&self.shared.dir)?;
        self.publish(empty);
        for run in &current.runs {
            remove_file(&run.path)?;
        }
        Ok(())
    }

    /// The bytes of each live run, oldest first.
    #[cfg(test)]
    fn shape(&self) -> Vec<u64> {
        self.snapshot().runs.iter().map(|r| r.bytes).collect()
    }
}

/// The iterator of [`RunsKv::scan_prefix`]: a merge over the runs of the
/// snapshot taken when it was made, newest winning, tombstones hidden.
pub(crate) struct RunsScan {
    runs: Vec<Arc<Run>>,
    prefix: Vec<u8>,
    /// Made on the first `next` (it reads the first block of every run).
    merge: Option<Merge>,
    done: bool,
}

impl RunsScan {
    fn next_pair(&mut self) -> Result<Option<KvPair>, LogError> {
        let merge = match &mut self.merge {
            Some(merge) => merge,
            None => self.merge.insert(Merge::new(&self.runs, &self.prefix)?),
        };
        while let Some((key, value)) = merge.next_entry()? {
            if !key.starts_with(&self.prefix) {
                // Keys with the prefix are contiguous: none follow.
                return Ok(None);
            }
            if let Some(value) = value {
                return Ok(Some((key, value)));
            }
        }
        Ok(None)
    }
}

impl Iterator for RunsScan {
    type Item = Result<KvPair, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_pair();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
            self.merge = None;
        }
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tombstones in the live runs: the newest entry of each key that is a delete.
    fn tombstones(store: &RunsKv) -> usize {
        let snapshot = store.snapshot();
        let mut count = 0;
        for run in &snapshot.runs {
            let mut merge = Merge::new(std::slice::from_ref(run), &[]).expect("merge");
            while let Some((_, value)) = merge.next_entry().expect("entry") {
                count += usize::from(value.is_none());
            }
        }
        count
    }

    #[test]
    fn tombstones_are_kept_by_partial_merges_and_dropped_by_full_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, _) = RunsKv::open(tmp.path()).expect("open");
        let puts = |prefix: &str, n: u64| -> Vec<KvWrite> {
            (0..n)
                .map(|k| (format!("{prefix}{k:06}").into_bytes(), Some(vec![7u8; 30])))
                .collect()
        };
        store.apply(puts("a", 10_000), Some(1)).expect("base");
        store
            .apply(vec![(b"a000001".to_vec(), None)], Some(2))
            .expect("delete");
        store.apply(puts("b", 3), Some(3)).expect("small");
        assert_eq!(
            store.shape().len(),
            2,
            "the small runs merged, not the base"
        );
        assert_eq!(tombstones(&store), 1);
        assert_eq!(store.get(b"a000001").expect("get"), None);
        store.apply(puts("c", 10_000), Some(4)).expect("large");
        assert_eq!(store.shape().len(), 1);
        assert_eq!(tombstones(&store), 0);
        assert_eq!(store.get(b"a000001").expect("get"), None);
        assert_eq!(store.get(b"a000002").expect("get"), Some(vec![7u8; 30]));
    }

    #[test]
    fn merges_keep_the_runs_logarithmic() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, why) = RunsKv::open(tmp.path()).expect("open");
        assert!(why.is_none());
        for i in 0..200u64 {
            let writes = (0..50u64)
                .map(|k| {
                    (
                        format!("k{:06}", i * 50 + k).into_bytes(),
                        Some(vec![1u8; 40]),
                    )
                })
                .collect();
            store.apply(writes, Some(i)).expect("apply");
            let shape = store.shape();
            assert!(shape.len() <= RUNS_MAX, "runs: {shape:?}");
            for pair in shape.windows(2) {
                assert!(pair[0] > pair[1], "sizes decrease from oldest: {shape:?}");
            }
        }
        let keys = store.scan_prefix(b"k").count();
        assert_eq!(keys, 200 * 50);
    }
}
