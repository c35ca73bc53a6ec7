//! `dirsync check`: signs in to a tenant and counts each selected group's direct user members,
//! returning a report that prints as a table (R22's per-group part, too).

use std::fmt;

use serde::Serialize;

use super::GraphConnector;
use crate::domain::EntraObjectId;
use crate::plan::MAX_GROUP_MEMBERS;
use crate::source::{DirectorySource as _, GroupCountOutcome, SourceError};
use crate::tenant::Tenant;

/// What `dirsync check` found. `Display` renders it as a plain-text table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub tenant_id: String,
    pub client_id: String,
    pub authority_host: String,
    pub graph_base_url: String,
    pub token: TokenCheck,
    pub groups: Vec<GroupCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "message", rename_all = "snake_case")]
pub enum TokenCheck {
    Ok,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCheck {
    pub entra_id: EntraObjectId,
    pub outcome: GroupCheckOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GroupCheckOutcome {
    Found {
        display_name: String,
        direct_user_members: u64,
        /// R16: more than 50,000 direct user members; a sync would fail this group.
        over_limit: bool,
    },
    Deleted,
    Failed {
        reason: String,
    },
}

impl CheckReport {
    /// True when the token worked and every group was found within the limit.
    pub fn is_ok(&self) -> bool {
        self.token == TokenCheck::Ok
            && self.groups.iter().all(|g| {
                matches!(
                    g.outcome,
                    GroupCheckOutcome::Found {
                        over_limit: false,
                        ..
                    }
                )
            })
    }
}

/// Signs in to `tenant` and counts each of `groups` (usually the tenant's selected groups).
///
/// Never fails: a sign-in failure is the report's `token` line, a group's failure its row.
/// The CLI (`dirsync check --tenant KEY`) builds one `GraphConnector` from the settings, loads the
/// tenant, and does:
///
/// ```ignore
/// let groups: Vec<_> = tenant.policy.selected_groups.iter().map(|g| g.entra_id.clone()).collect();
/// let report = dirsync::source::graph::check_connection(&connector, &tenant, &groups).await;
/// println!("{report}");
/// std::process::exit(if report.is_ok() { 0 } else { 1 });
/// ```
pub async fn check_connection(
    connector: &GraphConnector,
    tenant: &Tenant,
    groups: &[EntraObjectId],
) -> CheckReport {
    let settings = connector.settings();
    let mut report = CheckReport {
        tenant_id: tenant.entra_tenant_id.to_string(),
        client_id: settings.client_id.clone(),
        authority_host: settings.authority_host.to_string(),
        graph_base_url: settings.graph_base_url.to_string(),
        token: TokenCheck::Ok,
        groups: Vec::new(),
    };
    let source = match connector.source_for(tenant) {
        Ok(source) => source,
        Err(err) => {
            report.token = TokenCheck::Failed(err.to_string());
            return report;
        }
    };
    report.client_id = source.sign_in.client_id.clone();
    if let Err(err) = source.token().await {
        report.token = TokenCheck::Failed(err.to_string());
        return report;
    }
    match source.count_members(groups).await {
        Ok(counts) => {
            report.groups = counts
                .into_iter()
                .map(|count| GroupCheck {
                    entra_id: count.entra_id,
                    outcome: match count.outcome {
                        GroupCountOutcome::Found {
                            display_name,
                            direct_user_members,
                        } => GroupCheckOutcome::Found {
                            display_name,
                            direct_user_members,
                            over_limit: direct_user_members > MAX_GROUP_MEMBERS as u64,
                        },
                        GroupCountOutcome::Deleted => GroupCheckOutcome::Deleted,
                        GroupCountOutcome::Failed { reason } => {
                            GroupCheckOutcome::Failed { reason }
                        }
                    },
                })
                .collect();
        }
        Err(SourceError::Authentication(reason)) => {
            // Signed in, but every group was refused: the token lacks permissions.
            report.groups = groups
                .iter()
                .map(|id| GroupCheck {
                    entra_id: id.clone(),
                    outcome: GroupCheckOutcome::Failed {
                        reason: reason.clone(),
                    },
                })
                .collect();
        }
        Err(err) => {
            report.groups = groups
                .iter()
                .map(|id| GroupCheck {
                    entra_id: id.clone(),
                    outcome: GroupCheckOutcome::Failed {
                        reason: err.to_string(),
                    },
                })
                .collect();
        }
    }
    report
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tenant    {}", self.tenant_id)?;
        writeln!(f, "app       {}", self.client_id)?;
        writeln!(f, "authority {}", self.authority_host)?;
        writeln!(f, "graph     {}", self.graph_base_url)?;
        match &self.token {
            TokenCheck::Ok => writeln!(f, "token     ok")?,
            TokenCheck::Failed(reason) => {
                writeln!(f, "token     FAILED")?;
                return writeln!(f, "          {reason}");
            }
        }
        if self.groups.is_empty() {
            return writeln!(f, "no groups selected");
        }
        let rows: Vec<[String; 4]> = self
            .groups
            .iter()
            .map(|g| match &g.outcome {
                GroupCheckOutcome::Found {
                    display_name,
                    direct_user_members,
                    over_limit,
                } => [
                    g.entra_id.to_string(),
                    if *over_limit {
                        "OVER LIMIT".into()
                    } else {
                        "found".into()
                    },
                    display_name.clone(),
                    if *over_limit {
                        format!("{direct_user_members} (> {MAX_GROUP_MEMBERS}, R16)")
                    } else {
                        direct_user_members.to_string()
                    },
                ],
                GroupCheckOutcome::Deleted => [
                    g.entra_id.to_string(),
                    "deleted".into(),
                    String::new(),
                    String::new(),
                ],
                GroupCheckOutcome::Failed { reason } => [
                    g.entra_id.to_string(),
                    "FAILED".into(),
                    reason.clone(),
                    String::new(),
                ],
            })
            .collect();
        let headers = ["group", "status", "name", "direct user members"];
        let widths: Vec<usize> = (0..3)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([headers[i].len()])
                    .max()
                    .unwrap_or(0)
                    .min(if i == 2 { 60 } else { usize::MAX })
            })
            .collect();
        writeln!(f)?;
        writeln!(
            f,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            headers[0],
            headers[1],
            headers[2],
            headers[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
        for row in rows {
            writeln!(
                f,
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EntraObjectId {
        EntraObjectId::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).expect("guid")
    }

    #[test]
    fn the_check_report_renders_one_row_per_group_with_the_over_limit_flag() {
        let report = CheckReport {
            tenant_id: "t".into(),
            client_id: "app".into(),
            authority_host: "https://login".into(),
            graph_base_url: "https://graph".into(),
            token: TokenCheck::Ok,
            groups: vec![
                GroupCheck {
                    entra_id: id(1),
                    outcome: GroupCheckOutcome::Found {
                        display_name: "Sales".into(),
                        direct_user_members: 12,
                        over_limit: false,
                    },
                },
                GroupCheck {
                    entra_id: id(2),
                    outcome: GroupCheckOutcome::Found {
                        display_name: "Everyone".into(),
                        direct_user_members: 50_001,
                        over_limit: true,
                    },
                },
                GroupCheck {
                    entra_id: id(3),
                    outcome: GroupCheckOutcome::Deleted,
                },
            ],
        };
        let text = report.to_string();
        assert!(text.contains("token     ok"), "{text}");
        assert!(text.contains("Sales") && text.contains(" 12"), "{text}");
        assert!(
            text.contains("OVER LIMIT") && text.contains("50001 (> 50000, R16)"),
            "{text}"
        );
        assert!(text.contains("deleted"), "{text}");
        assert!(!report.is_ok());
    }
}
