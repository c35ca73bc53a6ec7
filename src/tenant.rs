//! A tenant's configuration: who they are in Entra, when they run, what is synced and where to.

mod connection;
mod file;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::connection::{
    SourceCredential, SourceIdentity, SourceSettings, TargetIdentity, TargetSettings,
};
pub use file::{MAX_TENANT_FILE_BYTES, parse_tenant_file, parse_tenant_file_bytes};

use crate::domain::{EntraObjectId, SecretEnvPolicy, SecretSetting, TenantKey};
use crate::plan::TenantPolicy;

/// An Entra directory (tenant) ID: a GUID of the same form as an object ID.
pub type EntraTenantId = EntraObjectId;

/// R19: how long a tenant's reports are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Retention {
    OneMonth,
    #[default]
    ThreeMonths,
    SixMonths,
}

impl Retention {
    pub fn months(self) -> u8 {
        match self {
            Self::OneMonth => 1,
            Self::ThreeMonths => 3,
            Self::SixMonths => 6,
        }
    }
}

impl TryFrom<u8> for Retention {
    type Error = String;
    fn try_from(months: u8) -> Result<Self, Self::Error> {
        match months {
            1 => Ok(Self::OneMonth),
            3 => Ok(Self::ThreeMonths),
            6 => Ok(Self::SixMonths),
            other => Err(format!(
                "report retention must be 1, 3 or 6 months, not {other}"
            )),
        }
    }
}

impl From<Retention> for u8 {
    fn from(value: Retention) -> Self {
        value.months()
    }
}

/// Everything dirsync knows about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub key: TenantKey,
    pub display_name: String,
    pub entra_tenant_id: EntraTenantId,
    /// R20: the IANA zone whose midnight starts the automatic run.
    pub time_zone: chrono_tz::Tz,
    pub report_retention: Retention,
    pub policy: TenantPolicy,
    /// A tenant-specific app registration, if the service-wide one is not used.
    #[serde(default, deserialize_with = "source_or_default")]
    pub source: SourceSettings,
    /// The target connection (`{"kind": "highq", …}`); `None` until one is configured.
    #[serde(default, deserialize_with = "target_or_none")]
    pub target: Option<TargetSettings>,
}

/// `null` or `{}` is the service-wide app registration.
fn source_or_default<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SourceSettings, D::Error> {
    Ok(Option::<SourceSettings>::deserialize(deserializer)?.unwrap_or_default())
}

/// `null` or `{}` is no target yet.
fn target_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<TargetSettings>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    TargetSettings::from_stored(&value).map_err(serde::de::Error::custom)
}

impl Tenant {
    /// What the source's stored secrets were given for.
    pub fn source_identity(&self) -> SourceIdentity {
        SourceIdentity {
            entra_tenant_id: self.entra_tenant_id.clone(),
            client_id: self.source.client_id.clone(),
        }
    }

    /// What the target's stored secrets and refresh token were given for.
    pub fn target_identity(&self) -> Option<TargetIdentity> {
        self.target.as_ref().map(TargetSettings::identity)
    }

    /// Whether `self` connects somewhere else than `before` did: another Entra directory or app,
    /// another kind of target, host or client. Stored target tokens are then dropped.
    pub fn connection_changed_from(&self, before: &Tenant) -> bool {
        self.source_identity() != before.source_identity()
            || self.target_identity() != before.target_identity()
    }

    /// Refuses `env:` references outside `policy` (at apply time), naming the setting.
    pub fn check_secret_references(&mut self, policy: &SecretEnvPolicy) -> Result<(), String> {
        connection::check_references(&mut self.source, &mut self.target, policy)
    }

    /// Gives each `"[redacted]"` secret the value stored for `current`, where the connection it
    /// was given for has not changed; refuses otherwise, naming the setting.
    pub fn keep_stored_secrets(&mut self, current: Option<&Tenant>) -> Result<(), String> {
        let (source_unchanged, target_unchanged, stored) = match current {
            None => (true, true, HashMap::new()),
            Some(current) => {
                let mut current = current.clone();
                let stored: HashMap<String, SecretSetting> =
                    connection::secrets_mut(&mut current.source, &mut current.target)
                        .into_iter()
                        .map(|(name, secret)| (name, secret.clone()))
                        .collect();
                (
                    self.source_identity() == current.source_identity(),
                    self.target_identity() == current.target_identity(),
                    stored,
                )
            }
        };
        connection::keep_stored(
            connection::secrets_mut(&mut self.source, &mut self.target),
            stored,
            source_unchanged,
            target_unchanged,
        )
    }

    /// The tenant with every `env:` reference in its settings read from the environment (within
    /// `policy`), ready to connect with. A missing or refused variable names the setting.
    pub fn resolved(&self, policy: &SecretEnvPolicy) -> Result<Tenant, String> {
        let mut tenant = self.clone();
        for (name, secret) in connection::secrets_mut(&mut tenant.source, &mut tenant.target) {
            *secret = SecretSetting::Value(secret.resolve(&name, policy)?);
        }
        Ok(tenant)
    }
}

/// A tenant as an operator writes it (a `[[tenant]]` table of a tenant file, or the JSON body of
/// `PUT /api/v1/tenants/{key}`): plain text, validated by [`TenantSpec::validate`], which both
/// paths share.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// Optional in a `PUT`, whose URL names the tenant.
    #[serde(default)]
    pub key: String,
    pub name: Option<String>,
    pub entra_tenant_id: String,
    pub time_zone: String,
    #[serde(default = "default_retention")]
    pub report_retention_months: u8,
    #[serde(default)]
    pub deactivation_status: Option<String>,
    #[serde(default = "default_threshold")]
    pub deletion_threshold: u32,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// A tenant that selects no group syncs nothing and converts every synced group; that must
    /// be meant, so it is refused unless this says so (and each run then carries a warning).
    #[serde(default)]
    pub confirm_no_groups: bool,
    #[serde(default)]
    pub source: Option<serde_json::Value>,
    #[serde(default)]
    pub target: Option<serde_json::Value>,
}

/// The fields of a `[[tenant]]` table, for "did you mean" suggestions.
pub(crate) const TENANT_FIELDS: &[&str] = &[
    "key",
    "name",
    "entra_tenant_id",
    "time_zone",
    "report_retention_months",
    "deactivation_status",
    "deletion_threshold",
    "groups",
    "confirm_no_groups",
    "source",
    "target",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub id: String,
    pub role: String,
}

fn default_retention() -> u8 {
    Retention::default().months()
}

fn default_threshold() -> u32 {
    500
}

/// The longest display name a tenant may have, in characters.
pub const MAX_TENANT_NAME_CHARS: usize = 256;
/// The most groups one tenant may select: each is read from Graph on every run.
pub const MAX_SELECTED_GROUPS: usize = 1_000;
/// How much of an offending value a message repeats.
const SHOWN_CHARS: usize = 80;

/// `value` quoted for a message, cut to a readable length (a 60 MB name is not repeated back).
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{:?}… ({} characters)", &value[..at], value.chars().count()),
        None => format!("{value:?}"),
    }
}

/// One thing wrong with a tenant: which tenant, which field (`groups[2].role`), on which line of
/// its file when it came from one, and what is wrong, in a sentence that starts with the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantProblem {
    /// The tenant's key as written, or `#N` (its position in the file) when it has none.
    pub tenant: Option<String>,
    pub field: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TenantProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(tenant) = &self.tenant {
            if tenant.starts_with('#') {
                write!(f, "tenant {tenant}: ")?;
            } else {
                write!(f, "tenant {}: ", shown(tenant))?;
            }
        }
        f.write_str(&self.message)
    }
}

/// What is wrong with a tenant file or a tenant spec. Each problem is said once, naming the
/// tenant, the field and (for files) the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantFileError {
    #[error(
        "the tenant file is {size} bytes, more than the {max} bytes a tenant file may hold; split it into several files",
        max = file::MAX_TENANT_FILE_BYTES
    )]
    TooLarge { size: u64 },
    #[error("{0}")]
    NotUtf8(TenantProblem),
    #[error("line {line}, column {column}: the tenant file is not valid TOML: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the tenant file defines no tenant (add a [[tenant]] table)")]
    Empty,
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<TenantProblem> },
}

impl TenantSpec {
    /// As [`validate`](Self::validate), and refuses `env:` references outside `policy` (the
    /// API's `PUT`; a tenant file is checked by `dirsync tenant apply` the same way).
    pub fn validate_with(self, policy: &SecretEnvPolicy) -> Result<Tenant, TenantFileError> {
        let key = self.key.clone();
        let mut tenant = self.validate()?;
        tenant
            .check_secret_references(policy)
            .map_err(|message| TenantFileError::Invalid {
                problems: vec![TenantProblem {
                    tenant: Some(key),
                    field: connection::field_of(&message, "source"),
                    line: None,
                    message,
                }],
            })?;
        Ok(tenant)
    }

    /// Checks every field and builds the tenant. All problems are reported at once, each naming
    /// the tenant and the field; nothing about the tenant is trusted before this returns.
    pub fn validate(self) -> Result<Tenant, TenantFileError> {
        let mut problems = Vec::new();
        let tenant = self.checked(&mut problems);
        match tenant {
            Some(tenant) if problems.is_empty() => Ok(tenant),
            _ => Err(TenantFileError::Invalid {
                problems: problems
                    .into_iter()
                    .map(|(field, message)| TenantProblem {
                        tenant: Some(self.key.clone()),
                        field,
                        line: None,
                        message,
                    })
                    .collect(),
            }),
        }
    }

    /// The tenant, if every field is valid; each problem as `(field, sentence)`.
    fn checked(&self, problems: &mut Vec<(String, String)>) -> Option<Tenant> {
        let mut problem = |field: &str, message: String| problems.push((field.to_owned(), message));
        let key = TenantKey::parse(&self.key)
            .map_err(|_| {
                problem(
                    "key",
                    format!(
                        "key {} is not a tenant key: use 1 to 64 lowercase letters, digits, '-' or '_', \
                         starting with a letter or digit",
                        shown(&self.key)
                    ),
                )
            })
            .ok();
        let display_name = match &self.name {
            None => Some(self.key.clone()),
            Some(name) => match name_problem(name) {
                Some(message) => {
                    problem("name", message);
                    None
                }
                None => Some(name.trim().to_owned()),
            },
        };
        let entra_tenant_id = match EntraTenantId::parse(&self.entra_tenant_id) {
            Ok(id) if id.as_uuid().is_nil() => {
                problem(
                    "entra_tenant_id",
                    "entra_tenant_id is the nil GUID 00000000-0000-0000-0000-000000000000, not a \
                     directory: use the tenant ID shown in the Entra admin center"
                        .to_owned(),
                );
                None
            }
            Ok(id) => Some(id),
            Err(_) => {
                problem(
                    "entra_tenant_id",
                    format!(
                        "entra_tenant_id {} is not a GUID: use the tenant ID shown in the Entra \
                         admin center (such as 72f988bf-86f1-41af-91ab-2d7cd011db47)",
                        shown(&self.entra_tenant_id)
                    ),
                );
                None
            }
        };
        let time_zone: Option<chrono_tz::Tz> = self
            .time_zone
            .parse()
            .map_err(|_| {
                problem(
                    "time_zone",
                    format!(
                        "time_zone {} is not an IANA time zone (for example Europe/London)",
                        shown(&self.time_zone)
                    ),
                )
            })
            .ok();
        let report_retention = Retention::try_from(self.report_retention_months)
            .map_err(|_| {
                problem(
                    "report_retention_months",
                    format!(
                        "report_retention_months must be 1, 3 or 6 months, not {}",
                        self.report_retention_months
                    ),
                )
            })
            .ok();
        let deactivation_status = match &self.deactivation_status {
            Some(text) => text
                .parse()
                .map_err(|_| {
                    problem(
                        "deactivation_status",
                        format!(
                            "deactivation_status {} is not one of: inactive, archived",
                            shown(text)
                        ),
                    )
                })
                .ok(),
            None => Some(Default::default()),
        };
        let selected_groups = self.checked_groups(&mut problem);
        let null = serde_json::Value::Null;
        let source = SourceSettings::parse(self.source.as_ref().unwrap_or(&null))
            .map_err(|message| problem(&connection::field_of(&message, "source"), message))
            .ok();
        let target = TargetSettings::parse(self.target.as_ref().unwrap_or(&null))
            .map_err(|message| problem(&connection::field_of(&message, "target"), message))
            .ok();
        Some(Tenant {
            key: key?,
            display_name: display_name?,
            entra_tenant_id: entra_tenant_id?,
            time_zone: time_zone?,
            report_retention: report_retention?,
            policy: TenantPolicy {
                selected_groups: selected_groups?,
                deactivation_status: deactivation_status?,
                deletion_threshold: self.deletion_threshold,
            },
            source: source?,
            target: target?,
        })
    }

    /// The selected groups: at least one (or a confirmed none), at most
    /// [`MAX_SELECTED_GROUPS`], each a real group ID listed once with a known role.
    fn checked_groups(
        &self,
        problem: &mut impl FnMut(&str, String),
    ) -> Option<Vec<crate::plan::SelectedGroup>> {
        let mut valid = true;
        match (self.groups.len(), self.confirm_no_groups) {
            (0, false) => {
                problem(
                    "groups",
                    "groups: no group is selected, so a run would sync nobody and convert every \
                     synced group to a system group; select at least one group, or set \
                     confirm_no_groups = true if that is what you mean"
                        .to_owned(),
                );
                valid = false;
            }
            (0, true) => {}
            (n, true) => {
                problem(
                    "confirm_no_groups",
                    format!(
                        "confirm_no_groups is set but {n} groups are selected; remove one or the other"
                    ),
                );
                valid = false;
            }
            (n, false) if n > MAX_SELECTED_GROUPS => {
                problem(
                    "groups",
                    format!(
                        "groups: {n} groups are selected; at most {MAX_SELECTED_GROUPS} are allowed"
                    ),
                );
                return None;
            }
            _ => {}
        }
        let mut first_seen: HashMap<EntraObjectId, usize> = HashMap::new();
        let mut selected = Vec::with_capacity(self.groups.len());
        for (index, group) in self.groups.iter().enumerate() {
            let at = format!("groups[{index}]");
            let entra_id = match EntraObjectId::parse(&group.id) {
                Ok(id) if id.as_uuid().is_nil() => {
                    problem(
                        &format!("{at}.id"),
                        format!("{at}.id is the nil GUID, not an Entra group"),
                    );
                    None
                }
                Ok(id) => Some(id),
                Err(_) => {
                    problem(
                        &format!("{at}.id"),
                        format!(
                            "{at}.id {} is not a GUID: use the group's Object ID from Entra",
                            shown(&group.id)
                        ),
                    );
                    None
                }
            };
            if let Some(id) = &entra_id {
                if let Some(first) = first_seen.insert(id.clone(), index) {
                    problem(
                        &format!("{at}.id"),
                        format!("{at}.id {id} is already selected as groups[{first}]"),
                    );
                    valid = false;
                }
            }
            let role = group
                .role
                .parse()
                .map_err(|_| {
                    let group_id = entra_id.as_ref().map(|id| format!(" (group {id})"));
                    problem(
                        &format!("{at}.role"),
                        format!(
                            "{at}.role {}{} is not one of: internal, basic",
                            shown(&group.role),
                            group_id.unwrap_or_default()
                        ),
                    )
                })
                .ok();
            match (entra_id, role) {
                (Some(entra_id), Some(role)) => {
                    selected.push(crate::plan::SelectedGroup { entra_id, role })
                }
                _ => valid = false,
            }
        }
        valid.then_some(selected)
    }
}

/// Why a display name cannot be used, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    let length = name.chars().count();
    if name.trim().is_empty() {
        Some("name is empty: leave it out to use the key, or give the tenant a name".to_owned())
    } else if length > MAX_TENANT_NAME_CHARS {
        Some(format!(
            "name is {length} characters long; at most {MAX_TENANT_NAME_CHARS} are allowed"
        ))
    } else {
        name.chars().find(|c| c.is_control()).map(|c| {
            format!(
                "name contains the control character U+{:04X}; use plain text",
                c as u32
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config/tenants.example.toml");

    fn problems(text: &str) -> String {
        parse_tenant_file(text)
            .expect_err("the file should be refused")
            .to_string()
    }

    /// A one-tenant file: `acme` with one selected group, and `extra` lines in its table.
    fn one_tenant(extra: &str) -> String {
        format!(
            "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\n\
             time_zone = \"UTC\"\n{extra}\
             [[tenant.groups]]\nid = \"0c8b6a3e-1f62-4d2a-9f7e-3d1e5b2a7c10\"\nrole = \"internal\"\n"
        )
    }

    #[test]
    fn the_example_tenant_file_parses() {
        let tenants = parse_tenant_file(EXAMPLE).unwrap();
        assert_eq!(tenants.len(), 1);
        let acme = &tenants[0];
        assert_eq!(acme.key.as_str(), "acme");
        assert_eq!(acme.time_zone, chrono_tz::Europe::London);
        assert_eq!(acme.policy.selected_groups.len(), 3);
        assert_eq!(
            acme.target.as_ref().map(TargetSettings::kind),
            Some("highq")
        );
    }

    #[test]
    fn tenant_file_errors_name_the_line_the_tenant_and_the_field() {
        let bad_zone = EXAMPLE.replace("Europe/London", "Mars/Olympus");
        assert_eq!(
            problems(&bad_zone),
            "line 8: tenant \"acme\": time_zone \"Mars/Olympus\" is not an IANA time zone (for example Europe/London)"
        );

        let bad_role = EXAMPLE.replacen("role = \"basic\"", "role = \"guest\"", 1);
        assert_eq!(
            problems(&bad_role),
            "line 24: tenant \"acme\": groups[2].role \"guest\" (group 9e1d2c3b-4a5f-4b6c-8d7e-0f1a2b3c4d5e) \
             is not one of: internal, basic"
        );

        let bad_retention =
            EXAMPLE.replace("report_retention_months = 3", "report_retention_months = 2");
        assert!(problems(&bad_retention).starts_with(
            "line 9: tenant \"acme\": report_retention_months must be 1, 3 or 6 months, not 2"
        ));

        assert!(matches!(parse_tenant_file(""), Err(TenantFileError::Empty)));
        assert_eq!(
            problems("[[tenant]]\nkey = 1"),
            "line 2: tenant #1: key: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            problems("[[tenant]\nkey = \"acme\""),
            "line 1, column 10: the tenant file is not valid TOML: unclosed array table, expected `]`"
        );
    }

    #[test]
    fn every_problem_of_every_tenant_is_reported_once() {
        let text = format!(
            "{}[[tenant]]\nkey = \"Bad Key\"\nentra_tenant_id = \"nope\"\ntime_zone = \"UTC\"\n\
             confirm_no_groups = true\n",
            one_tenant("deactivation_status = \"deleted\"\n")
        );
        let err = problems(&text);
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            [
                "line 5: tenant \"acme\": deactivation_status \"deleted\" is not one of: inactive, archived",
                "line 10: tenant \"Bad Key\": key \"Bad Key\" is not a tenant key: use 1 to 64 lowercase \
                 letters, digits, '-' or '_', starting with a letter or digit",
                "line 11: tenant \"Bad Key\": entra_tenant_id \"nope\" is not a GUID: use the tenant ID \
                 shown in the Entra admin center (such as 72f988bf-86f1-41af-91ab-2d7cd011db47)",
            ]
        );
    }

    #[test]
    fn a_missing_required_field_is_named_once_with_its_tenant_and_line() {
        let text = one_tenant("").replace("time_zone = \"UTC\"\n", "");

        let err = parse_tenant_file(&text).unwrap_err();

        assert_eq!(
            err.to_string(),
            "line 1: tenant \"acme\": time_zone is missing (it is required)"
        );
        assert!(
            std::error::Error::source(&err).is_none(),
            "said once, not again as a cause"
        );
        let no_role = one_tenant("").replace("role = \"internal\"\n", "");
        assert_eq!(
            problems(&no_role),
            "line 5: tenant \"acme\": groups[0].role is missing (it is required)"
        );
    }

    #[test]
    fn a_misspelt_field_is_named_with_the_closest_one() {
        assert_eq!(
            problems(&one_tenant("nmae = \"Acme\"\n")),
            "line 5: tenant \"acme\": unknown field `nmae`; did you mean `name`?"
        );
        assert_eq!(
            problems("[[tenants]]\nkey = \"acme\"\n"),
            "line 1: unknown table `tenants`; did you mean `tenant`?"
        );
    }

    #[test]
    fn a_tenant_file_that_is_not_utf8_is_refused_naming_the_line_the_tenant_and_the_field() {
        let mut bytes = one_tenant("name = \"Caf\u{e9} Legal\"\n").into_bytes();
        let at = bytes.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
        bytes.splice(at..at + 2, [0xe9]);

        let err = parse_tenant_file_bytes(&bytes).unwrap_err();

        assert_eq!(
            err.to_string(),
            "line 5: tenant \"acme\": name is not valid UTF-8 (byte 0xE9 at column 12); save the file as UTF-8"
        );
    }

    #[test]
    fn a_tenant_file_over_the_size_limit_is_refused_before_it_is_parsed() {
        let mut bytes = one_tenant("name = \"").into_bytes();
        bytes.resize(MAX_TENANT_FILE_BYTES + 1, b'x');

        let err = parse_tenant_file_bytes(&bytes).unwrap_err();

        assert_eq!(
            err,
            TenantFileError::TooLarge {
                size: MAX_TENANT_FILE_BYTES as u64 + 1
            }
        );
    }

    #[test]
    fn a_name_longer_than_the_limit_is_refused_without_repeating_it() {
        let name = "A".repeat(300);
        let err = problems(&one_tenant(&format!("name = \"{name}\"\n")));
        assert_eq!(
            err,
            "line 5: tenant \"acme\": name is 300 characters long; at most 256 are allowed"
        );
        let long_zone = format!("time_zone = \"{}\"", "Z".repeat(5000));
        let err = problems(&one_tenant("").replace("time_zone = \"UTC\"", &long_zone));
        assert!(err.contains("time_zone \"ZZZZ"), "{err}");
        assert!(err.contains("(5000 characters)"), "{err}");
        assert!(
            err.len() < 400,
            "the 5,000-character value is not repeated: {err}"
        );
    }

    #[test]
    fn a_tenant_must_select_a_group_or_confirm_it_selects_none() {
        let none = one_tenant("").replace(
            "[[tenant.groups]]\nid = \"0c8b6a3e-1f62-4d2a-9f7e-3d1e5b2a7c10\"\nrole = \"internal\"\n",
            "",
        );
        assert!(
            problems(&none).starts_with("line 1: tenant \"acme\": groups: no group is selected"),
            "{}",
            problems(&none)
        );
        let confirmed = parse_tenant_file(&format!("{none}confirm_no_groups = true\n")).unwrap();
        assert!(confirmed[0].policy.selected_groups.is_empty());
        let both = one_tenant("confirm_no_groups = true\n");
        assert_eq!(
            problems(&both),
            "line 5: tenant \"acme\": confirm_no_groups is set but 1 groups are selected; remove one or the other"
        );
    }

    #[test]
    fn the_nil_guid_is_neither_a_tenant_nor_a_group() {
        let nil = "00000000-0000-0000-0000-000000000000";
        let text = one_tenant("")
            .replace("72f988bf-86f1-41af-91ab-2d7cd011db47", nil)
            .replace("0c8b6a3e-1f62-4d2a-9f7e-3d1e5b2a7c10", nil);
        let err = problems(&text);
        assert!(
            err.contains("line 3: tenant \"acme\": entra_tenant_id is the nil GUID"),
            "{err}"
        );
        assert!(
            err.contains("line 6: tenant \"acme\": groups[0].id is the nil GUID"),
            "{err}"
        );
    }

    #[test]
    fn a_spec_from_the_api_is_checked_by_the_same_rules_without_lines() {
        let spec: TenantSpec = serde_json::from_value(serde_json::json!({
            "key": "acme",
            "name": "x".repeat(2_000_000),
            "entra_tenant_id": "00000000-0000-0000-0000-000000000000",
            "time_zone": "UTC",
        }))
        .unwrap();

        let err = spec.validate().unwrap_err().to_string();

        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            [
                "tenant \"acme\": name is 2000000 characters long; at most 256 are allowed",
                "tenant \"acme\": entra_tenant_id is the nil GUID 00000000-0000-0000-0000-000000000000, \
                 not a directory: use the tenant ID shown in the Entra admin center",
                "tenant \"acme\": groups: no group is selected, so a run would sync nobody and convert \
                 every synced group to a system group; select at least one group, or set \
                 confirm_no_groups = true if that is what you mean",
            ]
        );
    }

    fn highq_tenant(base_url: &str, secret: &str) -> Tenant {
        let text = format!(
            "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\n\
             time_zone = \"UTC\"\nconfirm_no_groups = true\n[tenant.target]\nkind = \"highq\"\nbase_url = \"{base_url}\"\n\
             client_id = \"dirsync\"\nclient_secret = \"{secret}\"\n"
        );
        parse_tenant_file(&text).unwrap().remove(0)
    }

    fn client_secret(tenant: &Tenant) -> SecretSetting {
        match &tenant.target {
            Some(TargetSettings::Highq(config)) => config.client_secret.clone(),
            other => panic!("not HighQ: {other:?}"),
        }
    }

    #[test]
    fn a_redacted_secret_keeps_the_stored_one_only_for_the_same_connection() {
        let stored = highq_tenant("https://acme.highq.com/acme", "s3cret");
        let mut same = highq_tenant("https://acme.highq.com/acme", crate::domain::REDACTED);
        same.keep_stored_secrets(Some(&stored)).unwrap();
        assert_eq!(client_secret(&same), SecretSetting::from("s3cret"));

        let mut moved = highq_tenant("https://evil.example/acme", crate::domain::REDACTED);
        let err = moved.keep_stored_secrets(Some(&stored)).unwrap_err();
        assert!(
            err.starts_with("target.client_secret") && err.contains("base_url"),
            "{err}"
        );
        assert!(moved.connection_changed_from(&stored));

        let mut new = highq_tenant("https://acme.highq.com/acme", crate::domain::REDACTED);
        assert!(
            new.keep_stored_secrets(None)
                .unwrap_err()
                .contains("none is stored")
        );
    }

    #[test]
    fn an_env_reference_outside_the_prefix_is_refused_when_the_file_is_applied() {
        let text = EXAMPLE.replace(
            "env:DIRSYNC_SECRET_ACME_HIGHQ",
            "env:DIRSYNC__DATABASE__URL",
        );
        let mut tenant = parse_tenant_file(&text).unwrap().remove(0);
        let err = tenant
            .check_secret_references(&SecretEnvPolicy::default())
            .unwrap_err();
        assert!(
            err.contains("target.client_secret") && err.contains("DIRSYNC__DATABASE__URL"),
            "{err}"
        );
    }

    #[test]
    fn a_target_setting_that_is_wrong_is_named_with_its_line() {
        let text = one_tenant(
            "[tenant.target]\nkind = \"highq\"\nbase_url = \"http://highq.example/acme\"\n\
             client_id = \"c\"\nclient_secret = \"s\"\n",
        );
        assert_eq!(
            problems(&text),
            "line 7: tenant \"acme\": target.base_url \"http://highq.example/acme\" must use \
             https:// (plain http is only for this machine)"
        );
        let text = one_tenant("[tenant.target]\nkind = \"ldap\"\n");
        assert_eq!(
            problems(&text),
            "line 6: tenant \"acme\": target.kind \"ldap\" is not supported (supported: highq, scim)"
        );
    }
}
