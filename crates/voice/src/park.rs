//! Call Park orbits (Lync's `New-CsCallParkOrbit`): a range of numbers a parked
//! call waits at. A call transferred to an orbit number with the `parker` URI
//! parameter is parked at the range's first free orbit; a call to an orbit
//! number that holds a parked call retrieves it. Part of the voice
//! configuration, so the front end routes orbit numbers to the park service.

use crate::{VoiceError, check_name};

/// A range of orbit numbers (digits, same length, both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkOrbit {
    pub name: String,
    pub start: String,
    pub end: String,
    /// Seconds a call stays parked before the parker is rung back.
    pub timeout_secs: u32,
    /// Where an unretrieved call goes when the parker does not answer the ring
    /// back (`sip:user@domain` or `tel:+E164`); `None`: the call ends.
    pub fallback: Option<String>,
    /// Music on hold: a WAV file on the server, or a tone sequence
    /// (`FREQ[+FREQ]:MS,...`); neither: the default tones.
    pub music_file: Option<String>,
    pub music_tones: Option<String>,
}

/// The music on hold when an orbit names none.
pub const DEFAULT_HOLD_TONES: &str = "440:400,0:100,554:400,0:100,659:400,0:600";

fn is_orbit_number(s: &str) -> bool {
    (1..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

impl ParkOrbit {
    /// Whether `number` (digits) is in the range.
    pub fn contains(&self, number: &str) -> bool {
        number.len() == self.start.len()
            && self.start.as_str() <= number
            && number <= self.end.as_str()
    }

    /// The orbit numbers of the range, in order.
    pub fn numbers(&self) -> impl Iterator<Item = String> + '_ {
        let width = self.start.len();
        let start: u64 = self.start.parse().unwrap_or(0);
        let end: u64 = self.end.parse().unwrap_or(0);
        (start..=end).map(move |n| format!("{n:0width$}"))
    }
}

fn invalid(name: &str, reason: impl Into<String>) -> VoiceError {
    VoiceError::Invalid {
        kind: "call park orbit",
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// A transfer or fallback target: `sip:user@domain` or `tel:+E164`.
pub fn is_target(t: &str) -> bool {
    t.starts_with("sip:") && t.contains('@') && !t.contains(['<', '>', ' '])
        || t.strip_prefix("tel:").is_some_and(crate::is_e164)
}

/// Checks orbit ranges: names, numbers, no overlap, at most 10,000 orbits each.
pub(crate) fn check(orbits: &[ParkOrbit]) -> Result<(), VoiceError> {
    crate::dup_check("call park orbit", orbits.iter().map(|o| o.name.as_str()))?;
    for o in orbits {
        check_name(&o.name).map_err(crate::bad_name(&o.name))?;
        if !is_orbit_number(&o.start) || !is_orbit_number(&o.end) {
            return Err(invalid(&o.name, "start and end are 1 to 15 digits"));
        }
        if o.start.len() != o.end.len() || o.start > o.end {
            return Err(invalid(
                &o.name,
                "start and end have the same number of digits and start <= end",
            ));
        }
        let (s, e): (u64, u64) = (
            o.start.parse().unwrap_or(0),
            o.end.parse().unwrap_or(u64::MAX),
        );
        if e.saturating_sub(s) >= 10_000 {
            return Err(invalid(&o.name, "at most 10000 orbits in a range"));
        }
        if !(5..=3600).contains(&o.timeout_secs) {
            return Err(invalid(&o.name, "timeout is 5 to 3600 seconds"));
        }
        if let Some(f) = &o.fallback
            && !is_target(f)
        {
            return Err(invalid(
                &o.name,
                format!("fallback {f:?} is neither sip:user@domain nor tel:+E164"),
            ));
        }
        if o.music_file.is_some() && o.music_tones.is_some() {
            return Err(invalid(&o.name, "give an audio file or tones, not both"));
        }
        if let Some(other) = orbits.iter().find(|p| {
            !std::ptr::eq(*p, o)
                && p.start.len() == o.start.len()
                && p.start <= o.end
                && o.start <= p.end
        }) {
            return Err(invalid(
                &o.name,
                format!("overlaps orbit range {:?}", other.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orbit(name: &str, start: &str, end: &str) -> ParkOrbit {
        ParkOrbit {
            name: name.into(),
            start: start.into(),
            end: end.into(),
            timeout_secs: 60,
            fallback: None,
            music_file: None,
            music_tones: None,
        }
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check(&[orbit("a", "7000", "7099"), orbit("b", "7100", "7199")]).is_ok());
        assert!(check(&[orbit("a", "7000", "7099"), orbit("b", "7050", "7199")]).is_err());
        assert!(check(&[orbit("a", "7099", "7000")]).is_err());
        assert!(check(&[orbit("a", "700", "7000")]).is_err());
        assert!(check(&[orbit("a", "+7000", "+7001")]).is_err());
        assert!(check(&[orbit("a", "0", "99999")]).is_err());
        let mut o = orbit("a", "7000", "7001");
        o.fallback = Some("bob".into());
        assert!(check(&[o.clone()]).is_err());
        o.fallback = Some("sip:bob@example.com".into());
        assert!(check(&[o.clone()]).is_ok());
        o.timeout_secs = 1;
        assert!(check(&[o]).is_err());
    }

    #[test]
    fn numbers_keep_their_width() {
        let o = orbit("a", "0098", "0101");
        let n: Vec<String> = o.numbers().collect();
        assert_eq!(n, ["0098", "0099", "0100", "0101"]);
        assert!(o.contains("0100"));
        assert!(!o.contains("100"));
        assert!(!o.contains("0102"));
    }
}
