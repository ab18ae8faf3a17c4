//! The run's one seeded source of randomness (`--seed`), split into independent streams.
//!
//! Every random choice of a run comes from a generator derived from the run seed: the
//! schedule of each phase (Poisson arrivals) from `(seed, phase index)`, everything a vuser
//! decides (its scenario, variable picks, a `random` payload row, think times, template
//! functions) from `(seed, vuser id)`. Streams share no state, so what a vuser draws does not
//! depend on how tasks interleave, and the schedule can be recomputed by anyone holding the
//! seed (shards taking every N-th arrival).
//!
//! The generator is Xoshiro256++ rather than `StdRng`/`SmallRng`: rand documents those as
//! free to change algorithm between versions or platforms, which would break replaying a seed.
//!
//! It does not own the run id (`stamp`): that must differ between runs even with one seed, so
//! a server replaying an earlier run's messages does not count as deliveries.

use rand::SeedableRng;

/// The generator of every seeded stream.
pub type SeededRng = rand::rngs::Xoshiro256PlusPlus;

/// Stream id of the arrival schedule.
const STREAM_SCHEDULE: u64 = 0x5343_4845_4455_4c45; // "SCHEDULE"
/// Stream id of the vusers.
const STREAM_VUSER: u64 = 0x5655_5345_5253_2121; // "VUSERS!!"

/// A fresh seed for a run that was given none. Below 2^53, so it survives a JSON reader that
/// keeps numbers as doubles (JavaScript) and can be typed back as `--seed` from any report.
pub fn random_seed() -> u64 {
    rand::random::<u64>() >> 11
}

/// The generator of phase `phase`'s arrival schedule.
pub fn schedule_seed(seed: u64, phase: usize) -> u64 {
    derive(seed, STREAM_SCHEDULE, phase as u64)
}

/// The generator of vuser `id`: depends on nothing but the seed and the id.
pub fn vuser_rng(seed: u64, id: u64) -> SeededRng {
    SeededRng::seed_from_u64(derive(seed, STREAM_VUSER, id))
}

/// The seed of item `index` of stream `stream`: two rounds of splitmix64, so nearby seeds,
/// streams and indexes give unrelated generators.
fn derive(seed: u64, stream: u64, index: u64) -> u64 {
    splitmix64(splitmix64(seed ^ stream).wrapping_add(index))
}

/// The splitmix64 finaliser (Steele, Lea, Flood 2014) after one step of its Weyl sequence.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::RngExt;

    use super::*;

    const PINNED_SCHEDULE: u64 = 1_066_103_524_472_788_432;
    const PINNED_VUSER: u64 = 6_661_002_630_306_830_708;

    #[test]
    fn streams_are_stable_and_distinct() {
        let draw = |seed, id| vuser_rng(seed, id).random::<u64>();
        assert_eq!(draw(42, 7), draw(42, 7));
        let seen: HashSet<u64> = (0..1000).map(|id| draw(42, id)).collect();
        assert_eq!(seen.len(), 1000);
        assert_ne!(draw(42, 7), draw(43, 7));
        assert_ne!(schedule_seed(42, 0), schedule_seed(42, 1));
        assert_ne!(schedule_seed(42, 0), derive(42, STREAM_VUSER, 0));
    }

    #[test]
    fn a_seed_means_the_same_in_every_build() {
        // Pinned values: a change here (derivation, generator, rand's seeding) makes old seeds
        // replay something else, which must be a deliberate, documented change.
        assert_eq!(schedule_seed(1, 0), PINNED_SCHEDULE);
        assert_eq!(vuser_rng(1, 0).random::<u64>(), PINNED_VUSER);
    }
}
