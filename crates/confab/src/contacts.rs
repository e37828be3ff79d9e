//! `confab contact ...`: users' server-side contact lists (Lync roaming contacts).
//!
//! Same database resolution as `confab user` (see [`crate::database::open_store`]); every
//! change is one transaction that bumps the list's delta_num and takes a revision, so a
//! running server picks it up from the contact change feed and the clients see it.

use std::collections::HashMap;
use std::io::Write;

use anyhow::bail;
use confab_store::{Address, ContactList, Store};

use crate::cli::ContactCommand;
use crate::config::ServeConfig;
use crate::database::open_store;
use crate::users::{check_name, yes_no};

/// Runs one `confab contact` command.
pub async fn run(cfg: &ServeConfig, cmd: ContactCommand) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let result = execute(&store, cmd).await;
    store.close().await;
    result
}

async fn execute(store: &Store, cmd: ContactCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ContactCommand::Add {
            owner,
            uri,
            name,
            group,
        } => {
            let owner = existing_owner(store, &owner).await?;
            let uri = Address::parse(&uri)?.to_string();
            let name = name.map(|n| check_name("alias", &n)).transpose()?;
            let group = group.map(|g| check_name("group name", &g)).transpose()?;
            if group.as_deref() == Some("") {
                bail!("the group name must not be empty");
            }
            let existed = store.contact_list(&owner).await?.contact(&uri).is_some();
            let list = store
                .add_contact(&owner, &uri, name.as_deref(), group.as_deref())
                .await?;
            let groups = list
                .contact(&uri)
                .map(|c| group_names(&list, &c.groups))
                .unwrap_or_default();
            let (verb, prep) = if existed {
                ("updated", "in")
            } else {
                ("added", "to")
            };
            writeln!(
                out,
                "{verb} {uri} {prep} the contact list of {owner} (groups: {groups}; delta_num {})",
                list.delta_num
            )?;
        }
        ContactCommand::Remove { owner, uri } => {
            let owner = existing_owner(store, &owner).await?;
            let uri = Address::parse(&uri)?.to_string();
            if !store.remove_contact(&owner, &uri).await? {
                bail!("{uri} is not in the contact list of {owner}");
            }
            writeln!(out, "removed {uri} from the contact list of {owner}")?;
        }
        ContactCommand::List { owner, json } => {
            let owner = existing_owner(store, &owner).await?;
            let list = store.contact_list(&owner).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list_json(&list))?)?;
            } else {
                write_list(&mut out, &list)?;
            }
        }
    }
    Ok(())
}

/// The normalized address of `owner`, which must be a user.
async fn existing_owner(store: &Store, owner: &str) -> anyhow::Result<String> {
    let address = Address::parse(owner)?.to_string();
    if store.get_user(&address).await?.is_none() {
        bail!("user {address} not found");
    }
    Ok(address)
}

/// The names of groups `ids` of `list`, comma-separated; `-` for none.
fn group_names(list: &ContactList, ids: &[u32]) -> String {
    let names: HashMap<u32, &str> = list
        .groups
        .iter()
        .map(|g| (g.id, g.name.as_str()))
        .collect();
    let shown: Vec<String> = ids
        .iter()
        .map(|id| match names.get(id) {
            Some(name) => (*name).to_owned(),
            None => format!("#{id}"),
        })
        .collect();
    if shown.is_empty() {
        "-".to_owned()
    } else {
        shown.join(", ")
    }
}

fn write_list(out: &mut impl Write, list: &ContactList) -> anyhow::Result<()> {
    writeln!(
        out,
        "contact list of {}, delta_num {}",
        list.owner, list.delta_num
    )?;
    if list.contacts.is_empty() {
        writeln!(out, "no contacts")?;
        return Ok(());
    }
    let rows: Vec<[String; 4]> = list
        .contacts
        .iter()
        .map(|c| {
            [
                c.uri.clone(),
                if c.name.is_empty() {
                    "-".to_owned()
                } else {
                    c.name.clone()
                },
                group_names(list, &c.groups),
                yes_no(c.subscribed).to_owned(),
            ]
        })
        .collect();
    let header = ["URI", "NAME", "GROUPS", "SUBSCRIBED"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
    }
    Ok(())
}

fn list_json(list: &ContactList) -> serde_json::Value {
    let contacts: Vec<_> = list
        .contacts
        .iter()
        .map(|c| {
            let names: Vec<&str> = c
                .groups
                .iter()
                .filter_map(|id| list.groups.iter().find(|g| g.id == *id))
                .map(|g| g.name.as_str())
                .collect();
            serde_json::json!({
                "uri": c.uri,
                "name": c.name,
                "groups": names,
                "group_ids": c.groups,
                "subscribed": c.subscribed,
            })
        })
        .collect();
    let groups: Vec<_> = list
        .groups
        .iter()
        .map(|g| serde_json::json!({ "id": g.id, "name": g.name }))
        .collect();
    serde_json::json!({
        "owner": list.owner,
        "delta_num": list.delta_num,
        "groups": groups,
        "contacts": contacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_store::{Contact, ContactGroup};

    fn sample() -> ContactList {
        ContactList {
            owner: "alice@example.com".into(),
            delta_num: 3,
            groups: vec![
                ContactGroup {
                    id: 1,
                    name: "~".into(),
                },
                ContactGroup {
                    id: 2,
                    name: "Team, Core".into(),
                },
            ],
            contacts: vec![
                Contact {
                    uri: "bob@example.com".into(),
                    name: "Bob".into(),
                    groups: vec![1, 2],
                    subscribed: true,
                },
                Contact {
                    uri: "zed@partner.example".into(),
                    name: String::new(),
                    groups: vec![],
                    subscribed: false,
                },
            ],
        }
    }

    #[test]
    fn table() {
        let mut out = Vec::new();
        write_list(&mut out, &sample()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "contact list of alice@example.com, delta_num 3\n\
             URI                  NAME  GROUPS         SUBSCRIBED\n\
             bob@example.com      Bob   ~, Team, Core  yes\n\
             zed@partner.example  -     -              no\n"
        );
        let mut out = Vec::new();
        write_list(&mut out, &ContactList::empty("a@example.com")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "contact list of a@example.com, delta_num 0\nno contacts\n"
        );
    }

    #[test]
    fn json() {
        let v = list_json(&sample());
        assert_eq!(v["delta_num"], 3);
        assert_eq!(v["contacts"][0]["groups"][1], "Team, Core");
        assert_eq!(v["contacts"][0]["group_ids"][1], 2);
        assert_eq!(v["contacts"][1]["subscribed"], false);
        assert_eq!(v["groups"][0]["name"], "~");
    }

    #[test]
    fn unknown_group_ids_are_shown_by_number() {
        assert_eq!(group_names(&sample(), &[2, 9]), "Team, Core, #9");
    }
}
