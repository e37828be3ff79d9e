//! `confab voice park orbit ...`: Call Park orbit ranges (Lync's
//! `*-CsCallParkOrbit`), edited on the voice configuration like every other
//! `confab voice` command (checked whole, saved with its revision).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use confab_media::Prompt;
use confab_voice::{ParkOrbit, VoiceData};

#[derive(Subcommand)]
pub enum ParkCommand {
    /// Orbit ranges: the numbers parked calls wait at
    Orbit {
        #[command(subcommand)]
        command: OrbitCommand,
    },
}

#[derive(Subcommand)]
pub enum OrbitCommand {
    /// A range of orbit numbers (digits, same length, both ends included)
    Add {
        name: String,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        /// Seconds before an unretrieved call rings the parker back (5-3600)
        #[arg(long, default_value_t = 90)]
        timeout: u32,
        /// Where the call goes when the parker does not answer the ring back
        /// (sip:user@domain or tel:+E164) [default: the call ends]
        #[arg(long)]
        fallback: Option<String>,
        /// Music on hold: a WAV file on the server
        #[arg(long, conflicts_with = "music_tones")]
        music_file: Option<String>,
        /// Music on hold: a tone sequence FREQ[+FREQ]:MILLISECONDS,...
        #[arg(long)]
        music_tones: Option<String>,
    },
    List,
    Remove {
        name: String,
    },
}

/// Applies a park command to `data`: the message to print after saving, or
/// `None` when it only listed.
pub fn park(
    data: &mut VoiceData,
    cmd: ParkCommand,
    out: &mut impl Write,
) -> anyhow::Result<Option<String>> {
    let ParkCommand::Orbit { command } = cmd;
    Ok(Some(match command {
        OrbitCommand::List => {
            if data.park_orbits.is_empty() {
                writeln!(out, "no call park orbits")?;
            }
            for o in &data.park_orbits {
                let music = match (&o.music_file, &o.music_tones) {
                    (Some(f), _) => format!("file {f}"),
                    (None, Some(t)) => format!("tones {t}"),
                    (None, None) => "default music".to_owned(),
                };
                let then = o
                    .fallback
                    .as_deref()
                    .map_or("hang up".to_owned(), |f| format!("fallback {f}"));
                writeln!(
                    out,
                    "{}\t{}-{}\ttimeout {}s\t{then}\t{music}",
                    o.name, o.start, o.end, o.timeout_secs
                )?;
            }
            return Ok(None);
        }
        OrbitCommand::Add {
            name,
            start,
            end,
            timeout,
            fallback,
            music_file,
            music_tones,
        } => {
            if data
                .park_orbits
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&name))
            {
                bail!("call park orbit {name:?} already exists");
            }
            let music_file = match music_file {
                Some(f) => {
                    let path = std::fs::canonicalize(Path::new(&f))
                        .with_context(|| format!("music file {f}"))?;
                    Prompt::from_wav_file(&path)
                        .with_context(|| format!("music file {}", path.display()))?;
                    Some(path.to_string_lossy().into_owned())
                }
                None => None,
            };
            if let Some(t) = &music_tones {
                Prompt::tones(t)?;
            }
            data.park_orbits.push(ParkOrbit {
                name: name.clone(),
                start: start.trim().to_owned(),
                end: end.trim().to_owned(),
                timeout_secs: timeout,
                fallback,
                music_file,
                music_tones,
            });
            format!("added call park orbit {name}")
        }
        OrbitCommand::Remove { name } => {
            let before = data.park_orbits.len();
            data.park_orbits
                .retain(|o| !o.name.eq_ignore_ascii_case(&name));
            if data.park_orbits.len() == before {
                bail!("unknown call park orbit {name:?}");
            }
            format!("removed call park orbit {name}")
        }
    }))
}
