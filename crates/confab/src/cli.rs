//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};

/// confab: a self-hosted unified-communications server (SIP registrar/proxy, presence,
/// instant messaging) modeled on Lync Server 2013.
#[derive(Parser)]
#[command(name = "confab", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Args)]
pub struct GlobalArgs {
    /// Data directory, holding the SQLite database [default: ./confab-data]
    #[arg(long = "data", value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,

    /// TOML configuration file (command-line options override it)
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives such
    /// as "info,confab_sip=debug". Without it, RUST_LOG, then the config file, then
    /// "info" apply
    #[arg(long, value_name = "FILTER", global = true)]
    pub log_level: Option<String>,

    /// Log line format [default: text]
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// Manage user accounts
    User(UserArgs),
    /// Manage users' server-side contact lists
    Contact(ContactArgs),
    /// Read the audit log of administrative changes (CLI and Control Panel)
    Audit(AuditArgs),
    /// Persistent Chat: categories, rooms, policy, settings, messages, search
    Chat(crate::chat_cli::ChatArgs),
    /// Enterprise Voice: dial plans, rules, voice policies, PSTN usages, routes, trunks
    Voice(crate::voice_cli::VoiceArgs),
    /// Write, validate, publish and read back the deployment's topology
    Topology(crate::cmd_topology::TopologyArgs),
    /// Check this machine against the requirements of its roles
    Prereq(crate::cmd_prereq::PrereqArgs),
    /// Prepare this machine for its roles in the published topology
    Bootstrap(crate::cmd_bootstrap::BootstrapArgs),
    /// Enterprise pools: front ends, heartbeats, homed users
    Pool(crate::pool_cli::PoolArgs),
    /// Monitoring reports: call detail records
    Report(crate::report_cli::ReportArgs),
    /// Response Groups: workflows, queues, agent groups, agents signing in
    Rgs(crate::rgs_cli::RgsArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// SIP domain served (and digest realm) [default: example.com]
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// SIP over UDP and TCP listen address [default: 0.0.0.0:5060]
    #[arg(long, value_name = "ADDR:PORT")]
    pub sip: Option<SocketAddr>,

    /// SIP over TLS listen address [default: 0.0.0.0:5061]
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls: Option<SocketAddr>,

    /// Web listen address (HTTPS unless --web-tls false) [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,

    /// HTTPS on the web port (`[web] tls`); false serves plain HTTP, only for use
    /// behind a reverse proxy that terminates TLS [default: true]
    #[arg(long, value_name = "BOOL")]
    pub web_tls: Option<bool>,

    /// PEM certificate chain for TLS
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Host or address to advertise in Via, Record-Route and Contact [default: the
    /// --sip address; 127.0.0.1 when that is a wildcard]
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,

    /// Database URL, e.g. postgres://USER:PASSWORD@HOST/DB [default: sqlite file
    /// DATA/confab.db]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Args)]
pub struct UserArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user
    Add {
        /// alice@example.com or sip:alice@example.com
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Name shown to other users
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// The pool the user is homed on (default: the only front-end pool)
        #[arg(long, value_name = "FQDN")]
        pool: Option<String>,
    },
    /// Move a user to another pool with their contact list and settings (Lync's
    /// Move-CsUser); their next sign-in lands on the new pool
    Move {
        address: String,
        /// The pool to move the user to
        #[arg(long, value_name = "FQDN")]
        pool: String,
    },
    /// List users
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one user
    Show {
        address: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password
    SetPassword {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set (or, without NAME, clear) a user's display name
    SetDisplayName {
        address: String,
        name: Option<String>,
    },
    /// Change a user's settings (administrative role, phone number, voice)
    Set(UserSetArgs),
    /// Stop a user from signing in
    Disable { address: String },
    /// Allow a disabled user to sign in again
    Enable { address: String },
    /// Remove a user
    Remove { address: String },
    /// Add users from a CSV file with columns address,password[,display_name] (header
    /// row optional). All rows are added, or none
    Import {
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
}

/// `confab user set USER [options]`: each group of options is one setting.
#[derive(Args)]
pub struct UserSetArgs {
    /// alice@example.com or sip:alice@example.com
    pub address: String,
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub voice: crate::voice_cli::UserVoiceArgs,
}

/// `--role ROLE` or `--no-role`.
#[derive(Args)]
#[group(required = false, multiple = false)]
pub struct RoleArgs {
    /// Give the user a Control Panel role: CsAdministrator (everything, the audit log
    /// included), CsUserAdministrator (users: add, disable, enable, reset passwords)
    /// or CsHelpDesk (read-only)
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Option<crate::admin::Role>,
    /// Take the user's Control Panel role away
    #[arg(long)]
    pub no_role: bool,
}

impl RoleArgs {
    /// `Some(Some(role))`: grant; `Some(None)`: remove; `None`: not asked.
    pub fn change(&self) -> Option<Option<crate::admin::Role>> {
        match (self.role, self.no_role) {
            (Some(r), _) => Some(Some(r)),
            (None, true) => Some(None),
            (None, false) => None,
        }
    }
}

fn parse_role(s: &str) -> Result<crate::admin::Role, String> {
    s.parse()
}

#[derive(Args)]
pub struct AuditArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Show the newest audit records, oldest first: when, who, from where, what
    List {
        /// Only this actor's records (an administrator's address, or cli:LOGIN)
        #[arg(long, value_name = "WHO")]
        actor: Option<String>,
        /// How many records at most
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ContactArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: ContactCommand,
}

#[derive(Subcommand)]
pub enum ContactCommand {
    /// Add a contact to a user's list, or change the alias or group of one already there
    Add {
        /// The user whose list it is: alice@example.com
        owner: String,
        /// The contact: bob@example.com or sip:bob@example.com (any domain)
        uri: String,
        /// Alias shown instead of the contact's display name ("" clears it)
        #[arg(long, value_name = "ALIAS")]
        name: Option<String>,
        /// Group to put the contact in, created if missing [default for a new contact:
        /// "~", which clients show as "Other Contacts"]
        #[arg(long, value_name = "NAME")]
        group: Option<String>,
    },
    /// Remove a contact from a user's list
    Remove {
        /// The user whose list it is
        owner: String,
        /// The contact to remove
        uri: String,
    },
    /// Show a user's contact list
    List {
        /// The user whose list it is
        owner: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

/// Where the password comes from: exactly one of the two.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct PasswordArgs {
    /// The password (other local users may see it in the process list: prefer
    /// --password-stdin)
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

impl Cli {
    /// The command-line values that override the configuration file.
    pub fn overrides(&self) -> Overrides {
        let g = &self.global;
        let mut o = Overrides {
            data_dir: g.data.clone(),
            log_level: g.log_level.clone(),
            log_format: g.log_format,
            ..Overrides::default()
        };
        match &self.command {
            Command::Serve(s) => {
                o.domain = s.domain.clone();
                o.sip = s.sip;
                o.tls = s.tls;
                o.http = s.http;
                o.web_tls = s.web_tls;
                o.tls_cert = s.tls_cert.clone();
                o.tls_key = s.tls_key.clone();
                o.advertise = s.advertise.clone();
                o.database = s.database.clone();
            }
            Command::User(u) => o.database = u.database.clone(),
            Command::Contact(c) => o.database = c.database.clone(),
            Command::Audit(a) => o.database = a.database.clone(),
            Command::Chat(c) => o.database = c.database.clone(),
            Command::Pool(p) => o.database = p.database.clone(),
            Command::Voice(v) => o.database = v.database.clone(),
            Command::Report(r) => o.database = r.database.clone(),
            Command::Rgs(r) => o.database = r.database.clone(),
            _ => {}
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "confab",
            "user",
            "list",
            "--data",
            "/d",
            "--log-level",
            "debug",
            "--database",
            "postgres://h/db",
        ])
        .unwrap();
        let o = cli.overrides();
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(o.log_level.as_deref(), Some("debug"));
        assert_eq!(o.database.as_deref(), Some("postgres://h/db"));
    }

    #[test]
    fn contact_commands() {
        let cli = Cli::try_parse_from([
            "confab",
            "contact",
            "add",
            "alice@example.com",
            "bob@example.com",
            "--group",
            "Team",
            "--database",
            "postgres://h/db",
        ])
        .unwrap();
        assert_eq!(cli.overrides().database.as_deref(), Some("postgres://h/db"));
        let Command::Contact(args) = cli.command else {
            panic!("not a contact command");
        };
        assert!(matches!(
            args.command,
            ContactCommand::Add { name: None, group: Some(g), .. } if g == "Team"
        ));
        assert!(Cli::try_parse_from(["confab", "contact", "add", "alice@example.com"]).is_err());
        assert!(
            Cli::try_parse_from(["confab", "contact", "list", "alice@example.com", "--json"])
                .is_ok()
        );
    }

    #[test]
    fn password_source_is_required_and_exclusive() {
        assert!(Cli::try_parse_from(["confab", "user", "add", "a@b.com"]).is_err());
        assert!(
            Cli::try_parse_from([
                "confab",
                "user",
                "add",
                "a@b.com",
                "--password",
                "x",
                "--password-stdin"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["confab", "user", "add", "a@b.com", "--password-stdin"]).is_ok()
        );
    }

    #[test]
    fn user_set_role() {
        let cli = Cli::try_parse_from(["confab", "user", "set", "a@b.com", "--role", "cshelpdesk"])
            .unwrap();
        let Command::User(UserArgs {
            command: UserCommand::Set(args),
            ..
        }) = cli.command
        else {
            panic!("not user set");
        };
        assert_eq!(args.role.change(), Some(Some(crate::admin::Role::HelpDesk)));
        assert!(
            Cli::try_parse_from(["confab", "user", "set", "a@b.com", "--role", "root"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "confab",
                "user",
                "set",
                "a@b.com",
                "--role",
                "CsHelpDesk",
                "--no-role"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["confab", "audit", "list", "--actor", "cli:root"]).is_ok());
    }

    #[test]
    fn serve_flags() {
        let cli = Cli::try_parse_from([
            "confab",
            "--data",
            "/d",
            "serve",
            "--domain",
            "contoso.com",
            "--sip",
            "127.0.0.1:5070",
            "--log-format",
            "json",
        ])
        .unwrap();
        let o = cli.overrides();
        assert_eq!(o.domain.as_deref(), Some("contoso.com"));
        assert_eq!(o.sip, Some("127.0.0.1:5070".parse().unwrap()));
        assert_eq!(o.log_format, Some(LogFormat::Json));
        assert!(Cli::try_parse_from(["confab", "serve", "--sip", "nonsense"]).is_err());
        assert!(Cli::try_parse_from(["confab", "serve", "--tls-cert", "c.pem"]).is_err());
    }
}
