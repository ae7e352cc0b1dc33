//! Environment overrides: `VOXGATE_<SECTION>__<KEY>=value` sets `section.key` (nested tables
//! take more `__`), values read as TOML where they parse (numbers, booleans, arrays) and as
//! strings otherwise. A variable that breaks the config is named in the error; a `VOXGATE_`
//! variable that is no config key (a single `_` where `__` was meant) is warned about at start,
//! never silently ignored.

use super::ConfigError;

/// `VOXGATE_UPSTREAM__BASE_URL=…` sets `upstream.base_url`; nested tables use more `__`.
/// Variables without `__` (like `VOXGATE_CONFIG`) are not config keys and are ignored.
pub(super) fn apply_env_override(
    table: &mut toml::Table,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let Some(rest) = name.strip_prefix("VOXGATE_") else {
        return Ok(());
    };
    if !rest.contains("__") {
        return Ok(());
    }
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Parse(format!(
            "environment variable {name} is not a valid key path"
        )));
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| ConfigError::Parse(name.to_owned()))?;
    let mut cur = table;
    for seg in parents {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Parse(format!(
                "environment variable {name}: `{seg}` is not a table"
            ))
        })?;
    }
    cur.insert(last.clone(), parsed);
    Ok(())
}

/// The first environment variable that makes the file's config fail, named with its key.
pub(super) fn culprit(file: &toml::Table, env: &[(String, String)]) -> Option<ConfigError> {
    let parses = |t: &toml::Table| {
        toml::Value::Table(t.clone())
            .try_into::<super::Config>()
            .map_err(|e| e.to_string().trim_end().to_owned())
    };
    parses(file).ok()?;
    for (name, value) in env {
        let mut t = file.clone();
        if apply_env_override(&mut t, name, value).is_err() {
            continue;
        }
        if let Err(e) = parses(&t) {
            let key = name
                .strip_prefix("VOXGATE_")
                .unwrap_or(name)
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
                .join(".");
            return Some(ConfigError::Parse(format!(
                "environment variable {name} (key `{key}`): {e}"
            )));
        }
    }
    None
}

/// Config sections, for suggesting the `__` a near-miss variable lacks.
const SECTIONS: &[&str] = &[
    "server",
    "upstream",
    "session",
    "agent",
    "simulator",
    "webrtc",
    "openai",
    "auth",
    "cluster",
];

/// `VOXGATE_` variables that are not config keys and not voxgate's own switches, each with what
/// was probably meant.
pub fn env_warnings(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    const OWN: &[&str] = &["VOXGATE_CONFIG", "VOXGATE_BENCH"];
    let mut out = Vec::new();
    for (name, _) in env {
        let Some(rest) = name.strip_prefix("VOXGATE_") else {
            continue;
        };
        if rest.contains("__") || OWN.contains(&name.as_str()) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let hint = SECTIONS
            .iter()
            .find(|s| lower.starts_with(&format!("{s}_")))
            .map(|s| {
                format!(
                    "; did you mean VOXGATE_{}__{}?",
                    s.to_ascii_uppercase(),
                    &rest[s.len() + 1..]
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "environment variable {name} is not a config key and is ignored (keys are \
             VOXGATE_<SECTION>__<KEY>, with two underscores){hint}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_variable_is_named_and_near_misses_are_warned_about() {
        let env = vec![(
            "VOXGATE_SERVER__MAX_FRAME_BYTES".to_owned(),
            "lots".to_owned(),
        )];
        let e = super::super::Config::from_toml_str("", env).expect_err("bad value");
        let e = e.to_string();
        assert!(
            e.contains("VOXGATE_SERVER__MAX_FRAME_BYTES") && e.contains("server.max_frame_bytes"),
            "{e}"
        );
        let w = env_warnings(vec![
            ("VOXGATE_SERVER_LISTEN".to_owned(), "x".to_owned()),
            ("VOXGATE_CONFIG".to_owned(), "x".to_owned()),
            ("VOXGATE_UPSTREAM__MODEL".to_owned(), "x".to_owned()),
            ("VOXGATE_WHATEVER".to_owned(), "x".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("did you mean VOXGATE_SERVER__LISTEN?"),
            "{w:?}"
        );
        assert!(
            w[1].contains("VOXGATE_WHATEVER") && !w[1].contains("did you mean"),
            "{w:?}"
        );
    }
}
