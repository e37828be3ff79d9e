//! Unassigned numbers and announcements (Lync's `New-CsUnassignedNumber` and
//! `New-CsAnnouncement`): a range of numbers no user has points to an
//! announcement, which plays an audio file or a tone sequence, then hangs up or
//! transfers the caller to a user or a number.

use crate::{VoiceError, check_name, is_e164};

/// An announcement of the Announcement service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub name: String,
    /// A WAV file on the server (path as given to the CLI).
    pub audio_file: Option<String>,
    /// A tone sequence, `FREQ[+FREQ]:MS,...` (see `confab_media::prompt`).
    pub tones: Option<String>,
    /// Where the caller goes afterwards (`sip:user@domain` or `tel:+E164`);
    /// `None`: the call ends.
    pub target: Option<String>,
}

/// A range of numbers (E.164, both ends included, same length) sent to an
/// announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnassignedRange {
    pub name: String,
    pub start: String,
    pub end: String,
    pub announcement: String,
    /// Lower first when ranges overlap.
    pub priority: i64,
}

impl UnassignedRange {
    /// Whether `number` (E.164) is in the range.
    pub fn contains(&self, number: &str) -> bool {
        number.len() == self.start.len()
            && self.start.as_str() <= number
            && number <= self.end.as_str()
    }
}

fn invalid(kind: &'static str, name: &str, reason: impl Into<String>) -> VoiceError {
    VoiceError::Invalid {
        kind,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Checks announcements and ranges (names, numbers, references).
pub(crate) fn check(
    announcements: &[Announcement],
    ranges: &[UnassignedRange],
) -> Result<(), VoiceError> {
    crate::dup_check(
        "announcement",
        announcements.iter().map(|a| a.name.as_str()),
    )?;
    for a in announcements {
        check_name(&a.name).map_err(crate::bad_name(&a.name))?;
        if a.audio_file.is_some() == a.tones.is_some() {
            return Err(invalid(
                "announcement",
                &a.name,
                "give either an audio file or a tone sequence",
            ));
        }
        if let Some(t) = &a.target {
            let ok = t.starts_with("sip:") && t.contains('@') && !t.contains(['<', '>', ' '])
                || t.strip_prefix("tel:").is_some_and(is_e164);
            if !ok {
                return Err(invalid(
                    "announcement",
                    &a.name,
                    format!("target {t:?} is neither sip:user@domain nor tel:+E164"),
                ));
            }
        }
    }
    crate::dup_check(
        "unassigned number range",
        ranges.iter().map(|r| r.name.as_str()),
    )?;
    for r in ranges {
        check_name(&r.name).map_err(crate::bad_name(&r.name))?;
        for n in [&r.start, &r.end] {
            if !is_e164(n) {
                return Err(invalid(
                    "unassigned number range",
                    &r.name,
                    format!("{n:?} is not E.164 (+ and 2 to 15 digits)"),
                ));
            }
        }
        if r.start.len() != r.end.len() || r.start > r.end {
            return Err(invalid(
                "unassigned number range",
                &r.name,
                "start and end have the same number of digits and start <= end",
            ));
        }
        if !announcements
            .iter()
            .any(|a| a.name.eq_ignore_ascii_case(&r.announcement))
        {
            return Err(VoiceError::Unknown {
                kind: "announcement",
                name: r.announcement.clone(),
            });
        }
    }
    Ok(())
}

/// The announcement for `number`: the matching range of lowest priority (then
/// first stored).
pub(crate) fn lookup<'a>(
    announcements: &'a [Announcement],
    ranges: &'a [UnassignedRange],
    number: &str,
) -> Option<(&'a UnassignedRange, &'a Announcement)> {
    let range = ranges
        .iter()
        .filter(|r| r.contains(number))
        .min_by_key(|r| r.priority)?;
    let a = announcements
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(&range.announcement))?;
    Some((range, a))
}

#[cfg(test)]
mod tests {
    use crate::{Announcement, Homes, UnassignedRange, VoiceConfig, VoiceData, VoiceError};

    fn ann(name: &str, tones: &str, target: Option<&str>) -> Announcement {
        Announcement {
            name: name.into(),
            audio_file: None,
            tones: Some(tones.into()),
            target: target.map(Into::into),
        }
    }

    fn range(name: &str, start: &str, end: &str, a: &str, priority: i64) -> UnassignedRange {
        UnassignedRange {
            name: name.into(),
            start: start.into(),
            end: end.into(),
            announcement: a.into(),
            priority,
        }
    }

    fn build(
        anns: Vec<Announcement>,
        ranges: Vec<UnassignedRange>,
    ) -> Result<VoiceConfig, VoiceError> {
        VoiceConfig::build(
            VoiceData {
                announcements: anns,
                unassigned: ranges,
                ..VoiceData::default()
            },
            Homes::default(),
        )
    }

    #[test]
    fn ranges_pick_the_lowest_priority() {
        let cfg = build(
            vec![
                ann("gone", "440:1000", None),
                ann("sales", "880:500", Some("sip:bob@example.com")),
            ],
            vec![
                range("all", "+14255550000", "+14255559999", "gone", 10),
                range("sales", "+14255550100", "+14255550199", "sales", 1),
            ],
        )
        .unwrap();
        assert!(!cfg.is_empty());
        let name = |n: &str| {
            cfg.unassigned(n)
                .map(|(r, a)| (r.name.clone(), a.name.clone()))
        };
        assert_eq!(name("+14255550150"), Some(("sales".into(), "sales".into())));
        assert_eq!(name("+14255550200"), Some(("all".into(), "gone".into())));
        assert_eq!(name("+14255559999"), Some(("all".into(), "gone".into())));
        assert_eq!(name("+1425555000"), None);
        assert_eq!(name("+142555500000"), None);
        assert_eq!(name("+14265550000"), None);
        assert!(cfg.announcement("SALES").is_some());
    }

    #[test]
    fn bad_configurations_are_refused() {
        let ok = || ann("a", "440:100", None);
        assert!(build(vec![ok(), ok()], vec![]).is_err());
        let mut both = ok();
        both.audio_file = Some("x.wav".into());
        assert!(build(vec![both], vec![]).is_err());
        let mut neither = ok();
        neither.tones = None;
        assert!(build(vec![neither], vec![]).is_err());
        for t in ["bob", "sip:bob", "tel:123", "sip:<x>@y"] {
            assert!(
                build(vec![ann("a", "440:100", Some(t))], vec![]).is_err(),
                "{t}"
            );
        }
        assert!(build(vec![ann("a", "440:100", Some("tel:+14255550100"))], vec![]).is_ok());
        for (s, e) in [
            ("+1425", "+14"),
            ("+2", "+1"),
            ("1425", "1426"),
            ("+14255550000", "+1425555000x"),
        ] {
            assert!(
                build(vec![ok()], vec![range("r", s, e, "a", 0)]).is_err(),
                "{s}-{e}"
            );
        }
        assert_eq!(
            build(vec![ok()], vec![range("r", "+100", "+199", "nope", 0)]).err(),
            Some(VoiceError::Unknown {
                kind: "announcement",
                name: "nope".into()
            })
        );
    }
}
