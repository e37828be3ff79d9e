//! `confab`: the server and its administration commands.

mod admin;
mod announcement;
mod announcement_cli;
mod chat_cli;
mod chat_compliance;
mod chat_http;
mod chat_pool;
mod chat_provisioning;
mod chat_rooms;
mod chat_transfer;
mod chat_web;
mod cli;
mod cmd_bootstrap;
mod cmd_prereq;
mod cmd_topology;
mod config;
mod contacts;
mod control_panel;
mod database;
mod lazy_lists;
mod mediation_serve;
mod monitoring;
mod park;
mod park_cli;
mod pool_cli;
mod pool_presence;
mod pool_serve;
mod pools_serve;
mod report_cli;
mod rgs_cli;
mod rgs_serve;
mod roles;
mod serve;
mod signals;
mod stages;
mod topology_trunks;
mod users;
mod voice_cli;
mod voice_feed;
mod voice_homes;
mod web_session;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{LogFormat, ServeConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = cli.overrides();
    let log_flag_given = overrides.log_level.is_some();
    let cfg = config::load(cli.global.config.as_deref(), overrides)?;
    init_tracing(&cfg, log_flag_given)?;

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.command, Command::Serve(_))
        && let Some(n) = serve_workers(std::env::var_os("TOKIO_WORKER_THREADS").is_some())
    {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) => serve::run(cfg).await,
            Command::User(args) => users::run(&cfg, args.command).await,
            Command::Contact(args) => contacts::run(&cfg, args.command).await,
            Command::Audit(args) => users::run_audit(&cfg, args.command).await,
            Command::Chat(args) => chat_cli::run(&cfg, args).await,
            Command::Pool(args) => pool_cli::run(&cfg, args).await,
            Command::Voice(args) => voice_cli::run(&cfg, args).await,
            Command::Report(args) => report_cli::run(&cfg, args).await,
            Command::Rgs(args) => rgs_cli::run(&cfg, args).await,
            Command::Topology(args) => cmd_topology::run(args, &cfg.data_dir).await,
            Command::Prereq(args) => cmd_prereq::run(args, &cfg.data_dir).await,
            Command::Bootstrap(args) => cmd_bootstrap::run(args, &cfg.data_dir).await,
        }
    })
}

/// Worker threads for `serve`: the front end's core loop runs on the main thread
/// (inside `block_on`), so the runtime gets one worker per remaining core. With a
/// worker per core as well, three busy threads shared two cores and requests waited
/// for the core thread to be scheduled (docs/performance.md, "Where a request
/// waits"). `None` leaves tokio's choice: `TOKIO_WORKER_THREADS` is set.
fn serve_workers(env_set: bool) -> Option<usize> {
    if env_set {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(cores.saturating_sub(1).max(1))
}

/// Colour codes in text logs only when standard error is a terminal (a file, a pipe
/// or journald gets plain text), and never with `NO_COLOR` set (no-color.org).
fn log_colour() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// Logs go to standard error, filtered by `--log-level`, else `RUST_LOG`, else the
/// config file's `log_level` (default `info`).
fn init_tracing(cfg: &ServeConfig, log_flag_given: bool) -> anyhow::Result<()> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let directives = match env {
        Some(env) if !log_flag_given => env,
        _ => cfg.log_level.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("invalid log filter {directives:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_colour())
        .with_writer(std::io::stderr);
    let result = match cfg.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialize logging: {e}"))
}
