//! Goertzel's algorithm: the power of one frequency in a block of samples. Used to
//! check what a stream carries (tests, and the acceptance test's recordings).

/// The power of `freq` in `samples` (sampled at `rate`).
pub fn power(samples: &[i16], rate: u32, freq: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The share of the block's energy at `freq` (about 1.0 for a pure tone at that
/// frequency, about 0 for silence or another tone).
pub fn tone_power_ratio(samples: &[i16], rate: u32, freq: f32) -> f64 {
    let energy: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if energy <= 0.0 || samples.is_empty() {
        return 0.0;
    }
    // A pure tone of amplitude A over N samples: Goertzel power A²N²/4, energy A²N/2.
    2.0 * power(samples, rate, freq) / (energy * samples.len() as f64)
}
