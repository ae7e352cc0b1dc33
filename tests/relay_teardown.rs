//! Relay calls share one media port: 300 calls set up and torn down leave no socket, route or
//! task behind (file descriptors and tokio tasks counted before and after).

mod common;

use common::harness;
use std::time::{Duration, Instant};
use str0m::RtcConfig;
use str0m::media::{Direction, MediaKind};

const CALLS: usize = 300;

fn offer() -> String {
    voxgate::media::call::install_crypto();
    let mut rtc = RtcConfig::new().build(Instant::now());
    let candidate = str0m::Candidate::host(([127, 0, 0, 1], 9).into(), "udp").expect("candidate");
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    change.add_channel("oai-events".into());
    let (offer, _) = change.apply().expect("offer");
    offer.to_sdp_string()
}

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
    let sdp = offer();
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
