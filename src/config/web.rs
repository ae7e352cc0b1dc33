//! The web side of `[server]`: TLS files and CORS origins, checked at load so a typo is a clear
//! error naming the key, not a browser's silent refusal later.

use super::{Config, ConfigError, ServerConfig};

impl Config {
    /// `[server] listen` as an address, or the error naming the key.
    pub(super) fn listen(&self) -> Result<std::net::SocketAddr, ConfigError> {
        self.server
            .listen_addr()
            .map_err(|message| ConfigError::Invalid {
                key: "server.listen",
                message,
            })
    }
}

impl ServerConfig {
    /// The address `listen` names: `127.0.0.1:8080`, `[::1]:8080`, or a host name with a port
    /// (`localhost:8080`, resolved once, IPv4 first).
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        use std::net::ToSocketAddrs as _;
        if let Ok(addr) = self.listen.parse() {
            return Ok(addr);
        }
        let bad = |why: String| {
            format!(
                "`{}` is not an address like 127.0.0.1:8080 or localhost:8080 ({why})",
                self.listen.chars().take(100).collect::<String>()
            )
        };
        let (host, port) = self
            .listen
            .rsplit_once(':')
            .ok_or_else(|| bad("no port".into()))?;
        port.parse::<u16>().map_err(|e| bad(format!("port: {e}")))?;
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        let addrs: Vec<_> = self
            .listen
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| bad("the name resolves to no address".into()))
    }

    pub(super) fn validate_web(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "server.tls_cert",
                    message: "set both tls_cert and tls_key (PEM files), or neither".into(),
                });
            }
            (Some(cert), Some(key)) => {
                for (k, path) in [("server.tls_cert", cert), ("server.tls_key", key)] {
                    std::fs::metadata(path).map_err(|e| ConfigError::Invalid {
                        key: k,
                        message: format!("{}: {e}", path.display()),
                    })?;
                }
            }
            (None, None) => {}
        }
        for origin in &self.cors_origins {
            if origin == "*" {
                continue;
            }
            let ok = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains('/')
                    && !rest.contains(char::is_whitespace)
            });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "server.cors_origins",
                    message: format!(
                        "`{}` is not an origin like https://app.example.com (scheme and host, \
                         optional port, no path), nor \"*\"",
                        origin.chars().take(100).collect::<String>()
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_host_names() {
        let at = |l: &str| {
            ServerConfig {
                listen: l.into(),
                ..Default::default()
            }
            .listen_addr()
        };
        assert_eq!(
            at("127.0.0.1:8080"),
            Ok("127.0.0.1:8080".parse().expect("addr"))
        );
        assert_eq!(
            at("localhost:8080"),
            Ok("127.0.0.1:8080".parse().expect("addr"))
        );
        for bad in ["localhost", "localhost:http", ":8080"] {
            let e = at(bad).expect_err(bad);
            assert!(e.contains("localhost:8080"), "{bad}: {e}");
        }
    }

    #[test]
    fn tls_needs_both_files_and_origins_must_be_origins() {
        let mut s = ServerConfig {
            tls_cert: Some("/nonexistent/cert.pem".into()),
            ..Default::default()
        };
        assert!(s.validate_web().unwrap_err().to_string().contains("both"));
        s.tls_key = Some("/nonexistent/key.pem".into());
        assert!(
            s.validate_web()
                .unwrap_err()
                .to_string()
                .contains("server.tls_cert")
        );
        s.tls_cert = None;
        s.tls_key = None;
        for good in ["*", "https://app.example.com", "http://localhost:5173"] {
            s.cors_origins = vec![good.into()];
            assert!(s.validate_web().is_ok(), "{good}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
            "https://",
        ] {
            s.cors_origins = vec![bad.into()];
            let e = s.validate_web().unwrap_err().to_string();
            assert!(e.contains("server.cors_origins"), "{bad}: {e}");
        }
    }
}
