//! Reading the layered settings strictly: each problem becomes one sentence naming the key, where
//! its value came from (default, file, environment variable) and, for a misspelt key, the known
//! key it is closest to; and each effective value can be shown with its origin.

use std::fmt;
use std::path::PathBuf;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::Settings;

/// Environment variables `DIRSYNC__SECTION__KEY` override the file.
pub(super) const ENV_PREFIX: &str = "DIRSYNC__";
/// The name figment gives the prefixed environment provider.
const ENV_PROVIDER: &str = "`DIRSYNC__` environment variable(s)";
const DATABASE_URL_PROVIDER: &str = "DATABASE_URL environment variable";

/// `DATABASE_URL`, the conventional variable, as the default database.
pub(super) struct DatabaseUrlVariable(pub String);

impl Provider for DatabaseUrlVariable {
    fn metadata(&self) -> Metadata {
        Metadata::named(DATABASE_URL_PROVIDER)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::default("database.url", &self.0).data()
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Default,
    File(PathBuf),
    Environment(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "settings file {}", path.display()),
            Self::Environment(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One thing wrong with the settings: what, and where the offending value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// The dotted key (`database.max_connections`), or empty when the problem is the whole file.
    pub key: String,
    pub origins: Vec<Origin>,
    pub message: String,
}

impl fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.origins.is_empty() {
            let origins: Vec<String> = self.origins.iter().map(ToString::to_string).collect();
            write!(f, "{}: ", origins.join(", "))?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in the settings, each on its own line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    pub problems: Vec<SettingProblem>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "the settings are not valid: {one}"),
            many => {
                write!(f, "the settings are not valid ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Settings that loaded, with the layers they came from.
pub struct LoadedSettings {
    pub settings: Settings,
    figment: Figment,
}

impl LoadedSettings {
    pub(super) fn extract(figment: Figment) -> Result<Self, SettingsError> {
        let (settings, mut problems) = extract_strictly(&figment);
        // Numbers are checked even when unknown keys were found, so one look shows everything.
        if let Some(settings) = &settings {
            problems.extend(settings.range_problems().into_iter().map(|(key, message)| {
                SettingProblem {
                    origins: vec![origin(&figment, &key)],
                    key,
                    message,
                }
            }));
        }
        match settings {
            Some(settings) if problems.is_empty() => Ok(Self { settings, figment }),
            _ => Err(SettingsError { problems }),
        }
    }

    /// Where the value at the dotted `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        origin(&self.figment, key)
    }

    /// The effective settings, one `key = value  (origin)` line each, secrets redacted (the
    /// settings types serialize their secrets as `[redacted]`).
    pub fn describe(&self) -> String {
        let value = serde_json::to_value(&self.settings).expect("settings serialize to JSON");
        let mut leaves = Vec::new();
        flatten(&value, String::new(), &mut leaves);
        let width = leaves.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
        let value_width = leaves
            .iter()
            .map(|(_, value)| value.chars().count())
            .filter(|&n| n <= 48)
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in leaves {
            out.push_str(&format!(
                "{key:<width$} = {value:<value_width$}  ({})\n",
                self.origin(&key)
            ));
        }
        out
    }
}

fn flatten(value: &serde_json::Value, prefix: String, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(child, path, out);
            }
        }
        leaf => out.push((prefix, leaf.to_string())),
    }
}

fn env_variable(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.split('.')
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join("__")
    )
}

fn origin_of(metadata: Option<&Metadata>, key: &str) -> Origin {
    match metadata {
        Some(md) if md.name == ENV_PROVIDER => Origin::Environment(env_variable(key)),
        Some(md) if md.name == DATABASE_URL_PROVIDER => {
            Origin::Environment("DATABASE_URL".to_owned())
        }
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => Origin::File(path.clone()),
            _ => Origin::Default,
        },
        None => Origin::Default,
    }
}

fn origin(figment: &Figment, key: &str) -> Origin {
    origin_of(figment.find_metadata(key), key)
}

/// The origins of every value under `key` (a section has one per variable that set it).
fn origins_under(figment: &Figment, root: &Value, key: &str) -> Vec<Origin> {
    let mut leaves = Vec::new();
    leaf_keys(root.clone().find(key).as_ref(), key.to_owned(), &mut leaves);
    let mut origins: Vec<Origin> = leaves.iter().map(|leaf| origin(figment, leaf)).collect();
    if origins.is_empty() {
        origins.push(origin(figment, key));
    }
    origins.sort();
    origins.dedup();
    origins
}

fn leaf_keys(value: Option<&Value>, key: String, out: &mut Vec<String>) {
    match value {
        Some(Value::Dict(_, dict)) if !dict.is_empty() => {
            for (child, value) in dict {
                leaf_keys(Some(value), format!("{key}.{child}"), out);
            }
        }
        Some(_) => out.push(key),
        None => {}
    }
}

/// The known name closest to `unknown`, when one is close enough to be a typo of it.
pub(crate) fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn unknown_key_message(path: &[String], name: &str, known: &[&str]) -> String {
    let section = &path[..path.len().saturating_sub(1)];
    let what = if section.is_empty() {
        format!("unknown section `{name}`")
    } else {
        format!("unknown key `{name}` in section `{}`", section.join("."))
    };
    match closest(name, known) {
        Some(suggestion) => format!("{what}; did you mean `{suggestion}`?"),
        None => {
            let kind = if section.is_empty() {
                "sections"
            } else {
                "keys"
            };
            format!("{what} (known {kind}: {})", known.join(", "))
        }
    }
}

fn removed(root: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = root;
    for key in parents {
        match current {
            Value::Dict(_, dict) => match dict.get_mut(key) {
                Some(child) => current = child,
                None => return false,
            },
            _ => return false,
        }
    }
    match current {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        _ => false,
    }
}

fn shown(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(text) => format!("{text:?}"),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// One figment error as a sentence about the key it concerns.
fn problem_from(figment: &Figment, root: &Value, error: &figment::Error) -> SettingProblem {
    use figment::error::Kind;
    let key = error.path.join(".");
    let message = match &error.kind {
        Kind::UnknownVariant(value, expected) => {
            format!("{key} = {value:?} is not one of: {}", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!(
                "{key} = {} is not valid: expected {expected}",
                shown(actual)
            )
        }
        Kind::MissingField(field) => {
            let full = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            format!("{full} is missing")
        }
        Kind::Message(text) if key.is_empty() => text.clone(),
        other => {
            if key.is_empty() {
                other.to_string()
            } else {
                format!("{key}: {other}")
            }
        }
    };
    let origins = if key.is_empty() {
        error
            .metadata
            .as_ref()
            .map(|md| vec![origin_of(Some(md), "")])
            .unwrap_or_default()
    } else {
        origins_under(figment, root, &key)
    };
    SettingProblem {
        key,
        origins,
        message,
    }
}

/// Deserializes the settings, naming every unknown key (not just the first): each is removed
/// and the rest deserialized again until what remains is either valid or wrong in another way.
/// Returns the settings without the unknown keys, if they parse, and every problem found.
fn extract_strictly(figment: &Figment) -> (Option<Settings>, Vec<SettingProblem>) {
    let mut root = match figment.find_value("") {
        Ok(root) => root,
        Err(error) => {
            let problems = error
                .into_iter()
                .map(|e| problem_from(figment, &Value::from(Dict::new()), &e))
                .collect();
            return (None, problems);
        }
    };
    let original = root.clone();
    let mut problems = Vec::new();
    loop {
        let errors = match root.deserialize::<Settings>() {
            Ok(settings) => return (Some(settings), problems),
            Err(errors) => errors,
        };
        let mut progressed = false;
        for error in errors {
            if let figment::error::Kind::UnknownField(name, known) = &error.kind {
                let mut path = error.path.clone();
                if path.last() != Some(name) {
                    path.push(name.clone());
                }
                let key = path.join(".");
                problems.push(SettingProblem {
                    origins: origins_under(figment, &original, &key),
                    message: unknown_key_message(&path, name, known),
                    key,
                });
                progressed |= removed(&mut root, &path);
            } else {
                problems.push(problem_from(figment, &original, &error));
            }
        }
        if !progressed {
            return (None, problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_known_name_is_suggested_only_when_it_is_close() {
        let known = ["database", "server", "scheduler", "graph", "sync", "log"];
        assert_eq!(closest("databse", &known), Some("database"));
        assert_eq!(closest("schedular", &known), Some("scheduler"));
        assert_eq!(closest("lgo", &known), Some("log"));
        assert_eq!(closest("metrics", &known), None);
    }

    #[test]
    fn environment_variables_are_named_as_they_are_spelt() {
        assert_eq!(
            env_variable("database.max_connections"),
            "DIRSYNC__DATABASE__MAX_CONNECTIONS"
        );
    }
}
