//! The demonstration's pseudo-random generator: the benchmarks' one (W4's addresses and
//! W5's operations come from it too), so there is a single implementation.

pub use iopt_bench::rng::XorShift;
