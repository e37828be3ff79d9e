//! What provisioning-v2 tells users about Persistent Chat: the front end asks
//! [`PolicyView`] (through `confab_frontend::ChatProvisioning`) for the pool URI of
//! a user whose `EnablePersistentChat` policy is on. The policy lives in the chat
//! store; a task re-reads it when the chat revision changes (like the chat service).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use confab_store::{ChatPolicy, Store};
use tokio::sync::watch;
use tracing::warn;

/// The chat policy as last read from the chat store, and the pool URI to offer.
#[derive(Debug)]
pub struct PolicyView {
    pool_uri: String,
    policy: RwLock<ChatPolicy>,
}

impl PolicyView {
    pub fn new(pool_uri: &str, policy: ChatPolicy) -> PolicyView {
        PolicyView {
            pool_uri: pool_uri.to_owned(),
            policy: RwLock::new(policy),
        }
    }

    fn set(&self, policy: ChatPolicy) {
        match self.policy.write() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
    }
}

impl confab_frontend::ChatProvisioning for PolicyView {
    fn pool_uri(&self, user: &str) -> Option<String> {
        let user = user.trim().to_ascii_lowercase();
        let enabled = match self.policy.read() {
            Ok(p) => p.enabled_for(&user),
            Err(poisoned) => poisoned.into_inner().enabled_for(&user),
        };
        enabled.then(|| self.pool_uri.clone())
    }
}

/// Reads the policy from `store` now, then keeps it current until `stop`.
pub async fn watch_policy(
    store: Store,
    pool_uri: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Arc<PolicyView>, confab_store::StoreError> {
    let mut rev = store.chat_rev().await?;
    let view = Arc::new(PolicyView::new(
        pool_uri,
        store.chat_directory().await?.policy,
    ));
    let v = Arc::clone(&view);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            match store.chat_rev().await {
                Ok(now) if now != rev => match store.chat_directory().await {
                    Ok(dir) => {
                        rev = now;
                        v.set(dir.policy);
                    }
                    Err(e) => warn!(error = %e, "reading the chat policy failed"),
                },
                Ok(_) => {}
                Err(e) => warn!(error = %e, "reading the chat revision failed"),
            }
        }
    });
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_frontend::ChatProvisioning;

    #[test]
    fn offers_the_pool_to_enabled_users_only() {
        let mut policy = ChatPolicy::default();
        policy.users.insert("bob@example.com".into(), true);
        let v = PolicyView::new("sip:ocschat@example.com", policy.clone());
        assert_eq!(
            v.pool_uri("Bob@Example.com").as_deref(),
            Some("sip:ocschat@example.com")
        );
        assert_eq!(v.pool_uri("alice@example.com"), None);
        policy.global = true;
        policy.users.insert("bob@example.com".into(), false);
        v.set(policy);
        assert_eq!(v.pool_uri("bob@example.com"), None);
        assert!(v.pool_uri("alice@example.com").is_some());
    }
}
