//! [`DirtySet`]: the entities a fold changed and has not stored yet, spread over
//! [`SHARDS`](super::spread::SHARDS) tables (see [`super::spread`]: a read-only view's set grows
//! to hundreds of thousands of keys, and one table would rehash them all at once).

use hashbrown::HashTable;

use super::spread::Spread;
use super::{EntityKey, EntityRef};

/// A set of [`EntityKey`]s looked up by [`EntityRef`] (no owned key built for a key already
/// there).
#[derive(Clone, Default)]
pub struct DirtySet {
    keys: Spread<EntityKey>,
}

/// A key as it is hashed when its table grows (an `EntityKey` hashes as its `EntityRef`).
fn itself(key: &EntityKey) -> &EntityKey {
    key
}

impl DirtySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    #[inline]
    pub fn contains(&self, key: EntityRef<'_>) -> bool {
        let hash = self.keys.hash(key);
        self.keys.find(hash, |held| held.as_ref() == key).is_some()
    }

    /// Adds `key` (its owned form built only if it is not there); whether it was new.
    #[inline]
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
        let hash = self.keys.hash(key.as_ref());
        self.keys.insert_new(hash, key, itself);
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: EntityRef<'_>) -> bool {
        let hash = self.keys.hash(key);
        self.keys
            .remove(hash, |held| held.as_ref() == key)
            .is_some()
    }

    pub fn clear(&mut self) {
        self.keys.clear();
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
        self.keys.into_entries()
    }
}

impl<'a> IntoIterator for &'a DirtySet {
    type Item = &'a EntityKey;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, HashTable<EntityKey>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

/// Two sets are equal when they hold the same keys (whatever their tables' seeds).
impl PartialEq for DirtySet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|key| other.contains(key.as_ref()))
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
