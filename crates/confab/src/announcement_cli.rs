//! `confab voice announcement ...` and `confab voice unassigned ...`: the
//! Announcement service's configuration (Lync's `*-CsAnnouncement` and
//! `*-CsUnassignedNumber`), edited on the voice configuration like every other
//! `confab voice` command (checked whole, saved with its revision).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use confab_media::Prompt;
use confab_voice::{Announcement, UnassignedRange, VoiceData, check_name};

#[derive(Subcommand)]
pub enum AnnouncementCommand {
    /// An announcement: a WAV file or a tone sequence, then hang up or transfer
    Add {
        name: String,
        /// A WAV file on the server (any rate, mono or stereo; stored as an
        /// absolute path)
        #[arg(long, conflicts_with = "tones", required_unless_present = "tones")]
        audio_file: Option<String>,
        /// A tone sequence: FREQ[+FREQ]:MILLISECONDS,... (0 Hz: silence), e.g.
        /// 440:1000,0:200,350+440:500
        #[arg(long)]
        tones: Option<String>,
        /// Transfer the caller here afterwards (sip:user@domain or tel:+E164)
        /// [default: hang up]
        #[arg(long)]
        target: Option<String>,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum UnassignedCommand {
    /// A range of numbers (E.164, both ends included) sent to an announcement
    Add {
        name: String,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        announcement: String,
        /// Lower wins where ranges overlap
        #[arg(long, default_value_t = 0)]
        priority: i64,
    },
    List,
    Remove {
        name: String,
    },
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Applies an announcement command to `data`: the message to print after saving,
/// or `None` when it only listed.
pub fn announcement(
    data: &mut VoiceData,
    cmd: AnnouncementCommand,
    out: &mut impl Write,
) -> anyhow::Result<Option<String>> {
    Ok(Some(match cmd {
        AnnouncementCommand::List => {
            if data.announcements.is_empty() {
                writeln!(out, "no announcements")?;
            }
            for a in &data.announcements {
                let audio = match (&a.audio_file, &a.tones) {
                    (Some(f), _) => format!("file {f}"),
                    (None, Some(t)) => format!("tones {t}"),
                    (None, None) => "silence".to_owned(),
                };
                let then = a
                    .target
                    .as_deref()
                    .map_or("hang up".to_owned(), |t| format!("transfer to {t}"));
                writeln!(out, "{}\t{audio}\t{then}", a.name)?;
            }
            return Ok(None);
        }
        AnnouncementCommand::Add {
            name,
            audio_file,
            tones,
            target,
        } => {
            check_name(&name).map_err(|r| anyhow::anyhow!("bad name {name:?}: {r}"))?;
            if data.announcements.iter().any(|a| same(&a.name, &name)) {
                bail!("announcement {name:?} already exists");
            }
            let audio_file = match audio_file {
                Some(f) => {
                    let path = std::fs::canonicalize(Path::new(&f))
                        .with_context(|| format!("audio file {f}"))?;
                    Prompt::from_wav_file(&path)
                        .with_context(|| format!("audio file {}", path.display()))?;
                    Some(path.to_string_lossy().into_owned())
                }
                None => None,
            };
            if let Some(t) = &tones {
                Prompt::tones(t)?;
            }
            data.announcements.push(Announcement {
                name: name.clone(),
                audio_file,
                tones,
                target,
            });
            format!("added announcement {name}")
        }
        AnnouncementCommand::Remove { name } => {
            if let Some(r) = data
                .unassigned
                .iter()
                .find(|r| same(&r.announcement, &name))
            {
                bail!(
                    "announcement {name:?} is used by unassigned range {}",
                    r.name
                );
            }
            let before = data.announcements.len();
            data.announcements.retain(|a| !same(&a.name, &name));
            if data.announcements.len() == before {
                bail!("unknown announcement {name:?}");
            }
            format!("removed announcement {name}")
        }
    }))
}

/// Applies an unassigned-range command to `data` (see [`announcement`]).
pub fn unassigned(
    data: &mut VoiceData,
    cmd: UnassignedCommand,
    out: &mut impl Write,
) -> anyhow::Result<Option<String>> {
    Ok(Some(match cmd {
        UnassignedCommand::List => {
            if data.unassigned.is_empty() {
                writeln!(out, "no unassigned number ranges")?;
            }
            for r in &data.unassigned {
                writeln!(
                    out,
                    "{}\t{}-{}\t{}\tpriority {}",
                    r.name, r.start, r.end, r.announcement, r.priority
                )?;
            }
            return Ok(None);
        }
        UnassignedCommand::Add {
            name,
            start,
            end,
            announcement,
            priority,
        } => {
            if data.unassigned.iter().any(|r| same(&r.name, &name)) {
                bail!("unassigned range {name:?} already exists");
            }
            let number = |s: &str| s.trim().trim_start_matches("tel:").to_owned();
            data.unassigned.push(UnassignedRange {
                name: name.clone(),
                start: number(&start),
                end: number(&end),
                announcement,
                priority,
            });
            format!("added unassigned range {name}")
        }
        UnassignedCommand::Remove { name } => {
            let before = data.unassigned.len();
            data.unassigned.retain(|r| !same(&r.name, &name));
            if data.unassigned.len() == before {
                bail!("unknown unassigned range {name:?}");
            }
            format!("removed unassigned range {name}")
        }
    }))
}
