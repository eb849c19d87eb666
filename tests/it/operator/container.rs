//! The Containerfile: a locked release build in a builder stage, an unprivileged runtime stage
//! with the binary, its entry point and the metrics ports.

use std::collections::BTreeSet;

use super::read;

#[test]
fn containerfile_builds_in_two_stages_and_runs_capminer_unprivileged() {
    let text = read("container/Containerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let instruction = |l: &str| l.split_whitespace().next().unwrap_or("").to_uppercase();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| instruction(l) == "FROM")
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert!(
        froms[0].contains("rust:1.95-bookworm") && froms[0].ends_with(" AS builder"),
        "{}",
        froms[0]
    );
    assert!(froms[1].contains("debian:bookworm-slim"), "{}", froms[1]);
    let build_stage = text.split(froms[1]).next().unwrap();
    assert!(build_stage.contains("cmake"), "the builder installs cmake");
    assert!(
        build_stage.contains("cargo build --release --locked --bin capminer"),
        "the builder builds the locked release binary"
    );
    let runtime: Vec<&str> = lines
        .iter()
        .copied()
        .skip_while(|l| *l != froms[1])
        .collect();
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=builder") && l.contains("capminer")),
        "the runtime takes the binary from the builder"
    );
    let user = runtime
        .iter()
        .rev()
        .find(|l| instruction(l) == "USER")
        .expect("a USER in the runtime stage");
    let who = user.split_whitespace().nth(1).unwrap();
    let name = who.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "USER {who}");
    let entrypoint = runtime
        .iter()
        .find(|l| instruction(l) == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    let entry: Vec<String> =
        serde_json::from_str(entrypoint.trim_start_matches("ENTRYPOINT").trim()).unwrap();
    assert!(entry[0].ends_with("/capminer"), "{entry:?}");
    let expose: BTreeSet<u16> = runtime
        .iter()
        .filter(|l| instruction(l) == "EXPOSE")
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        expose.contains(&9477) && expose.contains(&9479),
        "{expose:?}"
    );
}
