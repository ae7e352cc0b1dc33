//! `[[webrtc.ice_servers]]` reach callers: `GET /v1/realtime/ice_servers` in the browser's
//! `RTCIceServer` shape (behind the same auth as a call), and in a minted client secret's
//! response so a page can build its peer connection in one step.

mod common;

use common::*;
use serde_json::{Value, json};
use voxgate::config::IceServerConfig;

fn servers() -> Vec<IceServerConfig> {
    vec![
        IceServerConfig {
            urls: vec!["stun:stun.example.com:3478".into()],
            ..Default::default()
        },
        IceServerConfig {
            urls: vec![
                "turn:turn.example.com:3478?transport=udp".into(),
                "turns:turn.example.com:5349".into(),
            ],
            username: Some("voxgate".into()),
            credential: Some("turn-secret".into()),
            credential_env: None,
        },
    ]
}

#[tokio::test]
async fn callers_get_the_configured_ice_servers_in_browser_shape() {
    let h = harness_with(|_| {}, |cfg| cfg.webrtc.ice_servers = servers()).await;
    let v: Value = reqwest::get(format!("http://{}/v1/realtime/ice_servers", h.addr))
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v,
        json!({"ice_servers": [
            {"urls": ["stun:stun.example.com:3478"]},
            {"urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
             "username": "voxgate", "credential": "turn-secret"}
        ]})
    );
    // None configured: an empty list, and no extra field on a client secret.
    let h = harness().await;
    let v: Value = reqwest::get(format!("http://{}/v1/realtime/ice_servers", h.addr))
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(v, json!({"ice_servers": []}));
}

#[tokio::test]
async fn in_keys_mode_ice_servers_need_a_key_or_a_client_secret_which_carries_them() {
    const KEY: &str = "vk-ice-servers-test-key-0000";
    let h = harness_with(
        |_| {},
        |cfg| {
            cfg.webrtc.ice_servers = servers();
            one_key(cfg, "k1", KEY);
        },
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/realtime/ice_servers", h.addr);
    assert_eq!(http.get(&url).send().await.expect("answered").status(), 401);
    let minted: Value = http
        .post(format!("http://{}/v1/realtime/client_secrets", h.addr))
        .bearer_auth(KEY)
        .json(&json!({}))
        .send()
        .await
        .expect("minted")
        .json()
        .await
        .expect("json");
    assert_eq!(
        minted["ice_servers"][1]["credential"], "turn-secret",
        "{minted}"
    );
    let secret = minted["value"].as_str().expect("ek_");
    let r = http
        .get(&url)
        .bearer_auth(secret)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["ice_servers"].as_array().map(Vec::len), Some(2));
}
