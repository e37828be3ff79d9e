//! A Director's choice for a sign-in it does not serve: redirect or proxy.
//!
//! Lync clients (and pidgin-sipe) follow a `301` to the home server's Contact
//! and sign in there, which keeps the Director out of the user's traffic. Other
//! SIP clients (baresip and most softphones) treat a `301` to a REGISTER as a
//! failure, so the Director proxies their REGISTERs (and then their requests)
//! to the home pool instead. The choice is made by the `User-Agent` header: a
//! client whose User-Agent contains one of the configured markers is redirected.

/// User-Agent markers of clients that follow a sign-in redirect: Lync and
/// Office Communicator (`UCCAPI/`, `OC/`, `Lync`, `Skype for Business`) and
/// pidgin-sipe (`Sipe/`).
pub const DEFAULT_REDIRECT_AGENTS: &[&str] =
    &["UCCAPI", "OC/", "Lync", "Skype for Business", "Sipe/"];

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Markers, compared case-insensitively as substrings of the User-Agent.
    markers: Vec<String>,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        SignInPolicy::new(DEFAULT_REDIRECT_AGENTS.iter().copied())
    }
}

impl SignInPolicy {
    /// A policy redirecting clients whose User-Agent contains one of `markers`.
    pub fn new<'a>(markers: impl IntoIterator<Item = &'a str>) -> SignInPolicy {
        SignInPolicy {
            markers: markers
                .into_iter()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        }
    }

    /// Whether a client with this `User-Agent` (none: an unknown client) is
    /// redirected; otherwise its sign-in is proxied.
    pub fn redirects(&self, user_agent: Option<&str>) -> bool {
        let Some(ua) = user_agent else {
            return false;
        };
        let ua = ua.to_ascii_lowercase();
        self.markers.iter().any(|m| ua.contains(m.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lync_clients_and_sipe_are_redirected_others_proxied() {
        let p = SignInPolicy::default();
        assert!(p.redirects(Some(
            "UCCAPI/15.0.4569.1503 OC/15.0.4569.1503 (Microsoft Lync)"
        )));
        assert!(p.redirects(Some("Purple/2.14.12 Sipe/1.25.0 (linux-x86_64; 127.0.0.1)")));
        assert!(!p.redirects(Some("baresip v1.0.0 (x86_64/linux)")));
        assert!(!p.redirects(None));
    }

    #[test]
    fn markers_are_configurable_and_blank_ones_ignored() {
        let p = SignInPolicy::new(["baresip", " ", ""]);
        assert!(p.redirects(Some("BareSIP v1")));
        assert!(!p.redirects(Some("UCCAPI/15")));
        assert!(!SignInPolicy::new([]).redirects(Some("anything")));
    }
}
