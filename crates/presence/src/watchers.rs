//! Index of presence subscriptions (sans-IO).
//!
//! The frontend owns the SUBSCRIBE dialogs and sends the NOTIFYs; this only
//! answers "who watches this entity?" and "which subscriptions have expired?".
//! Iteration orders are deterministic (sorted by id).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Bounds of a [`Watchers`] index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherLimits {
    /// Most subscriptions one watcher may hold at once.
    pub max_subscriptions_per_watcher: usize,
    /// Most subscriptions in total.
    pub max_subscriptions: usize,
}

impl Default for WatcherLimits {
    fn default() -> Self {
        WatcherLimits {
            max_subscriptions_per_watcher: 1000,
            max_subscriptions: 200_000,
        }
    }
}

/// One indexed subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Address of the subscriber.
    pub watcher: String,
    /// Address of the watched presentity.
    pub entity: String,
    /// When the subscription expires unless refreshed.
    pub expires_at: Instant,
}

/// Why a subscription could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// A subscription with this id is already indexed.
    #[error("subscription id already in use")]
    DuplicateId,
    /// The watcher already holds the maximum number of subscriptions.
    #[error("too many subscriptions for this watcher")]
    TooManyForWatcher,
    /// The index is full.
    #[error("subscription capacity exhausted")]
    CapacityExhausted,
}

/// Subscription index: entity → subscription ids, id → [`Subscription`].
///
/// `Id` is whatever the frontend uses to find the dialog (e.g. a dialog-id
/// string or a numeric handle).
#[derive(Debug, Clone)]
pub struct Watchers<Id> {
    limits: WatcherLimits,
    subscriptions: BTreeMap<Id, Subscription>,
    by_entity: BTreeMap<String, BTreeSet<Id>>,
    per_watcher: BTreeMap<String, usize>,
    expiry: BTreeSet<(Instant, Id)>,
}

impl<Id: Ord + Clone> Watchers<Id> {
    /// Creates an empty index.
    pub fn new(limits: WatcherLimits) -> Self {
        Watchers {
            limits,
            subscriptions: BTreeMap::new(),
            by_entity: BTreeMap::new(),
            per_watcher: BTreeMap::new(),
            expiry: BTreeSet::new(),
        }
    }

    /// Indexes a new subscription of `watcher` to `entity`.
    pub fn add(
        &mut self,
        id: Id,
        watcher: &str,
        entity: &str,
        expires_at: Instant,
    ) -> Result<(), WatchError> {
        if self.subscriptions.contains_key(&id) {
            return Err(WatchError::DuplicateId);
        }
        if self.subscriptions.len() >= self.limits.max_subscriptions {
            return Err(WatchError::CapacityExhausted);
        }
        let held = self.per_watcher.get(watcher).copied().unwrap_or(0);
        if held >= self.limits.max_subscriptions_per_watcher {
            return Err(WatchError::TooManyForWatcher);
        }
        *self.per_watcher.entry(watcher.to_owned()).or_insert(0) += 1;
        self.by_entity
            .entry(entity.to_owned())
            .or_default()
            .insert(id.clone());
        self.expiry.insert((expires_at, id.clone()));
        self.subscriptions.insert(
            id,
            Subscription {
                watcher: watcher.to_owned(),
                entity: entity.to_owned(),
                expires_at,
            },
        );
        Ok(())
    }

    /// Moves the expiry of subscription `id`. Returns `false` if unknown.
    pub fn refresh(&mut self, id: &Id, expires_at: Instant) -> bool {
        let Some(sub) = self.subscriptions.get_mut(id) else {
            return false;
        };
        self.expiry.remove(&(sub.expires_at, id.clone()));
        sub.expires_at = expires_at;
        self.expiry.insert((expires_at, id.clone()));
        true
    }

    /// Removes subscription `id`, returning it if it was indexed.
    pub fn remove(&mut self, id: &Id) -> Option<Subscription> {
        let sub = self.subscriptions.remove(id)?;
        self.expiry.remove(&(sub.expires_at, id.clone()));
        if let Some(ids) = self.by_entity.get_mut(&sub.entity) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_entity.remove(&sub.entity);
            }
        }
        if let Some(count) = self.per_watcher.get_mut(&sub.watcher) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_watcher.remove(&sub.watcher);
            }
        }
        Some(sub)
    }

    /// Removes every subscription whose expiry is at or before `now` and
    /// returns their ids in expiry order.
    pub fn expire(&mut self, now: Instant) -> Vec<Id> {
        let mut expired = Vec::new();
        while let Some((at, _)) = self.expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, id)) = self.expiry.pop_first() {
                expired.push(id);
            }
        }
        for id in &expired {
            self.remove(id);
        }
        expired
    }

    /// The earliest subscription expiry, for the caller's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Subscriptions watching `entity`, sorted by id.
    pub fn watchers_of<'a>(
        &'a self,
        entity: &str,
    ) -> impl Iterator<Item = (&'a Id, &'a Subscription)> + 'a {
        self.by_entity
            .get(entity)
            .into_iter()
            .flatten()
            .filter_map(|id| self.subscriptions.get(id).map(|sub| (id, sub)))
    }

    /// The subscription with this id.
    pub fn get(&self, id: &Id) -> Option<&Subscription> {
        self.subscriptions.get(id)
    }

    /// Number of subscriptions `watcher` holds.
    pub fn count_for_watcher(&self, watcher: &str) -> usize {
        self.per_watcher.get(watcher).copied().unwrap_or(0)
    }

    /// Total number of subscriptions.
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// `true` if nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }
}

impl<Id: Ord + Clone> Default for Watchers<Id> {
    fn default() -> Self {
        Self::new(WatcherLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BOB: &str = "sip:bob@example.com";
    const ALICE: &str = "sip:alice@example.com";
    const CAROL: &str = "sip:carol@example.com";

    fn ids(w: &Watchers<u32>, entity: &str) -> Vec<u32> {
        w.watchers_of(entity).map(|(id, _)| *id).collect()
    }

    #[test]
    fn add_lookup_remove() {
        let now = Instant::now();
        let mut w = Watchers::default();
        w.add(2, ALICE, BOB, now + Duration::from_secs(60)).unwrap();
        w.add(1, CAROL, BOB, now + Duration::from_secs(30)).unwrap();
        w.add(3, ALICE, CAROL, now + Duration::from_secs(90))
            .unwrap();
        assert_eq!(ids(&w, BOB), vec![1, 2]);
        assert_eq!(ids(&w, CAROL), vec![3]);
        assert!(ids(&w, ALICE).is_empty());
        assert_eq!(w.count_for_watcher(ALICE), 2);
        let (_, sub) = w.watchers_of(BOB).next().unwrap();
        assert_eq!(sub.watcher, CAROL);
        assert_eq!(w.add(1, ALICE, BOB, now), Err(WatchError::DuplicateId));

        let removed = w.remove(&2).unwrap();
        assert_eq!(removed.entity, BOB);
        assert_eq!(ids(&w, BOB), vec![1]);
        assert_eq!(w.count_for_watcher(ALICE), 1);
        assert_eq!(w.remove(&2), None);
        assert_eq!(w.len(), 2);
        assert_eq!(w.get(&3).unwrap().entity, CAROL);
    }

    #[test]
    fn refresh_and_expire() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut w = Watchers::default();
        w.add(1, ALICE, BOB, now + s(30)).unwrap();
        w.add(2, CAROL, BOB, now + s(60)).unwrap();
        w.add(3, CAROL, ALICE, now + s(10)).unwrap();
        assert_eq!(w.next_expiry(), Some(now + s(10)));
        assert!(w.refresh(&1, now + s(120)));
        assert!(!w.refresh(&9, now));
        assert_eq!(w.expire(now + s(9)), Vec::<u32>::new());
        assert_eq!(w.expire(now + s(60)), vec![3, 2]);
        assert_eq!(ids(&w, BOB), vec![1]);
        assert!(ids(&w, ALICE).is_empty());
        assert_eq!(w.count_for_watcher(CAROL), 0);
        assert_eq!(w.next_expiry(), Some(now + s(120)));
        assert_eq!(w.expire(now + s(120)), vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.next_expiry(), None);
    }

    #[test]
    fn per_watcher_and_total_limits() {
        let now = Instant::now();
        let mut w = Watchers::new(WatcherLimits {
            max_subscriptions_per_watcher: 2,
            max_subscriptions: 3,
        });
        w.add(1, ALICE, BOB, now).unwrap();
        w.add(2, ALICE, CAROL, now).unwrap();
        assert_eq!(
            w.add(3, ALICE, "sip:dave@example.com", now),
            Err(WatchError::TooManyForWatcher)
        );
        w.add(3, CAROL, BOB, now).unwrap();
        assert_eq!(
            w.add(4, BOB, ALICE, now),
            Err(WatchError::CapacityExhausted)
        );
        // Freeing one lets the watcher subscribe again.
        w.remove(&1);
        w.add(5, ALICE, "sip:dave@example.com", now).unwrap();
        assert_eq!(w.count_for_watcher(ALICE), 2);
    }

    #[test]
    fn string_ids_work() {
        let now = Instant::now();
        let mut w: Watchers<String> = Watchers::default();
        w.add("call-1;tag=a".to_owned(), ALICE, BOB, now).unwrap();
        let got: Vec<&String> = w.watchers_of(BOB).map(|(id, _)| id).collect();
        assert_eq!(got, vec!["call-1;tag=a"]);
    }
}
