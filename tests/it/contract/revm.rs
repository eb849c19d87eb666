//! The capacity contract on revm, in process: deploy, send transactions (each mined in a block
//! of its own), call views. Shared by the contract's fuzzers.

use alloy::primitives::{Address, Bytes, Log, U256};
use alloy::sol_types::SolCall;
use revm::context::TxEnv;
use revm::context_interface::result::ExecutionResult;
use revm::database::{CacheDB, EmptyDB};
use revm::database_interface::DatabaseRef;
use revm::handler::{MainnetContext, MainnetEvm};
use revm::primitives::TxKind;
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

const GAS_LIMIT: u64 = 15_000_000;

pub(super) type Db = CacheDB<EmptyDB>;
pub(super) type Evm = MainnetEvm<MainnetContext<Db>>;

pub(super) enum Outcome {
    Success { logs: Vec<Log>, output: Bytes },
    Revert(Bytes),
}

/// The EVM, the contract and the head block: every transaction is mined in a block of its own.
pub(super) struct Chain {
    pub evm: Evm,
    pub chain_id: u64,
    pub contract: Address,
    pub time: u64,
    pub block: u64,
}

impl Chain {
    pub(super) fn new(chain_id: u64, time: u64, block: u64, funded: &[Address]) -> Self {
        let mut db = Db::new(EmptyDB::default());
        for a in funded {
            db.insert_account_info(*a, AccountInfo::from_balance(U256::from(10u128.pow(30))));
        }
        let evm = Context::mainnet()
            .with_db(db)
            .modify_cfg_chained(|c| {
                c.set_spec_and_mainnet_gas_params(SpecId::CANCUN); // the artifact's evmVersion
                c.chain_id = chain_id;
                c.disable_nonce_check = true;
            })
            .build_mainnet();
        Self {
            evm,
            chain_id,
            contract: Address::ZERO,
            time,
            block,
        }
    }

    pub(super) fn sync_block(&mut self) {
        self.evm.ctx.block.number = U256::from(self.block);
        self.evm.ctx.block.timestamp = U256::from(self.time);
    }

    pub(super) fn tx_env(&self, from: Address, kind: TxKind, value: u128, data: Vec<u8>) -> TxEnv {
        TxEnv {
            caller: from,
            gas_limit: GAS_LIMIT,
            gas_price: 0,
            kind,
            value: U256::from(value),
            data: data.into(),
            chain_id: Some(self.chain_id),
            ..Default::default()
        }
    }

    /// Mines `data` from `from` in a new block (same timestamp as the harness keeps).
    pub(super) fn send(
        &mut self,
        from: Address,
        kind: TxKind,
        value: u128,
        data: Vec<u8>,
    ) -> Outcome {
        self.block += 1;
        self.sync_block();
        let tx = self.tx_env(from, kind, value, data);
        match self.evm.transact_commit(tx) {
            Ok(ExecutionResult::Success { logs, output, .. }) => Outcome::Success {
                logs,
                output: match output.address() {
                    Some(a) => Bytes::copy_from_slice(a.as_slice()),
                    None => output.into_data(),
                },
            },
            Ok(ExecutionResult::Revert { output, .. }) => Outcome::Revert(output),
            Ok(ExecutionResult::Halt { reason, .. }) => panic!("transaction halted: {reason:?}"),
            Err(e) => panic!("transaction invalid: {e:?}"),
        }
    }

    /// Calls a view at the head, without committing anything.
    pub(super) fn view<C: SolCall>(&mut self, call: C) -> C::Return {
        self.sync_block();
        let tx = self.tx_env(
            Address::ZERO,
            TxKind::Call(self.contract),
            0,
            call.abi_encode(),
        );
        match self.evm.transact(tx).map(|r| r.result) {
            Ok(ExecutionResult::Success { output, .. }) => C::abi_decode_returns(output.data())
                .unwrap_or_else(|e| panic!("{}: undecodable return: {e}", C::SIGNATURE)),
            other => panic!("view {} failed: {other:?}", C::SIGNATURE),
        }
    }

    pub(super) fn balance(&self, a: Address) -> U256 {
        self.evm
            .ctx
            .journaled_state
            .database
            .basic_ref(a)
            .expect("in-memory database")
            .map_or(U256::ZERO, |i| i.balance)
    }
}
