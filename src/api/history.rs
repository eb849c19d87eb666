//! The node's recent past for the live page (`GET /api/v1/history`): a bounded ring of
//! samples, one every 10 s for the last hour and one a minute (the mean of six) for the last
//! day, so a page opened or reloaded shows its charts at once and the alerts that look back
//! (compute errors in 10 minutes, no proof final for 15) have something to look at.
//!
//! Memory is bounded whatever the uptime: [`FINE`] + [`COARSE`] samples of at most
//! [`MAX_UNITS`] units each, a unit's label cut to [`MAX_LABEL`] bytes; [`History::bytes`]
//! counts what is held and [`max_bytes`] is the bound: 1.0 MiB at 8 units, 6.3 MiB at the
//! 64-unit cap.

use std::collections::VecDeque;

use serde::Serialize;

/// Seconds between samples.
pub(crate) const STEP_SECS: u64 = 10;
/// Samples of the last hour, one every [`STEP_SECS`].
pub(crate) const FINE: usize = 360;
/// Fine samples averaged into one coarse sample.
const PER_COARSE: usize = 6;
/// Coarse samples: a minute each, the last day.
pub(crate) const COARSE: usize = 1440;
/// Units kept per sample; a node with more keeps the first ones.
pub(crate) const MAX_UNITS: usize = 64;
/// Bytes of a unit's label kept.
pub(crate) const MAX_LABEL: usize = 16;

/// One unit in a sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct UnitSample {
    /// Label (`cpu0`).
    pub unit: Box<str>,
    /// Hashes per second over the 10 s window.
    pub hashrate: f32,
    /// Proofs found since start (a counter).
    pub found: u64,
    /// GPU results the CPU reference did not reproduce, since start.
    pub compute_errors: u64,
    /// Times the watchdog restarted it, since start.
    pub restarts: u32,
}

/// What the node looked like at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Unix time, seconds.
    pub t: u64,
    /// The units.
    pub units: Vec<UnitSample>,
    /// The chain's head block the client last saw (0 without a chain client).
    pub head_block: u64,
    /// Proofs accepted and final since start.
    pub accepted: u64,
    /// Store write errors since start.
    pub store_errors: u64,
}

impl Sample {
    /// A sample of `units`, at most [`MAX_UNITS`] of them, labels cut to [`MAX_LABEL`].
    pub(crate) fn new(t: u64, units: Vec<UnitSample>) -> Self {
        let units = units
            .into_iter()
            .take(MAX_UNITS)
            .map(|mut u| {
                if u.unit.len() > MAX_LABEL {
                    let mut end = MAX_LABEL;
                    while !u.unit.is_char_boundary(end) {
                        end -= 1;
                    }
                    u.unit = u.unit[..end].into();
                }
                u
            })
            .collect();
        Self {
            t,
            units,
            head_block: 0,
            accepted: 0,
            store_errors: 0,
        }
    }

    /// Heap and inline bytes this sample holds.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.units.capacity() * std::mem::size_of::<UnitSample>()
            + self.units.iter().map(|u| u.unit.len()).sum::<usize>()
    }

    /// The mean of `samples` (rates averaged per unit; counters and time from the last).
    fn mean(samples: &[Sample]) -> Self {
        let last = samples
            .last()
            .expect("a coarse sample averages at least one");
        let mut out = last.clone();
        for u in &mut out.units {
            let rates: Vec<f32> = samples
                .iter()
                .filter_map(|s| s.units.iter().find(|v| v.unit == u.unit))
                .map(|v| v.hashrate)
                .collect();
            u.hashrate = rates.iter().sum::<f32>() / rates.len() as f32;
        }
        out.units.shrink_to_fit();
        out
    }
}

/// The ring: the last hour at [`STEP_SECS`], the last day a minute a sample.
#[derive(Debug, Serialize)]
pub(crate) struct History {
    /// Oldest first.
    fine: VecDeque<Sample>,
    /// Oldest first.
    coarse: VecDeque<Sample>,
    /// Fine samples taken since the last coarse one.
    #[serde(skip)]
    pending: usize,
}

/// The most bytes a [`History`] holds (its two rings full, every sample at [`MAX_UNITS`]
/// units with labels of [`MAX_LABEL`] bytes), for `units` units a sample.
pub(crate) fn max_bytes(units: usize) -> usize {
    let units = units.min(MAX_UNITS);
    let sample =
        std::mem::size_of::<Sample>() + units * (std::mem::size_of::<UnitSample>() + MAX_LABEL);
    // Both rings are allocated once, one sample over their length (the push before the pop).
    (FINE + 1 + COARSE + 1) * sample + std::mem::size_of::<History>()
}

impl Default for History {
    fn default() -> Self {
        Self {
            fine: VecDeque::with_capacity(FINE + 1),
            coarse: VecDeque::with_capacity(COARSE + 1),
            pending: 0,
        }
    }
}

impl History {
    /// Adds `sample`; drops the oldest beyond an hour (fine) or a day (coarse).
    pub(crate) fn push(&mut self, sample: Sample) {
        self.fine.push_back(sample);
        if self.fine.len() > FINE {
            self.fine.pop_front();
        }
        self.pending += 1;
        if self.pending == PER_COARSE {
            self.pending = 0;
            let start = self.fine.len().saturating_sub(PER_COARSE);
            let recent: Vec<Sample> = self.fine.range(start..).cloned().collect();
            self.coarse.push_back(Sample::mean(&recent));
            if self.coarse.len() > COARSE {
                self.coarse.pop_front();
            }
        }
    }

    /// The samples of the last hour, oldest first.
    pub(crate) fn fine(&self) -> &VecDeque<Sample> {
        &self.fine
    }

    /// The newest sample taken at least `secs` before the newest one (the oldest if none is
    /// that old).
    pub(crate) fn ago(&self, secs: u64) -> Option<&Sample> {
        let newest = self.fine.back()?.t;
        self.fine
            .iter()
            .rev()
            .find(|s| s.t + secs <= newest)
            .or_else(|| self.fine.front())
    }

    /// Proofs `label` found per hour over the last hour (as far back as the samples go);
    /// `None` without two samples apart.
    pub(crate) fn found_per_hour(&self, label: &str) -> Option<f64> {
        let (then, now) = (self.ago(3600)?, self.fine.back()?);
        let found = |s: &Sample| s.units.iter().find(|u| &*u.unit == label).map(|u| u.found);
        (now.t > then.t).then(|| {
            found(now)
                .unwrap_or(0)
                .saturating_sub(found(then).unwrap_or(0)) as f64
                * 3600.0
                / (now.t - then.t) as f64
        })
    }

    /// The mean of `label`'s hashrate (10 s windows) over the samples of the last `secs`
    /// before the newest one, the newest included (so 10 s: the newest alone); `None` if none of
    /// them holds the unit.
    pub(crate) fn mean_rate(&self, label: &str, secs: u64) -> Option<f64> {
        let newest = self.fine.back()?.t;
        let rates: Vec<f64> = self
            .fine
            .iter()
            .rev()
            .take_while(|s| s.t + secs > newest)
            .filter_map(|s| s.units.iter().find(|u| &*u.unit == label))
            .map(|u| f64::from(u.hashrate))
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    }

    /// Bytes held, counted from the rings' capacities.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.fine.capacity() - self.fine.len() + self.coarse.capacity() - self.coarse.len())
                * std::mem::size_of::<Sample>()
            + self
                .fine
                .iter()
                .chain(&self.coarse)
                .map(Sample::bytes)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, units: usize, rate: f32) -> Sample {
        Sample::new(
            t,
            (0..units)
                .map(|i| UnitSample {
                    unit: format!("cpu{i}").into(),
                    hashrate: rate,
                    found: t,
                    compute_errors: 0,
                    restarts: 0,
                })
                .collect(),
        )
    }

    #[test]
    fn a_day_of_samples_stays_within_the_bound_and_keeps_an_hour_and_a_day() {
        let mut h = History::default();
        let day = 24 * 3600 / STEP_SECS;
        for i in 0..day {
            h.push(sample(i * STEP_SECS, 16, i as f32));
            assert!(
                h.bytes() <= max_bytes(16),
                "{} > {}",
                h.bytes(),
                max_bytes(16)
            );
        }
        assert_eq!(h.fine.len(), FINE);
        assert_eq!(h.coarse.len(), COARSE);
        // Another day changes nothing: the bound holds whatever the uptime.
        for i in day..2 * day {
            h.push(sample(i * STEP_SECS, 16, 1.0));
        }
        assert!(h.bytes() <= max_bytes(16));
        assert_eq!((h.fine.len(), h.coarse.len()), (FINE, COARSE));
        assert_eq!(h.fine.back().unwrap().t, (2 * day - 1) * STEP_SECS);
        assert_eq!(
            h.fine.front().unwrap().t,
            (2 * day - FINE as u64) * STEP_SECS
        );
        // The bound stated in the module's documentation.
        assert!(max_bytes(8) <= 1024 * 1024, "{}", max_bytes(8));
        assert!(max_bytes(64) <= 6_500 * 1024, "{}", max_bytes(64));
        // The rings never grew past their first allocation.
        assert_eq!(h.fine.capacity(), FINE + 1);
        assert_eq!(max_bytes(1000), max_bytes(MAX_UNITS));
    }

    #[test]
    fn samples_are_capped_in_units_and_label_bytes() {
        let mut s = sample(0, MAX_UNITS + 10, 1.0);
        assert_eq!(s.units.len(), MAX_UNITS);
        s = Sample::new(
            0,
            vec![UnitSample {
                unit: "é".repeat(40).into(),
                hashrate: 1.0,
                found: 0,
                compute_errors: 0,
                restarts: 0,
            }],
        );
        assert!(s.units[0].unit.len() <= MAX_LABEL && s.units[0].unit.len() >= MAX_LABEL - 1);
    }

    #[test]
    fn a_coarse_sample_is_the_mean_of_six_and_ago_looks_back() {
        let mut h = History::default();
        for (i, rate) in [1.0, 2.0, 3.0, 4.0, 5.0, 9.0].into_iter().enumerate() {
            h.push(sample(i as u64 * STEP_SECS, 2, rate));
        }
        assert_eq!(h.coarse.len(), 1);
        assert_eq!(h.coarse[0].units[0].hashrate, 4.0);
        assert_eq!(h.coarse[0].t, 50);
        assert_eq!(h.ago(20).unwrap().t, 30);
        assert_eq!(h.ago(3600).unwrap().t, 0);
        assert!(History::default().ago(10).is_none());
    }

    #[test]
    fn rates_and_proofs_per_hour_read_the_recent_samples() {
        let mut h = History::default();
        assert_eq!(h.mean_rate("cpu0", 60), None);
        assert_eq!(h.found_per_hour("cpu0"), None);
        // Rates 1..=8 at t = 0, 10, ..., 70; `found` is t (see `sample`).
        for i in 0..8u64 {
            h.push(sample(i * STEP_SECS, 1, (i + 1) as f32));
        }
        assert_eq!(h.mean_rate("cpu0", 10), Some(8.0));
        // 60 s: t = 20..=70, rates 3..=8.
        assert_eq!(h.mean_rate("cpu0", 60), Some(5.5));
        assert_eq!(h.mean_rate("cpu0", 3600), Some(4.5));
        assert_eq!(h.mean_rate("cpu1", 60), None);
        // 70 found in 70 s.
        assert_eq!(h.found_per_hour("cpu0"), Some(3600.0));
        assert_eq!(h.found_per_hour("cpu1"), Some(0.0));
    }
}
