//! `capminer bench --easy-hard`: the GPU units' hashrate at a hard target against an easy one,
//! in alternated rounds, medians compared. At the easy target every hit is re-checked on the CPU
//! (1.94 ms at the network's parameters) and stored (fsync); a host that stopped the GPU for
//! that would hash measurably less there, a host that keeps a dispatch queued would not. On a
//! noisy machine (lavapipe shares its CPUs with the re-check and with whatever else runs) one
//! pair of runs says little: rounds alternate which target goes first, and the medians are
//! compared.

use std::time::{Duration, Instant};

use capminer_miner::{Miner, UnitState};
use capminer_proofs::{Epoch, Target, UnitKind};
use serde::Serialize;

/// What `--easy-hard` measured.
#[derive(Debug, Serialize)]
pub(super) struct EasyHard {
    pub(super) rounds: u32,
    /// Measured seconds of each phase.
    pub(super) seconds_each: f64,
    /// The epoch's GPU target.
    pub(super) hard_target: Target,
    /// A hit expected every `easy_expected_hashes` hashes.
    pub(super) easy_target: Target,
    pub(super) easy_expected_hashes: u64,
    /// The GPU units' hashes a second in each round, in round order.
    pub(super) hard_hashrates: Vec<f64>,
    pub(super) easy_hashrates: Vec<f64>,
    /// Medians of the rounds.
    pub(super) hard_hashrate: f64,
    pub(super) easy_hashrate: f64,
    /// Median hits a second the GPU reported at the easy target (each re-checked).
    pub(super) easy_hits_per_second: f64,
    /// Medians of the GPU seconds of the search dispatches a second (timestamp queries; 0
    /// without): 1.0 is a GPU never idle, so easy_gpu_busy / hard_gpu_busy is the same
    /// comparison free of how fast the shared machine happened to run.
    pub(super) hard_gpu_busy: f64,
    pub(super) easy_gpu_busy: f64,
    /// Hits the re-check refuted, in all phases.
    pub(super) hits_refuted: u64,
    /// Dispatches whose hits overflowed their result buffer (each redone in halves while the
    /// GPU waited), in all phases: an easy target cuts dispatches so this stays 0.
    pub(super) dispatch_overflows: u64,
    /// easy_hashrate / hard_hashrate.
    pub(super) ratio: f64,
}

/// Runs `rounds` rounds of a hard and an easy phase of `seconds` each on `miner`'s GPU units.
/// Each phase is an epoch of its own (numbers after `base`'s, the same seed): the units re-key
/// for it (not measured) and then hash at its target.
pub(super) fn easy_hard(
    miner: &Miner,
    base: Epoch,
    rounds: u32,
    seconds: Duration,
    easy_expected_hashes: u64,
) -> anyhow::Result<EasyHard> {
    let hard = *base.target(UnitKind::Gpu);
    let easy = Target::for_expected_hashes(easy_expected_hashes);
    let (mut hard_rates, mut easy_rates, mut easy_hits) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hard_busy, mut easy_busy) = (Vec::new(), Vec::new());
    let (mut refuted, mut overflows) = (0, 0);
    let mut number = base.number;
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [(hard, false), (easy, true)]
        } else {
            [(easy, true), (hard, false)]
        };
        for (target, is_easy) in order {
            number += 1;
            let mut epoch = base;
            epoch.number = number;
            epoch.targets[UnitKind::Gpu.index()] = target;
            let phase = phase(miner, epoch, seconds)?;
            refuted += phase.refuted;
            overflows += phase.overflows;
            if is_easy {
                easy_rates.push(phase.hashrate);
                easy_hits.push(phase.hits_per_second);
                easy_busy.push(phase.gpu_busy);
            } else {
                hard_rates.push(phase.hashrate);
                hard_busy.push(phase.gpu_busy);
            }
            tracing::info!(
                round,
                easy = is_easy,
                "GPU {:.0} H/s, {:.1} hits/s",
                phase.hashrate,
                phase.hits_per_second
            );
        }
    }
    let (hard_hashrate, easy_hashrate) = (median(&hard_rates), median(&easy_rates));
    Ok(EasyHard {
        rounds,
        seconds_each: seconds.as_secs_f64(),
        hard_target: hard,
        easy_target: easy,
        easy_expected_hashes,
        easy_hits_per_second: median(&easy_hits),
        hard_hashrates: hard_rates,
        easy_hashrates: easy_rates,
        hard_hashrate,
        easy_hashrate,
        hard_gpu_busy: median(&hard_busy),
        easy_gpu_busy: median(&easy_busy),
        hits_refuted: refuted,
        dispatch_overflows: overflows,
        ratio: if hard_hashrate > 0.0 {
            easy_hashrate / hard_hashrate
        } else {
            0.0
        },
    })
}

/// One phase's figures, over the GPU units together.
struct Phase {
    hashrate: f64,
    hits_per_second: f64,
    refuted: u64,
    overflows: u64,
    gpu_busy: f64,
}

/// Sets `epoch`, waits until every GPU unit hashes it, then counts over about `seconds`.
fn phase(miner: &Miner, epoch: Epoch, seconds: Duration) -> anyhow::Result<Phase> {
    miner.set_epoch(epoch)?;
    let gpu_units = || {
        miner
            .units()
            .into_iter()
            .filter(|u| u.info().kind == UnitKind::Gpu)
            .collect::<Vec<_>>()
    };
    while !gpu_units()
        .iter()
        .all(|u| u.state() == UnitState::Hashing(epoch.number))
    {
        if let Some(unit) = miner.failed_unit() {
            anyhow::bail!("unit {unit} failed in the easy/hard rounds");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // (hashes, hits found, hits refuted) of the GPU units together.
    let counts = || {
        gpu_units().iter().fold((0, 0, 0), |(h, f, r), u| {
            let g = u.gpu_report().expect("a GPU unit");
            (h + u.hashes(), f + g.hits_found, r + g.hits_refuted)
        })
    };
    let overflows = || -> u64 {
        gpu_units()
            .iter()
            .filter_map(|u| u.gpu_report())
            .map(|g| g.search.overflows)
            .sum()
    };
    let gpu_seconds = || -> f64 {
        gpu_units()
            .iter()
            .filter_map(|u| u.gpu_report())
            .map(|g| g.search.gpu_seconds)
            .sum()
    };
    // A unit credits its hashes when a round ends, and its first rounds after a re-key are
    // short (each asks for twice the last): skip a warm-up, then count from one round's end
    // to the last round's end within the phase, so no partial round skews the rate.
    std::thread::sleep((seconds / 4).max(Duration::from_millis(500)));
    let next_credit = |after: (u64, u64, u64), until: Instant| loop {
        let now = counts();
        if now.0 != after.0 || Instant::now() >= until {
            return (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Rounds can outlast a short phase: wait (up to a minute) for at least one more round.
    let patience = seconds + Duration::from_secs(60);
    let (first, t0) = next_credit(counts(), Instant::now() + patience);
    let (busy0, overflows0) = (gpu_seconds(), overflows());
    let (end, limit) = (t0 + seconds, t0 + patience);
    let (mut last, mut t1) = (first, t0);
    while Instant::now() < end || (last.0 == first.0 && Instant::now() < limit) {
        let (now, at) = next_credit(last, if last.0 == first.0 { limit } else { end });
        if now.0 != last.0 {
            (last, t1) = (now, at);
        }
    }
    let took = (t1 - t0).as_secs_f64();
    let busy = gpu_seconds() - busy0;
    let per_second_f = |x: f64| if took > 0.0 { x / took } else { 0.0 };
    let per_second = |n: u64| per_second_f(n as f64);
    Ok(Phase {
        hashrate: per_second(last.0 - first.0),
        hits_per_second: per_second(last.1 - first.1),
        refuted: last.2 - first.2,
        overflows: overflows() - overflows0,
        gpu_busy: per_second_f(busy),
    })
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
