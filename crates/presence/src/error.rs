//! Error types.

/// Why a presence document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// The document exceeds the size limit.
    #[error("presence document too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// Size of the rejected document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Elements are nested deeper than the limit.
    #[error("presence document nested deeper than {0} elements")]
    TooDeep(usize),
    /// The document has more elements than the limit.
    #[error("presence document has more than {0} elements")]
    TooManyElements(usize),
    /// The document is not UTF-8.
    #[error("presence document is not valid UTF-8")]
    NotUtf8,
    /// The document is not well-formed XML (or uses forbidden constructs such
    /// as a DOCTYPE).
    #[error("malformed presence document: {0}")]
    Malformed(String),
    /// The root element is not `presence`.
    #[error("root element is <{0}>, expected <presence>")]
    NotPidf(String),
    /// The document has no root element.
    #[error("presence document is empty")]
    Empty,
    /// The root element is not the one the content type calls for (MS-PRES
    /// documents: `publish`, `batchSub`).
    #[error("root element is <{found}>, expected <{expected}>")]
    WrongRoot {
        /// Local name of the root element found.
        found: String,
        /// Local name expected.
        expected: &'static str,
    },
    /// The document lists more resources or publications than the limit.
    #[error("presence document lists more than {0} resources or publications")]
    TooManyItems(usize),
    /// The document is well-formed but a required element or attribute is
    /// missing or has an unusable value.
    #[error("invalid presence document: {0}")]
    Invalid(String),
}
