//! Bindings of the capacity contract, generated from the committed artifact
//! (`contracts/artifacts/Capacity.json`, compiled from `contracts/src/Capacity.sol`).

#![allow(clippy::too_many_arguments)] // generated: the KindParamsSet event has eight fields

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    Capacity,
    "../contracts/artifacts/Capacity.json"
);
