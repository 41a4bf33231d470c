//! [`DirtySet`]: the entities a fold changed and has not stored yet.
//!
//! A read-only view stores nothing it folds, so its set grows to hundreds of thousands of keys
//! between two fresh views. One hash table growing past its load rehashes every key at once: at
//! 115,000 and 230,000 keys that took about 70 to 190 ms on one step of the server's follower,
//! with every reader waiting for it. The keys are spread over [`SHARDS`] tables instead, each
//! growing on its own: a growth rehashes a sixty-fourth of them. The tables fill evenly, so
//! their growths come close together (about one every hundred new keys near a bound), but a
//! step that adds a few hundred keys meets a few of them, not all.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{EntityKey, EntityRef};

/// Tables the keys are spread over.
pub const SHARDS: usize = 64;

/// A set of [`EntityKey`]s looked up by [`EntityRef`] (no owned key built for a key already
/// there), spread over [`SHARDS`] hash tables by bits of the key's hash that neither a table's
/// bucket index nor its control bytes use.
#[derive(Clone)]
pub struct DirtySet {
    hasher: foldhash::fast::RandomState,
    shards: Vec<HashTable<EntityKey>>,
    len: usize,
}

impl Default for DirtySet {
    fn default() -> Self {
        DirtySet {
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }
}

impl DirtySet {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash(&self, key: EntityRef<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(hash: u64) -> usize {
        // Bits 40..46: a table's bucket index takes the low bits, its control bytes the top 7.
        (hash >> 40) as usize % SHARDS
    }

    pub fn contains(&self, key: EntityRef<'_>) -> bool {
        let hash = self.hash(key);
        self.shards[Self::shard(hash)]
            .find(hash, |held| held.as_ref() == key)
            .is_some()
    }

    /// Adds `key` (its owned form built only if it is not there); whether it was new.
    pub fn insert_ref(&mut self, key: EntityRef<'_>) -> bool {
        let new = !self.contains(key);
        if new {
            self.insert_new(key.to_key());
        }
        new
    }

    /// Adds `key`; whether it was new.
    pub fn insert(&mut self, key: EntityKey) -> bool {
        let new = !self.contains(key.as_ref());
        if new {
            self.insert_new(key);
        }
        new
    }

    /// Adds `key`, which is not there.
    fn insert_new(&mut self, key: EntityKey) {
        let hash = self.hash(key.as_ref());
        let hasher = &self.hasher;
        self.shards[Self::shard(hash)]
            .insert_unique(hash, key, |held| hasher.hash_one(held.as_ref()));
        self.len += 1;
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: EntityRef<'_>) -> bool {
        let hash = self.hash(key);
        match self.shards[Self::shard(hash)].find_entry(hash, |held| held.as_ref() == key) {
            Ok(found) => {
                found.remove();
                self.len -= 1;
                true
            }
            Err(_) => false,
        }
    }

    pub fn clear(&mut self) {
        self.shards.iter_mut().for_each(HashTable::clear);
        self.len = 0;
    }

    /// The keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &EntityKey> {
        self.into_iter()
    }
}

impl Extend<EntityKey> for DirtySet {
    fn extend<I: IntoIterator<Item = EntityKey>>(&mut self, keys: I) {
        for key in keys {
            self.insert(key);
        }
    }
}

impl IntoIterator for DirtySet {
    type Item = EntityKey;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<HashTable<EntityKey>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.shards.into_iter().flatten()
    }
}

impl<'a> IntoIterator for &'a DirtySet {
    type Item = &'a EntityKey;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, HashTable<EntityKey>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.shards.iter().flatten()
    }
}

/// Two sets are equal when they hold the same keys (whatever their tables' seeds).
impl PartialEq for DirtySet {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|key| other.contains(key.as_ref()))
    }
}

impl Eq for DirtySet {}

impl std::fmt::Debug for DirtySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_tables_are_each_found_once_and_removed() {
        let mut set = DirtySet::default();
        for i in 0..10_000 {
            assert!(set.insert_ref(EntityRef::Member(&format!("M{i}"))));
            assert!(set.insert(EntityKey::Tx(format!("C{i}"))));
        }
        assert!(!set.insert_ref(EntityRef::Member("M7")));
        assert!(!set.insert(EntityKey::Tx("C7".into())));
        assert_eq!(set.len(), 20_000);
        assert_eq!(set.iter().count(), 20_000);
        let used = set.shards.iter().filter(|t| !t.is_empty()).count();
        assert_eq!(used, SHARDS, "every table takes a share");
        assert!(set.contains(EntityRef::Member("M9999")));
        assert!(!set.contains(EntityRef::Tx("M9999")));
        assert!(set.remove(EntityRef::Member("M9999")));
        assert!(!set.remove(EntityRef::Member("M9999")));
        assert_eq!(set.len(), 19_999);
        let mut other = DirtySet::default();
        other.extend(set.clone());
        assert_eq!(other, set, "equal whatever the seeds");
        other.remove(EntityRef::Tx("C1"));
        assert_ne!(other, set);
        set.clear();
        assert!(set.is_empty() && set.iter().next().is_none());
    }
}
