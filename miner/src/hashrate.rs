//! Hashrate over sliding windows (10 s, 60 s, 15 min), from samples of a monotonic hash counter.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::MinerMetrics;
use crate::unit::UnitContext;

/// The windows reported, with their label values.
pub const WINDOWS: [(Duration, &str); 3] = [
    (Duration::from_secs(10), "10s"),
    (Duration::from_secs(60), "60s"),
    (Duration::from_secs(15 * 60), "15m"),
];

/// Samples of one counter, kept for the longest window.
#[derive(Debug, Default)]
pub struct Hashrate {
    samples: VecDeque<(Instant, u64)>,
}

impl Hashrate {
    /// Records the counter's value at `now` (call about once a second).
    pub fn record(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        let keep = WINDOWS[WINDOWS.len() - 1].0;
        // Keep one sample at or before the window's start, so a full window can be measured.
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= keep {
            self.samples.pop_front();
        }
    }

    /// Hashes per second over the last `window` (or over what has been seen, if less).
    pub fn rate(&self, window: Duration) -> f64 {
        let Some(&(now, last)) = self.samples.back() else {
            return 0.0;
        };
        let first = self
            .samples
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= window)
            .or_else(|| self.samples.front())
            .copied();
        match first {
            Some((t, total)) if t < now => {
                (last - total) as f64 / now.duration_since(t).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// The hashrate windows of every unit, sampled about once a second into
/// `capminer_hashrate`, and logged once a minute.
#[derive(Debug)]
pub struct Sampler {
    windows: BTreeMap<String, Hashrate>,
    last_log: Instant,
}

impl Default for Sampler {
    fn default() -> Self {
        Self {
            windows: BTreeMap::new(),
            last_log: Instant::now(),
        }
    }
}

impl Sampler {
    /// Samples the hash counters of `units` (the units there are now; windows of units gone
    /// are dropped).
    pub fn sample(&mut self, units: &[Arc<UnitContext>], metrics: &MinerMetrics) {
        let now = Instant::now();
        let log = now.duration_since(self.last_log) >= Duration::from_secs(60);
        if log {
            self.last_log = now;
        }
        self.windows
            .retain(|label, _| units.iter().any(|c| &c.info.label == label));
        for ctx in units {
            let window = self.windows.entry(ctx.info.label.clone()).or_default();
            window.record(now, ctx.hashes());
            let mut r = [0.0; 3];
            for (i, (span, name)) in WINDOWS.iter().enumerate() {
                r[i] = window.rate(*span);
                metrics
                    .hashrate
                    .with_label_values(&[ctx.info.label.as_str(), ctx.info.kind.as_str(), name])
                    .set(r[i]);
            }
            if log {
                tracing::info!(unit = %ctx.info.label, "hashrate 10s/60s/15m: {:.1} {:.1} {:.1} H/s", r[0], r[1], r[2]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_measure_their_own_spans() {
        let t0 = Instant::now();
        let mut h = Hashrate::default();
        // 100 H/s for 60 s, then 10 H/s for 10 s.
        let mut total = 0;
        for s in 0..=60 {
            h.record(t0 + Duration::from_secs(s), total);
            total += 100;
        }
        total -= 100;
        for s in 61..=70 {
            total += 10;
            h.record(t0 + Duration::from_secs(s), total);
        }
        assert_eq!(h.rate(Duration::from_secs(10)), 10.0);
        // 60 s window: from t=10 (total 1000) to t=70 (6000 + 100): 5100 / 60.
        assert_eq!(h.rate(Duration::from_secs(60)), 5100.0 / 60.0);
        // 15 min window, not yet full: everything seen, 6100 / 70.
        assert_eq!(h.rate(Duration::from_secs(900)), 6100.0 / 70.0);
    }

    #[test]
    fn old_samples_are_dropped_but_the_long_window_stays_full() {
        let t0 = Instant::now();
        let mut h = Hashrate::default();
        for s in 0..2000u64 {
            h.record(t0 + Duration::from_secs(s), s * 5);
        }
        assert!(h.samples.len() <= 902, "{}", h.samples.len());
        assert_eq!(h.rate(Duration::from_secs(900)), 5.0);
        assert_eq!(Hashrate::default().rate(Duration::from_secs(10)), 0.0);
    }
}
