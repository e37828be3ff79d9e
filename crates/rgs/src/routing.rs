//! Which agents a queued call is offered to, and in what order: Lync's routing
//! methods over an agent group (sans-IO).

use crate::model::{AgentGroup, RoutingMethod};

/// What the router knows of one agent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    pub agent: String,
    /// Signed in (formal) or informal.
    pub signed_in: bool,
    /// On a Response Group call or being offered one.
    pub busy: bool,
    /// Unix milliseconds since which the agent is idle (sign-in or last call).
    pub idle_since_ms: i64,
}

/// The offers for one group, in order: each inner list is offered at once (one
/// agent for the serial methods, everyone for parallel and attendant).
/// `cursor` is the group's round-robin position (the index of the agent offered
/// the previous call); it is moved for round robin.
pub fn batches(group: &AgentGroup, agents: &[AgentView], cursor: &mut usize) -> Vec<Vec<String>> {
    let free = |a: &&AgentView| a.signed_in && !a.busy;
    match group.routing {
        RoutingMethod::Serial => agents
            .iter()
            .filter(free)
            .map(|a| vec![a.agent.clone()])
            .collect(),
        RoutingMethod::Parallel => {
            let all: Vec<String> = agents
                .iter()
                .filter(free)
                .map(|a| a.agent.clone())
                .collect();
            if all.is_empty() { vec![] } else { vec![all] }
        }
        RoutingMethod::Attendant => {
            let all: Vec<String> = agents
                .iter()
                .filter(|a| a.signed_in)
                .map(|a| a.agent.clone())
                .collect();
            if all.is_empty() { vec![] } else { vec![all] }
        }
        RoutingMethod::RoundRobin => {
            let n = agents.len();
            if n == 0 {
                return vec![];
            }
            let start = (*cursor + 1) % n;
            let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
            let out: Vec<Vec<String>> = order
                .iter()
                .filter(|&&i| free(&&agents[i]))
                .map(|&i| vec![agents[i].agent.clone()])
                .collect();
            if let Some(&first) = order.iter().find(|&&i| free(&&agents[i])) {
                *cursor = first;
            }
            out
        }
        RoutingMethod::LongestIdle => {
            let mut free: Vec<&AgentView> = agents.iter().filter(free).collect();
            // Stable: equal idle times keep the group's order.
            free.sort_by_key(|a| a.idle_since_ms);
            free.into_iter().map(|a| vec![a.agent.clone()]).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(routing: RoutingMethod) -> AgentGroup {
        AgentGroup {
            name: "g".into(),
            routing,
            formal: true,
            alert_secs: 10,
            agents: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    fn views() -> Vec<AgentView> {
        vec![
            AgentView {
                agent: "a".into(),
                signed_in: true,
                busy: false,
                idle_since_ms: 300,
            },
            AgentView {
                agent: "b".into(),
                signed_in: false,
                busy: false,
                idle_since_ms: 100,
            },
            AgentView {
                agent: "c".into(),
                signed_in: true,
                busy: false,
                idle_since_ms: 200,
            },
        ]
    }

    fn flat(b: Vec<Vec<String>>) -> Vec<String> {
        b.into_iter().map(|v| v.join("+")).collect()
    }

    #[test]
    fn each_method() {
        let mut cur = 0;
        let v = views();
        assert_eq!(
            flat(batches(&group(RoutingMethod::Serial), &v, &mut cur)),
            ["a", "c"]
        );
        assert_eq!(
            flat(batches(&group(RoutingMethod::Parallel), &v, &mut cur)),
            ["a+c"]
        );
        assert_eq!(
            flat(batches(&group(RoutingMethod::LongestIdle), &v, &mut cur)),
            ["c", "a"]
        );
        let mut busy = views();
        busy[0].busy = true;
        assert_eq!(
            flat(batches(&group(RoutingMethod::Attendant), &busy, &mut cur)),
            ["a+c"]
        );
        assert_eq!(
            flat(batches(&group(RoutingMethod::Parallel), &busy, &mut cur)),
            ["c"]
        );
        // Round robin: after a, then c (b is out), then a again.
        let mut cur = 0;
        assert_eq!(
            flat(batches(&group(RoutingMethod::RoundRobin), &v, &mut cur)),
            ["c", "a"]
        );
        assert_eq!(cur, 2);
        assert_eq!(
            flat(batches(&group(RoutingMethod::RoundRobin), &v, &mut cur)),
            ["a", "c"]
        );
        assert_eq!(cur, 0);
    }
}
