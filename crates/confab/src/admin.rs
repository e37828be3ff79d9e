//! Administration shared by the command line and the Control Panel: the
//! administrative roles (modelled on Lync Server's RBAC roles), who did a change
//! ([`Actor`]), and every user operation as one audited function that both
//! `confab user ...` and the Control Panel call.
//!
//! | role | users: search, view, contacts | users: add, disable, enable, reset password, display name | topology, status | voice, chat settings | audit log |
//! |---|---|---|---|---|---|
//! | `CsHelpDesk` | yes | no | view | view | no |
//! | `CsUserAdministrator` | yes | yes | view | view | no |
//! | `CsAdministrator` | yes | yes | view | view, change | yes |
//!
//! Roles are granted with `confab user set USER --role ROLE` only (an operator
//! with shell access): the Control Panel cannot raise anyone's rights.

use std::fmt;
use std::str::FromStr;

use anyhow::Context as _;
use confab_auth::credentials::derive;
use confab_store::{Address, AuditEntry, NewUser, Store, User};

/// An administrative role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read-only: finds users and their contacts, views topology and status
    /// (Lync's CsHelpDesk).
    HelpDesk,
    /// Also changes users: add, disable, enable, reset passwords (CsUserAdministrator).
    UserAdministrator,
    /// Everything the Control Panel offers, the audit log included (CsAdministrator).
    Administrator,
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    ViewUsers,
    ChangeUsers,
    ViewTopology,
    ViewStatus,
    ViewAudit,
    /// Voice and Persistent Chat settings: view (every role) and change
    /// (CsAdministrator).
    ViewVoiceChat,
    ChangeVoiceChat,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Administrator, Role::UserAdministrator, Role::HelpDesk];

    pub fn name(self) -> &'static str {
        match self {
            Role::HelpDesk => "CsHelpDesk",
            Role::UserAdministrator => "CsUserAdministrator",
            Role::Administrator => "CsAdministrator",
        }
    }

    /// Whether this role may do `p`.
    pub fn may(self, p: Permission) -> bool {
        match p {
            Permission::ViewUsers
            | Permission::ViewTopology
            | Permission::ViewStatus
            | Permission::ViewVoiceChat => true,
            Permission::ChangeUsers => self >= Role::UserAdministrator,
            Permission::ViewAudit | Permission::ChangeVoiceChat => self == Role::Administrator,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown role {s:?}: expected CsAdministrator, CsUserAdministrator or CsHelpDesk")
            })
    }
}

/// Who makes a change, and from where (written to the audit log).
#[derive(Clone, Debug)]
pub struct Actor {
    /// A signed-in administrator's address, or `cli:LOGIN`.
    pub who: String,
    /// The client's IP address, or `cli`.
    pub from: String,
}

impl Actor {
    /// The operator running the command line (the login name from the environment).
    pub fn cli() -> Actor {
        let login = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            who: format!("cli:{login}"),
            from: "cli".into(),
        }
    }
}

/// The role stored for `address` (an unknown stored name counts as none).
pub async fn role_of(store: &Store, address: &str) -> anyhow::Result<Option<Role>> {
    Ok(store
        .admin_role(address)
        .await?
        .and_then(|r| r.parse().ok()))
}

async fn audit(
    store: &Store,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Option<String>,
) -> anyhow::Result<()> {
    store
        .append_audit(&AuditEntry {
            seq: 0,
            at: 0,
            actor: actor.who.clone(),
            source: actor.from.clone(),
            action: action.into(),
            target: Some(target.into()),
            detail,
        })
        .await
        .context("writing the audit log")?;
    Ok(())
}

fn parse_address(input: &str) -> anyhow::Result<Address> {
    Ok(Address::parse(input)?)
}

/// `name` trimmed; refused if it holds control characters or is longer than 256
/// characters. `what` names it in the error ("display name").
pub fn check_name(what: &str, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.chars().any(char::is_control) {
        anyhow::bail!("the {what} must not contain control characters");
    }
    if name.chars().count() > 256 {
        anyhow::bail!("the {what} is longer than 256 characters");
    }
    Ok(name.to_owned())
}

fn check_password(password: &str) -> anyhow::Result<()> {
    if password.is_empty() {
        anyhow::bail!("the password must not be empty");
    }
    if password.chars().any(|c| c == '\n' || c == '\r') {
        anyhow::bail!("the password must not contain line breaks");
    }
    Ok(())
}

/// Adds a user.
pub async fn add_user(
    store: &Store,
    actor: &Actor,
    address: &str,
    password: &str,
    display_name: Option<&str>,
) -> anyhow::Result<User> {
    let address = parse_address(address)?;
    let display_name = display_name
        .map(|n| check_name("display name", n))
        .transpose()?
        .filter(|n| !n.is_empty());
    check_password(password)?;
    let user = store
        .add_user(NewUser {
            address: address.to_string(),
            display_name,
            creds: derive(address.username(), address.domain(), password),
        })
        .await?;
    audit(store, actor, "user.add", &user.address, None).await?;
    Ok(user)
}

/// Sets a user's password.
pub async fn set_password(
    store: &Store,
    actor: &Actor,
    address: &str,
    password: &str,
) -> anyhow::Result<User> {
    let address = parse_address(address)?;
    check_password(password)?;
    let user = store
        .set_credentials(
            &address.to_string(),
            derive(address.username(), address.domain(), password),
        )
        .await?;
    audit(store, actor, "user.set-password", &user.address, None).await?;
    Ok(user)
}

/// Sets or (with `None`) clears a display name.
pub async fn set_display_name(
    store: &Store,
    actor: &Actor,
    address: &str,
    name: Option<&str>,
) -> anyhow::Result<User> {
    let address = parse_address(address)?;
    let name = name.map(|n| check_name("display name", n)).transpose()?;
    let user = store
        .set_display_name(&address.to_string(), name.as_deref())
        .await?;
    audit(
        store,
        actor,
        "user.set-display-name",
        &user.address,
        user.display_name.clone(),
    )
    .await?;
    Ok(user)
}

/// Enables or disables a user.
pub async fn set_enabled(
    store: &Store,
    actor: &Actor,
    address: &str,
    enabled: bool,
) -> anyhow::Result<User> {
    let address = parse_address(address)?;
    let user = store.set_enabled(&address.to_string(), enabled).await?;
    let action = if enabled {
        "user.enable"
    } else {
        "user.disable"
    };
    audit(store, actor, action, &user.address, None).await?;
    Ok(user)
}

/// Removes a user (and its role and contact list).
pub async fn remove_user(store: &Store, actor: &Actor, address: &str) -> anyhow::Result<String> {
    let address = parse_address(address)?.to_string();
    store.remove_user(&address).await?;
    audit(store, actor, "user.remove", &address, None).await?;
    Ok(address)
}

/// Grants `role`, or (`None`) takes the user's role away.
pub async fn set_role(
    store: &Store,
    actor: &Actor,
    address: &str,
    role: Option<Role>,
) -> anyhow::Result<String> {
    let address = parse_address(address)?.to_string();
    store.set_admin_role(&address, role.map(Role::name)).await?;
    let detail = role.map_or_else(|| "none".to_owned(), |r| r.name().to_owned());
    audit(store, actor, "user.set-role", &address, Some(detail)).await?;
    Ok(address)
}

/// Records a bulk import (the rows themselves are added by the caller).
pub async fn audit_import(
    store: &Store,
    actor: &Actor,
    file: &str,
    count: usize,
) -> anyhow::Result<()> {
    audit(
        store,
        actor,
        "user.import",
        file,
        Some(format!("{count} users")),
    )
    .await
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `pool` if it is one of the topology's front-end pools, else a clear error.
async fn known_pool(store: &Store, pool: &str) -> anyhow::Result<String> {
    let pool = pool.trim().to_ascii_lowercase();
    let pools = store.front_end_pools().await?;
    if pools.contains(&pool) {
        return Ok(pool);
    }
    if pools.is_empty() {
        anyhow::bail!(
            "unknown pool {pool}: no front-end pool has joined this database yet (a pool is known once one of its front ends has started)"
        );
    }
    anyhow::bail!(
        "unknown pool {pool}: the front-end pools are {}",
        pools.join(", ")
    )
}

/// The pool a new user is homed on: `pool` if given (a known front-end pool),
/// else the only front-end pool; `None` (the default pool) when there is none.
/// Several pools and no `pool`: an error, nothing is decided for the user.
pub async fn pool_for_new_user(
    store: &Store,
    pool: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(p) = pool {
        return Ok(Some(known_pool(store, p).await?));
    }
    let pools = store.front_end_pools().await?;
    match pools.as_slice() {
        [] => Ok(None),
        [only] => Ok(Some(only.clone())),
        many => anyhow::bail!(
            "this topology has several front-end pools ({}): give the user's with --pool FQDN",
            many.join(", ")
        ),
    }
}

/// Homes a user just added on `pool` (see [`pool_for_new_user`]).
pub async fn set_new_user_pool(
    store: &Store,
    address: &str,
    pool: Option<&str>,
) -> anyhow::Result<()> {
    store.set_user_pool(address, pool, wall_ms()).await?;
    Ok(())
}

/// Moves a user to another pool (Lync's `Move-CsUser`): returns the user's
/// address and the pool they were on (`None`: the default pool).
pub async fn move_user(
    store: &Store,
    actor: &Actor,
    address: &str,
    pool: &str,
) -> anyhow::Result<(String, Option<String>)> {
    let address = parse_address(address)?.to_string();
    let pool = known_pool(store, pool).await?;
    let before = store.move_user(&address, &pool, wall_ms()).await?;
    let detail = format!(
        "pool {} -> {pool}",
        before.as_deref().unwrap_or("(default)")
    );
    audit(store, actor, "user.move", &address, Some(detail)).await?;
    Ok((address, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_allow() {
        assert_eq!("csadministrator".parse::<Role>(), Ok(Role::Administrator));
        assert_eq!("CsHelpDesk".parse::<Role>(), Ok(Role::HelpDesk));
        assert!(
            "admin"
                .parse::<Role>()
                .unwrap_err()
                .contains("CsUserAdministrator")
        );
        assert!(!Role::HelpDesk.may(Permission::ChangeUsers));
        assert!(Role::HelpDesk.may(Permission::ViewUsers));
        assert!(Role::UserAdministrator.may(Permission::ChangeUsers));
        assert!(!Role::UserAdministrator.may(Permission::ViewAudit));
        assert!(Role::Administrator.may(Permission::ViewAudit));
    }

    #[tokio::test]
    async fn every_change_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let url = confab_store::sqlite_url(&dir.path().join("t.db")).unwrap();
        let store = Store::open(&url).await.unwrap();
        let actor = Actor {
            who: "ann@example.com".into(),
            from: "192.0.2.1".into(),
        };
        add_user(&store, &actor, "bob@example.com", "pw", Some("Bob"))
            .await
            .unwrap();
        set_enabled(&store, &actor, "bob@example.com", false)
            .await
            .unwrap();
        set_password(&store, &actor, "bob@example.com", "pw2")
            .await
            .unwrap();
        set_role(&store, &actor, "bob@example.com", Some(Role::HelpDesk))
            .await
            .unwrap();
        assert!(
            add_user(&store, &actor, "x@example.com", "", None)
                .await
                .is_err()
        );
        let log = store.audit_entries(None, 10).await.unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "user.add",
                "user.disable",
                "user.set-password",
                "user.set-role"
            ]
        );
        assert!(
            log.iter()
                .all(|e| e.actor == "ann@example.com" && e.source == "192.0.2.1")
        );
        assert_eq!(
            role_of(&store, "bob@example.com").await.unwrap(),
            Some(Role::HelpDesk)
        );
        store.close().await;
    }
}
