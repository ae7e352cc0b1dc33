//! Relay calls share one media port: every call is answered on the configured `[webrtc]
//! udp_port` (a port that cannot be had is named at start), and 300 calls set up and torn down
//! leave no socket, route or task behind (file descriptors and tokio tasks counted before and
//! after).

mod common;

use common::harness;
use std::time::Duration;

const CALLS: usize = 300;

/// Post `sdp` as a call; its `Location`.
async fn post_call(http: &reqwest::Client, base: &str, sdp: &str) -> String {
    let resp = http
        .post(format!("{base}/v1/realtime/calls"))
        .header("content-type", "application/sdp")
        .body(sdp.to_owned())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 201);
    resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_relay_calls_leave_no_socket_or_task_behind() {
    let h = harness().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", h.addr);
    // Warm up: one call, so lazily created pools and clients exist before counting.
    let sdp = common::relay_offer();
    let loc = post_call(&http, &base, &sdp).await;
    http.delete(format!("{base}{loc}"))
        .send()
        .await
        .expect("delete");
    let settled = |target_fds: usize, target_tasks: usize| {
        let app = h.app.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let tasks = tokio::runtime::Handle::current()
                        .metrics()
                        .num_alive_tasks();
                    if app.sessions.running_count() == 0
                        && app.media.routes() == 0
                        && open_fds() <= target_fds
                        && tasks <= target_tasks
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .is_ok()
        }
    };
    assert!(settled(usize::MAX, usize::MAX).await);
    let fds_before = open_fds();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    for _ in 0..CALLS / 20 {
        let mut calls = Vec::new();
        for _ in 0..20 {
            calls.push(post_call(&http, &base, &sdp).await);
        }
        assert!(
            h.app.media.routes() >= 1,
            "calls hold routes while they run"
        );
        for loc in calls {
            let resp = http
                .delete(format!("{base}{loc}"))
                .send()
                .await
                .expect("delete");
            assert_eq!(resp.status(), 200);
        }
    }
    // Every call ends; the port, the routes and the task count are back where they were. (A
    // few descriptors of slack: the HTTP client's pooled keep-alive connections.)
    let ok = settled(fds_before + 4, tasks_before + 4).await;
    assert!(
        ok,
        "left behind: {} sessions, {} routes, {} fds (before {fds_before}), {} tasks (before {tasks_before})",
        h.app.sessions.running_count(),
        h.app.media.routes(),
        open_fds(),
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    );
}

#[tokio::test]
async fn every_call_is_answered_on_the_configured_port_and_a_taken_port_is_named() {
    // A port held by a socket without SO_REUSEPORT cannot be shared: voxgate says which.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let sim = voxgate::simulator::Simulator::start(([127, 0, 0, 1], 0).into(), Default::default())
        .await
        .expect("simulator");
    let mut cfg = common::test_config(&sim);
    cfg.webrtc.udp_port = port;
    let err = match voxgate::app::AppState::build(cfg.clone()).await {
        Ok(_) => panic!("a taken media port must refuse to start"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("media port 127.0.0.1:{port}")) && err.contains("udp_port"),
        "{err}"
    );
    // Freed, the same port serves every call.
    drop(taken);
    let h = common::harness_with(|_| {}, |c| c.webrtc.udp_port = port).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", h.addr);
    for _ in 0..3 {
        let resp = http
            .post(format!("{base}/v1/realtime/calls"))
            .header("content-type", "application/sdp")
            .body(common::relay_offer())
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 201);
        let answer = resp.text().await.expect("answer");
        let candidate = answer
            .lines()
            .find(|l| l.starts_with("a=candidate"))
            .expect("a host candidate");
        assert!(
            candidate.contains(&format!("127.0.0.1 {port} typ host")),
            "{candidate}"
        );
    }
}
