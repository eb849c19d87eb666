//! A SuperscalarHash program as the dataset code executes it (specification section 6.2).
//!
//! The generator ([`super::generator`]) produces RandomX instructions; here they are lowered to
//! the ten operations that differ in what they compute: the 7/8/9-byte variants of `IADD_C` and
//! `IXOR_C` only differ in the generator's x86 decoder model, the `IADD_RS` shift is taken out of
//! the mod byte, constants are sign-extended to 64 bits, and `IMUL_RCP` carries its reciprocal
//! rather than the divisor.

/// What one instruction computes on its destination register `r[dst]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `r[dst] -= r[src]` (ISUB_R).
    Sub,
    /// `r[dst] ^= r[src]` (IXOR_R).
    Xor,
    /// `r[dst] += r[src] << imm` (IADD_RS, shift 0-3).
    AddShift,
    /// `r[dst] *= r[src]`, low 64 bits (IMUL_R).
    Mul,
    /// `r[dst] = r[dst].rotate_right(imm)` (IROR_C).
    Ror,
    /// `r[dst] += imm` (IADD_C7/8/9, imm sign-extended from 32 bits).
    AddConst,
    /// `r[dst] ^= imm` (IXOR_C7/8/9, imm sign-extended from 32 bits).
    XorConst,
    /// `r[dst] = (r[dst] * r[src]) >> 64`, unsigned (IMULH_R).
    MulHigh,
    /// `r[dst] = (r[dst] * r[src]) >> 64`, signed (ISMULH_R).
    SignedMulHigh,
    /// `r[dst] *= imm`, low 64 bits, imm the reciprocal of the divisor (IMUL_RCP).
    MulConst,
}

/// One lowered instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Op {
    pub kind: OpKind,
    pub dst: u8,
    pub src: u8,
    /// Shift, rotation, sign-extended constant or reciprocal, depending on `kind`.
    pub imm: u64,
}

/// One SuperscalarHash program: its operations and the register whose value picks the next
/// cache block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    pub ops: Vec<Op>,
    pub address_register: usize,
}

impl Program {
    /// A program of `ops`.
    pub(crate) fn new(ops: Vec<Op>, address_register: usize) -> Self {
        Self {
            ops,
            address_register,
        }
    }
}

impl Program {
    /// How many operations multiply (for statistics and tuning).
    #[cfg(test)]
    pub(crate) fn multiplications(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| {
                matches!(
                    op.kind,
                    OpKind::Mul | OpKind::MulConst | OpKind::MulHigh | OpKind::SignedMulHigh
                )
            })
            .count()
    }
}

/// `2^x / divisor` for the largest `x` that keeps the quotient below `2^64` (specification
/// section 6.2, IMUL_RCP). `divisor` is neither 0 nor a power of two.
pub(crate) fn reciprocal(divisor: u32) -> u64 {
    debug_assert!(divisor != 0 && !divisor.is_power_of_two());
    let d = u64::from(divisor);
    let p63 = 1u64 << 63;
    let (q, r) = (p63 / d, p63 % d);
    let shift = 64 - d.leading_zeros();
    (q << shift) + ((r << shift) / d)
}

/// The high 64 bits of the unsigned 128-bit product.
#[inline(always)]
pub(crate) fn mulh(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) >> 64) as u64
}

/// The high 64 bits of the signed 128-bit product.
#[inline(always)]
pub(crate) fn smulh(a: u64, b: u64) -> u64 {
    ((i128::from(a as i64) * i128::from(b as i64)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_matches_the_definition() {
        for d in [3u32, 5, 7, 10, 0xffff_ffff, 0x8000_0001, 123_456_789] {
            let x = 63 + (64 - u64::from(d).leading_zeros());
            let want = ((1u128 << x) / u128::from(d)) as u64;
            assert_eq!(reciprocal(d), want, "divisor {d}");
        }
        // The specification's example: 2^(63+x)/3.
        assert_eq!(reciprocal(3), 0xaaaa_aaaa_aaaa_aaaa);
    }

    #[test]
    fn signed_and_unsigned_high_products() {
        assert_eq!(mulh(u64::MAX, u64::MAX), u64::MAX - 1);
        assert_eq!(smulh(u64::MAX, u64::MAX), 0); // -1 * -1 = 1
        assert_eq!(smulh(u64::MAX, 5), u64::MAX); // -5 >> 64 = -1
        assert_eq!(smulh(1 << 63, 1 << 63), 1 << 62);
    }
}
