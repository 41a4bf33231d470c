//! The projection store of a read-only log ([`crate::Log::open_read_only`]): the runs store
//! as a writer left it, opened without writing anything (`open_base`), under a layer in
//! memory that takes every write.
//!
//! A reader folds the records between the store's checkpoint and the durable end with the
//! projection layer's own code, which stores what it folded: here that lands in the layer,
//! so the reader's answers see the records the store does not hold yet, and nothing reaches
//! the disk. `clear` hides the base (a reader that cannot trust the store folds from the
//! start, in memory).
//!
//! Invariants as the code holds them: nothing in this module writes, renames or deletes a
//! file; a key in the layer (a value or a delete) wins over the base; the base is a snapshot
//! a manifest on disk named, every run of it opened before it is used. A run the writer's
//! merge deleted between reading the manifest and opening the run is met by reading the
//! manifest again, at most [`MANIFEST_READS_MAX`] times; a manifest or run that fails its
//! checks, or a store that stays unreadable, is treated as no store (the reader folds from
//! the start).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use super::manifest::{Manifest, MANIFEST};
use super::run_file::{load_run, KvWrite};
use super::runs::RunsKv;
use crate::error::LogError;
use crate::files;

/// Reads of the manifest before a store whose runs keep vanishing counts as unusable.
pub(crate) const MANIFEST_READS_MAX: u32 = 16;

/// A key and its value, as a scan yields them.
type KvPair = (Vec<u8>, Vec<u8>);

/// [`OverlayKv::scan_prefix`]'s pairs: the base's and the layer's merged in key order, the
/// layer's winning (an absent value there is a deletion); after an error of the base, nothing.
pub(crate) struct OverlayScan {
    base: Option<std::iter::Peekable<super::runs::RunsScan>>,
    layer: std::iter::Peekable<std::vec::IntoIter<KvWrite>>,
    failed: bool,
}

impl Iterator for OverlayScan {
    type Item = Result<KvPair, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        loop {
            if self.failed {
                return None;
            }
            let base = self.base.as_mut().and_then(|b| b.peek());
            let order = match (base, self.layer.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => {
                    self.failed = true;
                    return self.base.as_mut().and_then(Iterator::next);
                }
                (Some(Ok((key, _))), Some((above, _))) => key.cmp(above),
                (Some(Ok(_)), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
            };
            if order == Ordering::Less {
                return self.base.as_mut().and_then(Iterator::next);
            }
            if order == Ordering::Equal {
                // The layer's entry replaces the base's.
                self.base.as_mut().and_then(Iterator::next);
            }
            if let Some((key, Some(value))) = self.layer.next() {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[derive(Debug, Default)]
struct Layer {
    /// Writes since open; `None` is a delete.
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `clear` was called: the base is not read any more.
    base_hidden: bool,
    /// The checkpoint written last, if any write set one.
    checkpoint: Option<Option<u64>>,
}

/// A read-only base under a layer in memory. Clones share the layer.
#[derive(Clone, Debug)]
pub(crate) struct OverlayKv {
    base: Option<RunsKv>,
    layer: Arc<RwLock<Layer>>,
}

impl OverlayKv {
    /// Over `base` (`None`: over nothing).
    pub(crate) fn new(base: Option<RunsKv>) -> OverlayKv {
        OverlayKv {
            base,
            layer: Arc::default(),
        }
    }

    fn layer(&self) -> std::sync::RwLockReadGuard<'_, Layer> {
        self.layer.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn layer_mut(&self) -> std::sync::RwLockWriteGuard<'_, Layer> {
        self.layer.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn base(&self) -> Option<&RunsKv> {
        self.base.as_ref().filter(|_| !self.layer().base_hidden)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        if let Some(found) = self.layer().entries.get(key) {
            return Ok(found.clone());
        }
        match self.base() {
            Some(base) => base.get(key),
            None => Ok(None),
        }
    }

    /// The pairs under `prefix`, in key order, the layer winning: the base's streamed, the
    /// layer's (what changed since the open) copied when the scan starts, so that a scan of
    /// every member holds one member at a time, not the store.
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> OverlayScan {
        let layer: Vec<KvWrite> = self
            .layer()
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        OverlayScan {
            base: self.base().map(|base| base.scan_prefix(prefix).peekable()),
            layer: layer.into_iter().peekable(),
            failed: false,
        }
    }

    pub(crate) fn checkpoint(&self) -> Option<u64> {
        let layer = self.layer();
        match layer.checkpoint {
            Some(checkpoint) => checkpoint,
            None if layer.base_hidden => None,
            None => self.base.as_ref().and_then(RunsKv::checkpoint),
        }
    }

    /// Takes `writes` into the layer (the last write of a key counts); sets the checkpoint if
    /// one is given.
    pub(crate) fn apply(&self, writes: Vec<KvWrite>, checkpoint: Option<u64>) {
        let mut layer = self.layer_mut();
        for (key, value) in writes {
            layer.entries.insert(key, value);
        }
        if checkpoint.is_some() {
            layer.checkpoint = Some(checkpoint);
        }
    }

    /// Empties the layer and hides the base: the store holds nothing, and no checkpoint.
    pub(crate) fn clear(&self) {
        let mut layer = self.layer_mut();
        layer.entries.clear();
        layer.base_hidden = true;
        layer.checkpoint = Some(None);
    }
}

/// Opens the runs store in `dir` as a writer left it, writing nothing: `None` if there is
/// none, or it is unusable (see the module documentation).
pub(crate) fn open_base(dir: &Path) -> Result<Option<RunsKv>, LogError> {
    let manifest_path = dir.join(MANIFEST);
    for _ in 0..MANIFEST_READS_MAX {
        let bytes = match files::read(&manifest_path, "reading projection manifest") {
            Ok(bytes) => bytes,
            Err(e) if files::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(manifest) = Manifest::decode(&bytes) else {
            return Ok(None);
        };
        let mut runs = Vec::with_capacity(manifest.runs.len());
        let mut vanished = false;
        for &(seq, bytes) in &manifest.runs {
            match load_run(dir, seq, bytes) {
                Ok(Ok(run)) => runs.push(Arc::new(run)),
                Ok(Err(_unusable)) => return Ok(None),
                Err(e) if files::is_not_found(&e) => {
                    vanished = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !vanished {
            return Ok(Some(RunsKv::of_runs(dir, runs, manifest.checkpoint)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(scan: OverlayScan) -> Vec<(String, String)> {
        scan.map(|pair| {
            let (key, value) = pair.expect("no error");
            (
                String::from_utf8(key).unwrap(),
                String::from_utf8(value).unwrap(),
            )
        })
        .collect()
    }

    #[test]
    fn a_scan_merges_the_layer_into_the_base_in_key_order_the_layer_winning() {
        let dir = tempfile::tempdir().unwrap();
        let (base, _) = RunsKv::open(dir.path()).unwrap();
        let write = |key: &str, value: Option<&str>| {
            (
                key.as_bytes().to_vec(),
                value.map(|v| v.as_bytes().to_vec()),
            )
        };
        base.apply(
            vec![
                write("a1", Some("base")),
                write("a3", Some("base")),
                write("a5", Some("base")),
                write("b1", Some("base")),
            ],
            None,
        )
        .unwrap();
        let overlay = OverlayKv::new(Some(base));
        overlay.apply(
            vec![
                write("a0", Some("layer")),
                write("a2", Some("layer")),
                write("a3", Some("layer")),
                write("a5", None),
                write("a9", Some("layer")),
                write("c1", Some("layer")),
            ],
            None,
        );
        let got = pairs(overlay.scan_prefix(b"a"));
        let expected = [
            ("a0", "layer"),
            ("a1", "base"),
            ("a2", "layer"),
            ("a3", "layer"),
            ("a9", "layer"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(got, expected);
        assert_eq!(pairs(overlay.scan_prefix(b"b")).len(), 1);
        assert_eq!(pairs(overlay.scan_prefix(b"z")).len(), 0);
        overlay.clear();
        assert!(pairs(overlay.scan_prefix(b"")).is_empty());
    }
}
