//! The metrics endpoint of a running miner: valid exposition (`promtool check metrics`), the
//! documented families with live values, and a real Prometheus server scraping it.

use std::time::Duration;

use crate::common::{
    Kill, Prometheus, capminer, free_port, http_get, light_config, sample, text, wait_for,
    write_config,
};

#[test]
fn metrics_are_valid_live_and_scraped_by_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No huge pages of either kind: the share metric reads exactly 0.
    let config = light_config(port, "").replace(
        "large_pages = false\n",
        "large_pages = false\ntransparent_huge_pages = false\n",
    );
    let path = write_config(dir.path(), &config);
    let _miner = Kill(
        capminer()
            .args(["run", "-c", path.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );

    let body = wait_for(Duration::from_secs(60), || {
        let body = http_get(port, "/metrics")?;
        let found = sample(&body, "capminer_proofs_found_total{")?;
        let rate = sample(
            &body,
            "capminer_hashrate{kind=\"cpu\",unit=\"cpu0\",window=\"10s\"}",
        )?;
        (found > 0.0 && rate > 0.0).then_some(body)
    })
    .expect("the miner reports proofs and a hashrate");

    for family in [
        "capminer_hashes_total",
        "capminer_hashrate",
        "capminer_proofs_found_total",
        "capminer_proofs_stored_total",
        "capminer_dataset_build_seconds",
        "capminer_huge_pages",
        "capminer_unit_info",
        "capminer_epoch",
    ] {
        assert_eq!(
            body.matches(&format!("# TYPE {family} ")).count(),
            1,
            "one family {family}:\n{body}"
        );
    }
    assert_eq!(sample(&body, "capminer_epoch "), Some(7.0));
    assert_eq!(
        sample(&body, "capminer_huge_pages{kind=\"cpu\",unit=\"cpu0\"}"),
        Some(0.0)
    );
    assert!(
        sample(
            &body,
            "capminer_dataset_build_seconds_count{kind=\"cpu\",unit=\"cpu0\"}"
        )
        .unwrap()
            >= 1.0
    );
    for window in ["10s", "60s", "15m"] {
        assert!(body.contains(&format!("window=\"{window}\"")), "{window}");
    }

    // promtool accepts the exposition.
    let out = crate::common::promtool_check_metrics(&body);
    assert!(
        out.status.success(),
        "promtool check metrics: {}",
        text(&out)
    );

    // A real Prometheus scrapes it.
    let prometheus = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: capminer\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    ));
    let units = capminer_miner::topology::Topology::detect()
        .unwrap()
        .cores
        .len();
    let answer = wait_for(Duration::from_secs(60), || {
        let series = prometheus.query("capminer_hashes_total").ok()?;
        (series.len() == units).then_some(series)
    })
    .expect("prometheus scraped one capminer_hashes_total series per unit");
    for series in &answer {
        assert_eq!(series["metric"]["job"], "capminer");
        assert_eq!(series["metric"]["kind"], "cpu");
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert!(value > 0.0, "{series}");
    }
}
