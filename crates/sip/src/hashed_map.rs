//! A hash map that keeps each entry's hash beside it, for the transaction tables.
//!
//! `std`'s `HashMap` hashes every key again when its table doubles. The
//! transaction tables' keys are `Arc`s of keys that own their strings, so that
//! meant two cache misses and a SipHash per entry: at a few hundred thousand
//! entries, one doubling paused the core thread for 10-50 ms
//! (docs/performance.md, "Pauses in the core thread, session 13"). Here a doubling
//! moves `(hash, key, value)` triples and reads nothing else. It costs 8 bytes per
//! entry.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, RandomState};

use hashbrown::HashTable;

/// Matches the entry of `key`, whose hash is `hash`.
fn entry_of<K: Borrow<Q>, V, Q: Eq + ?Sized>(hash: u64, key: &Q) -> impl Fn(&(u64, K, V)) -> bool {
    move |e| e.0 == hash && e.1.borrow() == key
}

pub struct HashedMap<K, V> {
    table: HashTable<(u64, K, V)>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V> Default for HashedMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq, V> HashedMap<K, V> {
    pub fn new() -> Self {
        HashedMap {
            table: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.table
            .find(hash, entry_of(hash, key))
            .map(|e| (&e.1, &e.2))
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).is_some()
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.table
            .find_mut(hash, entry_of(hash, key))
            .map(|e| &mut e.2)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let entry = self.table.find_entry(hash, entry_of(hash, key)).ok()?;
        Some(entry.remove().0.2)
    }

    /// Inserts `value` under `key`; the value it replaces, if any (the stored key
    /// is kept, as `HashMap::insert` does).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        if let Some(e) = self.table.find_mut(hash, entry_of(hash, &key)) {
            return Some(std::mem::replace(&mut e.2, value));
        }
        self.table.insert_unique(hash, (hash, key, value), |e| e.0);
        None
    }

    pub fn shrink_to(&mut self, min_capacity: usize) {
        self.table.shrink_to(min_capacity, |e| e.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn behaves_as_a_map_across_doublings_and_shrinks() {
        let mut m: HashedMap<Arc<str>, u32> = HashedMap::new();
        for i in 0..50_000u32 {
            assert_eq!(m.insert(Arc::from(format!("k{i}")), i), None);
        }
        assert_eq!(m.len(), 50_000);
        assert_eq!(m.insert(Arc::from("k7"), 70), Some(7));
        assert_eq!(m.get("k7"), Some(&70));
        assert_eq!(
            m.get_key_value("k49999").map(|(k, v)| (&**k, *v)),
            Some(("k49999", 49_999))
        );
        if let Some(v) = m.get_mut("k8") {
            *v = 80;
        }
        assert_eq!(m.get("k8"), Some(&80));
        assert!(!m.contains_key("k50000"));
        for i in 0..49_000u32 {
            assert!(m.remove(format!("k{i}").as_str()).is_some(), "{i}");
        }
        assert_eq!(m.remove("k0"), None);
        let before = m.capacity();
        m.shrink_to(2 * m.len());
        assert!(m.capacity() < before);
        assert_eq!(m.len(), 1_000);
        assert!((49_000..50_000u32).all(|i| m.get(format!("k{i}").as_str()) == Some(&i)));
    }
}
