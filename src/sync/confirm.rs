//! R12/R17: a synced group is converted only when Entra says twice that it is gone. A group that
//! answers "deleted" is read again after a short delay in the same run; until a second read
//! confirms it, the group counts as Failed and nothing in it changes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tracing::warn;

use crate::domain::EntraObjectId;
use crate::plan::{GroupOutcome, Mirror, SourceSnapshot};
use crate::source::{DirectorySource, FetchStats};

/// Reads again, after `delay`, every group of `snapshot` that came back Deleted while the mirror
/// still holds its synced group, and puts the second answer in place of the first: Deleted
/// (confirmed), Found (it exists after all), or Failed (not confirmed). Returns what the second
/// read cost.
pub(super) async fn confirm_deletions(
    source: &dyn DirectorySource,
    snapshot: &mut SourceSnapshot,
    mirror: &Mirror,
    delay: Duration,
) -> FetchStats {
    let synced: HashSet<&EntraObjectId> = mirror.groups.iter().map(|g| &g.key.entra_id).collect();
    let suspects: Vec<EntraObjectId> = snapshot
        .groups
        .iter()
        .filter(|f| matches!(f.outcome, GroupOutcome::Deleted) && synced.contains(&f.entra_id))
        .map(|f| f.entra_id.clone())
        .collect();
    if suspects.is_empty() {
        return FetchStats::default();
    }
    tokio::time::sleep(delay).await;
    let (answers, failure, stats) = match source.fetch_groups(&suspects).await {
        Ok(fetch) => (
            fetch
                .snapshot
                .groups
                .into_iter()
                .map(|g| (g.entra_id, g.outcome))
                .collect::<HashMap<_, _>>(),
            None,
            fetch.stats,
        ),
        Err(err) => (HashMap::new(), Some(err.to_string()), FetchStats::default()),
    };
    let suspects: HashSet<EntraObjectId> = suspects.into_iter().collect();
    for fetch in snapshot
        .groups
        .iter_mut()
        .filter(|f| suspects.contains(&f.entra_id))
    {
        fetch.outcome = match answers.get(&fetch.entra_id).cloned() {
            Some(GroupOutcome::Deleted) => GroupOutcome::Deleted,
            Some(found @ GroupOutcome::Found { .. }) => {
                warn!(group = %fetch.entra_id, "a group that answered 404 was found on the second read");
                found
            }
            Some(GroupOutcome::Failed { reason }) => unconfirmed(&reason),
            None => unconfirmed(
                failure
                    .as_deref()
                    .unwrap_or("the second read did not return it"),
            ),
        };
    }
    stats
}

fn unconfirmed(reason: &str) -> GroupOutcome {
    GroupOutcome::Failed {
        reason: format!(
            "Entra answered that the group was deleted, but reading it again to confirm failed \
             ({reason}); it is converted only once a second read confirms the deletion"
        ),
    }
}
