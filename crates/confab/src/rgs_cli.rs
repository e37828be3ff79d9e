//! `confab rgs ...`: Response Groups administration (Lync's `New-CsRgsWorkflow`,
//! `New-CsRgsQueue`, `New-CsRgsAgentGroup`, and agents signing in and out).
//! Every change is made on a copy of the whole configuration, checked with
//! `confab_rgs::RgsConfig::build`, then saved with the revision it was read at;
//! a running server picks it up within a second.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use confab_rgs::{
    Action, AgentGroup, Menu, MenuOption, PromptSpec, Queue, RgsConfig, RgsData, RoutingMethod,
    SignIn, Workflow,
};
use confab_store::Store;

use crate::config::ServeConfig;

#[derive(Args)]
pub struct RgsArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: RgsCommand,
}

#[derive(Subcommand)]
pub enum RgsCommand {
    /// Workflows: the number and SIP URI callers reach, prompts, menu, hours
    Workflow {
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Queues: agent groups, timeout and overflow actions
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Agent groups: agents and the routing method
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Formal agents sign in and out of their groups
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

// Parsed once per command line: the size of `Add` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// A workflow. PROMPT: tones:FREQ[+FREQ]:MS,... or file:PATH (WAV). ACTION:
    /// disconnect[:PROMPT], forward:sip:user@domain|tel:+E164, queue:NAME
    Add {
        name: String,
        /// Its SIP URI (sip:sales@example.com)
        #[arg(long)]
        uri: String,
        /// Its line URI (tel:+14255550300 or +14255550300)
        #[arg(long)]
        number: Option<String>,
        #[arg(long, value_name = "PROMPT")]
        welcome: Option<String>,
        /// Without a menu: the queue callers wait in
        #[arg(long)]
        queue: Option<String>,
        /// The menu's prompt (with --option)
        #[arg(long, value_name = "PROMPT")]
        menu_prompt: Option<String>,
        /// DIGIT=QUEUE (first level) or DIGIT.DIGIT=QUEUE (second level)
        #[arg(long = "option", value_name = "OPTION")]
        options: Vec<String>,
        /// DIGIT=PROMPT: the prompt of the second-level menu behind DIGIT
        #[arg(long = "submenu-prompt", value_name = "DIGIT=PROMPT")]
        submenu_prompts: Vec<String>,
        /// Music while waiting (looped)
        #[arg(long, value_name = "PROMPT")]
        music: Option<String>,
        /// Business hours, e.g. "mon-fri 08:00-17:00" (repeat for more) [default: always open]
        #[arg(long = "hours")]
        hours: Vec<String>,
        /// YYYY-MM-DD, closed all day (repeat)
        #[arg(long = "holiday")]
        holidays: Vec<String>,
        /// The hours' time zone: +HH:MM or -HH:MM from UTC
        #[arg(long, default_value = "+00:00", allow_hyphen_values = true)]
        utc_offset: String,
        /// Out of hours and on holidays
        #[arg(long, default_value = "disconnect", value_name = "ACTION")]
        out_of_hours: String,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// A queue
    Add {
        name: String,
        /// Agent groups, in order (repeat)
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// Longest wait in seconds
        #[arg(long)]
        timeout: Option<u32>,
        #[arg(long, default_value = "disconnect", value_name = "ACTION")]
        timeout_action: String,
        /// Calls waiting at which a new call overflows (a queue with no agent
        /// signed in overflows too)
        #[arg(long)]
        overflow_threshold: Option<u32>,
        #[arg(long, default_value = "disconnect", value_name = "ACTION")]
        overflow_action: String,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// An agent group
    Add {
        name: String,
        /// serial, parallel, round-robin, longest-idle or attendant
        #[arg(long, default_value = "longest-idle")]
        routing: String,
        /// Agents (user@domain), in order (repeat)
        #[arg(long = "agent", required = true)]
        agents: Vec<String>,
        /// Agents must sign in (confab rgs agent signin)
        #[arg(long)]
        formal: bool,
        /// Seconds an agent is offered a call
        #[arg(long, default_value_t = 20)]
        alert_secs: u32,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// A formal agent signs in to a group
    Signin { group: String, agent: String },
    /// A formal agent signs out
    Signout { group: String, agent: String },
    /// Signed-in formal agents
    List,
}

pub async fn run(cfg: &ServeConfig, args: RgsArgs) -> anyhow::Result<()> {
    let store = crate::database::open_store(cfg).await?;
    let result = execute(&store, args.command).await;
    store.close().await;
    result
}

async fn execute(store: &Store, cmd: RgsCommand) -> anyhow::Result<()> {
    let (rev, objects, signins) = store.rgs_rows().await?;
    let mut data = RgsData::from_rows(&objects, &signins)?;
    let mut out = std::io::stdout().lock();
    let Some(msg) = apply(&mut data, cmd, &mut out)? else {
        return Ok(());
    };
    RgsConfig::build(data.clone()).context("refused")?;
    let (rows, signins) = data.to_rows()?;
    store.save_rgs(rev, &rows, &signins).await?;
    writeln!(out, "{msg}")?;
    Ok(())
}

fn prompt(s: &Option<String>) -> anyhow::Result<Option<PromptSpec>> {
    s.as_deref()
        .map(PromptSpec::parse)
        .transpose()
        .map_err(Into::into)
}

fn strip_sip(uri: &str) -> anyhow::Result<String> {
    let aor = uri.trim().strip_prefix("sip:").unwrap_or(uri.trim());
    if !aor.contains('@') {
        bail!("bad SIP URI {uri:?}: sip:name@domain");
    }
    Ok(aor.to_ascii_lowercase())
}

fn offset_minutes(s: &str) -> anyhow::Result<i32> {
    let err = || anyhow::anyhow!("bad UTC offset {s:?}: +HH:MM or -HH:MM");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(err()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(err)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if !(0..60).contains(&m) {
        return Err(err());
    }
    Ok(sign * (h * 60 + m))
}

/// The menu from `--menu-prompt`, `--option` and `--submenu-prompt`.
fn menu(
    menu_prompt: &Option<String>,
    options: &[String],
    submenu_prompts: &[String],
) -> anyhow::Result<Option<Menu>> {
    let Some(p) = prompt(menu_prompt)? else {
        if !options.is_empty() {
            bail!("--option needs --menu-prompt");
        }
        return Ok(None);
    };
    let mut top: Vec<MenuOption> = Vec::new();
    let digit = |s: &str| -> anyhow::Result<char> {
        let mut cs = s.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => Ok(c),
            _ => bail!("bad digit {s:?}: one of 0-9, * or #"),
        }
    };
    let sub_prompt = |d: char| -> anyhow::Result<PromptSpec> {
        for sp in submenu_prompts {
            let (k, v) = sp
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("bad --submenu-prompt {sp:?}: DIGIT=PROMPT"))?;
            if digit(k)? == d {
                return Ok(PromptSpec::parse(v)?);
            }
        }
        bail!("the second-level menu behind {d} needs --submenu-prompt {d}=PROMPT")
    };
    for o in options {
        let (keys, queue) = o.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("bad --option {o:?}: DIGIT=QUEUE or DIGIT.DIGIT=QUEUE")
        })?;
        let leaf = MenuOption {
            digit: ' ',
            queue: Some(queue.to_owned()),
            submenu: None,
        };
        match keys.split_once('.') {
            None => top.push(MenuOption {
                digit: digit(keys)?,
                ..leaf
            }),
            Some((first, second)) => {
                let (d1, d2) = (digit(first)?, digit(second)?);
                let pos = match top
                    .iter()
                    .position(|m| m.digit == d1 && m.submenu.is_some())
                {
                    Some(p) => p,
                    None => {
                        top.push(MenuOption {
                            digit: d1,
                            queue: None,
                            submenu: Some(Menu {
                                prompt: sub_prompt(d1)?,
                                options: Vec::new(),
                            }),
                        });
                        top.len() - 1
                    }
                };
                if let Some(sub) = top[pos].submenu.as_mut() {
                    sub.options.push(MenuOption { digit: d2, ..leaf });
                }
            }
        }
    }
    Ok(Some(Menu {
        prompt: p,
        options: top,
    }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Applies a command to `data`: the message to print after saving, or `None`
/// when it only listed.
pub fn apply(
    data: &mut RgsData,
    cmd: RgsCommand,
    out: &mut impl Write,
) -> anyhow::Result<Option<String>> {
    Ok(Some(match cmd {
        RgsCommand::Workflow { command } => match command {
            WorkflowCommand::Add {
                name,
                uri,
                number,
                welcome,
                queue,
                menu_prompt,
                options,
                submenu_prompts,
                music,
                hours,
                holidays,
                utc_offset,
                out_of_hours,
            } => {
                if data.workflows.iter().any(|w| w.name == name) {
                    bail!("workflow {name:?} exists");
                }
                let number = number
                    .map(|n| confab_voice::parse_line_uri(&n))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("bad --number: {e}"))?;
                let mut open = Vec::new();
                for h in &hours {
                    open.extend(confab_rgs::model::parse_hours(h)?);
                }
                data.workflows.push(Workflow {
                    name: name.clone(),
                    uri: strip_sip(&uri)?,
                    number,
                    welcome: prompt(&welcome)?,
                    queue,
                    menu: menu(&menu_prompt, &options, &submenu_prompts)?,
                    music: prompt(&music)?,
                    hours: open,
                    holidays,
                    utc_offset_min: offset_minutes(&utc_offset)?,
                    out_of_hours: Action::parse(&out_of_hours)?,
                });
                format!("workflow {name} added")
            }
            WorkflowCommand::List => {
                if data.workflows.is_empty() {
                    writeln!(out, "no workflows")?;
                }
                for w in &data.workflows {
                    let menu = w.menu.as_ref().map_or(String::new(), |m| {
                        m.options
                            .iter()
                            .map(|o| match (&o.queue, &o.submenu) {
                                (Some(q), _) => format!("{}={q}", o.digit),
                                (None, Some(s)) => s
                                    .options
                                    .iter()
                                    .map(|s2| {
                                        format!(
                                            "{}.{}={}",
                                            o.digit,
                                            s2.digit,
                                            s2.queue.as_deref().unwrap_or("")
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(","),
                                _ => String::new(),
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                    writeln!(
                        out,
                        "{}\tsip:{}\t{}\tqueue={}\tmenu={}\thours={}\tholidays={}\tout-of-hours={}",
                        w.name,
                        w.uri,
                        w.number.as_deref().unwrap_or("-"),
                        w.queue.as_deref().unwrap_or("-"),
                        if menu.is_empty() { "-" } else { &menu },
                        w.hours.len(),
                        w.holidays.join(","),
                        w.out_of_hours
                    )?;
                }
                return Ok(None);
            }
            WorkflowCommand::Remove { name } => {
                let before = data.workflows.len();
                data.workflows.retain(|w| w.name != name);
                if data.workflows.len() == before {
                    bail!("no workflow {name:?}");
                }
                format!("workflow {name} removed")
            }
        },
        RgsCommand::Queue { command } => match command {
            QueueCommand::Add {
                name,
                groups,
                timeout,
                timeout_action,
                overflow_threshold,
                overflow_action,
            } => {
                if data.queues.iter().any(|q| q.name == name) {
                    bail!("queue {name:?} exists");
                }
                data.queues.push(Queue {
                    name: name.clone(),
                    groups,
                    timeout_secs: timeout,
                    timeout_action: Action::parse(&timeout_action)?,
                    overflow_threshold,
                    overflow_action: Action::parse(&overflow_action)?,
                });
                format!("queue {name} added")
            }
            QueueCommand::List => {
                if data.queues.is_empty() {
                    writeln!(out, "no queues")?;
                }
                for q in &data.queues {
                    writeln!(
                        out,
                        "{}\tgroups={}\ttimeout={}:{}\toverflow={}:{}",
                        q.name,
                        q.groups.join(","),
                        q.timeout_secs.map_or("-".into(), |t| t.to_string()),
                        q.timeout_action,
                        q.overflow_threshold.map_or("-".into(), |t| t.to_string()),
                        q.overflow_action
                    )?;
                }
                return Ok(None);
            }
            QueueCommand::Remove { name } => {
                let before = data.queues.len();
                data.queues.retain(|q| q.name != name);
                if data.queues.len() == before {
                    bail!("no queue {name:?}");
                }
                format!("queue {name} removed")
            }
        },
        RgsCommand::Group { command } => match command {
            GroupCommand::Add {
                name,
                routing,
                agents,
                formal,
                alert_secs,
            } => {
                if data.groups.iter().any(|g| g.name == name) {
                    bail!("agent group {name:?} exists");
                }
                let agents = agents
                    .iter()
                    .map(|a| strip_sip(a))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                data.groups.push(AgentGroup {
                    name: name.clone(),
                    routing: RoutingMethod::parse(&routing)?,
                    formal,
                    alert_secs,
                    agents,
                });
                format!("agent group {name} added")
            }
            GroupCommand::List => {
                if data.groups.is_empty() {
                    writeln!(out, "no agent groups")?;
                }
                for g in &data.groups {
                    writeln!(
                        out,
                        "{}\t{}\t{}\talert={}s\t{}",
                        g.name,
                        g.routing.name(),
                        if g.formal { "formal" } else { "informal" },
                        g.alert_secs,
                        g.agents.join(",")
                    )?;
                }
                return Ok(None);
            }
            GroupCommand::Remove { name } => {
                let before = data.groups.len();
                data.groups.retain(|g| g.name != name);
                if data.groups.len() == before {
                    bail!("no agent group {name:?}");
                }
                data.signins.retain(|s| s.group != name);
                format!("agent group {name} removed")
            }
        },
        RgsCommand::Agent { command } => match command {
            AgentCommand::Signin { group, agent } => {
                let agent = strip_sip(&agent)?;
                if data
                    .signins
                    .iter()
                    .any(|s| s.group == group && s.agent == agent)
                {
                    bail!("{agent} is already signed in to {group}");
                }
                data.signins.push(SignIn {
                    group: group.clone(),
                    agent: agent.clone(),
                    at_ms: now_ms(),
                });
                format!("{agent} signed in to {group}")
            }
            AgentCommand::Signout { group, agent } => {
                let agent = strip_sip(&agent)?;
                let before = data.signins.len();
                data.signins
                    .retain(|s| !(s.group == group && s.agent == agent));
                if data.signins.len() == before {
                    bail!("{agent} is not signed in to {group}");
                }
                format!("{agent} signed out of {group}")
            }
            AgentCommand::List => {
                if data.signins.is_empty() {
                    writeln!(out, "no agent signed in")?;
                }
                for s in &data.signins {
                    writeln!(out, "{}\t{}\t{}", s.group, s.agent, s.at_ms)?;
                }
                return Ok(None);
            }
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        cmd: RgsCommand,
    }

    fn run(data: &mut RgsData, args: &[&str]) -> anyhow::Result<()> {
        let t = T::try_parse_from(std::iter::once("rgs").chain(args.iter().copied()))?;
        let mut out = Vec::new();
        apply(data, t.cmd, &mut out)?;
        RgsConfig::build(data.clone())?;
        Ok(())
    }

    #[test]
    fn builds_a_workflow_with_a_two_level_menu() {
        let mut d = RgsData::default();
        run(
            &mut d,
            &[
                "group",
                "add",
                "g",
                "--agent",
                "sip:bob@example.com",
                "--formal",
            ],
        )
        .unwrap();
        run(
            &mut d,
            &[
                "queue",
                "add",
                "q",
                "--group",
                "g",
                "--overflow-action",
                "forward:sip:carol@example.com",
            ],
        )
        .unwrap();
        run(
            &mut d,
            &[
                "workflow",
                "add",
                "w",
                "--uri",
                "sip:help@example.com",
                "--number",
                "tel:+14255550300",
                "--menu-prompt",
                "tones:800:300",
                "--option",
                "2=q",
                "--option",
                "3.1=q",
                "--submenu-prompt",
                "3=tones:700:300",
                "--utc-offset",
                "-05:00",
                "--hours",
                "mon-fri 08:00-17:00",
            ],
        )
        .unwrap();
        let w = &d.workflows[0];
        assert_eq!(w.uri, "help@example.com");
        assert_eq!(w.number.as_deref(), Some("+14255550300"));
        assert_eq!(w.utc_offset_min, -300);
        let m = w.menu.as_ref().unwrap();
        assert_eq!(m.options.len(), 2);
        assert!(m.options[1].submenu.is_some());
        assert_eq!(w.hours.len(), 5);
        // Sign-in: only formal agents of the group.
        run(&mut d, &["agent", "signin", "g", "bob@example.com"]).unwrap();
        assert!(run(&mut d.clone(), &["agent", "signin", "g", "eve@example.com"]).is_err());
        // A queue in use cannot go.
        assert!(run(&mut d.clone(), &["queue", "remove", "q"]).is_err());
        assert!(
            run(
                &mut d.clone(),
                &[
                    "workflow",
                    "add",
                    "x",
                    "--uri",
                    "sip:x@example.com",
                    "--queue",
                    "nope"
                ]
            )
            .is_err()
        );
    }
}
