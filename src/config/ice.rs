//! `[[webrtc.ice_servers]]`: the STUN/TURN servers callers use to reach voxgate (or the model's
//! media) from behind NAT, handed to them as `RTCPeerConnection`'s `iceServers`. A TURN
//! credential is a secret: prefer `credential_env`; it is never logged.

use super::{ConfigError, WebrtcConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IceServerConfig {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp`, `turns:host:port`, …
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
    /// The environment variable holding the credential (instead of `credential`).
    pub credential_env: Option<String>,
}

impl IceServerConfig {
    /// The server as a browser's `RTCIceServer` (`urls`, and `username`/`credential` for TURN).
    pub fn to_rtc(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"urls": self.urls});
        if let Some(u) = &self.username {
            v["username"] = u.clone().into();
        }
        let credential = self.credential.clone().or_else(|| {
            self.credential_env
                .as_ref()
                .and_then(|name| std::env::var(name).ok())
        });
        if let Some(c) = credential {
            v["credential"] = c.into();
        }
        v
    }
}

impl WebrtcConfig {
    /// Every server for a caller, in config order.
    pub fn rtc_ice_servers(&self) -> Vec<serde_json::Value> {
        self.ice_servers
            .iter()
            .map(IceServerConfig::to_rtc)
            .collect()
    }

    pub(super) fn validate_ice(&self) -> Result<(), ConfigError> {
        for (i, s) in self.ice_servers.iter().enumerate() {
            let bad = |message: String| ConfigError::Invalid {
                key: "webrtc.ice_servers",
                message: format!("server {}: {message}", i + 1),
            };
            if s.urls.is_empty() {
                return Err(bad("needs at least one url".into()));
            }
            let mut turn = false;
            for url in &s.urls {
                let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
                match scheme {
                    "stun" | "stuns" => {}
                    "turn" | "turns" => turn = true,
                    _ => {
                        return Err(bad(format!(
                            "`{}` is not a stun:, stuns:, turn: or turns: url",
                            url.chars().take(100).collect::<String>()
                        )));
                    }
                }
            }
            if s.credential.is_some() && s.credential_env.is_some() {
                return Err(bad("set credential or credential_env, not both".into()));
            }
            let has_credential = s.credential.is_some() || s.credential_env.is_some();
            if turn && (s.username.is_none() || !has_credential) {
                return Err(bad(
                    "a TURN server needs username and credential (or credential_env)".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_are_checked_and_given_in_browser_shape() {
        let mut w = WebrtcConfig {
            ice_servers: vec![IceServerConfig {
                urls: vec!["stun:stun.example.com:3478".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(w.validate_ice().is_ok());
        assert_eq!(
            w.rtc_ice_servers(),
            vec![serde_json::json!({"urls": ["stun:stun.example.com:3478"]})]
        );
        w.ice_servers.push(IceServerConfig {
            urls: vec!["turn:turn.example.com:3478?transport=udp".into()],
            username: Some("u".into()),
            ..Default::default()
        });
        let e = w.validate_ice().unwrap_err().to_string();
        assert!(
            e.contains("webrtc.ice_servers") && e.contains("server 2"),
            "{e}"
        );
        w.ice_servers[1].credential = Some("p".into());
        assert!(w.validate_ice().is_ok());
        assert_eq!(w.rtc_ice_servers()[1]["credential"], "p");
        w.ice_servers[1].urls = vec!["http://nope".into()];
        assert!(w.validate_ice().is_err());
    }
}
