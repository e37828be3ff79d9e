//! The neutral presence model shared by SIMPLE (PIDF) and Lync (MS-PRES) clients.

use std::fmt;

/// Coarse availability of a presentity.
///
/// The variants mirror the availability classes of MS-PRES / Lync 2013; SIMPLE
/// clients are mapped onto them from PIDF `basic` status plus RPID activities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Availability {
    /// Available and active (Lync 3000–4499).
    Online,
    /// Available but inactive (Lync 4500–5999).
    Idle,
    /// Busy (Lync 6000–7499).
    Busy,
    /// Busy and inactive (Lync 7500–8999).
    BusyIdle,
    /// Do not disturb (Lync 9000–11999).
    DoNotDisturb,
    /// Be right back / temporarily unalertable (Lync 12000–14999).
    BeRightBack,
    /// Away / unalertable (Lync 15000–17999).
    Away,
    /// Offline or appearing offline (Lync 18000 and above).
    Offline,
}

impl Availability {
    /// All variants, from the highest aggregation precedence to the lowest.
    pub const BY_PRECEDENCE: [Availability; 8] = [
        Availability::DoNotDisturb,
        Availability::Busy,
        Availability::BusyIdle,
        Availability::Online,
        Availability::Idle,
        Availability::BeRightBack,
        Availability::Away,
        Availability::Offline,
    ];

    /// Maps a Lync/MS-PRES availability number onto a class.
    ///
    /// Ranges follow MS-PRES (3000–4499 online, 4500–5999 idle, 6000–7499 busy,
    /// 7500–8999 busy-idle, 9000–11999 do-not-disturb, 12000–14999 be-right-back,
    /// 15000–17999 away, 18000+ offline). Values below 3000 carry no usable
    /// availability in the legacy interop scheme (SIPE shows them as offline), so
    /// they map to [`Availability::Offline`].
    pub const fn from_lync(value: u32) -> Availability {
        match value {
            0..=2999 => Availability::Offline,
            3000..=4499 => Availability::Online,
            4500..=5999 => Availability::Idle,
            6000..=7499 => Availability::Busy,
            7500..=8999 => Availability::BusyIdle,
            9000..=11999 => Availability::DoNotDisturb,
            12000..=14999 => Availability::BeRightBack,
            15000..=17999 => Availability::Away,
            _ => Availability::Offline,
        }
    }

    /// The canonical Lync availability number for this class (the value Lync
    /// clients publish: 3500, 5000, 6500, 8000, 9500, 12500, 15500, 18500).
    pub const fn to_lync(self) -> u32 {
        match self {
            Availability::Online => 3500,
            Availability::Idle => 5000,
            Availability::Busy => 6500,
            Availability::BusyIdle => 8000,
            Availability::DoNotDisturb => 9500,
            Availability::BeRightBack => 12500,
            Availability::Away => 15500,
            Availability::Offline => 18500,
        }
    }

    /// Aggregation precedence (higher wins) used when several publications or
    /// endpoints of one user disagree:
    /// `DoNotDisturb > Busy > BusyIdle > Online > Idle > BeRightBack > Away > Offline`.
    ///
    /// This follows the Lync behaviour that a user who is busy on one device is
    /// busy, and that the most active device wins among otherwise available ones.
    pub const fn precedence(self) -> u8 {
        match self {
            Availability::DoNotDisturb => 7,
            Availability::Busy => 6,
            Availability::BusyIdle => 5,
            Availability::Online => 4,
            Availability::Idle => 3,
            Availability::BeRightBack => 2,
            Availability::Away => 1,
            Availability::Offline => 0,
        }
    }

    /// `true` unless the presentity is offline.
    pub const fn is_online(self) -> bool {
        !matches!(self, Availability::Offline)
    }

    /// `true` for the two inactive classes ([`Idle`](Self::Idle), [`BusyIdle`](Self::BusyIdle)).
    pub const fn is_idle(self) -> bool {
        matches!(self, Availability::Idle | Availability::BusyIdle)
    }

    /// The inactive variant of this class (Online→Idle, Busy→BusyIdle); other
    /// classes are returned unchanged.
    pub const fn to_idle(self) -> Availability {
        match self {
            Availability::Online => Availability::Idle,
            Availability::Busy => Availability::BusyIdle,
            other => other,
        }
    }

    /// The active variant of this class (Idle→Online, BusyIdle→Busy); other
    /// classes are returned unchanged.
    pub const fn to_active(self) -> Availability {
        match self {
            Availability::Idle => Availability::Online,
            Availability::BusyIdle => Availability::Busy,
            other => other,
        }
    }

    /// A short lowercase token (`online`, `idle`, `busy`, `busy-idle`,
    /// `do-not-disturb`, `be-right-back`, `away`, `offline`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Idle => "idle",
            Availability::Busy => "busy",
            Availability::BusyIdle => "busy-idle",
            Availability::DoNotDisturb => "do-not-disturb",
            Availability::BeRightBack => "be-right-back",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Information about the endpoint (device) a presence document came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    /// PIDF tuple id (or another stable endpoint identifier).
    pub id: Option<String>,
    /// Contact address of the endpoint (PIDF `<contact>`).
    pub contact: Option<String>,
}

/// The presence state of one source (publication or endpoint) or the
/// aggregate of a presentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceState {
    /// Availability class.
    pub availability: Availability,
    /// Free-text note ("personal note" in Lync, PIDF `<note>`).
    pub note: Option<String>,
    /// Activity token, e.g. `on-the-phone`, `away`, `busy` (RPID activity
    /// element name or the text of `<rpid:other>`).
    pub activity: Option<String>,
    /// Endpoint information, when known.
    pub endpoint: Option<EndpointInfo>,
}

impl PresenceState {
    /// A state with the given availability and nothing else.
    pub const fn new(availability: Availability) -> Self {
        PresenceState {
            availability,
            note: None,
            activity: None,
            endpoint: None,
        }
    }

    /// The state of a presentity nobody knows anything about.
    pub const fn offline() -> Self {
        Self::new(Availability::Offline)
    }

    /// The state of a registered endpoint that published nothing.
    pub const fn online() -> Self {
        Self::new(Availability::Online)
    }

    /// Builder: sets the note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Builder: sets the activity token.
    #[must_use]
    pub fn with_activity(mut self, activity: impl Into<String>) -> Self {
        self.activity = Some(activity.into());
        self
    }

    /// Builder: sets the endpoint information.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: EndpointInfo) -> Self {
        self.endpoint = Some(endpoint);
        self
    }
}

impl Default for PresenceState {
    fn default() -> Self {
        Self::offline()
    }
}

/// The availability implied by an activity token (RPID activity element name,
/// Lync activity token, or free text as found in `<rpid:other>`), or `None`
/// when the activity says nothing about availability (e.g. `working`).
///
/// Matching is case-insensitive and treats spaces and underscores like `-`,
/// so `"Do not disturb"` maps like `do-not-disturb`.
pub fn activity_availability(token: &str) -> Option<Availability> {
    let normalized: String = token
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let availability = match normalized.as_str() {
        "do-not-disturb" | "donotdisturb" | "dnd" | "presentation" | "presenting" => {
            Availability::DoNotDisturb
        }
        "busy" | "on-the-phone" | "in-a-call" | "on-a-call" | "meeting" | "in-a-meeting"
        | "in-a-conference" | "appointment" | "performance" | "steering" => Availability::Busy,
        "be-right-back" | "berightback" | "brb" | "meal" | "breakfast" | "lunch" | "dinner"
        | "out-to-lunch" => Availability::BeRightBack,
        "away" | "vacation" | "holiday" | "permanent-absence" | "sleeping" | "travel"
        | "in-transit" | "out-of-office" | "off-work" => Availability::Away,
        "idle" | "inactive" => Availability::Idle,
        "offline" | "appear-offline" => Availability::Offline,
        _ => return None,
    };
    Some(availability)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lync_ranges_map_to_classes() {
        let cases = [
            (0, Availability::Offline),
            (2999, Availability::Offline),
            (3000, Availability::Online),
            (3500, Availability::Online),
            (4499, Availability::Online),
            (4500, Availability::Idle),
            (5999, Availability::Idle),
            (6000, Availability::Busy),
            (6900, Availability::Busy),
            (7499, Availability::Busy),
            (7500, Availability::BusyIdle),
            (8999, Availability::BusyIdle),
            (9000, Availability::DoNotDisturb),
            (11999, Availability::DoNotDisturb),
            (12000, Availability::BeRightBack),
            (14999, Availability::BeRightBack),
            (15000, Availability::Away),
            (17999, Availability::Away),
            (18000, Availability::Offline),
            (18500, Availability::Offline),
            (u32::MAX, Availability::Offline),
        ];
        for (value, expected) in cases {
            assert_eq!(Availability::from_lync(value), expected, "value {value}");
        }
    }

    #[test]
    fn canonical_lync_values_round_trip() {
        for a in Availability::BY_PRECEDENCE {
            assert_eq!(Availability::from_lync(a.to_lync()), a);
        }
        assert_eq!(Availability::Online.to_lync(), 3500);
        assert_eq!(Availability::Busy.to_lync(), 6500);
        assert_eq!(Availability::DoNotDisturb.to_lync(), 9500);
        assert_eq!(Availability::BeRightBack.to_lync(), 12500);
        assert_eq!(Availability::Away.to_lync(), 15500);
        assert_eq!(Availability::Offline.to_lync(), 18500);
    }

    #[test]
    fn precedence_order_is_strict_and_documented() {
        let ranks: Vec<u8> = Availability::BY_PRECEDENCE
            .iter()
            .map(|a| a.precedence())
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] > w[1]));
        assert!(Availability::Busy.precedence() > Availability::Online.precedence());
        assert!(Availability::DoNotDisturb.precedence() > Availability::Busy.precedence());
        assert!(Availability::Online.precedence() > Availability::BeRightBack.precedence());
        assert!(Availability::BeRightBack.precedence() > Availability::Away.precedence());
        assert!(Availability::Away.precedence() > Availability::Offline.precedence());
    }

    #[test]
    fn idle_conversions() {
        assert_eq!(Availability::Online.to_idle(), Availability::Idle);
        assert_eq!(Availability::Busy.to_idle(), Availability::BusyIdle);
        assert_eq!(Availability::Away.to_idle(), Availability::Away);
        assert_eq!(Availability::BusyIdle.to_active(), Availability::Busy);
        assert!(Availability::Idle.is_idle());
        assert!(!Availability::Offline.is_online());
        assert_eq!(Availability::DoNotDisturb.to_string(), "do-not-disturb");
    }

    #[test]
    fn activity_tokens_map_to_availability() {
        assert_eq!(
            activity_availability("on-the-phone"),
            Some(Availability::Busy)
        );
        assert_eq!(activity_availability("away"), Some(Availability::Away));
        assert_eq!(
            activity_availability(" Do not Disturb "),
            Some(Availability::DoNotDisturb)
        );
        assert_eq!(
            activity_availability("be_right_back"),
            Some(Availability::BeRightBack)
        );
        assert_eq!(activity_availability("working"), None);
        assert_eq!(activity_availability(""), None);
    }

    #[test]
    fn default_state_is_offline() {
        assert_eq!(PresenceState::default(), PresenceState::offline());
        let s = PresenceState::online()
            .with_note("hi")
            .with_activity("working");
        assert_eq!(s.note.as_deref(), Some("hi"));
        assert_eq!(s.activity.as_deref(), Some("working"));
    }
}
