//! Hash tables spread over [`SHARDS`] smaller ones, each growing on its own.
//!
//! A read-only view stores nothing it folds, so its sets and maps grow to hundreds of thousands
//! of entries between two fresh views. One hash table growing past its load rehashes every
//! entry at once, under the view's write guard: at 115,000 and 230,000 entries that took about
//! 70 to 190 ms on one step of the server's follower, with every reader waiting for it. Spread
//! over [`SHARDS`] tables, a growth rehashes a sixty-fourth of the entries. The tables fill
//! evenly, so their growths come close together (about one every hundred new entries near a
//! bound), but a step that adds a few hundred entries meets a few of them, not all.
//!
//! [`Spread`] is the core (a value's hash chosen by the caller); [`SpreadMap`] keys values by
//! member or claim id; [`super::DirtySet`] holds entity keys.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Tables the entries are spread over.
pub const SHARDS: usize = 64;

/// Entries spread over [`SHARDS`] hash tables by bits of their hash that neither a table's
/// bucket index nor its control bytes use. The caller hashes (with [`Spread::hash`]) and says
/// which entry is which; the hash of an entry must be the hash of its key.
#[derive(Clone)]
pub struct Spread<T> {
    hasher: foldhash::fast::RandomState,
    shards: Vec<HashTable<T>>,
    len: usize,
}

impl<T> Default for Spread<T> {
    fn default() -> Self {
        Spread {
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }
}

impl<T> Spread<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn hash(&self, key: impl Hash) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard(hash: u64) -> usize {
        // Bits 40..46: a table's bucket index takes the low bits, its control bytes the top 7.
        (hash >> 40) as usize % SHARDS
    }

    #[inline]
    pub fn find(&self, hash: u64, is: impl FnMut(&T) -> bool) -> Option<&T> {
        self.shards[Self::shard(hash)].find(hash, is)
    }

    #[inline]
    pub fn find_mut(&mut self, hash: u64, is: impl FnMut(&T) -> bool) -> Option<&mut T> {
        self.shards[Self::shard(hash)].find_mut(hash, is)
    }

    /// Adds `value`, which is not there; `key` names an entry's key for rehashing it.
    #[inline]
    pub fn insert_new<K: Hash + ?Sized>(&mut self, hash: u64, value: T, key: impl Fn(&T) -> &K) {
        let hasher = &self.hasher;
        self.shards[Self::shard(hash)]
            .insert_unique(hash, value, |held| hasher.hash_one(key(held)));
        self.len += 1;
    }

    /// The entry `is` picks, or the room for it (one probe); with the count of entries, which
    /// the caller raises when it fills the room.
    #[inline]
    pub fn entry<K: Hash + ?Sized>(
        &mut self,
        hash: u64,
        is: impl FnMut(&T) -> bool,
        key: impl Fn(&T) -> &K,
    ) -> (hashbrown::hash_table::Entry<'_, T>, &mut usize) {
        let hasher = &self.hasher;
        let table = &mut self.shards[Self::shard(hash)];
        (
            table.entry(hash, is, |held| hasher.hash_one(key(held))),
            &mut self.len,
        )
    }

    /// Removes the entry `is` picks, and returns it.
    #[inline]
    pub fn remove(&mut self, hash: u64, is: impl FnMut(&T) -> bool) -> Option<T> {
        let found = self.shards[Self::shard(hash)].find_entry(hash, is).ok()?;
        self.len -= 1;
        Some(found.remove().0)
    }

    /// Keeps the entries `keep` says to.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut T) -> bool) {
        for shard in &mut self.shards {
            shard.retain(&mut keep);
        }
        self.len = self.shards.iter().map(HashTable::len).sum();
    }

    pub fn clear(&mut self) {
        self.shards.iter_mut().for_each(HashTable::clear);
        self.len = 0;
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, HashTable<T>>> {
        self.shards.iter().flatten()
    }

    /// Every entry, taken out.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        self.shards.iter_mut().flat_map(HashTable::drain)
    }

    pub fn into_entries(self) -> std::iter::Flatten<std::vec::IntoIter<HashTable<T>>> {
        self.shards.into_iter().flatten()
    }
}

/// A map from string ids (members, claims) to values, spread over [`SHARDS`] tables: the
/// state's members and transactions.
#[derive(Clone)]
pub struct SpreadMap<V> {
    entries: Spread<(String, V)>,
}

impl<V> Default for SpreadMap<V> {
    fn default() -> Self {
        SpreadMap {
            entries: Spread::default(),
        }
    }
}

fn key_of<V>(entry: &(String, V)) -> &str {
    entry.0.as_str()
}

impl<V> SpreadMap<V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        let hash = self.entries.hash(key);
        self.entries.find(hash, |e| e.0 == key).map(|e| &e.1)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let hash = self.entries.hash(key);
        self.entries
            .find_mut(hash, |e| e.0 == key)
            .map(|e| &mut e.1)
    }

    #[inline]
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`'s value; the value it replaces, if any.
    #[inline]
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        let hash = self.entries.hash(key.as_str());
        match self.entries.entry(hash, |e| e.0 == key, key_of) {
            (hashbrown::hash_table::Entry::Occupied(mut held), _) => {
                Some(std::mem::replace(&mut held.get_mut().1, value))
            }
            (hashbrown::hash_table::Entry::Vacant(room), len) => {
                room.insert((key, value));
                *len += 1;
                None
            }
        }
    }

    #[inline]
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let hash = self.entries.hash(key);
        self.entries.remove(hash, |e| e.0 == key).map(|e| e.1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut V) -> bool) {
        self.entries.retain(|e| keep(&e.0, &mut e.1));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|e| (&e.0, &e.1))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|e| &e.0)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.1)
    }

    /// Every entry, taken out.
    pub fn drain(&mut self) -> impl Iterator<Item = (String, V)> + '_ {
        self.entries.drain()
    }
}

impl<V> std::ops::Index<&str> for SpreadMap<V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        self.get(key)
            .unwrap_or_else(|| panic!("no entry for {key:?} in the map"))
    }
}

impl<V> Extend<(String, V)> for SpreadMap<V> {
    fn extend<I: IntoIterator<Item = (String, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl<V> FromIterator<(String, V)> for SpreadMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(entries: I) -> Self {
        let mut map = SpreadMap::default();
        map.extend(entries);
        map
    }
}

impl<'a, V> IntoIterator for &'a SpreadMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<
        std::iter::Flatten<std::slice::Iter<'a, HashTable<(String, V)>>>,
        fn(&'a (String, V)) -> (&'a String, &'a V),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|e| (&e.0, &e.1))
    }
}

impl<V> IntoIterator for SpreadMap<V> {
    type Item = (String, V);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<HashTable<(String, V)>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_entries()
    }
}

/// Two maps are equal when they hold the same entries (whatever their tables' seeds).
impl<V: PartialEq> PartialEq for SpreadMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<V: Eq> Eq for SpreadMap<V> {}

impl<V: std::fmt::Debug> std::fmt::Debug for SpreadMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_spread_over_the_tables_are_each_found_replaced_kept_and_removed() {
        let mut map = SpreadMap::default();
        for i in 0..10_000u32 {
            assert_eq!(map.insert(format!("M{i}"), i), None);
        }
        assert_eq!(
            map.insert("M7".into(), 70),
            Some(7),
            "the value it replaced"
        );
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.iter().count(), 10_000);
        let used = map.entries.shards.iter().filter(|t| !t.is_empty()).count();
        assert_eq!(used, SHARDS, "every table takes a share");
        assert_eq!(map.get("M7"), Some(&70));
        assert_eq!(map["M9999"], 9999);
        *map.get_mut("M1").unwrap() += 1;
        assert_eq!(map.get("M1"), Some(&2));
        assert!(!map.contains_key("C1"));
        assert_eq!(map.remove("M9999"), Some(9999));
        assert_eq!(map.remove("M9999"), None);
        assert_eq!(map.len(), 9_999);
        map.retain(|_, v| *v % 2 == 0);
        assert_eq!(map.len(), map.iter().count());
        assert!(map.values().all(|v| v % 2 == 0));
        let copy: SpreadMap<u32> = map.clone().into_iter().collect();
        assert_eq!(copy, map, "equal whatever the seeds");
        let mut other = SpreadMap::default();
        other.extend(map.drain());
        assert!(map.is_empty() && map.iter().next().is_none());
        assert_eq!(other, copy);
        other.insert("M0".into(), 1);
        assert_ne!(other, copy);
        other.clear();
        assert!(other.is_empty());
    }
}
