//! Merging runs: the k-way merge of sorted sources and the policy that says which runs to
//! merge next. Not here: reading or writing the entries (each store's own layout).
//!
//! Invariant: given sources each in strictly increasing key order, [`merge_next`] hands out
//! every key once, in strictly increasing order, from the newest source holding it.

use std::ops::Range;

use crate::LogError;

/// A source of entries in strictly increasing key order (one run, read sequentially).
pub(crate) trait SortedSource {
    type Key: Ord + ?Sized;
    /// The key of the current entry; `None` once the source is exhausted.
    fn key(&self) -> Option<&Self::Key>;
    /// Moves to the next entry.
    fn advance(&mut self) -> Result<(), LogError>;
}

/// One step of a k-way merge of `sources`, oldest first: the index of the source whose
/// current entry comes next in key order (of sources at the same key, the newest: it wins
/// the key), after moving every older source at that key past it. `None` when all are
/// exhausted. The caller takes the entry and advances that source.
#[inline]
pub(crate) fn merge_next<S: SortedSource>(sources: &mut [S]) -> Result<Option<usize>, LogError> {
    let mut next: Option<usize> = None;
    // Whether an older source is at the key of `next` (then it must be moved past it).
    let mut tie = false;
    for i in 0..sources.len() {
        let Some(key) = sources[i].key() else {
            continue;
        };
        let order = match next.and_then(|n| sources[n].key()) {
            None => std::cmp::Ordering::Less,
            Some(least) => key.cmp(least),
        };
        // Later sources are newer: on equal keys the later one wins.
        match order {
            std::cmp::Ordering::Less => (next, tie) = (Some(i), false),
            std::cmp::Ordering::Equal => (next, tie) = (Some(i), true),
            std::cmp::Ordering::Greater => {}
        }
    }
    let Some(next) = next else {
        return Ok(None);
    };
    if tie {
        let (older, rest) = sources.split_at_mut(next);
        let key = rest[0].key();
        for source in older {
            if source.key().is_some() && source.key() == key {
                source.advance()?;
            }
        }
    }
    Ok(Some(next))
}

/// Which adjacent runs to merge next, given the sizes of the live runs (oldest first, in
/// bytes or entries): the newest two while the newest is at least half the size of the one
/// before it (so sizes more than double from newest to oldest, and there are about
/// log2(total / smallest) runs); else, above `runs_max` runs, the adjacent pair smallest
/// together (never the whole store); else none.
pub(crate) fn next_merge(sizes: &[u64], runs_max: usize) -> Option<Range<usize>> {
    let n = sizes.len();
    if n >= 2 && 2 * sizes[n - 1] >= sizes[n - 2] {
        return Some(n - 2..n);
    }
    if n > runs_max {
        let first = (0..n - 1).min_by_key(|&i| sizes[i] + sizes[i + 1])?;
        return Some(first..first + 2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Source(Vec<u32>, usize);

    impl SortedSource for Source {
        type Key = u32;
        fn key(&self) -> Option<&u32> {
            self.0.get(self.1)
        }
        fn advance(&mut self) -> Result<(), LogError> {
            self.1 += 1;
            Ok(())
        }
    }

    #[test]
    fn the_merge_yields_each_key_once_from_the_newest_source() {
        let mut sources = vec![
            Source(vec![1, 3, 5, 7], 0),
            Source(vec![3, 4], 0),
            Source(vec![], 0),
            Source(vec![0, 3, 9], 0),
        ];
        let mut out = Vec::new();
        while let Some(i) = merge_next(&mut sources).expect("merge") {
            out.push((*sources[i].key().expect("key"), i));
            sources[i].advance().expect("advance");
        }
        let expected = vec![(0, 3), (1, 0), (3, 3), (4, 1), (5, 0), (7, 0), (9, 3)];
        assert_eq!(out, expected);
    }

    #[test]
    fn the_policy_doubles_sizes_and_caps_the_count() {
        assert_eq!(next_merge(&[], 10), None);
        assert_eq!(next_merge(&[5], 10), None);
        assert_eq!(next_merge(&[100, 50], 10), Some(0..2));
        assert_eq!(next_merge(&[100, 49], 10), None);
        assert_eq!(next_merge(&[100, 40, 30, 10], 3), Some(2..4));
        assert_eq!(next_merge(&[100, 40, 30, 14], 3), Some(2..4));
        assert_eq!(next_merge(&[100, 40, 15, 7], 3), Some(2..4));
        assert_eq!(next_merge(&[100, 8, 3, 1], 3), Some(2..4));
        assert_eq!(next_merge(&[9, 8, 30, 14], 3), Some(0..2));
    }
}
