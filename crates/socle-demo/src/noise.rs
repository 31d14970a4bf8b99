//! Deterministic randomness.
//!
//! Values must be a pure function of (series, instant, anchor) so that a
//! backfill re-run, a restart or the live generator all produce the very same
//! points. A counter-based generator (hash the coordinates, get a number)
//! gives random access in O(1), which a stream RNG such as `rand_chacha`
//! would not; and ten lines of splitmix64 are easier to keep stable across
//! years than a dependency whose output may change between major versions.

/// The splitmix64 finaliser: a bijective mix with good avalanche.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Combines a seed with one coordinate (an index, a timestamp…).
pub(crate) fn hash(seed: u64, x: u64) -> u64 {
    mix(seed ^ mix(x).rotate_left(23))
}

/// A stable seed for a name (FNV-1a, then mixed), so that an entity's
/// randomness does not depend on where it sits in the territory.
pub(crate) fn seed_of(name: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    mix(h)
}

/// Uniform in [0, 1).
pub(crate) fn unit(seed: u64, x: u64) -> f64 {
    (hash(seed, x) >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in [-1, 1).
pub(crate) fn signed(seed: u64, x: u64) -> f64 {
    unit(seed, x) * 2.0 - 1.0
}

/// Roughly normal (Irwin-Hall of 4 uniforms), mean 0, standard deviation 1.
pub(crate) fn normal(seed: u64, x: u64) -> f64 {
    let s: f64 = (0..4).map(|k| unit(seed ^ (k + 1), x)).sum();
    (s - 2.0) * 3f64.sqrt()
}

/// Smooth value noise in [0, 1): random values at integer `x`, eased in between.
/// Used for slow drifts (weather fronts, river base flow) that must not jump.
pub(crate) fn smooth(seed: u64, x: f64) -> f64 {
    let i = x.floor();
    let f = x - i;
    let e = f * f * (3.0 - 2.0 * f);
    let i = i as i64 as u64;
    let a = unit(seed, i);
    let b = unit(seed, i.wrapping_add(1));
    a + (b - a) * e
}

/// A sequential generator for laying out the territory once (positions,
/// sizes, names). Each item gets its own `Rng` from a name so that adding an
/// entity elsewhere does not reshuffle everything.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    seed: u64,
    n: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { seed, n: 0 }
    }
    pub(crate) fn for_name(seed: u64, name: &str) -> Self {
        Self::new(hash(seed, seed_of(name)))
    }
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.n += 1;
        unit(self.seed, self.n)
    }
    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }
    /// Uniform integer in [0, n); 0 when n is 0.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_f64() * n as f64) as usize).min(n.saturating_sub(1))
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_in_range_and_spread() {
        let mut sum = 0.0;
        for i in 0..10_000 {
            let u = unit(42, i);
            assert!((0.0..1.0).contains(&u));
            sum += u;
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
    }

    #[test]
    fn normal_has_unit_spread() {
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|i| normal(7, i)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn smooth_is_continuous() {
        let mut prev = smooth(3, 0.0);
        for i in 1..1000 {
            let v = smooth(3, i as f64 * 0.01);
            assert!((v - prev).abs() < 0.05);
            prev = v;
        }
    }
}
