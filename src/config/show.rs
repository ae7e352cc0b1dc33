//! `voxgate check-config`: the effective configuration (defaults, file and `VOXGATE_` variables
//! merged, validated) as TOML, with every secret replaced by `"<redacted>"` — safe to paste
//! into an issue.

use super::Config;

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &["api_key", "secret", "credential"];

fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && !matches!(v, toml::Value::Table(_)) {
                    *v = toml::Value::String("<redacted>".into());
                } else if (k == "redis_url" || k == "otlp_endpoint")
                    && let toml::Value::String(url) = v
                    && let Some((scheme, rest)) = url.split_once("://")
                    && let Some((_, host)) = rest.split_once('@')
                {
                    // A password in the URL's user info.
                    *url = format!("{scheme}://<redacted>@{host}");
                } else {
                    redact(v);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The effective configuration as TOML, secrets redacted.
pub fn effective_toml(cfg: &Config) -> Result<String, String> {
    let mut value = toml::Value::try_from(cfg).map_err(|e| e.to_string())?;
    redact(&mut value);
    toml::to_string(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_config_hides_every_secret_and_round_trips() {
        let text = r#"
[upstream]
kind = "openai"
api_key = "sk-very-secret"
[agent.webhook]
url = "http://127.0.0.1:9/hook"
secret = "whsec-very-secret"
[cluster]
redis_url = "redis://:hunter2-password@127.0.0.1:6379"
secret = "cluster-secret-0123456789"
[[webrtc.ice_servers]]
urls = ["turn:turn.example.com:3478"]
username = "u"
credential = "turn-very-secret"
"#;
        let cfg = Config::from_toml_str(text, Vec::new()).expect("valid");
        let shown = effective_toml(&cfg).expect("serializes");
        for secret in [
            "sk-very-secret",
            "whsec-very-secret",
            "hunter2",
            "cluster-secret",
            "turn-very-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(
            shown.contains("redis://<redacted>@127.0.0.1:6379"),
            "{shown}"
        );
        assert!(shown.contains("kind = \"openai\""), "{shown}");
        // What it prints is a config voxgate reads back (secrets aside).
        let defaults = effective_toml(&Config::default()).expect("serializes");
        Config::from_toml_str(&defaults, Vec::new()).expect("the defaults read back");
    }
}
