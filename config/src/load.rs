//! Loading: the file, then environment overrides one by one, then validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::{Config, ConfigError, Source};

/// Prefix of environment overrides.
const ENV_PREFIX: &str = "CAPMINER_";
/// Separator of key levels in an override's name.
const ENV_SEPARATOR: &str = "__";

/// Where the configuration came from: the file's text (to find lines) and the overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    /// The config file, if any.
    pub file: Option<PathBuf>,
    text: String,
    /// Dotted key → environment variable that set it.
    env_keys: BTreeMap<String, String>,
}

impl Origin {
    /// Where the value of `key` (dotted, with `[i]` indices) came from.
    pub fn source_of(&self, key: &str) -> Source {
        if let Some(var) = self
            .env_keys
            .iter()
            .find(|(k, _)| {
                key == k.as_str()
                    || key.starts_with(&format!("{k}."))
                    || key.starts_with(&format!("{k}["))
            })
            .map(|(_, v)| v)
        {
            return Source::Env(var.clone());
        }
        match &self.file {
            Some(path) => Source::File {
                path: path.clone(),
                line: locate(&self.text, key).map(|offset| line_of(&self.text, offset)),
            },
            None => Source::Defaults,
        }
    }
}

/// Loads the configuration from `file` (or defaults) and the `CAPMINER_*__*` variables in `env`.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?,
        None => String::new(),
    };
    let mut origin = Origin {
        file: file.map(Path::to_path_buf),
        text,
        env_keys: BTreeMap::new(),
    };
    let mut config: Config = parse_file(&origin)?;

    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains(ENV_SEPARATOR))
        .collect();
    overrides.sort();
    for (var, value) in overrides {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split(ENV_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        config = apply_override(&config, &var, &path, &value)?;
        origin.env_keys.insert(path.join("."), var);
    }

    if let Some(path) = file {
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in [&mut config.miner.state_dir, &mut config.verifier.state_dir] {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        let files = [
            &mut config.api.token_file,
            &mut config.chain.key_file,
            &mut config.verifier.key_file,
        ];
        for file in files.into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
    }
    config.origin = origin;
    config.validate()?;
    Ok(config)
}

fn parse_file(origin: &Origin) -> Result<Config, ConfigError> {
    let source = |line| match &origin.file {
        Some(path) => Source::File {
            path: path.clone(),
            line,
        },
        None => Source::Defaults,
    };
    let de = toml::Deserializer::parse(&origin.text).map_err(|e| ConfigError::Syntax {
        at: source(e.span().map(|s| line_of(&origin.text, s.start))),
        message: e.message().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let line = e
            .inner()
            .span()
            .map(|s| line_of(&origin.text, s.start))
            .or_else(|| locate(&origin.text, &key).map(|o| line_of(&origin.text, o)));
        ConfigError::Key {
            at: source(line),
            key,
            message: e.inner().message().to_string(),
        }
    })
}

fn from_value<T: DeserializeOwned>(value: toml::Value, source: &Source) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| ConfigError::Key {
        at: source.clone(),
        key: e.path().to_string(),
        message: e.inner().message().to_string(),
    })
}

/// `config` with the override `var` = `raw` of the key `path` applied.
///
/// The value is read as TOML when it parses as a TOML value (`false`, `150`, `[1, 2]`) and the
/// key takes it; otherwise as text. So `0x00…00ffff` (a TOML hex integer when its digits fit in
/// 64 bits) stays a byte string for keys that take one (targets, addresses), and a number for
/// keys that take a number. When neither reading fits, the error is the text's for a `0x`
/// value (meant as hex bytes) and the TOML value's otherwise.
fn apply_override(
    config: &Config,
    var: &str,
    path: &[String],
    raw: &str,
) -> Result<Config, ConfigError> {
    let source = Source::Env(var.to_string());
    let with = |value: toml::Value| {
        let mut table = toml::Table::try_from(config).expect("configuration serializes to TOML");
        set_path(&mut table, path, value).map_err(|message| ConfigError::Key {
            at: source.clone(),
            key: path.join("."),
            message,
        })?;
        from_value::<Config>(toml::Value::Table(table), &source)
    };
    let text = toml::Value::String(raw.to_string());
    match parse_env_value(raw) {
        Some(value) if !value.is_str() => match with(value) {
            Ok(config) => Ok(config),
            Err(typed) => with(text).map_err(|as_text| {
                if raw.trim_start().starts_with("0x") {
                    as_text
                } else {
                    typed
                }
            }),
        },
        Some(value) => with(value),
        None => with(text),
    }
}

/// An override's value as TOML, if it parses as one.
fn parse_env_value(raw: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut at = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = at
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{}` is not a section", path[..=i].join(".")))?;
    }
    at.insert(last.clone(), value);
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Byte offset of the value of a dotted key path (`cpu.units[1].core`) in a TOML text.
fn locate(text: &str, key: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut segments = Vec::new();
    for part in key.split('.') {
        let (name, indices) = part
            .split_once('[')
            .map_or((part, ""), |(n, rest)| (n, rest));
        segments.push(Err(name));
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            segments.push(Ok(index.trim_end_matches(']').parse::<usize>().ok()?));
        }
    }
    let mut span = root.span();
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    let table = root.get_ref();
    for segment in segments {
        let next = match (segment, value) {
            (Err(name), None) => table.get(name)?,
            (Err(name), Some(toml::de::DeValue::Table(t))) => t.get(name)?,
            (Ok(i), Some(toml::de::DeValue::Array(a))) => a.get(i)?,
            _ => return Some(span.start),
        };
        span = next.span();
        value = Some(next.get_ref());
    }
    Some(span.start)
}
