//! G.711 (ITU-T) μ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8)
//! companding of 16-bit linear samples, the segment algorithm of the reference
//! implementation. Written here: it is a few lines, and prompts are encoded once
//! when loaded (see `crate::prompt`), never per packet.

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// One linear sample to μ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // pcm >> 7 is 1..=255: the segment is the position of its highest bit.
    let exp = 31 - ((pcm >> 7) as u32).leading_zeros();
    let mantissa = (pcm >> (exp + 3)) & 0x0F;
    !(sign | ((exp as i32) << 4) | mantissa) as u8
}

/// One μ-law byte to a linear sample.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exp = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// One linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3; // 13 bits
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment ends of the 13-bit magnitude.
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let Some(seg) = SEG_END.iter().position(|&end| pcm <= end) else {
        return (0x7F ^ mask) as u8;
    };
    let seg = seg as i32;
    let mantissa = if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    (((seg << 4) | mantissa) ^ mask) as u8
}

/// One A-law byte to a linear sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_known_codes() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn round_trip_within_quantization() {
        for s in (-32768i32..32768).step_by(7) {
            let s = s as i16;
            let tol = (i32::from(s).abs() / 16).max(16);
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            assert!(
                (u - i32::from(s)).abs() <= tol.max(ULAW_BIAS),
                "ulaw {s} -> {u}"
            );
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            assert!((a - i32::from(s)).abs() <= tol.max(16), "alaw {s} -> {a}");
        }
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for b in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(b));
            // 0x7F and 0xFF are both zero in μ-law.
            if b != 0x7F {
                assert_eq!(u, b, "ulaw {b:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }
}
