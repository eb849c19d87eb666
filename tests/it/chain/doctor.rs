//! `capminer doctor` on this machine and against a real anvil with the real contract: each check
//! says ok, warn or fail; a secret file others can read, a wrong chain id or a missing key
//! fail it (exit 1) with the fix; a sound configuration passes (exit 0).

use std::os::unix::fs::PermissionsExt;

use capminer_proofs::Target;

use super::{Net, spec};
use crate::common::{capminer, text};

/// Runs `capminer doctor` on `config` with the provider's key (if any); exit code and stdout.
fn doctor(
    dir: &std::path::Path,
    config: &capminer_config::Config,
    key: Option<&str>,
) -> (i32, String) {
    let path = dir.join("capminer.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let mut cmd = capminer();
    cmd.args(["doctor", "-c", path.to_str().unwrap()])
        .env_remove("CAPMINER_PRIVATE_KEY");
    if let Some(k) = key {
        cmd.env("CAPMINER_PRIVATE_KEY", k);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.code().unwrap_or(-1),
        format!("{stdout}\n{}", text(&out)),
    )
}

fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check)))
        .unwrap_or_else(|| panic!("no {check} line:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_machine_the_secrets_and_the_chain() {
    let net = Net::start(&spec(Target::for_expected_hashes(8), 1, 10), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = super::light_miner_config(&net, dir.path());
    let key = alloy::hex::encode(net.key(1).to_bytes());

    // Sound: every check ok or warn, exit 0; the chain's lines name what was checked.
    let (code, out) = doctor(dir.path(), &config, Some(&key));
    assert_eq!(code, 0, "{out}");
    assert!(line(&out, "rpc").starts_with("ok"), "{out}");
    assert!(
        line(&out, "rpc").contains(&format!("chain id {}", net.anvil.chain_id())),
        "{out}"
    );
    assert!(
        line(&out, "gas").starts_with("ok")
            && line(&out, "gas").contains(&net.key(1).address().to_string()),
        "{out}"
    );
    assert!(line(&out, "clock").starts_with("ok"), "{out}");
    assert!(line(&out, "units").starts_with("ok"), "{out}");
    assert!(!out.contains(&key), "the key never shows");

    // A token file group and others can read: fail, with the fix.
    let token = dir.path().join("api.token");
    std::fs::write(&token, "tok").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
    config.api.token_file = Some(token.clone());
    let (code, out) = doctor(dir.path(), &config, Some(&key));
    assert_eq!(code, 1, "{out}");
    let secrets = line(&out, "secrets");
    assert!(
        secrets.starts_with("FAIL")
            && secrets.contains("mode 640")
            && secrets.contains("chmod 600"),
        "{out}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    // No provider key: fail.
    let (code, out) = doctor(dir.path(), &config, None);
    assert_eq!(code, 1, "{out}");
    assert!(
        line(&out, "gas").starts_with("FAIL") && out.contains("CAPMINER_PRIVATE_KEY"),
        "{out}"
    );

    // The wrong chain: fail naming both ids.
    config.chain.chain_id = Some(5);
    let (code, out) = doctor(dir.path(), &config, Some(&key));
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "rpc").starts_with("FAIL"), "{out}");
    assert!(line(&out, "rpc").contains('5'), "{out}");
}
