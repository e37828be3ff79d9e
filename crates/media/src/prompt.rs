//! Prompts: audio prepared once for streaming. A WAV file (read with `hound`,
//! any channel count, 8- to 32-bit integer or float samples, any rate) or a tone
//! sequence is turned into 8 kHz mono and encoded in both G.711 laws when loaded,
//! so a paced packet is a copy of 160 bytes out of a shared buffer.

use std::path::Path;
use std::sync::Arc;

use crate::g711;
use crate::sdp::Codec;

/// The engine's sample rate (G.711).
pub const RATE: u32 = 8000;

/// Longest prompt loaded (10 minutes at 8 kHz): bounds memory per file.
pub const MAX_SAMPLES: usize = 10 * 60 * RATE as usize;

/// Why a prompt could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("reading WAV file: {0}")]
    Wav(#[from] hound::Error),
    #[error("WAV file has no samples")]
    Empty,
    #[error("WAV file is longer than 10 minutes")]
    TooLong,
    #[error("bad tone sequence {spec:?}: {reason}")]
    BadTones { spec: String, reason: &'static str },
}

/// Audio ready to stream: 8 kHz mono in μ-law and A-law.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    ulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
}

impl Prompt {
    /// From 8 kHz linear samples.
    pub fn from_pcm(samples: &[i16]) -> Prompt {
        Prompt {
            ulaw: samples.iter().map(|&s| g711::linear_to_ulaw(s)).collect(),
            alaw: samples.iter().map(|&s| g711::linear_to_alaw(s)).collect(),
        }
    }

    /// `ms` milliseconds of silence.
    pub fn silence(ms: u32) -> Prompt {
        Prompt::from_pcm(&vec![0; (ms * RATE / 1000) as usize])
    }

    /// The encoded samples for `codec`.
    pub fn encoded(&self, codec: Codec) -> &Arc<[u8]> {
        match codec {
            Codec::Pcmu => &self.ulaw,
            Codec::Pcma => &self.alaw,
        }
    }

    /// Length in samples (8 kHz).
    pub fn len(&self) -> usize {
        self.ulaw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ulaw.is_empty()
    }

    /// Reads a WAV file.
    pub fn from_wav_file(path: &Path) -> Result<Prompt, PromptError> {
        let reader = hound::WavReader::open(path)?;
        Prompt::from_wav(reader)
    }

    /// Reads WAV data.
    pub fn from_wav<R: std::io::Read>(
        mut reader: hound::WavReader<R>,
    ) -> Result<Prompt, PromptError> {
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let rate = spec.sample_rate.max(1);
        // Bound what is read before resampling.
        let max_in = (MAX_SAMPLES as u64 * u64::from(rate) / u64::from(RATE)) as usize * channels;
        if reader.len() as usize > max_in {
            return Err(PromptError::TooLong);
        }
        let mut mono: Vec<f32> = Vec::with_capacity(reader.len() as usize / channels);
        let mut acc = 0f32;
        let mut n = 0usize;
        let mut push = |v: f32, mono: &mut Vec<f32>| {
            acc += v;
            n += 1;
            if n == channels {
                mono.push(acc / channels as f32);
                acc = 0.0;
                n = 0;
            }
        };
        match spec.sample_format {
            hound::SampleFormat::Float => {
                for s in reader.samples::<f32>() {
                    push(s?, &mut mono);
                }
            }
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                for s in reader.samples::<i32>() {
                    push(s? as f32 * scale, &mut mono);
                }
            }
        }
        if mono.is_empty() {
            return Err(PromptError::Empty);
        }
        let pcm = resample(&mono, rate);
        Ok(Prompt::from_pcm(&pcm))
    }

    /// A tone sequence, e.g. `"440:1000,0:200,350+440:500"`: steps separated by
    /// commas, each `FREQ[+FREQ]:MILLISECONDS` (frequency 0: silence).
    pub fn tones(spec: &str) -> Result<Prompt, PromptError> {
        let steps = parse_tones(spec)?;
        let mut pcm = Vec::new();
        for (freqs, ms) in steps {
            render_tone(&freqs, ms, &mut pcm);
        }
        Ok(Prompt::from_pcm(&pcm))
    }
}

/// Linear interpolation from `rate` to 8 kHz, float [-1, 1] to 16-bit.
fn resample(mono: &[f32], rate: u32) -> Vec<i16> {
    let to_i16 = |v: f32| (v.clamp(-1.0, 1.0) * 32767.0) as i16;
    if rate == RATE {
        return mono.iter().map(|&v| to_i16(v)).collect();
    }
    let out_len = (mono.len() as u64 * u64::from(RATE) / u64::from(rate)) as usize;
    let step = rate as f64 / RATE as f64;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = mono.get(j).copied().unwrap_or(0.0);
            let b = mono.get(j + 1).copied().unwrap_or(a);
            to_i16(a + (b - a) * frac)
        })
        .collect()
}

/// Parses a tone sequence (see [`Prompt::tones`]).
pub fn parse_tones(spec: &str) -> Result<Vec<(Vec<f32>, u32)>, PromptError> {
    let bad = |reason| PromptError::BadTones {
        spec: spec.to_owned(),
        reason,
    };
    let mut steps = Vec::new();
    let mut total_ms: u64 = 0;
    for step in spec.split(',') {
        let (freqs, ms) = step
            .trim()
            .split_once(':')
            .ok_or_else(|| bad("each step is FREQ[+FREQ]:MILLISECONDS"))?;
        let ms: u32 = ms
            .trim()
            .parse()
            .map_err(|_| bad("duration is not a number of milliseconds"))?;
        if ms == 0 {
            return Err(bad("a step lasts at least 1 ms"));
        }
        total_ms += u64::from(ms);
        let mut fs = Vec::new();
        for f in freqs.split('+') {
            let f: f32 = f
                .trim()
                .parse()
                .map_err(|_| bad("frequency is not a number of Hz"))?;
            if !(0.0..=3900.0).contains(&f) {
                return Err(bad("frequencies go from 0 (silence) to 3900 Hz"));
            }
            if f > 0.0 {
                fs.push(f);
            }
        }
        if fs.len() > 2 {
            return Err(bad("at most two frequencies per step"));
        }
        steps.push((fs, ms));
    }
    if total_ms > MAX_SAMPLES as u64 / u64::from(RATE) * 1000 {
        return Err(bad("longer than 10 minutes"));
    }
    Ok(steps)
}

/// Appends `ms` of the sum of `freqs` (-10 dBFS each tone; silence when empty).
fn render_tone(freqs: &[f32], ms: u32, out: &mut Vec<i16>) {
    let n = (ms * RATE / 1000) as usize;
    let amp = if freqs.len() > 1 { 7000.0 } else { 10000.0 };
    out.extend((0..n).map(|i| {
        let t = i as f32 / RATE as f32;
        let v: f32 = freqs
            .iter()
            .map(|f| (2.0 * std::f32::consts::PI * f * t).sin() * amp)
            .sum();
        v as i16
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_power_ratio;

    fn decode(p: &Prompt) -> Vec<i16> {
        p.encoded(Codec::Pcmu)
            .iter()
            .map(|&b| g711::ulaw_to_linear(b))
            .collect()
    }

    #[test]
    fn tone_sequence_has_the_frequencies_and_durations() {
        let p = Prompt::tones("1000:500, 0:250, 350+440:250").unwrap();
        assert_eq!(p.len(), 8000);
        let pcm = decode(&p);
        assert!(tone_power_ratio(&pcm[..4000], 8000, 1000.0) > 0.9);
        assert!(pcm[4000..6000].iter().all(|&s| s.abs() < 8));
        assert!(tone_power_ratio(&pcm[6000..], 8000, 350.0) > 0.3);
        assert!(tone_power_ratio(&pcm[6000..], 8000, 440.0) > 0.3);
        assert_eq!(p.encoded(Codec::Pcma).len(), 8000);
    }

    #[test]
    fn bad_tone_sequences() {
        for bad in [
            "",
            "440",
            "440:x",
            "x:10",
            "440:0",
            "5000:10",
            "1+2+3:10",
            "440:700000",
        ] {
            assert!(Prompt::tones(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wav_files_any_rate_and_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..48000 {
            let v =
                ((2.0 * std::f32::consts::PI * 600.0 * i as f32 / 48000.0).sin() * 12000.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let p = Prompt::from_wav_file(&path).unwrap();
        assert_eq!(p.len(), 8000);
        assert!(tone_power_ratio(&decode(&p), 8000, 600.0) > 0.9);
        std::fs::write(&path, b"RIFF junk").unwrap();
        assert!(Prompt::from_wav_file(&path).is_err());
        assert!(Prompt::from_wav_file(&dir.path().join("missing.wav")).is_err());
    }
}
