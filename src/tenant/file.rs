//! Tenant files (`dirsync tenant apply FILE`): bounded in size, UTF-8, TOML — and every problem
//! placed on its line and attributed to its tenant and field, found from the document's spans.

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::{TENANT_FIELDS, Tenant, TenantFileError, TenantProblem, TenantSpec};
use crate::settings::closest_name;

/// A tenant file larger than this is refused before it is parsed (a realistic file of a hundred
/// tenants is a few hundred kilobytes).
pub const MAX_TENANT_FILE_BYTES: usize = 1024 * 1024;

const GROUP_FIELDS: &[&str] = &["id", "role"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    #[serde(default, rename = "tenant")]
    tenants: Vec<TenantSpec>,
}

/// Where a value is written: its dotted path inside its tenant (`groups[1].role`), the span of
/// its key and of its value.
struct Placed {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
}

/// Where each tenant starts, what its key is, and where each of its fields is written.
struct TenantLayout {
    key: Option<String>,
    start: usize,
    fields: Vec<Placed>,
}

/// The layout of a tenant file, to turn byte offsets into lines, tenants and fields.
struct Layout {
    line_starts: Vec<usize>,
    tenants: Vec<TenantLayout>,
}

fn place(prefix: &str, value: &toml::Spanned<DeValue<'_>>, out: &mut Vec<Placed>) {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                let path = if prefix.is_empty() {
                    key.get_ref().to_string()
                } else {
                    format!("{prefix}.{}", key.get_ref())
                };
                out.push(Placed {
                    path: path.clone(),
                    key: key.span(),
                    value: child.span(),
                });
                place(&path, child, out);
            }
        }
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let path = format!("{prefix}[{index}]");
                out.push(Placed {
                    path: path.clone(),
                    key: item.span(),
                    value: item.span(),
                });
                place(&path, item, out);
            }
        }
        _ => {}
    }
}

impl Layout {
    fn of(text: &str, document: &DeTable<'_>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        let mut tenants = Vec::new();
        for (key, value) in document.iter() {
            if key.get_ref().as_ref() != "tenant" {
                continue;
            }
            let DeValue::Array(items) = value.get_ref() else {
                continue;
            };
            for item in items.iter() {
                let mut fields = Vec::new();
                place("", item, &mut fields);
                let key =
                    match item.get_ref() {
                        DeValue::Table(table) => table.iter().find_map(|(k, v)| {
                            match (k.get_ref().as_ref(), v.get_ref()) {
                                ("key", DeValue::String(text)) => Some(text.to_string()),
                                _ => None,
                            }
                        }),
                        _ => None,
                    };
                let start = fields
                    .iter()
                    .map(|f| f.key.start)
                    .chain([item.span().start])
                    .min()
                    .unwrap_or(0);
                tenants.push(TenantLayout { key, start, fields });
            }
        }
        Self {
            line_starts,
            tenants,
        }
    }

    /// The 1-based line and column of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let column = offset - self.line_starts[line.saturating_sub(1)] + 1;
        (line, column)
    }

    fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }

    /// The tenant a byte offset is in: the last one that starts at or before it.
    fn tenant_at(&self, offset: usize) -> Option<usize> {
        self.tenants
            .iter()
            .rposition(|tenant| tenant.start <= offset)
    }

    /// How a tenant is named in messages: its key, or its position when it has none.
    fn tenant_label(&self, index: usize) -> String {
        self.tenants[index]
            .key
            .clone()
            .filter(|key| !key.is_empty())
            .unwrap_or_else(|| format!("#{}", index + 1))
    }

    /// The line of `path` in tenant `index`, or of the nearest enclosing field, or the tenant's.
    fn line_of(&self, index: usize, path: &str) -> usize {
        let tenant = &self.tenants[index];
        let mut wanted = path;
        loop {
            if let Some(found) = tenant.fields.iter().find(|f| f.path == wanted) {
                return self.line(found.key.start);
            }
            match wanted.rfind(['.', '[']) {
                Some(cut) => wanted = &wanted[..cut],
                None => return self.line(tenant.start),
            }
        }
    }

    /// The innermost field of tenant `index` whose key or value spans `offset`.
    fn field_at(&self, index: usize, offset: usize) -> Option<&Placed> {
        self.tenants[index]
            .fields
            .iter()
            .filter(|f| f.key.contains(&offset) || f.value.contains(&offset))
            .max_by_key(|f| f.path.len())
    }

    /// A deserialization error (a missing or unknown field, a value of the wrong type) as a
    /// problem of its tenant and field, on its line.
    fn deserialize_problem(&self, error: &toml::de::Error) -> TenantProblem {
        let offset = error.span().map_or(0, |span| span.start);
        let message = error.message().trim();
        let tenant = self.tenant_at(offset);
        let field = tenant.and_then(|index| self.field_at(index, offset));
        let path = field.map(|f| f.path.clone()).unwrap_or_default();
        let quoted = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        let (field, sentence) = if let Some(missing) = quoted("missing field `") {
            let full = join(&container(&path, tenant.is_some(), &missing), &missing);
            (full.clone(), format!("{full} is missing (it is required)"))
        } else if let Some(unknown) = quoted("unknown field `") {
            let known: &[&str] = match (tenant, path.starts_with("groups[")) {
                (None, _) => &["tenant"],
                (Some(_), true) => GROUP_FIELDS,
                (Some(_), false) => TENANT_FIELDS,
            };
            let what = if tenant.is_none() {
                format!("unknown table `{unknown}`")
            } else {
                format!("unknown field `{path}`")
            };
            let sentence = match closest_name(&unknown, known) {
                Some(suggestion) => format!("{what}; did you mean `{suggestion}`?"),
                None => format!("{what} (known fields: {})", known.join(", ")),
            };
            (path.clone(), sentence)
        } else if path.is_empty() {
            (String::new(), message.to_owned())
        } else {
            (path.clone(), format!("{path}: {message}"))
        };
        TenantProblem {
            tenant: tenant.map(|index| self.tenant_label(index)),
            field,
            line: Some(self.line(offset)),
            message: sentence,
        }
    }
}

/// The path of the table a missing field belongs in: the innermost group table the error
/// points into, or the tenant itself.
fn container(path: &str, in_tenant: bool, missing: &str) -> String {
    if !in_tenant {
        return String::new();
    }
    let group = path.strip_prefix("groups[").and_then(|rest| {
        rest.find(']')
            .map(|end| format!("groups[{}]", &rest[..end]))
    });
    match group {
        Some(group) if GROUP_FIELDS.contains(&missing) => group,
        _ => String::new(),
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Parses and validates a tenant file given as bytes: refused when larger than
/// [`MAX_TENANT_FILE_BYTES`] or not UTF-8 (naming the line, the tenant and the field where the
/// bad byte is), then as [`parse_tenant_file`].
pub fn parse_tenant_file_bytes(bytes: &[u8]) -> Result<Vec<Tenant>, TenantFileError> {
    if bytes.len() > MAX_TENANT_FILE_BYTES {
        return Err(TenantFileError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_tenant_file(text),
        Err(error) => Err(not_utf8(bytes, error.valid_up_to())),
    }
}

fn not_utf8(bytes: &[u8], bad_at: usize) -> TenantFileError {
    // Up to the bad byte the lossy text is the file itself, so offsets agree.
    let lossy = String::from_utf8_lossy(bytes);
    let (document, _) = DeTable::parse_recoverable(&lossy);
    let layout = Layout::of(&lossy, document.get_ref());
    let (line, column) = layout.position(bad_at);
    let tenant = layout.tenant_at(bad_at);
    let field = tenant
        .and_then(|index| layout.field_at(index, bad_at))
        .map(|f| f.path.clone())
        .unwrap_or_default();
    let what = if field.is_empty() {
        "the tenant file".to_owned()
    } else {
        field.clone()
    };
    TenantFileError::NotUtf8(TenantProblem {
        tenant: tenant.map(|index| layout.tenant_label(index)),
        field,
        line: Some(line),
        message: format!(
            "{what} is not valid UTF-8 (byte 0x{:02X} at column {column}); save the file as UTF-8",
            bytes[bad_at]
        ),
    })
}

/// Parses and validates a tenant file. Every problem is reported at once, each with its line,
/// its tenant and its field.
pub fn parse_tenant_file(text: &str) -> Result<Vec<Tenant>, TenantFileError> {
    if text.len() > MAX_TENANT_FILE_BYTES {
        return Err(TenantFileError::TooLarge {
            size: text.len() as u64,
        });
    }
    let document = DeTable::parse(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        let layout = Layout::of(text, &DeTable::default());
        let (line, column) = layout.position(offset);
        TenantFileError::Syntax {
            line,
            column,
            message: error.message().trim().to_owned(),
        }
    })?;
    let layout = Layout::of(text, document.get_ref());
    let file: TenantFile = toml::from_str(text).map_err(|error| TenantFileError::Invalid {
        problems: vec![layout.deserialize_problem(&error)],
    })?;
    if file.tenants.is_empty() {
        return Err(TenantFileError::Empty);
    }
    let mut problems = Vec::new();
    let mut tenants = Vec::new();
    let mut keys = HashSet::new();
    for (index, spec) in file.tenants.into_iter().enumerate() {
        let label = layout.tenant_label(index);
        let key = spec.key.clone();
        match spec.validate() {
            Ok(tenant) => {
                if keys.insert(tenant.key.clone()) {
                    tenants.push(tenant);
                } else {
                    problems.push(TenantProblem {
                        tenant: Some(label),
                        field: "key".to_owned(),
                        line: Some(layout.line_of(index, "key")),
                        message: format!("key {key:?} is used by an earlier tenant in the file"),
                    });
                }
            }
            Err(TenantFileError::Invalid { problems: found }) => {
                problems.extend(found.into_iter().map(|problem| TenantProblem {
                    tenant: Some(label.clone()),
                    line: Some(layout.line_of(index, &problem.field)),
                    ..problem
                }));
            }
            Err(other) => return Err(other),
        }
    }
    if problems.is_empty() {
        Ok(tenants)
    } else {
        Err(TenantFileError::Invalid { problems })
    }
}
