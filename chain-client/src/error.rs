//! Chain errors, each saying whether trying again later can help.

use alloy::transports::{RpcError, TransportErrorKind};

use crate::bindings::Capacity::CapacityErrors;

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
    /// Startup cannot go on: wrong chain, no contract, no key, unregistered units.
    #[error("{0}")]
    Setup(String),
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
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChainError::Transport { .. })
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
pub fn redact_urls(text: &str) -> String {
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
pub fn redact_url(url: &str) -> String {
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
