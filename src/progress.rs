//! Dataset build progress: bars on a terminal, a log line every 10 % otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;

use capminer_miner::{UnitState, UnitView};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Shows the build progress of units, polled by the caller.
#[derive(Debug)]
pub(crate) struct BuildProgress {
    terminal: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    logged: HashMap<String, u64>,
}

impl BuildProgress {
    /// Bars if stderr is a terminal, log lines otherwise.
    pub(crate) fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal().then(MultiProgress::new),
            bars: HashMap::new(),
            logged: HashMap::new(),
        }
    }

    /// Reflects the units' current states.
    pub(crate) fn update(&mut self, units: &[UnitView]) {
        for unit in units {
            let label = &unit.info().label;
            match unit.state() {
                UnitState::Building { done, total } if total > 0 => self.show(label, done, total),
                _ => self.finish(label),
            }
        }
    }

    fn show(&mut self, label: &str, done: u64, total: u64) {
        if let Some(multi) = &self.terminal {
            let bar = self.bars.entry(label.to_string()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(total));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>6} dataset [{bar:40}] {percent:>3}% {elapsed}/{duration}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(label.to_string());
                bar
            });
            bar.set_position(done);
        } else {
            let decile = done * 10 / total;
            let last = self.logged.entry(label.to_string()).or_insert(0);
            if decile > *last {
                *last = decile;
                tracing::info!(unit = label, "dataset {}% built", decile * 10);
            }
        }
    }

    fn finish(&mut self, label: &str) {
        if let Some(bar) = self.bars.remove(label) {
            bar.finish_and_clear();
        }
        self.logged.remove(label);
    }
}
