//! Deterministic randomness of the training loaders: shuffle orders, patch and slice positions.
//!
//! Nothing here keeps state between calls. Every random choice is a pure function of
//! `(seed, epoch, index, stream)`, so a batch's contents never depend on which thread read it,
//! in which order items were read, how many worker processes there are, or how far ahead the
//! loader prefetches; and a job restarted at batch k of epoch e recomputes exactly the batches the
//! interrupted run would have produced.

/// SplitMix64's finalizer: a bijective 64-bit mixer with full avalanche.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams of random numbers, so that different choices for one item never share a draw.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub(crate) enum Stream {
    Shuffle = 1,
    PatchAxis = 2,
    ForegroundBlock = 3,
    ForegroundVoxel = 4,
}

/// A random 64-bit word for `(seed, epoch, index, stream, lane)`.
#[inline]
pub(crate) fn word(seed: u64, epoch: u64, index: u64, stream: Stream, lane: u64) -> u64 {
    mix(mix(mix(mix(seed ^ 0x5EED) ^ epoch) ^ index) ^ ((stream as u64) << 32 | lane))
}

/// A value in `0..n` from a random word (Lemire's multiply-shift; `n` ≥ 1).
#[inline]
pub(crate) fn below(word: u64, n: u64) -> u64 {
    ((u128::from(word) * u128::from(n)) >> 64) as u64
}

/// A uniform random permutation of `0..n` for `(seed, epoch)` (Fisher–Yates).
pub fn permutation(seed: u64, epoch: u64, n: usize) -> Vec<u64> {
    let mut p: Vec<u64> = (0..n as u64).collect();
    for i in (1..n).rev() {
        let j = below(word(seed, epoch, i as u64, Stream::Shuffle, 0), i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_permutations_and_depend_on_seed_and_epoch() {
        let a = permutation(7, 0, 100);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(a, permutation(7, 0, 100));
        assert_ne!(a, permutation(7, 1, 100));
        assert_ne!(a, permutation(8, 0, 100));
        assert!(permutation(1, 1, 0).is_empty());
        assert_eq!(permutation(1, 1, 1), vec![0]);
    }

    #[test]
    fn below_covers_the_range_evenly() {
        let mut counts = [0u32; 5];
        for i in 0..50_000u64 {
            counts[below(word(3, 0, i, Stream::PatchAxis, 0), 5) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
