//! Names for the history and the failure messages: of events, of revert data, of addresses and of
//! governance calls.

use alloy::primitives::{Address, B256};
use alloy::sol_types::SolInterface;
use capminer_chain::bindings::Capacity::{CapacityCalls, CapacityErrors, CapacityEvents as Ev};

pub(super) fn event_name(ev: &Ev) -> String {
    let s = format!("{ev:?}");
    s.split('(').next().unwrap_or_default().to_string()
}

pub(super) fn revert_name(data: &[u8]) -> String {
    if data.len() < 4 {
        return if data.is_empty() {
            "<empty>".into()
        } else {
            format!("0x{}", hex::encode(data))
        };
    }
    let selector: [u8; 4] = data[..4].try_into().unwrap();
    match CapacityErrors::name_by_selector(selector) {
        Some(name) => name.to_string(),
        None if selector == [0x4e, 0x48, 0x7b, 0x71] => {
            format!("Panic(0x{})", hex::encode(&data[4..]))
        }
        None if selector == [0x08, 0xc3, 0x79, 0xa0] => "Error(string)".into(),
        None => format!("0x{}", hex::encode(data)),
    }
}

pub(super) fn short(a: Address) -> String {
    short_bytes(a.as_slice())
}

pub(super) fn short_bytes(b: &[u8]) -> String {
    format!("0x{}", hex::encode(&b[..3]))
}

pub(super) fn describe_call(data: &[u8]) -> String {
    match CapacityCalls::abi_decode(data) {
        Ok(CapacityCalls::setKindParams(c)) => format!(
            "setKindParams(kind {}, min {}, max {}, reward {}, collateral {}{})",
            c.kind,
            c.p.minProofs,
            c.p.maxProofs,
            c.p.reward,
            c.p.collateral,
            if c.p.target == B256::ZERO {
                ", zero target"
            } else {
                ""
            }
        ),
        Ok(CapacityCalls::addVerifier(c)) => format!("addVerifier({})", short(c.v)),
        Ok(CapacityCalls::removeVerifier(c)) => format!("removeVerifier({})", short(c.v)),
        Ok(CapacityCalls::setQuorum(c)) => format!("setQuorum({})", c.q),
        Ok(CapacityCalls::setGuardian(c)) => format!("setGuardian({})", short(c.g)),
        Ok(other) => format!("{other:?}"),
        Err(_) => format!("0x{}", hex::encode(data)),
    }
}
