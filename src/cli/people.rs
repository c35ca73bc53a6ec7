//! `dirsync sync-people` and `dirsync tenant what-if` (issue 14), and how they print.

use std::process::ExitCode;

use super::sync::describe_outcome;
use super::{exit_code, graph_connector, open_store, sync_context};
use crate::audit::{self, Action, Actor};
use crate::domain::{EntraObjectId, TenantKey};
use crate::plan::SelectedGroup;
use crate::settings::Settings;
use crate::store::access::AuditOutcome;
use crate::sync::people::{PersonSteps, SyncPeopleError, person_steps, sync_people as sync_now};
use crate::sync::what_if::{WhatIf, WhatIfList, what_if as what_if_plan};

/// Syncs up to five people now, in the name of whoever runs the command.
pub(super) async fn sync_people(
    settings: &Settings,
    tenant: &str,
    people: &[String],
) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let ctx = sync_context(settings, store.clone(), graph_connector(settings)?);
    let actor = Actor::cli();
    let outcome = match sync_now(&ctx, &key, &actor.name, people).await {
        Ok(outcome) => outcome,
        Err(SyncPeopleError::Invalid(message)) => {
            println!("{message}");
            return Ok(ExitCode::from(5));
        }
        Err(already @ SyncPeopleError::AlreadyRunning(_)) => {
            println!("{already}");
            return Ok(ExitCode::from(4));
        }
        Err(SyncPeopleError::Sync(err)) => return Err(err.into()),
    };
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &actor,
        Action::RunForce,
        Some(&key),
        AuditOutcome::Ok,
        serde_json::json!({"run": outcome.run_id, "on_demand": true, "people": people}),
    )
    .await;
    let entries = store.run_entries(outcome.run_id).await?;
    print!("{}", describe_outcome(&outcome));
    print!("{}", describe_people(&person_steps(&entries)));
    Ok(exit_code(outcome.status, false))
}

/// Each person's steps, one line each: `  in scope: a direct member of …`.
pub fn describe_people(people: &[PersonSteps]) -> String {
    let mut out = String::new();
    for person in people {
        out.push_str(&format!(
            "\n{} <{}>\n",
            person.name.as_deref().unwrap_or(""),
            person.email.as_deref().unwrap_or("")
        ));
        for step in &person.steps {
            let mut line = format!("  {}", step.action);
            if let Some(field) = &step.field {
                line.push_str(&format!(" {field}"));
            }
            match (&step.old_value, &step.new_value) {
                (Some(old), Some(new)) => line.push_str(&format!(": {old} → {new}")),
                (None, Some(new)) => line.push_str(&format!(": {new}")),
                (Some(old), None) => line.push_str(&format!(": {old}")),
                (None, None) => {}
            }
            if let Some(message) = &step.message {
                line.push_str(&format!(" ({message})"));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Parses `GROUP_ID=role` arguments.
fn parse_groups(groups: &[String]) -> anyhow::Result<Vec<SelectedGroup>> {
    let mut selected: Vec<SelectedGroup> = Vec::new();
    for text in groups {
        let (id, role) = text.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("{text:?}: expected GROUP_ID=internal or GROUP_ID=basic")
        })?;
        let entra_id = EntraObjectId::parse(id.trim())
            .map_err(|_| anyhow::anyhow!("{id:?} is not an Entra group object ID (a GUID)"))?;
        if selected.iter().any(|g| g.entra_id == entra_id) {
            anyhow::bail!("group {entra_id} is given twice");
        }
        selected.push(SelectedGroup {
            entra_id,
            role: role.parse()?,
        });
    }
    Ok(selected)
}

/// What a run would do under the proposed groups; changes nothing.
pub(super) async fn what_if(
    settings: &Settings,
    tenant: &str,
    groups: &[String],
) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let groups = parse_groups(groups)?;
    let store = open_store(settings).await?;
    let ctx = sync_context(settings, store, graph_connector(settings)?);
    let answer = what_if_plan(&ctx, &key, groups).await?;
    print!("{}", describe_what_if(&answer));
    Ok(ExitCode::SUCCESS)
}

fn describe_list(out: &mut String, title: &str, list: &WhatIfList) {
    out.push_str(&format!("{title}: {}\n", list.total));
    for person in &list.people {
        out.push_str(&format!(
            "  {} <{}>: {}\n",
            person.name, person.email, person.detail
        ));
    }
    if list.total > list.people.len() {
        out.push_str(&format!(
            "  … and {} more\n",
            list.total - list.people.len()
        ));
    }
}

pub fn describe_what_if(answer: &WhatIf) -> String {
    let mut out = String::new();
    for headline in &answer.headlines {
        out.push_str(headline);
        out.push('\n');
    }
    for group in &answer.converted {
        out.push_str(&format!(
            "converted: {} → {} ({}; {} members removed)\n",
            group.name, group.new_name, group.reason, group.members_removed
        ));
    }
    describe_list(&mut out, "created or adopted", &answer.created);
    describe_list(&mut out, "moved", &answer.moved);
    describe_list(&mut out, "deactivated", &answer.deactivated);
    out
}
