//! Chain errors, each saying whether trying again later can help.

use std::path::PathBuf;

use alloy::primitives::Address;
use alloy::transports::{RpcError, TransportErrorKind};
use capminer_protocol::{GpuChallenge, UnitRef};

use crate::bindings::Capacity::CapacityErrors;
use crate::key::KeyProblem;

/// Result alias for chain operations.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;

/// What went wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached or answered with a transport error: retry later.
    #[error("RPC {endpoint}: {message}")]
    Transport {
        /// The endpoint (never with credentials: only scheme, host and port).
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The contract reverted with one of its own errors.
    #[error("contract reverted in {call}: {error:?}")]
    Revert {
        /// Which call.
        call: &'static str,
        /// The decoded error.
        error: CapacityErrors,
    },
    /// The node refused a transaction or a call for another reason.
    #[error("{call}: {message}")]
    Rejected {
        /// Which call.
        call: &'static str,
        /// The node's message.
        message: String,
    },
    /// A `[chain]` key's value cannot be used (`chain.rpc_url`, `chain.contract`).
    #[error("{key} {message}")]
    Config {
        /// The key.
        key: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// The node serves another chain than `chain.chain_id` names.
    #[error("chain.chain_id is {configured} but the node at {endpoint} serves chain {served}")]
    ChainMismatch {
        /// `chain.chain_id`.
        configured: u64,
        /// The chain id the node reports.
        served: u64,
        /// The node (without credentials).
        endpoint: String,
    },
    /// `chain.contract` holds no code on the node's chain.
    #[error("chain.contract {address}: no contract there on chain {chain_id}")]
    NoContract {
        /// `chain.contract`.
        address: Address,
        /// The node's chain.
        chain_id: u64,
    },
    /// The contract's GPU challenge is not the one this machine's `[network]` computes.
    #[error(
        "the GPU challenge of [network] ({}) differs from contract {contract}'s ({}): set \
         [network] to the contract's parameters",
        GpuChallenge::describe(local),
        GpuChallenge::describe(onchain)
    )]
    ChallengeMismatch {
        /// The contract.
        contract: Address,
        /// The challenge word of `[network]`.
        local: [u8; 32],
        /// The contract's.
        onchain: [u8; 32],
    },
    /// A unit is registered to a provider this signer does not sign for.
    #[error(
        "unit {} ({}) is registered to {provider}; this signer {signer} is neither that \
         provider nor one of its operators (the provider runs `capminer provider authorize \
         {signer}`, then this host `capminer provider accept {provider}`)",
        unit.label,
        unit.id
    )]
    Unauthorized {
        /// The unit.
        unit: UnitRef,
        /// The provider it is registered to.
        provider: Address,
        /// This signer.
        signer: Address,
    },
    /// A unit of this operator's provider is assigned to another of its hosts.
    #[error(
        "unit {} ({}) is assigned to host {host} of its provider; this operator key {signer} \
         submits for host {operator_host} only (the provider runs `capminer provider assign \
         --host {operator_host} <index>`, or this host plans the wrong units)",
        unit.label,
        unit.id
    )]
    OtherHost {
        /// The unit.
        unit: UnitRef,
        /// The host it is assigned to.
        host: u16,
        /// The host this operator key is bound to.
        operator_host: u16,
        /// This signer.
        signer: Address,
    },
    /// No private key is configured: neither the key file nor the environment variable.
    #[error("no key: set {config_key} or the {env_var} environment variable")]
    NoKey {
        /// The config key of the key file (`chain.key_file`).
        config_key: String,
        /// The environment variable.
        env_var: String,
    },
    /// A private key could not be loaded (never with key material).
    #[error("{origin}: {problem}")]
    Key {
        /// Where it came from: the config key (and file), or the environment variable.
        origin: String,
        /// What is wrong.
        problem: KeyProblem,
    },
    /// Signing failed.
    #[error("{what}: {source}")]
    Signer {
        /// What was signed.
        what: &'static str,
        /// The signer's error.
        source: alloy::signers::Error,
    },
    /// A local file could not be read or written.
    #[error("{file} {path}: {op}: {source}")]
    Io {
        /// Which file, for people (`verifier progress file`).
        file: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `create directory`, a step of a durable write).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A local file holds something other than what was written there.
    #[error("{file} {path}: {source}")]
    BadFile {
        /// Which file, for people.
        file: &'static str,
        /// The file.
        path: PathBuf,
        /// What does not parse.
        source: serde_json::Error,
    },
    /// Metrics could not be registered (a name taken twice in one registry).
    #[error("registering the {what} metrics: {source}")]
    Metrics {
        /// Whose metrics.
        what: &'static str,
        /// The registry's error.
        source: prometheus::Error,
    },
    /// A task on tokio's blocking pool did not finish: it panicked (or was cancelled).
    #[error("{task}: {source}")]
    TaskJoin {
        /// The task.
        task: String,
        /// How it ended.
        source: tokio::task::JoinError,
    },
    /// Development setup: anvil could not be started.
    #[error("cannot start anvil from {path}: {message}")]
    Anvil {
        /// The anvil binary.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Development setup: a node URL that does not parse.
    #[error("not a valid URL: {url}")]
    InvalidUrl {
        /// The URL, without path, query or credentials.
        url: String,
    },
    /// Development setup: deploying, registering, funding or governing failed.
    #[error("{step}: {message}")]
    Devnet {
        /// The step (`deploying the capacity contract`, `registering units`).
        step: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The node returned a log that is not what the contract emits: never read past.
    #[error("malformed {event} log in block {block:?}, transaction {tx:?}: {reason}")]
    BadLog {
        /// The event.
        event: &'static str,
        /// Its block, if the node gave one.
        block: Option<u64>,
        /// Its transaction, if the node gave one.
        tx: Option<alloy::primitives::TxHash>,
        /// What is wrong.
        reason: String,
    },
    /// The proof store failed.
    #[error(transparent)]
    Store(#[from] capminer_proofs::StoreError),
}

impl ChainError {
    /// True when the same operation may succeed later (transport trouble, a busy node).
    /// Nothing else is: the setup errors (configuration, keys, files, unregistered units) need
    /// a person, and a refusal by the contract stands.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChainError::Transport { .. })
    }

    /// Maps a failed durable write of `file` (see `capminer_proofs::durable`).
    pub fn durable(
        file: &'static str,
    ) -> impl FnOnce(capminer_proofs::durable::DurableError) -> Self {
        move |e| ChainError::Io {
            file,
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }

    /// Classifies an RPC error of `call`: reverts are decoded into the contract's own errors.
    pub fn from_rpc(endpoint: &str, call: &'static str, e: RpcError<TransportErrorKind>) -> Self {
        if let Some(payload) = e.as_error_resp() {
            if let Some(error) = payload.as_decoded_interface_error::<CapacityErrors>() {
                return ChainError::Revert { call, error };
            }
            return ChainError::Rejected {
                call,
                message: payload.message.to_string(),
            };
        }
        ChainError::Transport {
            endpoint: endpoint.to_string(),
            // The HTTP client names the whole URL it failed on (path and query included,
            // where providers put API keys): every URL in the text is cut to its endpoint.
            message: redact_urls(&e.to_string()),
        }
    }
}

/// `text` with every `http://` or `https://` URL in it cut down by [`redact_url`].
pub(crate) fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["http://", "https://"]
        .iter()
        .filter_map(|s| rest.find(s))
        .min()
    {
        out.push_str(&rest[..at]);
        let url = &rest[at..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .unwrap_or(url.len());
        out.push_str(&redact_url(&url[..end]));
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

/// `scheme://host:port` of a URL, without path, query or credentials (which may hold API keys).
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_paths_and_queries() {
        assert_eq!(
            redact_url("https://user:secret@rpc.example:8545/v3/APIKEY?x=1"),
            "https://rpc.example:8545"
        );
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
    }

    #[test]
    fn setup_errors_name_what_to_fix_and_are_not_retried() {
        let signer = Address::repeat_byte(0x11);
        let provider = Address::repeat_byte(0x22);
        let unit = UnitRef {
            id: capminer_protocol::UnitId([7; 32]),
            kind: capminer_protocol::UnitKind::Cpu,
            label: "cpu3".into(),
        };
        let errors = [
            ChainError::Unauthorized {
                unit: unit.clone(),
                provider,
                signer,
            },
            ChainError::Config {
                key: "chain.contract",
                message: "is not set".into(),
            },
            ChainError::OtherHost {
                unit: unit.clone(),
                host: 2,
                operator_host: 1,
                signer,
            },
            ChainError::ChainMismatch {
                configured: 1,
                served: 31337,
                endpoint: "http://node:8545".into(),
            },
            ChainError::NoKey {
                config_key: "chain.key_file".into(),
                env_var: "CAPMINER_PRIVATE_KEY".into(),
            },
            ChainError::Io {
                file: "verifier progress file",
                path: "/var/lib/capminer/progress.json".into(),
                op: "fsync",
                source: std::io::Error::other("disk full"),
            },
        ];
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text[0].contains(&format!(
                "unit cpu3 ({}) is registered to {provider}",
                unit.id
            )) && text[0].contains(&format!("capminer provider authorize {signer}")),
            "{}",
            text[0]
        );
        assert_eq!(text[1], "chain.contract is not set");
        assert!(
            text[2].starts_with(&format!(
                "unit cpu3 ({}) is assigned to host 2 of its provider; this operator key {signer} \
                 submits for host 1 only",
                unit.id
            )),
            "{}",
            text[2]
        );
        assert_eq!(
            text[3],
            "chain.chain_id is 1 but the node at http://node:8545 serves chain 31337"
        );
        assert_eq!(
            text[4],
            "no key: set chain.key_file or the CAPMINER_PRIVATE_KEY environment variable"
        );
        assert_eq!(
            text[5],
            "verifier progress file /var/lib/capminer/progress.json: fsync: disk full"
        );
        assert!(errors.iter().all(|e| !e.is_retryable()));
    }

    #[test]
    fn urls_inside_messages_are_redacted_too() {
        assert_eq!(
            redact_urls(
                "error sending request for url (http://u:p@127.0.0.1:8545/v3/KEY?t=Q); \
                 also https://rpc.example/KEY2, done"
            ),
            "error sending request for url (http://127.0.0.1:8545); also https://rpc.example, done"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
    }
}
