//! The Response Group configuration (Lync's `New-CsRgsWorkflow`,
//! `New-CsRgsQueue`, `New-CsRgsAgentGroup`, `New-CsRgsHoursOfBusiness`,
//! `New-CsRgsHolidaySet`) and its checks. Sans-IO: the store keeps each object as
//! a JSON document, [`RgsConfig::build`] checks the whole set (names exist,
//! numbers and URIs unique, prompts parse) before anything is saved or used.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, UtcOffset};

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RgsError {
    #[error("{0}")]
    Invalid(String),
}

fn bad(s: impl Into<String>) -> RgsError {
    RgsError::Invalid(s.into())
}

/// What the caller hears: a tone sequence (`FREQ[+FREQ]:MS,...`) or a WAV file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptSpec {
    Tones(String),
    File(String),
}

impl PromptSpec {
    /// `tones:SPEC` or `file:PATH` (the CLI's form).
    pub fn parse(s: &str) -> Result<PromptSpec, RgsError> {
        if let Some(t) = s.strip_prefix("tones:") {
            confab_media::prompt::parse_tones(t).map_err(|e| bad(e.to_string()))?;
            Ok(PromptSpec::Tones(t.to_owned()))
        } else if let Some(f) = s.strip_prefix("file:") {
            if f.is_empty() {
                return Err(bad("file: needs a path"));
            }
            Ok(PromptSpec::File(f.to_owned()))
        } else {
            Err(bad(format!(
                "bad prompt {s:?}: tones:FREQ:MS,... or file:PATH"
            )))
        }
    }

    fn check(&self) -> Result<(), RgsError> {
        if let PromptSpec::Tones(t) = self {
            confab_media::prompt::parse_tones(t).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }
}

impl std::fmt::Display for PromptSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromptSpec::Tones(t) => write!(f, "tones:{t}"),
            PromptSpec::File(p) => write!(f, "file:{p}"),
        }
    }
}

/// What happens to a call (out of hours, queue timeout, queue overflow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Hang up, after a prompt if one is given.
    Disconnect { prompt: Option<PromptSpec> },
    /// Call this user or number (`sip:user@domain`, `tel:+E164`) and connect the
    /// caller to whoever answers.
    Forward { target: String },
    /// Another queue.
    Queue { queue: String },
}

impl Action {
    /// `disconnect`, `disconnect:tones:...`, `disconnect:file:...`,
    /// `forward:sip:user@domain`, `forward:tel:+1...`, `queue:NAME`.
    pub fn parse(s: &str) -> Result<Action, RgsError> {
        if s == "disconnect" {
            return Ok(Action::Disconnect { prompt: None });
        }
        if let Some(p) = s.strip_prefix("disconnect:") {
            return Ok(Action::Disconnect {
                prompt: Some(PromptSpec::parse(p)?),
            });
        }
        if let Some(t) = s.strip_prefix("forward:") {
            check_target(t)?;
            return Ok(Action::Forward {
                target: t.to_owned(),
            });
        }
        if let Some(q) = s.strip_prefix("queue:") {
            check_name(q)?;
            return Ok(Action::Queue {
                queue: q.to_owned(),
            });
        }
        Err(bad(format!(
            "bad action {s:?}: disconnect[:PROMPT], forward:URI or queue:NAME"
        )))
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Disconnect { prompt: None } => write!(f, "disconnect"),
            Action::Disconnect { prompt: Some(p) } => write!(f, "disconnect:{p}"),
            Action::Forward { target } => write!(f, "forward:{target}"),
            Action::Queue { queue } => write!(f, "queue:{queue}"),
        }
    }
}

fn check_target(t: &str) -> Result<(), RgsError> {
    let ok = match t.strip_prefix("tel:") {
        Some(n) => confab_voice::is_e164(n),
        None => t
            .strip_prefix("sip:")
            .and_then(|r| r.split_once('@'))
            .is_some_and(|(u, h)| !u.is_empty() && !h.is_empty() && !t.contains(['<', '>', ' '])),
    };
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "bad target {t:?}: sip:user@domain or tel:+E164"
        )))
    }
}

/// Names: letters, digits, `-`, `_`, `.` (as the voice configuration's).
pub fn check_name(n: &str) -> Result<(), RgsError> {
    confab_voice::check_name(n)
        .map(|_| ())
        .map_err(|r| bad(format!("bad name {n:?}: {r}")))
}

/// Lync's routing methods of an agent group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingMethod {
    /// One agent at a time, in the group's order.
    Serial,
    /// Every available agent at once.
    Parallel,
    /// One at a time, starting after the agent offered the previous call.
    RoundRobin,
    /// One at a time, the agent idle the longest first.
    LongestIdle,
    /// Every agent at once, busy ones included.
    Attendant,
}

impl RoutingMethod {
    pub fn parse(s: &str) -> Result<RoutingMethod, RgsError> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "serial" => RoutingMethod::Serial,
            "parallel" => RoutingMethod::Parallel,
            "round-robin" | "roundrobin" => RoutingMethod::RoundRobin,
            "longest-idle" | "longestidle" => RoutingMethod::LongestIdle,
            "attendant" => RoutingMethod::Attendant,
            _ => {
                return Err(bad(format!(
                    "bad routing method {s:?}: serial, parallel, round-robin, longest-idle or attendant"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RoutingMethod::Serial => "serial",
            RoutingMethod::Parallel => "parallel",
            RoutingMethod::RoundRobin => "round-robin",
            RoutingMethod::LongestIdle => "longest-idle",
            RoutingMethod::Attendant => "attendant",
        }
    }
}

/// An agent group (`New-CsRgsAgentGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentGroup {
    pub name: String,
    pub routing: RoutingMethod,
    /// Formal agents must sign in (`confab rgs agent signin`); informal ones are
    /// always in.
    pub formal: bool,
    /// How long one agent is offered a call (Lync's `AgentAlertTime`).
    pub alert_secs: u32,
    /// `user@domain`, in the group's order.
    pub agents: Vec<String>,
}

/// A queue (`New-CsRgsQueue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub name: String,
    /// Agent groups, in order.
    pub groups: Vec<String>,
    /// Longest wait, then `timeout_action`.
    pub timeout_secs: Option<u32>,
    pub timeout_action: Action,
    /// Calls waiting at which a new call overflows (`OverflowThreshold`); a
    /// queue with no agent signed in overflows too.
    pub overflow_threshold: Option<u32>,
    pub overflow_action: Action,
}

/// Opening hours in one day, minutes after midnight (close excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRange {
    /// 0 = Monday .. 6 = Sunday.
    pub day: u8,
    pub open: u16,
    pub close: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_of(s: &str) -> Option<u8> {
    DAYS.iter()
        .position(|d| s.eq_ignore_ascii_case(d))
        .and_then(|p| u8::try_from(p).ok())
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// `mon-fri 08:00-17:00` or `sat 09:00-12:00`.
pub fn parse_hours(s: &str) -> Result<Vec<OpenRange>, RgsError> {
    let err = || {
        bad(format!(
            "bad hours {s:?}: DAY[-DAY] HH:MM-HH:MM, e.g. mon-fri 08:00-17:00"
        ))
    };
    let (days, times) = s.trim().split_once(' ').ok_or_else(err)?;
    let (d1, d2) = days.split_once('-').unwrap_or((days, days));
    let (d1, d2) = (day_of(d1).ok_or_else(err)?, day_of(d2).ok_or_else(err)?);
    let (t1, t2) = times.trim().split_once('-').ok_or_else(err)?;
    let (open, close) = (minutes(t1).ok_or_else(err)?, minutes(t2).ok_or_else(err)?);
    if d2 < d1 || close <= open {
        return Err(err());
    }
    Ok((d1..=d2)
        .map(|day| OpenRange { day, open, close })
        .collect())
}

/// An IVR option: a digit leads to a queue, or (first level only) to a second
/// menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    pub digit: char,
    /// The queue this digit leads to (when `submenu` is `None`).
    pub queue: Option<String>,
    pub submenu: Option<Menu>,
}

/// A voice menu (one or two levels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu {
    pub prompt: PromptSpec,
    pub options: Vec<MenuOption>,
}

/// A workflow (`New-CsRgsWorkflow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    /// `user@domain` (its SIP URI without `sip:`).
    pub uri: String,
    /// Its line URI's number (E.164).
    pub number: Option<String>,
    pub welcome: Option<PromptSpec>,
    /// Without a menu, callers go straight to this queue.
    pub queue: Option<String>,
    pub menu: Option<Menu>,
    /// Music while waiting (looped); silence when none.
    pub music: Option<PromptSpec>,
    /// Business hours; none: always open.
    pub hours: Vec<OpenRange>,
    /// Holidays (`YYYY-MM-DD`): closed all day.
    pub holidays: Vec<String>,
    /// The hours' time zone, minutes east of UTC.
    pub utc_offset_min: i32,
    pub out_of_hours: Action,
}

impl Workflow {
    /// Whether the workflow is open at `now` (its business hours and holidays).
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        let offset =
            UtcOffset::from_whole_seconds(self.utc_offset_min * 60).unwrap_or(UtcOffset::UTC);
        let local = now.to_offset(offset);
        let date = local.date();
        if self.holidays.iter().any(|h| parse_date(h) == Some(date)) {
            return false;
        }
        if self.hours.is_empty() {
            return true;
        }
        let day = local.weekday().number_days_from_monday();
        let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
        self.hours
            .iter()
            .any(|r| r.day == day && r.open <= minute && minute < r.close)
    }
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let mut it = s.split('-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()
}

/// A formal agent's sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub group: String,
    pub agent: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// Everything stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RgsData {
    pub workflows: Vec<Workflow>,
    pub queues: Vec<Queue>,
    pub groups: Vec<AgentGroup>,
    pub signins: Vec<SignIn>,
}

/// A stored object: kind, name, JSON body (see `confab_store`'s `rgs_objects`).
pub type Row = (String, String, String);
/// A stored sign-in: group, agent, Unix milliseconds.
pub type SignInRow = (String, String, i64);

impl RgsData {
    /// From the store's rows.
    pub fn from_rows(objects: &[Row], signins: &[SignInRow]) -> Result<RgsData, RgsError> {
        let mut d = RgsData::default();
        let corrupt = |kind: &str, name: &str, e: serde_json::Error| {
            bad(format!("stored {kind} {name:?} is not valid: {e}"))
        };
        for (kind, name, body) in objects {
            match kind.as_str() {
                "workflow" => d
                    .workflows
                    .push(serde_json::from_str(body).map_err(|e| corrupt(kind, name, e))?),
                "queue" => d
                    .queues
                    .push(serde_json::from_str(body).map_err(|e| corrupt(kind, name, e))?),
                "group" => d
                    .groups
                    .push(serde_json::from_str(body).map_err(|e| corrupt(kind, name, e))?),
                _ => return Err(bad(format!("stored object of unknown kind {kind:?}"))),
            }
        }
        d.signins = signins
            .iter()
            .map(|(group, agent, at_ms)| SignIn {
                group: group.clone(),
                agent: agent.clone(),
                at_ms: *at_ms,
            })
            .collect();
        Ok(d)
    }

    /// To the store's rows.
    pub fn to_rows(&self) -> Result<(Vec<Row>, Vec<SignInRow>), RgsError> {
        let enc = |e: serde_json::Error| bad(e.to_string());
        let mut rows = Vec::new();
        for g in &self.groups {
            rows.push((
                "group".into(),
                g.name.clone(),
                serde_json::to_string(g).map_err(enc)?,
            ));
        }
        for q in &self.queues {
            rows.push((
                "queue".into(),
                q.name.clone(),
                serde_json::to_string(q).map_err(enc)?,
            ));
        }
        for w in &self.workflows {
            rows.push((
                "workflow".into(),
                w.name.clone(),
                serde_json::to_string(w).map_err(enc)?,
            ));
        }
        let signins = self
            .signins
            .iter()
            .map(|s| (s.group.clone(), s.agent.clone(), s.at_ms))
            .collect();
        Ok((rows, signins))
    }
}

/// A checked configuration, indexed for calls.
#[derive(Debug, Clone, Default)]
pub struct RgsConfig {
    pub data: RgsData,
    by_uri: HashMap<String, usize>,
    by_number: HashMap<String, usize>,
}

fn check_aor(a: &str) -> Result<(), RgsError> {
    match a.split_once('@') {
        Some((u, h)) if !u.is_empty() && !h.is_empty() && !a.contains(['<', '>', ' ', ';']) => {
            Ok(())
        }
        _ => Err(bad(format!("bad address {a:?}: user@domain"))),
    }
}

fn check_action(a: &Action, queues: &HashSet<&str>, what: &str) -> Result<(), RgsError> {
    match a {
        Action::Disconnect { prompt: Some(p) } => p.check(),
        Action::Disconnect { prompt: None } => Ok(()),
        Action::Forward { target } => check_target(target),
        Action::Queue { queue } if queues.contains(queue.as_str()) => Ok(()),
        Action::Queue { queue } => Err(bad(format!("{what}: no queue {queue:?}"))),
    }
}

impl RgsConfig {
    /// Checks `data` as a whole.
    pub fn build(data: RgsData) -> Result<RgsConfig, RgsError> {
        let mut groups = HashSet::new();
        for g in &data.groups {
            check_name(&g.name)?;
            if !groups.insert(g.name.as_str()) {
                return Err(bad(format!("agent group {:?} twice", g.name)));
            }
            if g.alert_secs == 0 || g.alert_secs > 600 {
                return Err(bad(format!(
                    "agent group {:?}: alert time 1..600 s",
                    g.name
                )));
            }
            let mut seen = HashSet::new();
            for a in &g.agents {
                check_aor(a)?;
                if !seen.insert(a.as_str()) {
                    return Err(bad(format!("agent group {:?}: {a} twice", g.name)));
                }
            }
        }
        let mut queues = HashSet::new();
        for q in &data.queues {
            check_name(&q.name)?;
            if !queues.insert(q.name.as_str()) {
                return Err(bad(format!("queue {:?} twice", q.name)));
            }
        }
        for q in &data.queues {
            for g in &q.groups {
                if !groups.contains(g.as_str()) {
                    return Err(bad(format!("queue {:?}: no agent group {g:?}", q.name)));
                }
            }
            let what = format!("queue {:?}", q.name);
            check_action(&q.timeout_action, &queues, &what)?;
            check_action(&q.overflow_action, &queues, &what)?;
        }
        let mut by_uri = HashMap::new();
        let mut by_number = HashMap::new();
        let mut names = HashSet::new();
        for (i, w) in data.workflows.iter().enumerate() {
            check_name(&w.name)?;
            if !names.insert(w.name.as_str()) {
                return Err(bad(format!("workflow {:?} twice", w.name)));
            }
            check_aor(&w.uri)?;
            if by_uri.insert(w.uri.to_ascii_lowercase(), i).is_some() {
                return Err(bad(format!("SIP URI {} used twice", w.uri)));
            }
            if let Some(n) = &w.number {
                if !confab_voice::is_e164(n) {
                    return Err(bad(format!("workflow {:?}: {n} is not E.164", w.name)));
                }
                if by_number.insert(n.clone(), i).is_some() {
                    return Err(bad(format!("number {n} used by two workflows")));
                }
            }
            let what = format!("workflow {:?}", w.name);
            match (&w.queue, &w.menu) {
                (None, None) => {
                    return Err(bad(format!("{what}: needs a queue or a menu")));
                }
                (Some(q), _) if !queues.contains(q.as_str()) => {
                    return Err(bad(format!("{what}: no queue {q:?}")));
                }
                _ => {}
            }
            if let Some(m) = &w.menu {
                check_menu(m, &queues, &what, 1)?;
            }
            for p in [&w.welcome, &w.music].into_iter().flatten() {
                p.check()?;
            }
            for h in &w.holidays {
                if parse_date(h).is_none() {
                    return Err(bad(format!("{what}: bad holiday {h:?} (YYYY-MM-DD)")));
                }
            }
            if w.utc_offset_min.abs() > 14 * 60 {
                return Err(bad(format!("{what}: UTC offset out of range")));
            }
            check_action(&w.out_of_hours, &queues, &what)?;
        }
        for s in &data.signins {
            let formal = data
                .groups
                .iter()
                .any(|g| g.name == s.group && g.formal && g.agents.contains(&s.agent));
            if !formal {
                return Err(bad(format!(
                    "{} is not a formal agent of group {:?}",
                    s.agent, s.group
                )));
            }
        }
        Ok(RgsConfig {
            data,
            by_uri,
            by_number,
        })
    }

    /// The workflow whose SIP URI is `aor` (`user@domain`) or whose number is
    /// the user part of `aor`.
    pub fn workflow_for(&self, aor: &str) -> Option<&Workflow> {
        let aor = aor.to_ascii_lowercase();
        let i = self.by_uri.get(&aor).or_else(|| {
            let user = aor.split('@').next().unwrap_or("");
            let user = user.split(';').next().unwrap_or("");
            self.by_number.get(user)
        })?;
        self.data.workflows.get(*i)
    }

    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.data.queues.iter().find(|q| q.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&AgentGroup> {
        self.data.groups.iter().find(|g| g.name == name)
    }

    /// When `agent` signed in to `group` (formal groups), `Some(0)` for an
    /// informal group's agent (always in), `None` when signed out.
    pub fn signed_in(&self, group: &AgentGroup, agent: &str) -> Option<i64> {
        if !group.formal {
            return Some(0);
        }
        self.data
            .signins
            .iter()
            .find(|s| s.group == group.name && s.agent == agent)
            .map(|s| s.at_ms)
    }

    /// The SIP URIs and numbers callers reach workflows at (for the front end).
    pub fn addresses(&self) -> (Vec<String>, Vec<String>) {
        (
            self.by_uri.keys().cloned().collect(),
            self.by_number.keys().cloned().collect(),
        )
    }
}

fn check_menu(m: &Menu, queues: &HashSet<&str>, what: &str, level: u8) -> Result<(), RgsError> {
    m.prompt.check()?;
    if m.options.is_empty() {
        return Err(bad(format!("{what}: a menu needs options")));
    }
    let mut digits = HashSet::new();
    for o in &m.options {
        if !(o.digit.is_ascii_digit() || o.digit == '*' || o.digit == '#') {
            return Err(bad(format!("{what}: bad menu digit {:?}", o.digit)));
        }
        if !digits.insert(o.digit) {
            return Err(bad(format!("{what}: digit {} twice", o.digit)));
        }
        match (&o.queue, &o.submenu) {
            (Some(q), None) if queues.contains(q.as_str()) => {}
            (Some(q), None) => return Err(bad(format!("{what}: no queue {q:?}"))),
            (None, Some(sub)) if level == 1 => check_menu(sub, queues, what, 2)?,
            (None, Some(_)) => return Err(bad(format!("{what}: menus have two levels at most"))),
            _ => return Err(bad(format!("{what}: option {} needs a queue", o.digit))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> RgsData {
        RgsData {
            workflows: vec![Workflow {
                name: "sales".into(),
                uri: "sales@example.com".into(),
                number: Some("+14255550300".into()),
                welcome: Some(PromptSpec::Tones("1000:500".into())),
                queue: None,
                menu: Some(Menu {
                    prompt: PromptSpec::Tones("800:300".into()),
                    options: vec![
                        MenuOption {
                            digit: '1',
                            queue: Some("q1".into()),
                            submenu: None,
                        },
                        MenuOption {
                            digit: '3',
                            queue: None,
                            submenu: Some(Menu {
                                prompt: PromptSpec::Tones("700:300".into()),
                                options: vec![MenuOption {
                                    digit: '1',
                                    queue: Some("q1".into()),
                                    submenu: None,
                                }],
                            }),
                        },
                    ],
                }),
                music: Some(PromptSpec::Tones("600:400".into())),
                hours: parse_hours("mon-fri 08:00-17:00").unwrap(),
                holidays: vec!["2026-12-25".into()],
                utc_offset_min: 60,
                out_of_hours: Action::Disconnect { prompt: None },
            }],
            queues: vec![Queue {
                name: "q1".into(),
                groups: vec!["g1".into()],
                timeout_secs: Some(60),
                timeout_action: Action::Disconnect { prompt: None },
                overflow_threshold: None,
                overflow_action: Action::Forward {
                    target: "sip:carol@example.com".into(),
                },
            }],
            groups: vec![AgentGroup {
                name: "g1".into(),
                routing: RoutingMethod::LongestIdle,
                formal: true,
                alert_secs: 20,
                agents: vec!["bob@example.com".into(), "dave@example.com".into()],
            }],
            signins: vec![],
        }
    }

    #[test]
    fn rows_round_trip() {
        let mut d = sample();
        d.signins.push(SignIn {
            group: "g1".into(),
            agent: "bob@example.com".into(),
            at_ms: 7,
        });
        let (rows, signins) = d.to_rows().unwrap();
        assert_eq!(RgsData::from_rows(&rows, &signins).unwrap(), d);
        let broken = vec![("queue".to_owned(), "q".to_owned(), "{".to_owned())];
        assert!(RgsData::from_rows(&broken, &[]).is_err());
    }

    #[test]
    fn builds_and_finds_by_uri_and_number() {
        let c = RgsConfig::build(sample()).unwrap();
        assert_eq!(c.workflow_for("SALES@example.com").unwrap().name, "sales");
        assert_eq!(
            c.workflow_for("+14255550300@example.com").unwrap().name,
            "sales"
        );
        assert!(c.workflow_for("bob@example.com").is_none());
    }

    #[test]
    fn refuses_dangling_names_and_duplicates() {
        let mut d = sample();
        d.queues[0].groups = vec!["nope".into()];
        assert!(RgsConfig::build(d).is_err());
        let mut d = sample();
        d.workflows.push(d.workflows[0].clone());
        d.workflows[1].name = "other".into();
        assert!(RgsConfig::build(d).is_err());
        let mut d = sample();
        d.signins.push(SignIn {
            group: "g1".into(),
            agent: "eve@example.com".into(),
            at_ms: 1,
        });
        assert!(RgsConfig::build(d).is_err());
        let mut d = sample();
        d.queues[0].overflow_action = Action::Queue {
            queue: "none".into(),
        };
        assert!(RgsConfig::build(d).is_err());
    }

    #[test]
    fn parses_cli_forms() {
        assert_eq!(
            Action::parse("forward:tel:+14255550100").unwrap(),
            Action::Forward {
                target: "tel:+14255550100".into()
            }
        );
        assert!(Action::parse("forward:bob").is_err());
        assert!(Action::parse("disconnect:tones:500:300").is_ok());
        assert!(Action::parse("disconnect:tones:bad").is_err());
        assert_eq!(
            RoutingMethod::parse("Longest-Idle").unwrap(),
            RoutingMethod::LongestIdle
        );
        assert!(parse_hours("fri-mon 08:00-17:00").is_err());
        assert_eq!(parse_hours("sat 09:00-12:30").unwrap()[0].close, 750);
    }

    #[test]
    fn business_hours_and_holidays() {
        let c = RgsConfig::build(sample()).unwrap();
        let w = &c.data.workflows[0];
        // Monday 2026-12-07 08:30 UTC = 09:30 at +01:00: open.
        let t = time::macros::datetime!(2026-12-07 08:30 UTC);
        assert!(w.is_open(t));
        // 16:30 UTC = 17:30 local: closed.
        assert!(!w.is_open(time::macros::datetime!(2026-12-07 16:30 UTC)));
        // Saturday: closed; Christmas (a Friday): closed.
        assert!(!w.is_open(time::macros::datetime!(2026-12-12 10:00 UTC)));
        assert!(!w.is_open(time::macros::datetime!(2026-12-25 10:00 UTC)));
    }
}
