//! The users the front end serves, held in memory so that no SIP message needs a
//! database round trip. The server loads it at start and applies the store's change
//! feed while running.

use confab_auth::credentials::StoredCredentials;
use rustc_hash::FxHashMap;

/// One user as the front end needs it.
#[derive(Clone)]
pub struct UserEntry {
    /// `alice@example.com`, lower-case.
    pub address: String,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub credentials: StoredCredentials,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("address", &self.address)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A change to the directory.
#[derive(Debug, Clone)]
pub enum DirectoryChange {
    Upsert(UserEntry),
    Removed { address: String },
}

/// Address → user.
#[derive(Debug, Default)]
pub struct Directory {
    users: FxHashMap<String, UserEntry>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn get(&self, address: &str) -> Option<&UserEntry> {
        self.users.get(address)
    }

    /// Applies a change. Returns the address when the user can no longer sign in
    /// (disabled or removed), so that its registrations can be ended.
    pub fn apply(&mut self, change: DirectoryChange) -> Option<String> {
        match change {
            DirectoryChange::Upsert(u) => {
                let address = u.address.to_lowercase();
                let signed_out = (!u.enabled).then(|| address.clone());
                self.users.insert(address, u);
                signed_out
            }
            DirectoryChange::Removed { address } => {
                let address = address.to_lowercase();
                self.users.remove(&address).map(|_| address)
            }
        }
    }
}
