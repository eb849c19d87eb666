//! The Kubernetes manifests: parsed, checked against each other (selectors, namespace, images,
//! Service), and their containers started as the kubelet would, with a stand-in `capminer`, so
//! that the configuration they load, their key files, mounts and metrics ports are checked
//! against capminer's own configuration loader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use super::{deploy, str_of, yaml_docs};

/// The configuration a ConfigMap key holds, loaded by capminer's own loader with the
/// container's `CAPMINER_*` variables.
fn load_config_text(text: &str, env: &BTreeMap<String, String>) -> capminer_config::Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capminer.toml");
    std::fs::write(&path, text).unwrap();
    let env = env.iter().map(|(k, v)| (k.clone(), v.clone()));
    capminer_config::load(Some(&path), env)
        .unwrap_or_else(|e| panic!("the ConfigMap's configuration: {e}"))
}

/// What a container starts: its command and arguments run by a real `sh`, with a stand-in
/// `capminer` on PATH that records its arguments and environment. The container's env is built
/// as the kubelet builds it (`fieldRef`s from `fields`, `$(VAR)` expanded from earlier
/// variables); `mounts` maps the container's mount paths to local directories.
struct Started {
    ok: bool,
    stderr: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

fn start_container(
    c: &Json,
    fields: &BTreeMap<&str, &str>,
    mounts: &[(String, PathBuf)],
) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("capminer");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}/args\nenv > {0}/env\n",
            dir.path().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = str_of(&e["name"], "env name").to_string();
        let value = match e["value"].as_str() {
            Some(v) => env
                .iter()
                .fold(v.to_string(), |v, (k, x)| v.replace(&format!("$({k})"), x)),
            None => {
                let path = str_of(&e["valueFrom"]["fieldRef"]["fieldPath"], "fieldPath");
                fields[path].to_string()
            }
        };
        env.push((name, value));
    }
    let mut words: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(words[..2], ["/bin/sh", "-c"], "a shell entry point");
    let mut script = words.remove(2);
    for (path, local) in mounts {
        script = script.replace(path.as_str(), local.to_str().unwrap());
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    Started {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: read("args").lines().map(str::to_string).collect(),
        env: read("env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("CAPMINER_") || env.iter().any(|(n, _)| n == k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn kubernetes_manifests_parse_and_agree_with_each_other_and_the_config() {
    let mut docs: Vec<Json> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(deploy().join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in &files {
        for doc in yaml_docs(&format!("k8s/{file}")) {
            let doc = serde_json::to_value(doc).unwrap();
            assert!(doc["apiVersion"].is_string(), "{file}: apiVersion");
            assert!(doc["metadata"]["name"].is_string(), "{file}: name");
            docs.push(doc);
        }
    }
    let kinds: BTreeMap<String, usize> = docs.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(str_of(&d["kind"], "kind").to_string()).or_default() += 1;
        m
    });
    for (kind, n) in [
        ("ConfigMap", 2),
        ("DaemonSet", 1),
        ("StatefulSet", 1),
        ("Service", 1),
    ] {
        assert_eq!(kinds.get(kind), Some(&n), "{n} {kind}: {kinds:?}");
    }
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && (name.is_empty() || d["metadata"]["name"] == name))
            .unwrap_or_else(|| panic!("a {kind} {name}"))
    };
    let namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] != "Namespace")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(namespaces.len(), 1, "one namespace: {namespaces:?}");
    let config_map = find("ConfigMap", "capminer-config");
    let config_name = str_of(&config_map["metadata"]["name"], "name");

    // The provider's hosts: distinct indices within miner.host's range.
    let hosts_map = find("ConfigMap", "capminer-hosts");
    let hosts: BTreeMap<String, u32> = hosts_map["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(node, i)| (node.clone(), str_of(i, "host").parse().unwrap()))
        .collect();
    assert!(hosts.len() >= 2, "a fleet: {hosts:?}");
    let indices: BTreeSet<u32> = hosts.values().copied().collect();
    assert_eq!(
        indices.len(),
        hosts.len(),
        "each host index once: {hosts:?}"
    );
    assert!(indices.iter().all(|i| *i <= capminer_config::MAX_HOST));

    let mut images = BTreeSet::new();
    for kind in ["DaemonSet", "StatefulSet"] {
        let workload = find(kind, "");
        assert_eq!(workload["apiVersion"], "apps/v1", "{kind}");
        let template = &workload["spec"]["template"];
        let selector = workload["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        for (k, v) in selector {
            assert_eq!(
                &template["metadata"]["labels"][k], v,
                "{kind}: selector matches"
            );
        }
        let pod = &template["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{kind}");
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{kind}");
        let c = &containers[0];
        images.insert(str_of(&c["image"], "image").to_string());
        for init in pod["initContainers"].as_array().into_iter().flatten() {
            images.insert(str_of(&init["image"], "image").to_string());
        }
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        let mounts = c["volumeMounts"].as_array().unwrap();
        let volumes = pod["volumes"].as_array().unwrap();
        let volume = |name: &Json| volumes.iter().find(|v| &v["name"] == name);
        let mount_of = |path: &Path| {
            mounts
                .iter()
                .find(|m| path.starts_with(str_of(&m["mountPath"], "mountPath")))
                .unwrap_or_else(|| panic!("{kind}: {} is mounted", path.display()))
        };

        // Start it as the kubelet would, on a known node or as a known replica.
        let hosts_dir = tempfile::tempdir().unwrap();
        for (node, i) in &hosts {
            std::fs::write(hosts_dir.path().join(node), i.to_string()).unwrap();
        }
        let mount_dirs: Vec<(String, PathBuf)> = mounts
            .iter()
            .filter(|m| {
                volume(&m["name"]).is_some_and(|v| v["configMap"]["name"] == "capminer-hosts")
            })
            .map(|m| {
                (
                    str_of(&m["mountPath"], "mountPath").to_string(),
                    hosts_dir.path().to_path_buf(),
                )
            })
            .collect();
        let node = hosts.keys().nth(1).unwrap().as_str();
        let replicas = workload["spec"]["replicas"].as_u64().unwrap_or(1);
        let pod_name = format!(
            "{}-{}",
            str_of(&workload["metadata"]["name"], "name"),
            replicas - 1
        );
        let fields = BTreeMap::from([
            ("spec.nodeName", node),
            ("metadata.name", pod_name.as_str()),
        ]);
        let started = start_container(c, &fields, &mount_dirs);
        assert!(started.ok, "{kind}: starts: {}", started.stderr);
        let (subcommand, key_var) = match kind {
            "DaemonSet" => ("run", "CAPMINER_CHAIN__KEY_FILE"),
            _ => ("verifier", "CAPMINER_VERIFIER__KEY_FILE"),
        };
        let args = &started.args;
        assert_eq!(args[..2], [subcommand, "-c"], "{kind}: {args:?}");
        let config_path = Path::new(&args[2]);
        let config_mount = mount_of(config_path);
        assert_eq!(config_mount["readOnly"], true);
        assert_eq!(
            volume(&config_mount["name"]).unwrap()["configMap"]["name"],
            config_name
        );
        let key = str_of(&config_mount["subPath"], "subPath");
        let config = load_config_text(str_of(&config_map["data"][key], "config"), &started.env);
        match kind {
            "DaemonSet" => {
                assert_eq!(config.miner.host, hosts[node], "the node's host index");
                // A node missing from capminer-hosts stops at once, saying so.
                let stray =
                    BTreeMap::from([("spec.nodeName", "stray-node"), ("metadata.name", "x")]);
                let refused = start_container(c, &stray, &mount_dirs);
                assert!(
                    !refused.ok
                        && refused.stderr.contains("stray-node")
                        && refused.stderr.contains("capminer-hosts"),
                    "{}",
                    refused.stderr
                );
            }
            _ => {
                // Replica I of N checks shard I/N, with N the replicas.
                assert_eq!(
                    args[3..],
                    [
                        "--shard".to_string(),
                        format!("{}/{replicas}", replicas - 1)
                    ],
                    "{kind}: {args:?}"
                );
                assert!(replicas >= 2, "a sharded party");
                let claim = &workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
                assert!(
                    mounts.iter().any(|m| &m["name"] == claim
                        && config
                            .verifier
                            .state_dir
                            .starts_with(str_of(&m["mountPath"], "mountPath"))),
                    "{kind}: each shard's progress on its own claim"
                );
            }
        }

        // The metrics port: the config's listen port = containerPort = the scrape annotation.
        let port = config.metrics.listen.port();
        assert!(config.metrics.enabled, "{kind}");
        assert!(
            config.metrics.listen.ip().is_unspecified(),
            "{kind}: reachable inside the pod network"
        );
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{kind}");
        assert_eq!(
            annotations["prometheus.io/port"],
            port.to_string(),
            "{kind}"
        );
        let ports = c["ports"].as_array().unwrap();
        assert!(
            ports
                .iter()
                .any(|p| p["containerPort"] == port && p["name"] == "metrics"),
            "{kind}: containerPort {port}: {ports:?}"
        );

        // The key: this pod's own file of a Secret, read-only, mode 0400.
        let key_file = match kind {
            "DaemonSet" => config.chain.key_file.clone(),
            _ => config.verifier.key_file.clone(),
        }
        .unwrap_or_else(|| panic!("{kind}: a key file"));
        assert_eq!(
            started.env.get(key_var).map(PathBuf::from),
            Some(key_file.clone()),
            "{kind}: the key named by {key_var}"
        );
        let own = match kind {
            "DaemonSet" => format!("{node}.key"),
            _ => format!("{pod_name}.key"),
        };
        assert_eq!(
            key_file.file_name().unwrap().to_str(),
            Some(own.as_str()),
            "{kind}: its own key"
        );
        let key_mount = mount_of(&key_file);
        assert_eq!(key_mount["readOnly"], true, "{kind}: key read-only");
        let secret = &volume(&key_mount["name"]).unwrap()["secret"];
        assert!(
            secret["secretName"].is_string(),
            "{kind}: the key is a Secret"
        );
        assert_eq!(secret["defaultMode"], 0o400, "{kind}: key mode 0400");
        // The state directory is a mounted volume.
        let state = match kind {
            "DaemonSet" => config.miner.state_dir.clone(),
            _ => config.verifier.state_dir.clone(),
        };
        assert!(
            mounts
                .iter()
                .any(|m| state.starts_with(str_of(&m["mountPath"], "mountPath"))
                    && m["readOnly"] != true),
            "{kind}: {} on a writable volume",
            state.display()
        );

        // Huge pages: requests = limits, with memory requested too (Kubernetes requires both).
        let resources = &c["resources"];
        let requests = resources["requests"].as_object().unwrap();
        let limits = resources["limits"].as_object().unwrap();
        for (name, value) in requests.iter().chain(limits.iter()) {
            if name.starts_with("hugepages-") {
                assert_eq!(requests.get(name), Some(value), "{kind}: {name} requested");
                assert_eq!(limits.get(name), Some(value), "{kind}: {name} limited");
                assert!(requests.contains_key("memory") || requests.contains_key("cpu"));
            }
        }
        if kind == "DaemonSet" {
            assert!(
                requests.contains_key("hugepages-2Mi"),
                "miners ask for huge pages"
            );
            assert!(config.cpu.randomx.large_pages, "and the config uses them");
            assert!(
                !pod["nodeSelector"].as_object().unwrap().is_empty(),
                "miners run on selected nodes"
            );
        }
    }
    // The StatefulSet's governing Service exists and is headless.
    let service = find(
        "Service",
        str_of(
            &find("StatefulSet", "")["spec"]["serviceName"],
            "serviceName",
        ),
    );
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(images.len(), 1, "one image everywhere: {images:?}");
}
