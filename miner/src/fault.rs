//! Injected faults, so tests can prove the watchdog restarts what breaks.
//!
//! ```text
//!  CAPMINER_FAULT="panic@cpu0x3,stall@cpu1,compute@gpu0.0x20,device_lost@gpu0.0,error@cpu0/30"
//!                  kind @ unit label [x times (default 1)] [/ rounds first (default 2)]
//! ```
//!
//! Why an environment variable read only in builds with the `fault-injection` cargo feature,
//! rather than a config key: a config key ships in every binary and sits one typo away from
//! production; a release build (`cargo build`, the container, `deploy/up.sh`) is compiled
//! without the feature, so there [`Faults::from_env`] ignores the variable and every hook
//! below is a constant `false` the optimiser removes. The integration tests turn the feature on
//! through the workspace's dev-dependency on this crate (cargo builds the `capminer` binary the
//! tests run with the test build's features; `cargo tree -e features,normal -i capminer-miner`
//! shows that a normal build leaves it out), and such a binary warns in its log when it injects.
//!
//! Each fault fires at most `times` times, each time once the unit has hashed at least `rounds`
//! rounds (2 unless given) since it (re)started, so a restarted unit first shows that it hashes
//! again:
//! - `panic`: the hashing thread panics before its next round;
//! - `stall`: the hashing thread stops adding hashes (it waits, interruptibly, for its unit to
//!   be stopped), as a unit stuck in a driver call would;
//! - `error`: the hashing thread returns an error;
//! - `compute`: the GPU reports a hit the CPU reference refutes (one per round);
//! - `device_lost`: the GPU unit's device is destroyed, as a driver reset would.

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The hashing thread panics.
    Panic,
    /// The hashing thread hashes nothing more.
    Stall,
    /// The hashing thread returns an error.
    Error,
    /// A GPU hit the CPU reference refutes.
    Compute,
    /// The GPU device is lost.
    DeviceLost,
}

/// The faults this process injects (none unless built with `fault-injection` and
/// `CAPMINER_FAULT` is set).
#[derive(Debug, Default)]
pub struct Faults {
    #[cfg(feature = "fault-injection")]
    planned: Vec<Planned>,
}

/// One planned fault: its kind, unit, rounds to hash first, times left.
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
struct Planned {
    kind: FaultKind,
    unit: String,
    rounds: u64,
    left: std::sync::atomic::AtomicU32,
}

/// The environment variable naming the faults to inject.
pub const FAULT_ENV: &str = "CAPMINER_FAULT";

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// The faults of `CAPMINER_FAULT`, in builds with the `fault-injection` feature; none in
    /// any other build.
    pub fn from_env() -> crate::Result<Self> {
        #[cfg(feature = "fault-injection")]
        if let Ok(spec) = std::env::var(FAULT_ENV) {
            let faults = Self::parse(&spec)?;
            tracing::warn!("{FAULT_ENV}={spec}: injecting faults (a test build)");
            return Ok(faults);
        }
        Ok(Self::none())
    }

    /// Parses a fault list (see the module docs).
    #[cfg(feature = "fault-injection")]
    pub fn parse(spec: &str) -> crate::Result<Self> {
        use std::sync::atomic::AtomicU32;
        let bad = |part: &str, why: &str| crate::MinerError::UnitFailed {
            unit: "fault injection".into(),
            reason: format!("{FAULT_ENV}: {part:?}: {why}"),
        };
        let mut planned = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, rest) = part
                .split_once('@')
                .ok_or_else(|| bad(part, "expected kind@unit[xN]"))?;
            let kind = match kind {
                "panic" => FaultKind::Panic,
                "stall" => FaultKind::Stall,
                "error" => FaultKind::Error,
                "compute" => FaultKind::Compute,
                "device_lost" => FaultKind::DeviceLost,
                _ => {
                    return Err(bad(
                        part,
                        "kinds: panic, stall, error, compute, device_lost",
                    ));
                }
            };
            let (rest, rounds) = match rest.rsplit_once('/') {
                Some((r, n)) => (
                    r,
                    n.parse::<u64>()
                        .map_err(|_| bad(part, "rounds after / must be a number"))?,
                ),
                None => (rest, 2),
            };
            let (unit, times) = match rest.rsplit_once('x') {
                Some((unit, n)) if n.parse::<u32>().is_ok() => (unit, n.parse().expect("checked")),
                _ => (rest, 1),
            };
            planned.push(Planned {
                kind,
                unit: unit.to_string(),
                rounds,
                left: AtomicU32::new(times),
            });
        }
        Ok(Self { planned })
    }

    /// True if `kind` fires now for unit `label`, which has hashed `rounds` rounds since it
    /// started (using up one of its times).
    #[allow(unused_variables)]
    pub fn fire(&self, kind: FaultKind, label: &str, rounds: u64) -> bool {
        #[cfg(feature = "fault-injection")]
        for p in &self.planned {
            use std::sync::atomic::Ordering;
            if p.kind == kind
                && p.unit == label
                && rounds >= p.rounds
                && p.left
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
            {
                tracing::warn!(unit = %label, "injected fault: {kind:?}");
                return true;
            }
        }
        false
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_as_often_as_asked_for_their_unit_only() {
        let f = Faults::parse("panic@cpu0x2, stall@gpu0.1/10").unwrap();
        assert!(
            !f.fire(FaultKind::Panic, "cpu0", 1),
            "not before two rounds"
        );
        assert!(f.fire(FaultKind::Panic, "cpu0", 2));
        assert!(!f.fire(FaultKind::Panic, "cpu1", 2));
        assert!(!f.fire(FaultKind::Stall, "cpu0", 2));
        assert!(f.fire(FaultKind::Panic, "cpu0", 2));
        assert!(!f.fire(FaultKind::Panic, "cpu0", 2), "used up");
        assert!(!f.fire(FaultKind::Stall, "gpu0.1", 9));
        assert!(f.fire(FaultKind::Stall, "gpu0.1", 10));
        assert!(Faults::parse("boom@cpu0").is_err());
        assert!(Faults::parse("panic").is_err());
        assert!(Faults::parse("panic@cpu0/x").is_err());
    }
}
