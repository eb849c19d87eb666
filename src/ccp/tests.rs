//! The Fluence profile's rules in capminer's own code: the key rule, the hash of Fluence's
//! fork (vectors computed with Fluence's `ccp-randomx`), parameters named in errors.

use std::sync::Arc;

use capminer_kernels::key::cpu_unit_key;
use capminer_kernels::randomx::{Cache, RandomXFlags, RandomXOptions, Vm, VmMemory};
use jsonrpsee::types::Params;

use super::CcpError;
use super::rpc::Args;

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// CCP's example commitment (core "10"): K = keccak256(global_nonce ‖ cu_id).
const GLOBAL_NONCE: &str = "13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6";
const CU_ID: &str = "21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f";
const K: &str = "f83d1e9bd5a92d09e2e08b20a66c1ec1887cf2c564d350439637d1522a2299ac";

#[test]
fn the_cu_key_is_keccak_of_global_nonce_and_cu_id() {
    assert_eq!(cpu_unit_key(&h32(GLOBAL_NONCE), &h32(CU_ID)), h32(K));
}

/// Needs Fluence's fork in capminer's kernels (`RandomxFlavor::Fluence`): red until it lands.
#[test]
fn fluence_light_hashes_match_ccp_randomx() {
    let options = RandomXOptions {
        full_memory: false,
        large_pages: false,
        flavor: capminer_protocol::RandomxFlavor::Fluence,
        ..RandomXOptions::default()
    };
    let flags = RandomXFlags::resolve(&options).expect("Fluence's flavor in this build");
    let mut cache = Cache::new(flags).unwrap();
    cache.init(&h32(K));
    let mut vm = Vm::new(flags, VmMemory::Cache(Arc::new(cache))).unwrap();
    assert_eq!(
        hex::encode(vm.hash(&[0u8; 32])),
        "2719f262cfa7bba8a7308195d546abe94339934b44360a11df21f6724d0b5e30"
    );
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(
        hex::encode(vm.hash(&one)),
        "22c520b214f7670ffe7ae81dde4f1c058727d3e61ffe812d5544e04ac6098aec"
    );
}

fn field_of(r: Result<impl std::fmt::Debug, CcpError>) -> String {
    match r.unwrap_err() {
        CcpError::Invalid { field, .. } => field,
        other => panic!("not a parameter error: {other:?}"),
    }
}

#[test]
fn parameters_are_read_by_name_or_position_and_errors_name_them() {
    const NAMES: &[&str] = &["global_nonce", "cu_allocation"];
    let named = format!(r#"{{"global_nonce":"{GLOBAL_NONCE}","cu_allocation":{{"3":"{CU_ID}"}}}}"#);
    let args = Args::new(&Params::new(Some(&named)), NAMES).unwrap();
    let nonce: ccp_shared::types::GlobalNonce = args.get(0).unwrap();
    assert_eq!(nonce.as_ref(), &h32(GLOBAL_NONCE));
    let positional = format!(r#"["{GLOBAL_NONCE}",{{"3":"{CU_ID}"}}]"#);
    let args = Args::new(&Params::new(Some(&positional)), NAMES).unwrap();
    let alloc: std::collections::HashMap<
        ccp_shared::types::PhysicalCoreId,
        ccp_shared::types::CUID,
    > = args.get(1).unwrap();
    assert_eq!(
        alloc[&ccp_shared::types::PhysicalCoreId::new(3)].as_ref(),
        &h32(CU_ID)
    );

    let bad = r#"{"global_nonce":"0x12","cu_allocation":{"3":"zz"}}"#;
    let args = Args::new(&Params::new(Some(bad)), NAMES).unwrap();
    assert_eq!(
        field_of(args.get::<ccp_shared::types::GlobalNonce>(0)),
        "global_nonce"
    );
    assert_eq!(
        field_of(
            args.get::<std::collections::HashMap<
                ccp_shared::types::PhysicalCoreId,
                ccp_shared::types::CUID,
            >>(1)
        ),
        "cu_allocation.3"
    );
    let missing = Args::new(&Params::new(Some("{}")), NAMES).unwrap();
    assert_eq!(field_of(missing.get::<u64>(1)), "cu_allocation");
    assert_eq!(
        field_of(Args::new(&Params::new(Some("7")), NAMES)),
        "params"
    );
}
