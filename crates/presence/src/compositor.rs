//! Event State Compositor for the presence event package (RFC 3903), sans-IO.
//!
//! Holds two kinds of presence sources per entity (address of record):
//!
//! * **publications** — soft state created by PUBLISH, identified by an
//!   entity-tag and kept until they expire or are removed; these are the
//!   user's *explicit* state (like Lync's manual `userState`);
//! * **manual state** — an explicit state without expiry, set by the front end
//!   for clients that publish their own presence another way (a Lync client's
//!   `userState`/`note` categories, [`Compositor::set_manual_state`]); it
//!   counts like a publication, but only while the entity has an endpoint;
//! * **endpoint states** — *implicit* state derived from registrations
//!   ([`Compositor::set_endpoint_state`] / [`Compositor::clear_endpoint`]);
//!   a registered endpoint that published nothing is simply
//!   [`Availability::Online`](crate::Availability::Online).
//!
//! # Aggregation rule
//!
//! [`Compositor::aggregate`] combines the sources of one entity:
//!
//! 1. If the entity has at least one publication (or a manual state and a
//!    registered endpoint), only those are considered (an explicit state such as "away" or "appear offline" beats
//!    the implicit "registered, therefore online" — as a manual user state
//!    beats machine state in Lync). Otherwise the endpoint states are
//!    considered. With neither, the entity is [`Availability::Offline`](crate::Availability::Offline).
//! 2. The availability is the one with the highest aggregation precedence
//!    among the considered sources ([`Availability::precedence`](crate::Availability::precedence):
//!    `DoNotDisturb > Busy > BusyIdle > Online > Idle > BeRightBack > Away >
//!    Offline`): a user busy on one device is busy, and the most active device
//!    wins otherwise.
//! 3. The activity comes from the winning source; among several sources with
//!    the winning availability, the most recently modified one.
//! 4. The note comes from the most recently modified considered source that
//!    has one.
//! 5. The aggregate carries no endpoint information.
//!
//! Entity names are used verbatim as keys; callers normalise them (e.g.
//! `sip:user@domain`, lowercase domain) before calling.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::etag::TagGenerator;
use crate::model::PresenceState;

/// Bounds and expiry policy of a [`Compositor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositorLimits {
    /// Shortest accepted non-zero `Expires`; shorter requests fail with
    /// [`PublishError::IntervalTooBrief`] (423).
    pub min_expires: u32,
    /// Longest granted `Expires`; longer requests are shortened to this.
    pub max_expires: u32,
    /// Most live publications per entity.
    pub max_publications_per_entity: usize,
    /// Most live publications in total.
    pub max_publications: usize,
    /// Most endpoint states per entity.
    pub max_endpoints_per_entity: usize,
    /// Most entities with any state.
    pub max_entities: usize,
}

impl Default for CompositorLimits {
    fn default() -> Self {
        CompositorLimits {
            min_expires: 60,
            max_expires: 43_200,
            max_publications_per_entity: 16,
            max_publications: 100_000,
            max_endpoints_per_entity: 32,
            max_entities: 100_000,
        }
    }
}

/// One PUBLISH request, as far as the compositor is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest<'a> {
    /// Value of `SIP-If-Match`, if present.
    pub etag: Option<&'a str>,
    /// Parsed body, if the request carried one.
    pub body: Option<PresenceState>,
    /// Requested expiration in seconds (the caller applies the default when
    /// the request had no `Expires`); `0` removes the publication.
    pub expires: u32,
}

/// Result of a successful PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Entity-tag for the `SIP-ETag` response header.
    pub etag: String,
    /// Granted expiration (seconds) for the `Expires` response header.
    pub expires: u32,
    /// `true` if the entity's aggregate state changed (watchers need a NOTIFY).
    pub changed: bool,
}

/// Why a PUBLISH was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Initial publication without a body (RFC 3903 §6 step 4 → 400).
    #[error("initial PUBLISH without a body")]
    MissingBody,
    /// `SIP-If-Match` names no live publication of this entity (→ 412).
    #[error("entity-tag does not match a live publication")]
    ConditionalRequestFailed,
    /// Non-zero `Expires` below the minimum (→ 423 with `Min-Expires`).
    #[error("expiration too brief (minimum {min_expires} s)")]
    IntervalTooBrief {
        /// Value for the `Min-Expires` header.
        min_expires: u32,
    },
    /// The entity already has the maximum number of publications (→ 403).
    #[error("too many publications for this entity")]
    TooManyPublications,
    /// The server-wide publication or entity limit is reached (→ 503).
    #[error("presence capacity exhausted")]
    CapacityExhausted,
}

impl PublishError {
    /// The SIP status code to answer with.
    pub const fn status_code(&self) -> u16 {
        match self {
            PublishError::MissingBody => 400,
            PublishError::ConditionalRequestFailed => 412,
            PublishError::IntervalTooBrief { .. } => 423,
            PublishError::TooManyPublications => 403,
            PublishError::CapacityExhausted => 503,
        }
    }
}

/// Why an endpoint state could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The entity already has the maximum number of endpoint states.
    #[error("too many endpoints for this entity")]
    TooManyEndpoints,
    /// The server-wide entity limit is reached.
    #[error("presence capacity exhausted")]
    CapacityExhausted,
}

#[derive(Debug, Clone)]
struct Publication {
    entity: String,
    state: PresenceState,
    expires_at: Instant,
    /// Sequence number of the last initial publication or modification.
    modified: u64,
}

#[derive(Debug, Clone)]
struct EndpointState {
    state: PresenceState,
    modified: u64,
}

#[derive(Debug, Clone, Default)]
struct Entity {
    /// Entity-tags of the live publications.
    publications: BTreeSet<String>,
    endpoints: Endpoints,
    /// Boxed: most entities never have one, and every registered user has an entity.
    manual: Option<Box<EndpointState>>,
}

/// The endpoint states of one entity, sorted by endpoint id. A vector rather than a
/// `BTreeMap`: an entity has one or a few endpoints (at most
/// `max_endpoints_per_entity`), and a B-tree allocates a whole node (room for 11
/// entries, about 1.5 kB here) for the first one, per registered user.
#[derive(Debug, Clone, Default)]
struct Endpoints(Vec<(Box<str>, EndpointState)>);

impl Endpoints {
    fn find(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(id))
    }

    fn contains_key(&self, id: &str) -> bool {
        self.find(id).is_ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn insert(&mut self, id: &str, state: EndpointState) {
        match self.find(id) {
            Ok(i) => self.0[i].1 = state,
            Err(i) => self.0.insert(i, (id.into(), state)),
        }
    }

    fn remove(&mut self, id: &str) -> Option<EndpointState> {
        let i = self.find(id).ok()?;
        let (_, state) = self.0.remove(i);
        if self.0.capacity() > 2 * self.0.len().max(1) {
            self.0.shrink_to_fit();
        }
        Some(state)
    }

    fn values(&self) -> impl Iterator<Item = &EndpointState> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl Entity {
    fn is_empty(&self) -> bool {
        self.publications.is_empty() && self.endpoints.is_empty() && self.manual.is_none()
    }
}

/// Presence Event State Compositor (RFC 3903) plus registration-derived
/// endpoint state. See the [module documentation](self) for the aggregation
/// rule.
#[derive(Debug, Clone)]
pub struct Compositor {
    limits: CompositorLimits,
    tags: TagGenerator,
    seq: u64,
    publications: BTreeMap<String, Publication>,
    entities: BTreeMap<String, Entity>,
    expiry: BTreeSet<(Instant, String)>,
}

impl Compositor {
    /// Creates an empty compositor. `etag_seed` keys the entity-tag generator;
    /// pass a random value (e.g. from the OS RNG) so tags are unpredictable.
    pub fn new(limits: CompositorLimits, etag_seed: u64) -> Self {
        Compositor {
            limits,
            tags: TagGenerator::new(etag_seed),
            seq: 0,
            publications: BTreeMap::new(),
            entities: BTreeMap::new(),
            expiry: BTreeSet::new(),
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> &CompositorLimits {
        &self.limits
    }

    /// Processes a PUBLISH for `entity` (RFC 3903 §6):
    ///
    /// * no `SIP-If-Match`: initial publication; body required
    ///   ([`PublishError::MissingBody`]); `Expires: 0` is accepted and stores
    ///   nothing;
    /// * `SIP-If-Match` naming a live publication of `entity`: refresh (no
    ///   body), modify (body) or remove (`Expires: 0`); otherwise
    ///   [`PublishError::ConditionalRequestFailed`]. A publication whose
    ///   expiry has passed counts as gone even before [`expire`](Self::expire)
    ///   collects it;
    /// * non-zero `Expires` below the minimum fails with
    ///   [`PublishError::IntervalTooBrief`]; above the maximum it is shortened.
    ///
    /// Every successful initial publication, refresh and modification gets a
    /// fresh entity-tag; a removal echoes the removed one.
    pub fn publish(
        &mut self,
        entity: &str,
        req: PublishRequest<'_>,
        now: Instant,
    ) -> Result<PublishOutcome, PublishError> {
        let PublishRequest {
            etag,
            body,
            expires,
        } = req;

        // Step 3: conditional request.
        if let Some(tag) = etag {
            let live = self
                .publications
                .get(tag)
                .is_some_and(|p| p.entity == entity && p.expires_at > now);
            if !live {
                return Err(PublishError::ConditionalRequestFailed);
            }
        } else if body.is_none() {
            // Step 4: initial publication needs a body.
            return Err(PublishError::MissingBody);
        }

        // Step 5: expiration.
        if expires != 0 && expires < self.limits.min_expires {
            return Err(PublishError::IntervalTooBrief {
                min_expires: self.limits.min_expires,
            });
        }
        let granted = expires.min(self.limits.max_expires);

        let before = self.aggregate(entity);
        let outcome_tag = match (etag, body) {
            (None, Some(state)) => {
                if granted == 0 {
                    // Nothing to store; answer with a tag that matches nothing.
                    let tag = self.fresh_tag();
                    return Ok(PublishOutcome {
                        etag: tag,
                        expires: 0,
                        changed: false,
                    });
                }
                self.check_publication_capacity(entity)?;
                let tag = self.fresh_tag();
                let expires_at = deadline(now, granted);
                let modified = self.next_seq();
                self.publications.insert(
                    tag.clone(),
                    Publication {
                        entity: entity.to_owned(),
                        state,
                        expires_at,
                        modified,
                    },
                );
                self.expiry.insert((expires_at, tag.clone()));
                self.entities
                    .entry(entity.to_owned())
                    .or_default()
                    .publications
                    .insert(tag.clone());
                tag
            }
            (None, None) => return Err(PublishError::MissingBody),
            (Some(old), body) => {
                if granted == 0 {
                    self.remove_publication(old);
                    let changed = self.aggregate(entity) != before;
                    return Ok(PublishOutcome {
                        etag: old.to_owned(),
                        expires: 0,
                        changed,
                    });
                }
                let Some(mut publication) = self.publications.remove(old) else {
                    return Err(PublishError::ConditionalRequestFailed);
                };
                self.expiry
                    .remove(&(publication.expires_at, old.to_owned()));
                if let Some(e) = self.entities.get_mut(entity) {
                    e.publications.remove(old);
                }
                if let Some(state) = body {
                    publication.state = state;
                    publication.modified = self.next_seq();
                }
                publication.expires_at = deadline(now, granted);
                let tag = self.fresh_tag();
                self.expiry.insert((publication.expires_at, tag.clone()));
                self.entities
                    .entry(entity.to_owned())
                    .or_default()
                    .publications
                    .insert(tag.clone());
                self.publications.insert(tag.clone(), publication);
                tag
            }
        };
        let changed = self.aggregate(entity) != before;
        Ok(PublishOutcome {
            etag: outcome_tag,
            expires: granted,
            changed,
        })
    }

    /// Removes every publication whose expiry is at or before `now`. Returns
    /// the entities whose aggregate state changed, sorted and without
    /// duplicates.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut due: Vec<String> = Vec::new();
        while let Some((at, _)) = self.expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, tag)) = self.expiry.pop_first() {
                due.push(tag);
            }
        }
        // Group by entity so each aggregate is compared once.
        let mut by_entity: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for tag in due {
            if let Some(p) = self.publications.get(&tag) {
                by_entity.entry(p.entity.clone()).or_default().push(tag);
            }
        }
        let mut changed = Vec::new();
        for (entity, tags) in by_entity {
            let before = self.aggregate(&entity);
            for tag in &tags {
                self.remove_publication(tag);
            }
            if self.aggregate(&entity) != before {
                changed.push(entity);
            }
        }
        changed
    }

    /// The earliest publication expiry, for the caller's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// The aggregated presence of `entity` (see the module documentation).
    pub fn aggregate(&self, entity: &str) -> PresenceState {
        let Some(e) = self.entities.get(entity) else {
            return PresenceState::offline();
        };
        let manual = e.manual.as_ref().filter(|_| !e.endpoints.is_empty());
        let sources: Vec<(&PresenceState, u64)> = if e.publications.is_empty() && manual.is_none() {
            e.endpoints
                .values()
                .map(|ep| (&ep.state, ep.modified))
                .collect()
        } else {
            e.publications
                .iter()
                .filter_map(|tag| self.publications.get(tag))
                .map(|p| (&p.state, p.modified))
                .chain(manual.map(|m| (&m.state, m.modified)))
                .collect()
        };
        aggregate_sources(&sources)
    }

    /// Sets (or with `None` clears) the manual state of `entity`: an explicit
    /// state without expiry that counts only while the entity has at least one
    /// endpoint (see the module documentation). Returns whether the aggregate
    /// changed.
    pub fn set_manual_state(
        &mut self,
        entity: &str,
        state: Option<PresenceState>,
    ) -> Result<bool, EndpointError> {
        let before = self.aggregate(entity);
        match state {
            Some(state) => {
                if !self.entities.contains_key(entity)
                    && self.entities.len() >= self.limits.max_entities
                {
                    return Err(EndpointError::CapacityExhausted);
                }
                let modified = self.next_seq();
                self.entities.entry(entity.to_owned()).or_default().manual =
                    Some(Box::new(EndpointState { state, modified }));
            }
            None => {
                let Some(e) = self.entities.get_mut(entity) else {
                    return Ok(false);
                };
                e.manual = None;
                if e.is_empty() {
                    self.entities.remove(entity);
                }
            }
        }
        Ok(self.aggregate(entity) != before)
    }

    /// Records the presence of one registered endpoint of `entity` (typically
    /// [`PresenceState::online`] when a contact registers). Returns whether the
    /// aggregate changed.
    pub fn set_endpoint_state(
        &mut self,
        entity: &str,
        endpoint_id: &str,
        state: PresenceState,
    ) -> Result<bool, EndpointError> {
        let known = self.entities.get(entity);
        let exists = known.is_some_and(|e| e.endpoints.contains_key(endpoint_id));
        if !exists {
            match known {
                None if self.entities.len() >= self.limits.max_entities => {
                    return Err(EndpointError::CapacityExhausted);
                }
                Some(e) if e.endpoints.len() >= self.limits.max_endpoints_per_entity => {
                    return Err(EndpointError::TooManyEndpoints);
                }
                _ => {}
            }
        }
        let before = self.aggregate(entity);
        let modified = self.next_seq();
        self.entities
            .entry(entity.to_owned())
            .or_default()
            .endpoints
            .insert(endpoint_id, EndpointState { state, modified });
        Ok(self.aggregate(entity) != before)
    }

    /// Forgets one endpoint of `entity` (its registration expired or was
    /// removed). Returns whether the aggregate changed.
    pub fn clear_endpoint(&mut self, entity: &str, endpoint_id: &str) -> bool {
        let before = self.aggregate(entity);
        let Some(e) = self.entities.get_mut(entity) else {
            return false;
        };
        if e.endpoints.remove(endpoint_id).is_none() {
            return false;
        }
        if e.is_empty() {
            self.entities.remove(entity);
        }
        self.aggregate(entity) != before
    }

    /// Number of live (not yet collected) publications.
    pub fn publication_count(&self) -> usize {
        self.publications.len()
    }

    /// Number of entities with any publication or endpoint state.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    fn check_publication_capacity(&self, entity: &str) -> Result<(), PublishError> {
        if self.publications.len() >= self.limits.max_publications {
            return Err(PublishError::CapacityExhausted);
        }
        match self.entities.get(entity) {
            Some(e) if e.publications.len() >= self.limits.max_publications_per_entity => {
                Err(PublishError::TooManyPublications)
            }
            None if self.entities.len() >= self.limits.max_entities => {
                Err(PublishError::CapacityExhausted)
            }
            _ => Ok(()),
        }
    }

    fn remove_publication(&mut self, tag: &str) {
        let Some(p) = self.publications.remove(tag) else {
            return;
        };
        self.expiry.remove(&(p.expires_at, tag.to_owned()));
        if let Some(e) = self.entities.get_mut(&p.entity) {
            e.publications.remove(tag);
            if e.is_empty() {
                self.entities.remove(&p.entity);
            }
        }
    }

    fn fresh_tag(&mut self) -> String {
        loop {
            let tag = self.tags.next_tag();
            if !self.publications.contains_key(&tag) {
                return tag;
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }
}

fn deadline(now: Instant, seconds: u32) -> Instant {
    now.checked_add(Duration::from_secs(u64::from(seconds)))
        .unwrap_or(now)
}

fn aggregate_sources(sources: &[(&PresenceState, u64)]) -> PresenceState {
    let mut winner: Option<(&PresenceState, u64)> = None;
    let mut note: Option<(&str, u64)> = None;
    for &(state, modified) in sources {
        let better = winner.is_none_or(|(w, wm)| {
            let (p, wp) = (state.availability.precedence(), w.availability.precedence());
            p > wp || (p == wp && modified > wm)
        });
        if better {
            winner = Some((state, modified));
        }
        if let Some(n) = state.note.as_deref()
            && note.is_none_or(|(_, nm)| modified > nm)
        {
            note = Some((n, modified));
        }
    }
    match winner {
        None => PresenceState::offline(),
        Some((w, _)) => PresenceState {
            availability: w.availability,
            note: note.map(|(n, _)| n.to_owned()),
            activity: w.activity.clone(),
            endpoint: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Availability;

    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn initial(state: PresenceState, expires: u32) -> PublishRequest<'static> {
        PublishRequest {
            etag: None,
            body: Some(state),
            expires,
        }
    }

    fn comp() -> Compositor {
        Compositor::new(CompositorLimits::default(), 42)
    }

    const ALICE: &str = "sip:alice@example.com";

    #[test]
    fn initial_publish_creates_state() {
        let mut c = comp();
        let now = t0();
        let out = c
            .publish(
                ALICE,
                initial(PresenceState::new(Availability::Busy), 3600),
                now,
            )
            .unwrap();
        assert_eq!(out.expires, 3600);
        assert!(out.changed);
        assert_eq!(out.etag.len(), 16);
        assert_eq!(c.aggregate(ALICE).availability, Availability::Busy);
        assert_eq!(c.next_expiry(), Some(now + secs(3600)));
        assert_eq!(c.publication_count(), 1);
    }

    #[test]
    fn initial_publish_without_body_is_400() {
        let mut c = comp();
        let err = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: None,
                    body: None,
                    expires: 3600,
                },
                t0(),
            )
            .unwrap_err();
        assert_eq!(err, PublishError::MissingBody);
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn refresh_extends_and_rotates_etag_without_change() {
        let mut c = comp();
        let now = t0();
        let first = c
            .publish(
                ALICE,
                initial(PresenceState::new(Availability::Away), 100),
                now,
            )
            .unwrap();
        let later = now + secs(50);
        let refreshed = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: None,
                    expires: 100,
                },
                later,
            )
            .unwrap();
        assert_ne!(refreshed.etag, first.etag);
        assert!(!refreshed.changed);
        assert_eq!(c.next_expiry(), Some(later + secs(100)));
        assert_eq!(c.aggregate(ALICE).availability, Availability::Away);
        // The old tag no longer matches.
        let err = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: None,
                    expires: 100,
                },
                later,
            )
            .unwrap_err();
        assert_eq!(err, PublishError::ConditionalRequestFailed);
        // Nothing expires at the original deadline.
        assert!(c.expire(now + secs(100)).is_empty());
        assert_eq!(c.publication_count(), 1);
    }

    #[test]
    fn modify_replaces_state() {
        let mut c = comp();
        let now = t0();
        let first = c
            .publish(
                ALICE,
                initial(PresenceState::online().with_note("hi"), 600),
                now,
            )
            .unwrap();
        let modified = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: Some(PresenceState::new(Availability::DoNotDisturb)),
                    expires: 600,
                },
                now,
            )
            .unwrap();
        assert!(modified.changed);
        assert_ne!(modified.etag, first.etag);
        let agg = c.aggregate(ALICE);
        assert_eq!(agg.availability, Availability::DoNotDisturb);
        assert_eq!(agg.note, None);
        assert_eq!(c.publication_count(), 1);
    }

    #[test]
    fn modify_with_identical_state_is_unchanged() {
        let mut c = comp();
        let now = t0();
        let s = PresenceState::new(Availability::Busy);
        let first = c.publish(ALICE, initial(s.clone(), 600), now).unwrap();
        let out = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: Some(s),
                    expires: 600,
                },
                now,
            )
            .unwrap();
        assert!(!out.changed);
    }

    #[test]
    fn remove_with_expires_zero() {
        let mut c = comp();
        let now = t0();
        let first = c
            .publish(
                ALICE,
                initial(PresenceState::new(Availability::Busy), 600),
                now,
            )
            .unwrap();
        let out = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: None,
                    expires: 0,
                },
                now,
            )
            .unwrap();
        assert_eq!(out.expires, 0);
        assert_eq!(out.etag, first.etag);
        assert!(out.changed);
        assert_eq!(c.aggregate(ALICE), PresenceState::offline());
        assert_eq!(c.publication_count(), 0);
        assert_eq!(c.entity_count(), 0);
        assert_eq!(c.next_expiry(), None);
        // Removing again: the tag is gone.
        let err = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: None,
                    expires: 0,
                },
                now,
            )
            .unwrap_err();
        assert_eq!(err.status_code(), 412);
    }

    #[test]
    fn initial_publish_with_expires_zero_stores_nothing() {
        let mut c = comp();
        let out = c
            .publish(
                ALICE,
                initial(PresenceState::new(Availability::Busy), 0),
                t0(),
            )
            .unwrap();
        assert_eq!(out.expires, 0);
        assert!(!out.changed);
        assert_eq!(c.publication_count(), 0);
    }

    #[test]
    fn unknown_etag_is_412() {
        let mut c = comp();
        let err = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some("deadbeef"),
                    body: Some(PresenceState::online()),
                    expires: 600,
                },
                t0(),
            )
            .unwrap_err();
        assert_eq!(err, PublishError::ConditionalRequestFailed);
        assert_eq!(err.status_code(), 412);
    }

    #[test]
    fn etag_of_other_entity_is_412() {
        let mut c = comp();
        let now = t0();
        let first = c
            .publish(ALICE, initial(PresenceState::online(), 600), now)
            .unwrap();
        let err = c
            .publish(
                "sip:mallory@example.com",
                PublishRequest {
                    etag: Some(&first.etag),
                    body: Some(PresenceState::offline()),
                    expires: 600,
                },
                now,
            )
            .unwrap_err();
        assert_eq!(err, PublishError::ConditionalRequestFailed);
        assert_eq!(c.aggregate(ALICE).availability, Availability::Online);
    }

    #[test]
    fn expired_etag_is_412_even_before_collection() {
        let mut c = comp();
        let now = t0();
        let first = c
            .publish(ALICE, initial(PresenceState::online(), 60), now)
            .unwrap();
        let err = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&first.etag),
                    body: None,
                    expires: 60,
                },
                now + secs(60),
            )
            .unwrap_err();
        assert_eq!(err, PublishError::ConditionalRequestFailed);
        // expire() still reports the change.
        assert_eq!(c.expire(now + secs(60)), vec![ALICE.to_owned()]);
    }

    #[test]
    fn expires_bounds() {
        let mut c = comp();
        let now = t0();
        let err = c
            .publish(ALICE, initial(PresenceState::online(), 10), now)
            .unwrap_err();
        assert_eq!(err, PublishError::IntervalTooBrief { min_expires: 60 });
        assert_eq!(err.status_code(), 423);
        let out = c
            .publish(ALICE, initial(PresenceState::online(), u32::MAX), now)
            .unwrap();
        assert_eq!(out.expires, 43_200);
    }

    #[test]
    fn expiry_removes_and_reports_changed_entities() {
        let mut c = comp();
        let now = t0();
        let bob = "sip:bob@example.com";
        c.publish(
            ALICE,
            initial(PresenceState::new(Availability::Busy), 60),
            now,
        )
        .unwrap();
        c.publish(
            ALICE,
            initial(PresenceState::new(Availability::Busy), 120),
            now,
        )
        .unwrap();
        c.publish(
            bob,
            initial(PresenceState::new(Availability::Away), 60),
            now,
        )
        .unwrap();
        assert!(c.expire(now + secs(59)).is_empty());
        // At 60 s: bob's only publication goes (changed); one of alice's two
        // identical publications goes (aggregate unchanged).
        assert_eq!(c.expire(now + secs(60)), vec![bob.to_owned()]);
        assert_eq!(c.aggregate(ALICE).availability, Availability::Busy);
        assert_eq!(c.next_expiry(), Some(now + secs(120)));
        assert_eq!(c.expire(now + secs(500)), vec![ALICE.to_owned()]);
        assert_eq!(c.aggregate(ALICE), PresenceState::offline());
        assert_eq!(c.next_expiry(), None);
        assert_eq!(c.entity_count(), 0);
    }

    #[test]
    fn busy_beats_online_and_dnd_beats_busy() {
        let mut c = comp();
        let now = t0();
        c.publish(ALICE, initial(PresenceState::online(), 600), now)
            .unwrap();
        c.publish(
            ALICE,
            initial(
                PresenceState::new(Availability::Busy).with_activity("on-the-phone"),
                600,
            ),
            now,
        )
        .unwrap();
        let agg = c.aggregate(ALICE);
        assert_eq!(agg.availability, Availability::Busy);
        assert_eq!(agg.activity.as_deref(), Some("on-the-phone"));
        let dnd = c
            .publish(
                ALICE,
                initial(PresenceState::new(Availability::DoNotDisturb), 600),
                now,
            )
            .unwrap();
        assert!(dnd.changed);
        assert_eq!(c.aggregate(ALICE).availability, Availability::DoNotDisturb);
    }

    #[test]
    fn online_beats_brb_beats_away_beats_offline() {
        let order = [
            Availability::Offline,
            Availability::Away,
            Availability::BeRightBack,
            Availability::Idle,
            Availability::Online,
            Availability::BusyIdle,
            Availability::Busy,
            Availability::DoNotDisturb,
        ];
        let now = t0();
        for (i, low) in order.iter().enumerate() {
            for high in &order[i..] {
                let mut c = comp();
                c.publish(ALICE, initial(PresenceState::new(*high), 600), now)
                    .unwrap();
                c.publish(ALICE, initial(PresenceState::new(*low), 600), now)
                    .unwrap();
                assert_eq!(c.aggregate(ALICE).availability, *high, "{low} vs {high}");
            }
        }
    }

    #[test]
    fn note_comes_from_most_recent_publication_with_one() {
        let mut c = comp();
        let now = t0();
        let a = c
            .publish(
                ALICE,
                initial(PresenceState::online().with_note("first"), 600),
                now,
            )
            .unwrap();
        c.publish(
            ALICE,
            initial(PresenceState::new(Availability::Away), 600),
            now,
        )
        .unwrap();
        let second = c
            .publish(
                ALICE,
                initial(PresenceState::online().with_note("second"), 600),
                now,
            )
            .unwrap();
        assert_eq!(c.aggregate(ALICE).note.as_deref(), Some("second"));
        // Modifying the first one makes it the most recent.
        c.publish(
            ALICE,
            PublishRequest {
                etag: Some(&a.etag),
                body: Some(PresenceState::online().with_note("third")),
                expires: 600,
            },
            now,
        )
        .unwrap();
        assert_eq!(c.aggregate(ALICE).note.as_deref(), Some("third"));
        // A refresh does not count as a modification.
        let refreshed = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&second.etag),
                    body: None,
                    expires: 600,
                },
                now + secs(10),
            )
            .unwrap();
        assert!(!refreshed.changed);
        assert_eq!(c.aggregate(ALICE).note.as_deref(), Some("third"));
    }

    #[test]
    fn registered_but_unpublished_is_online() {
        let mut c = comp();
        assert_eq!(c.aggregate(ALICE), PresenceState::offline());
        assert!(
            c.set_endpoint_state(ALICE, "ep1", PresenceState::online())
                .unwrap()
        );
        assert_eq!(c.aggregate(ALICE).availability, Availability::Online);
        // Second endpoint, same state: no change.
        assert!(
            !c.set_endpoint_state(ALICE, "ep2", PresenceState::online())
                .unwrap()
        );
        assert!(!c.clear_endpoint(ALICE, "ep1"));
        assert!(c.clear_endpoint(ALICE, "ep2"));
        assert_eq!(c.aggregate(ALICE), PresenceState::offline());
        assert_eq!(c.entity_count(), 0);
        assert!(!c.clear_endpoint(ALICE, "ep2"));
    }

    #[test]
    fn publications_override_endpoint_state() {
        let mut c = comp();
        let now = t0();
        c.set_endpoint_state(ALICE, "ep1", PresenceState::online())
            .unwrap();
        let p = c
            .publish(
                ALICE,
                initial(PresenceState::new(Availability::Away), 600),
                now,
            )
            .unwrap();
        assert!(p.changed);
        assert_eq!(c.aggregate(ALICE).availability, Availability::Away);
        // Appear offline while registered.
        let p2 = c
            .publish(
                ALICE,
                PublishRequest {
                    etag: Some(&p.etag),
                    body: Some(PresenceState::offline()),
                    expires: 600,
                },
                now,
            )
            .unwrap();
        assert_eq!(c.aggregate(ALICE).availability, Availability::Offline);
        // Publication expires: back to the registration-derived state.
        assert_eq!(c.expire(now + secs(600)), vec![ALICE.to_owned()]);
        assert_eq!(c.aggregate(ALICE).availability, Availability::Online);
        assert_ne!(p2.etag, p.etag);
    }

    #[test]
    fn endpoint_states_aggregate_by_precedence() {
        let mut c = comp();
        c.set_endpoint_state(ALICE, "desk", PresenceState::new(Availability::Idle))
            .unwrap();
        c.set_endpoint_state(ALICE, "phone", PresenceState::online())
            .unwrap();
        assert_eq!(c.aggregate(ALICE).availability, Availability::Online);
        c.set_endpoint_state(
            ALICE,
            "desk",
            PresenceState::new(Availability::Busy).with_activity("in-a-meeting"),
        )
        .unwrap();
        let agg = c.aggregate(ALICE);
        assert_eq!(agg.availability, Availability::Busy);
        assert_eq!(agg.activity.as_deref(), Some("in-a-meeting"));
        assert_eq!(agg.endpoint, None);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = CompositorLimits {
            max_publications_per_entity: 2,
            max_publications: 3,
            max_endpoints_per_entity: 1,
            max_entities: 2,
            ..CompositorLimits::default()
        };
        let mut c = Compositor::new(limits, 7);
        let now = t0();
        let s = || initial(PresenceState::online(), 600);
        c.publish(ALICE, s(), now).unwrap();
        c.publish(ALICE, s(), now).unwrap();
        let err = c.publish(ALICE, s(), now).unwrap_err();
        assert_eq!(err, PublishError::TooManyPublications);
        assert_eq!(err.status_code(), 403);
        c.publish("sip:b@x", s(), now).unwrap();
        assert_eq!(
            c.publish("sip:c@x", s(), now).unwrap_err(),
            PublishError::CapacityExhausted
        );
        assert_eq!(
            c.set_endpoint_state("sip:c@x", "e", PresenceState::online()),
            Err(EndpointError::CapacityExhausted)
        );
        c.set_endpoint_state(ALICE, "e1", PresenceState::online())
            .unwrap();
        // Updating an existing endpoint is always allowed.
        c.set_endpoint_state(ALICE, "e1", PresenceState::online())
            .unwrap();
        assert_eq!(
            c.set_endpoint_state(ALICE, "e2", PresenceState::online()),
            Err(EndpointError::TooManyEndpoints)
        );
    }

    #[test]
    fn etags_depend_on_seed() {
        let now = t0();
        let mut a = Compositor::new(CompositorLimits::default(), 1);
        let mut b = Compositor::new(CompositorLimits::default(), 2);
        let ta = a
            .publish(ALICE, initial(PresenceState::online(), 600), now)
            .unwrap()
            .etag;
        let tb = b
            .publish(ALICE, initial(PresenceState::online(), 600), now)
            .unwrap()
            .etag;
        assert_ne!(ta, tb);
    }

    #[test]
    fn manual_state_beats_endpoints_only_while_registered() {
        let mut c = Compositor::new(CompositorLimits::default(), 1);
        let away = PresenceState::new(Availability::Away).with_note("lunch");
        // No endpoint yet: the manual state alone does not make the user present.
        assert!(!c.set_manual_state(ALICE, Some(away.clone())).unwrap());
        assert_eq!(c.aggregate(ALICE).availability, Availability::Offline);
        // Registered: the manual Away beats the implicit Online of the endpoint.
        assert!(
            c.set_endpoint_state(ALICE, "e1", PresenceState::online())
                .unwrap()
        );
        assert_eq!(c.aggregate(ALICE), away);
        // Cleared: back to the endpoint's Online.
        assert!(c.set_manual_state(ALICE, None).unwrap());
        assert_eq!(c.aggregate(ALICE).availability, Availability::Online);
        // Signed out with a manual state left: offline, and nothing leaks.
        c.set_manual_state(ALICE, Some(away)).unwrap();
        assert!(c.clear_endpoint(ALICE, "e1"));
        assert_eq!(c.aggregate(ALICE).availability, Availability::Offline);
        c.set_manual_state(ALICE, None).unwrap();
        assert_eq!(c.entity_count(), 0);
    }
}
