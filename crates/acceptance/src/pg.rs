//! PostgreSQL for pool tests: a database of its own on the server named by
//! `CONFAB_TEST_POSTGRES_URL`, dropped at the end.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Error, Result, run_bounded};

/// Runs one SQL command with psql.
pub fn psql(url: &str, sql: &str) -> Result<()> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(30))?;
    if !out.status.success() {
        return Err(Error(format!(
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// A database of its own on the test server, dropped (forced) on drop.
pub struct TestDb {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Creates `confab_<prefix>_<unique>` on the server of `admin` (a URL).
    pub fn create(admin: &str, prefix: &str) -> Result<TestDb> {
        let name: String = format!("confab_{prefix}_{}", crate::unique_token())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        psql(admin, &format!("CREATE DATABASE {name}"))?;
        let (base, _) = admin
            .rsplit_once('/')
            .ok_or_else(|| Error::new("CONFAB_TEST_POSTGRES_URL has no database part"))?;
        let url = format!("{base}/{name}");
        Ok(TestDb {
            admin: admin.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
