//! The Fluence profile (`network.profile = "fluence"`) outside `capminer ccp`: `doctor` sizes
//! its units with Fluence's 4 GiB dataset (the capminer profile's stay stock), and `run`, which
//! has no Fluence chain client, refuses it before it creates anything.

use crate::common::{capminer, text, write_config};

/// One unit of one thread on core 0, full datasets on huge pages, in `profile`.
fn config(profile: &str) -> String {
    format!(
        "[network]\nprofile = \"{profile}\"\n\n[miner]\nstate_dir = \"state\"\n\n\
         [metrics]\nenabled = false\n\n[api]\nenabled = false\n\n\
         [cpu]\nunits = [{{ core = 0 }}]\nthreads_per_core = 1\nmemory_reserve_mib = 0\n\n\
         [cpu.randomx]\nfull_memory = true\nlarge_pages = true\n"
    )
}

/// `capminer doctor` on `profile`: exit code and stdout.
fn doctor(profile: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config(profile));
    let out = capminer()
        .current_dir(dir.path())
        .args(["doctor", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// The line of `check`, without its level.
fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check)))
        .unwrap_or_else(|| panic!("no {check} line:\n{out}"))
}

#[test]
fn doctor_sizes_units_in_the_profiles_randomx_flavor() {
    // Stock: 34_078_719 items of 64 bytes; 1040 pages + 128 (cache) + 1 (scratchpad).
    let (code, out) = doctor("capminer");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line(&out, "memory").contains(
            "2338 MiB a unit of 1 thread(s) while keying in the capminer profile: a dataset of 2181038016 bytes, a 256 MiB cache, 2 MiB a thread"
        ),
        "{out}"
    );
    assert!(
        line(&out, "huge pages").contains("1169 needed (1169 a unit)"),
        "{out}"
    );
    assert!(!out.contains("flavor=fluence"), "{out}");
    assert!(
        !out.lines()
            .any(|l| l.get(6..).is_some_and(|r| r.starts_with("profile"))),
        "{out}"
    );

    // Fluence: 67_633_151 items; 2064 pages + 128 + 1. doctor does not fail on the profile
    // that `run` refuses.
    let (code, out) = doctor("fluence");
    assert!(line(&out, "profile").starts_with("ok"), "{out}");
    assert!(line(&out, "config").starts_with("ok"), "{out}");
    assert!(line(&out, "units").contains("flavor=fluence"), "{out}");
    let memory = line(&out, "memory");
    assert!(
        memory.contains(
            "4386 MiB a unit of 1 thread(s) while keying in the fluence profile: a dataset of 4328521664 bytes, a 256 MiB cache, 2 MiB a thread; "
        ),
        "{out}"
    );
    // As many CUs as MemAvailable holds (the reserve is 0 here).
    let available: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let per = 4_328_521_664 + (256 << 20) + (2 << 20);
    let fit = (available << 10) / per;
    assert!(
        memory.contains(&format!(
            "less cpu.memory_reserve_mib = 0 holds {fit} CU(s)"
        )) || memory.contains(&format!("holds {} CU(s)", fit.saturating_sub(1)))
            || memory.contains(&format!("holds {} CU(s)", fit + 1)),
        "{out}"
    );
    assert_eq!(memory.starts_with("ok"), fit > 0, "{out}");
    assert_eq!(code, Some(if fit > 0 { 0 } else { 1 }), "{out}");
    assert!(
        line(&out, "huge pages").contains("2193 needed (2193 a unit)"),
        "{out}"
    );
}

#[test]
fn run_refuses_the_fluence_profile_and_names_capminer_ccp() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config("fluence"));
    let out = capminer()
        .current_dir(dir.path())
        .args(["run", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&path.display().to_string())
            && stderr.contains(
                "key `network.profile`: is \"fluence\": `capminer run` proves to capminer's network only; Fluence's node (nox) submits Fluence's proofs itself: serve it with `capminer ccp` on this configuration"
            ),
        "{stderr}"
    );
    assert!(!dir.path().join("state").exists(), "nothing is created");
    // The same configuration is valid for `capminer ccp`: `config check` says so.
    let out = capminer()
        .current_dir(dir.path())
        .args(["config", "check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configuration is valid"),
        "{}",
        text(&out)
    );
}
