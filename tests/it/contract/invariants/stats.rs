//! What the campaign exercised: per operation, successes and revert reasons; events emitted;
//! milestones (outcomes worth reaching at least once). The test asserts on them at the end.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(super) struct OpStats {
    pub(super) ok: u64,
    pub(super) reverted: u64,
    pub(super) reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) ops: BTreeMap<&'static str, OpStats>,
    /// Events of successful transactions, by name.
    pub(super) events: BTreeMap<String, u64>,
    /// Outcomes worth seeing at least once (paid claims, slashes, withdrawn collateral...).
    pub(super) milestones: BTreeMap<&'static str, u64>,
    pub(super) steps: u64,
}

impl Stats {
    pub(super) fn ok(&mut self, op: &'static str) {
        self.ops.entry(op).or_default().ok += 1;
    }

    pub(super) fn reverted(&mut self, op: &'static str, reason: &str) {
        let s = self.ops.entry(op).or_default();
        s.reverted += 1;
        *s.reasons.entry(reason.to_string()).or_default() += 1;
    }

    pub(super) fn milestone(&mut self, what: &'static str) {
        *self.milestones.entry(what).or_default() += 1;
    }
}
