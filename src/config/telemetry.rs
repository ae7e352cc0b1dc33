//! `[telemetry]`: OpenTelemetry trace export over OTLP/HTTP, off by default.

use super::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces` under
    /// it, as OTEL_EXPORTER_OTLP_ENDPOINT does; a URL ending in `/v1/traces` is used as is).
    /// Unset: no export, no OpenTelemetry work at all.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Finished spans are sent in batches at least this often (ms).
    pub export_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "voxgate".into(),
            export_interval_ms: 2000,
        }
    }
}

impl TelemetryConfig {
    /// The traces URL spans are posted to.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref()?.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        })
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "telemetry.otlp_endpoint",
                message:
                    "must be an http(s) URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318"
                        .into(),
            });
        }
        if self.export_interval_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "telemetry.export_interval_ms",
                message: "must be > 0".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_follows_the_otlp_endpoint_convention() {
        let mut t = TelemetryConfig::default();
        assert_eq!(t.traces_url(), None);
        t.otlp_endpoint = Some("http://c:4318/".into());
        assert_eq!(t.traces_url().as_deref(), Some("http://c:4318/v1/traces"));
        t.otlp_endpoint = Some("https://c/v1/traces".into());
        assert_eq!(t.traces_url().as_deref(), Some("https://c/v1/traces"));
        t.otlp_endpoint = Some("c:4318".into());
        assert!(t.validate().is_err());
    }
}
