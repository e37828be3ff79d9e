//! Compliance events the core reports (issue 11): joins, leaves and history reads.
//! Posts and administrative changes are recorded by the store in their own
//! transactions; these are written by the service before the output produced with
//! them is sent (see `service.rs`).

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComplianceKind {
    Join,
    Part,
    /// A history read (`cmd:bccontext`).
    BackChat,
}

impl ComplianceKind {
    /// The name in Lync's compliance XML (`Message@type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceKind::Join => "JOIN",
            ComplianceKind::Part => "PART",
            ComplianceKind::BackChat => "BACKCHAT",
        }
    }
}

/// One event for the compliance outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceEvent {
    pub kind: ComplianceKind,
    pub room_id: String,
    /// Normalized address of the user.
    pub user: String,
    /// BACKCHAT: how many posts were sent.
    pub content: String,
}
