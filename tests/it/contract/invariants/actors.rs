//! The fixed cast of every sequence: the owner, two guardians, three providers, four verifier
//! keys (a sequence's verifier set is some of them), three operator keys (hosts' keys, bound to
//! a provider's host with their consent) and an outsider, with deterministic keys.

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;

pub(super) struct Actors {
    pub(super) owner: Address,
    pub(super) guardians: [Address; 2],
    pub(super) providers: [Address; 3],
    pub(super) verifiers: Vec<PrivateKeySigner>,
    pub(super) outsider: Address,
    pub(super) operators: [Address; 3],
    pub(super) all: Vec<Address>,
}

impl Actors {
    pub(super) fn new() -> Self {
        let key = |i: u8| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).expect("valid key");
        let owner = key(0x01).address();
        let guardians = [key(0x02).address(), key(0x03).address()];
        let providers = [
            key(0x04).address(),
            key(0x05).address(),
            key(0x06).address(),
        ];
        let verifiers: Vec<PrivateKeySigner> = (0x07..=0x0a).map(key).collect();
        let outsider = key(0x0b).address();
        let operators = [
            key(0x0c).address(),
            key(0x0d).address(),
            key(0x0e).address(),
        ];
        let mut all = vec![owner, guardians[0], guardians[1], outsider];
        all.extend(providers);
        all.extend(operators);
        all.extend(verifiers.iter().map(|v| v.address()));
        Self {
            owner,
            guardians,
            providers,
            verifiers,
            outsider,
            operators,
            all,
        }
    }

    pub(super) fn verifier(&self, i: usize) -> Address {
        self.verifiers[i].address()
    }
}
