//! Certificates for confab.
//!
//! Every role that listens for TLS (front end, director, edge, Persistent Chat,
//! mediation) uses the certificate in `<data>/tls/cert.pem` with its private key in
//! `<data>/tls/key.pem`. [`load_or_create`] loads that pair, or — when no
//! certificate is configured — creates a self-signed one whose subject alternative
//! names are the pool and machine FQDNs (plus `localhost` and `127.0.0.1`), as
//! `confab bootstrap` does. Replace the pair with a certificate issued by a CA the
//! clients trust; [`cert_info`] reads the SAN list and validity back for
//! `confab prereq check`.

mod der;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use der::{CertInfo, parse_cert_der};

/// Name of the directory under the data directory that holds the certificate.
pub const TLS_DIR: &str = "tls";
/// File name of the PEM certificate chain (leaf first).
pub const CERT_FILE: &str = "cert.pem";
/// File name of the PEM private key (PKCS#8, PKCS#1 or SEC1).
pub const KEY_FILE: &str = "key.pem";
/// Validity of a self-signed certificate created by [`load_or_create`].
pub const SELF_SIGNED_DAYS: u64 = 825;

/// Errors from loading, creating or parsing certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a PEM certificate file: {reason}")]
    BadCertificatePem { path: PathBuf, reason: String },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM private key: {reason}")]
    BadKeyPem { path: PathBuf, reason: String },
    #[error("found {present} but not {missing}: put both files in place or remove the other one")]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("certificate is malformed: {0}")]
    Der(String),
    #[error("creating a self-signed certificate failed: {0}")]
    Generate(String),
    #[error("the certificate and key are not usable by the TLS stack: {0}")]
    Rustls(String),
}

/// A certificate chain and its private key, ready for [`server_config`].
#[derive(Debug)]
pub struct TlsMaterial {
    /// Leaf certificate first, then intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// True when [`load_or_create`] created a self-signed certificate just now.
    pub created: bool,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TlsMaterial {
    /// Subject alternative names, validity and issuer facts of the leaf certificate.
    pub fn leaf_info(&self) -> Result<CertInfo, TlsError> {
        let leaf = self
            .cert_chain
            .first()
            .ok_or_else(|| TlsError::NoCertificate {
                path: self.cert_path.clone(),
            })?;
        parse_cert_der(leaf.as_ref())
    }
}

/// `<data>/tls`.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TLS_DIR)
}

/// `<data>/tls/cert.pem`.
pub fn cert_path(data_dir: &Path) -> PathBuf {
    tls_dir(data_dir).join(CERT_FILE)
}

/// `<data>/tls/key.pem`.
pub fn key_path(data_dir: &Path) -> PathBuf {
    tls_dir(data_dir).join(KEY_FILE)
}

/// Loads `<dir>/tls/cert.pem` and `<dir>/tls/key.pem`, or creates a self-signed
/// certificate there whose SANs are `names` plus `localhost` and `127.0.0.1`.
///
/// When only one of the two files exists this is an error rather than an
/// overwrite: it is probably a certificate being installed by hand.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<TlsMaterial, TlsError> {
    let cert = cert_path(dir);
    let key = key_path(dir);
    let cert_exists = cert.exists();
    let key_exists = key.exists();
    match (cert_exists, key_exists) {
        (true, true) => load_pem(&cert, &key),
        (true, false) => Err(TlsError::HalfPair {
            present: cert,
            missing: key,
        }),
        (false, true) => Err(TlsError::HalfPair {
            present: key,
            missing: cert,
        }),
        (false, false) => create_self_signed(&cert, &key, names),
    }
}

/// The SAN list a self-signed certificate gets for `names`: the names themselves
/// (deduplicated, lower-cased DNS names) plus `localhost` and `127.0.0.1`.
pub fn self_signed_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let extra = ["localhost".to_string(), "127.0.0.1".to_string()];
    for n in names.iter().chain(extra.iter()) {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

fn create_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<TlsMaterial, TlsError> {
    let sans = self_signed_names(names);
    let mut params = rcgen::CertificateParams::new(sans.clone())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let common_name = sans.first().cloned().unwrap_or_else(|| "localhost".into());
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    dn.push(rcgen::DnType::OrganizationName, "confab self-signed");
    params.distinguished_name = dn;
    let now = SystemTime::now();
    let (y, m, d) = ymd(now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let until = now
        .checked_add(Duration::from_secs(SELF_SIGNED_DAYS * 86_400))
        .unwrap_or(now);
    let (y, m, d) = ymd(until);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key_pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|e| TlsError::Generate(e.to_string()))?;

    let parent = cert.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(parent).map_err(|source| TlsError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    write_file(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert, certificate.pem().as_bytes(), 0o644)?;

    let mut material = load_pem(cert, key)?;
    material.created = true;
    Ok(material)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a
/// crash never leaves half a key behind.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
    let cert_bytes = fs::read(cert).map_err(|source| TlsError::Io {
        path: cert.to_path_buf(),
        source,
    })?;
    let key_bytes = fs::read(key).map_err(|source| TlsError::Io {
        path: key.to_path_buf(),
        source,
    })?;
    let cert_chain = parse_cert_pem(&cert_bytes).map_err(|reason| match reason {
        None => TlsError::NoCertificate {
            path: cert.to_path_buf(),
        },
        Some(reason) => TlsError::BadCertificatePem {
            path: cert.to_path_buf(),
            reason,
        },
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::BadKeyPem {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(TlsMaterial {
        cert_chain,
        key: key_der,
        created: false,
        cert_path: cert.to_path_buf(),
        key_path: key.to_path_buf(),
    })
}

/// `Err(None)` when the file holds no certificate at all.
fn parse_cert_pem(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Option<String>> {
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(bytes) {
        chain.push(item.map_err(|e| Some(e.to_string()))?);
    }
    if chain.is_empty() {
        return Err(None);
    }
    Ok(chain)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client
/// certificates) serving `material`.
pub fn server_config(material: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(material.cert_chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3, no client
/// certificate) for outbound connections, e.g. the Mediation role's to PSTN
/// gateways. Peers' certificates must chain to a certificate of `ca_file` (PEM,
/// one or more) when given, else to a root of Mozilla's programme.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bytes = fs::read(path).map_err(|source| TlsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let certs = parse_cert_pem(&bytes).map_err(|reason| match reason {
                None => TlsError::NoCertificate {
                    path: path.to_path_buf(),
                },
                Some(reason) => TlsError::BadCertificatePem {
                    path: path.to_path_buf(),
                    reason,
                },
            })?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Rustls(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Facts about the leaf (first) certificate of a PEM file.
pub fn cert_info(path: &Path) -> Result<CertInfo, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let chain = parse_cert_pem(&bytes).map_err(|reason| match reason {
        None => TlsError::NoCertificate {
            path: path.to_path_buf(),
        },
        Some(reason) => TlsError::BadCertificatePem {
            path: path.to_path_buf(),
            reason,
        },
    })?;
    match chain.first() {
        Some(leaf) => parse_cert_der(leaf.as_ref()),
        None => Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        }),
    }
}

/// Subject alternative names (DNS names and IP addresses as text) of the leaf
/// certificate in a PEM file.
pub fn cert_sans(path: &Path) -> Result<Vec<String>, TlsError> {
    Ok(cert_info(path)?.sans)
}

/// Whether a SAN list covers `name`: exact (case-insensitive) match, or a
/// wildcard `*.example.com` matching exactly one label.
pub fn san_matches(sans: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    sans.iter().any(|san| {
        let san = san.trim_end_matches('.').to_ascii_lowercase();
        if san == name {
            return true;
        }
        match san.strip_prefix("*.") {
            Some(suffix) => match name.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            },
            None => false,
        }
    })
}

/// Seconds since the Unix epoch, saturating at zero.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ymd(t: SystemTime) -> (i32, u8, u8) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    der::civil_from_days(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_trusts_the_ca_file_or_refuses_it_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let m = load_or_create(dir.path(), &["gw.example.net".to_string()]).unwrap();
        assert!(client_config(Some(&m.cert_path)).is_ok());
        assert!(client_config(None).is_ok());
        let missing = dir.path().join("none.pem");
        assert!(matches!(
            client_config(Some(&missing)),
            Err(TlsError::Io { .. })
        ));
        // A key file is no certificate.
        assert!(matches!(
            client_config(Some(&m.key_path)),
            Err(TlsError::NoCertificate { .. })
        ));
    }

    #[test]
    fn creates_then_loads() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["pool01.contoso.com".to_string(), "FE01.contoso.com".into()];
        let first = load_or_create(dir.path(), &names).unwrap();
        assert!(first.created);
        assert_eq!(first.cert_path, dir.path().join("tls/cert.pem"));
        let info = first.leaf_info().unwrap();
        assert!(info.self_signed);
        for n in [
            "pool01.contoso.com",
            "fe01.contoso.com",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(
                info.sans.iter().any(|s| s == n),
                "{n} missing from {:?}",
                info.sans
            );
        }
        let now = unix_now();
        assert!(info.not_before <= now && now < info.not_after);
        assert!(info.not_after - now > 800 * 86_400);

        let second = load_or_create(dir.path(), &names).unwrap();
        assert!(!second.created);
        assert_eq!(second.cert_chain, first.cert_chain);
        assert_eq!(cert_sans(&second.cert_path).unwrap(), info.sans);

        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&first.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        server_config(&second).unwrap();
    }

    #[test]
    fn half_pair_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &["a.example".into()]).unwrap();
        fs::remove_file(key_path(dir.path())).unwrap();
        let err = load_or_create(dir.path(), &["a.example".into()]).unwrap_err();
        assert!(matches!(err, TlsError::HalfPair { .. }), "{err}");
    }

    #[test]
    fn garbage_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        let k = dir.path().join("k.pem");
        fs::write(&c, "hello").unwrap();
        fs::write(&k, "world").unwrap();
        assert!(matches!(
            load_pem(&c, &k),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(cert_info(&c).is_err());
        fs::write(
            &c,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(cert_info(&c).is_err());
        assert!(cert_sans(&dir.path().join("missing.pem")).is_err());
    }

    #[test]
    fn wildcards_match_one_label() {
        let sans = vec!["*.contoso.com".to_string(), "Pool.Fabrikam.com".into()];
        assert!(san_matches(&sans, "fe01.contoso.com"));
        assert!(san_matches(&sans, "pool.fabrikam.com."));
        assert!(!san_matches(&sans, "contoso.com"));
        assert!(!san_matches(&sans, "a.b.contoso.com"));
        assert!(!san_matches(&sans, "other.example"));
    }
}
