//! Checks for the external programs some tests drive (SIPp, baresip, Python).

use std::path::PathBuf;

/// Finds an executable in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Debian package that provides a tool.
fn package_of(tool: &str) -> &str {
    match tool {
        "sipp" => "sip-tester",
        "python3" => "python3",
        other => other,
    }
}

/// Whether `CONFAB_SKIP_EXTERNAL=1` is set.
pub fn skip_external() -> bool {
    std::env::var("CONFAB_SKIP_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Makes sure every tool in `tools` (e.g. `["sipp"]`, `["baresip", "python3"]`) is
/// installed. Returns `true` when the test can go on. When one is missing the test
/// fails with an installation hint, unless `CONFAB_SKIP_EXTERNAL=1`: then it prints
/// `SKIPPED` and returns `false`, and the caller returns early:
///
/// ```ignore
/// if !tools_required(&["sipp"]) { return Ok(()); }
/// ```
#[track_caller]
pub fn tools_required(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let pkgs: Vec<&str> = missing.iter().map(|t| package_of(t)).collect();
    let msg = format!(
        "missing tool(s) {}: install {} (`apt-get install -y {}`, see tests/README.md)",
        missing.join(", "),
        pkgs.join("/"),
        pkgs.join(" ")
    );
    if skip_external() {
        eprintln!("SKIPPED ({msg}; CONFAB_SKIP_EXTERNAL=1)");
        println!("SKIPPED: {msg}");
        return false;
    }
    panic!("{msg}, or set CONFAB_SKIP_EXTERNAL=1 to skip these tests");
}
