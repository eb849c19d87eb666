//! Reordering a program into runs of one operation kind, for the batched SIMD interpreter.
//!
//! The batched interpreter dispatches on each instruction's kind once per batch; with the
//! program's random order almost every dispatch is a mispredicted branch, which costs as much
//! as the instruction's work over a batch. SuperscalarHash programs have much instruction-level
//! parallelism (they are generated to keep three ports busy), so they can be reordered legally
//! into long runs of the same kind: the interpreter then dispatches once per run.
//!
//! The reordering is a list schedule of the dependency graph over the eight registers: an
//! instruction reads its destination (every kind does) and, for register-register kinds, its
//! source; it must follow the last writer of each register it reads (read after write), and
//! the last writer and every reader since of its destination (write after write, write after
//! read). Among the ready instructions the scheduler keeps to the kind it is in while it can,
//! and otherwise switches to the kind with the most ready instructions. The result computes
//! exactly what the original order computes, for every input.

use super::program::{Op, OpKind};

/// A run of instructions of one kind: `ops[start..end]` of the reordered program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub kind: OpKind,
    pub start: u16,
    pub end: u16,
}

/// Whether `kind` reads its source register.
fn reads_source(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Sub
            | OpKind::Xor
            | OpKind::AddShift
            | OpKind::Mul
            | OpKind::MulHigh
            | OpKind::SignedMulHigh
    )
}

/// `ops` reordered into same-kind runs, and the runs.
pub(crate) fn into_runs(ops: &[Op]) -> (Vec<Op>, Vec<Run>) {
    let n = ops.len();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    let mut last_write: [Option<usize>; 8] = [None; 8];
    let mut readers: [Vec<usize>; 8] = Default::default();
    for (i, op) in ops.iter().enumerate() {
        let (d, s) = (usize::from(op.dst & 7), usize::from(op.src & 7));
        let mut preds: Vec<usize> = Vec::new();
        let mut reads = vec![d];
        if reads_source(op.kind) && s != d {
            reads.push(s);
        }
        for &r in &reads {
            preds.extend(last_write[r]);
        }
        preds.extend(readers[d].iter().copied());
        preds.sort_unstable();
        preds.dedup();
        for p in preds {
            successors[p].push(i);
            waiting[i] += 1;
        }
        for &r in &reads {
            readers[r].push(i);
        }
        last_write[d] = Some(i);
        readers[d].clear();
    }

    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut current: Option<OpKind> = None;
    while !ready.is_empty() {
        let pick = match current.and_then(|k| ready.iter().position(|&i| ops[i].kind == k)) {
            Some(position) => position,
            None => {
                // Switch to the kind with the most ready instructions (earliest on ties).
                let count = |k: OpKind| ready.iter().filter(|&&i| ops[i].kind == k).count();
                let best = ready
                    .iter()
                    .copied()
                    .max_by_key(|&i| (count(ops[i].kind), std::cmp::Reverse(i)))
                    .expect("ready is not empty");
                ready.iter().position(|&i| i == best).expect("present")
            }
        };
        let i = ready.swap_remove(pick);
        ready.sort_unstable();
        current = Some(ops[i].kind);
        order.push(i);
        for &next in &successors[i] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(next);
            }
        }
        ready.sort_unstable();
    }
    assert_eq!(
        order.len(),
        n,
        "the dependency graph of a program is acyclic"
    );

    let reordered: Vec<Op> = order.iter().map(|&i| ops[i]).collect();
    let mut runs: Vec<Run> = Vec::new();
    for (i, op) in reordered.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.kind == op.kind => run.end = i as u16 + 1,
            _ => runs.push(Run {
                kind: op.kind,
                start: i as u16,
                end: i as u16 + 1,
            }),
        }
    }
    (reordered, runs)
}

#[cfg(test)]
mod tests {
    use super::super::{SuperscalarHash, scalar};
    use super::*;

    #[test]
    fn reordered_programs_compute_the_same_and_form_long_runs() {
        let hash = SuperscalarHash::new(b"reorder");
        for program in hash.programs() {
            let (reordered, runs) = into_runs(&program.ops);
            assert_eq!(reordered.len(), program.ops.len());
            // About a third fewer dispatches than instructions.
            assert!(
                runs.len() * 4 < program.ops.len() * 3,
                "{} runs",
                runs.len()
            );
            let mut moved = program.clone();
            moved.ops = reordered;
            for seed in 0..64u64 {
                let start = std::array::from_fn(|i| {
                    (seed * 8 + i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                });
                let (mut a, mut b) = (start, start);
                scalar::execute(program, &mut a);
                scalar::execute(&moved, &mut b);
                assert_eq!(a, b);
            }
        }
    }
}
