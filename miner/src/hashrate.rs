//! Hashrate over sliding windows (10 s, 60 s, 15 min), from samples of a monotonic hash counter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
