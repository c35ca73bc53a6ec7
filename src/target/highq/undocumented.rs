//! The HighQ calls and fields the public API does not document, kept in one place and
//! configurable so that an instance whose spelling differs needs configuration, not code:
//! the user's role field, a group's type (synced / basic synced / system), and listing a
//! group's members. The emulator implements the defaults below.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{GroupKind, Role};

/// How the undocumented parts of HighQ are spelled on this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UndocumentedCalls {
    /// The user field that carries the role (sent on create, adopt and every update).
    pub user_role_field: String,
    pub internal_role_value: String,
    pub basic_role_value: String,
    /// The group field that carries the group's type, sent on create and to convert a group.
    pub group_type_field: String,
    pub synced_group_type: String,
    pub basic_synced_group_type: String,
    pub system_group_type: String,
    /// Where a group's type is changed with `PUT`, under `/api/{N}/`; `{groupid}` is replaced.
    pub group_type_path: String,
    /// Where a group's members are listed with `GET`, under `/api/{N}/`; `{groupid}` is replaced.
    pub group_members_path: String,
}

impl Default for UndocumentedCalls {
    fn default() -> Self {
        Self {
            user_role_field: "role".to_owned(),
            internal_role_value: "internal".to_owned(),
            basic_role_value: "basic".to_owned(),
            group_type_field: "type".to_owned(),
            synced_group_type: "synced".to_owned(),
            basic_synced_group_type: "basicsynced".to_owned(),
            system_group_type: "system".to_owned(),
            group_type_path: "groups/{groupid}".to_owned(),
            group_members_path: "groups/{groupid}/users".to_owned(),
        }
    }
}

impl UndocumentedCalls {
    /// The `(field, value)` that gives a user `role`.
    pub fn role_field(&self, role: Role) -> (String, Value) {
        let value = match role {
            Role::Internal => &self.internal_role_value,
            Role::Basic => &self.basic_role_value,
        };
        (self.user_role_field.clone(), Value::String(value.clone()))
    }

    /// The `(field, value)` that gives a group `kind`.
    pub fn group_type_field(&self, kind: GroupKind) -> (String, Value) {
        let value = match kind {
            GroupKind::SyncedInternal => &self.synced_group_type,
            GroupKind::SyncedBasic => &self.basic_synced_group_type,
            GroupKind::System => &self.system_group_type,
        };
        (self.group_type_field.clone(), Value::String(value.clone()))
    }

    /// The kind a group's type value stands for, if it is one of ours.
    pub fn group_kind(&self, value: &str) -> Option<GroupKind> {
        [
            GroupKind::SyncedInternal,
            GroupKind::SyncedBasic,
            GroupKind::System,
        ]
        .into_iter()
        .find(|kind| {
            self.group_type_field(*kind)
                .1
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        })
    }

    pub fn group_type_segments(&self, group_id: &str) -> Vec<String> {
        segments(&self.group_type_path, group_id)
    }

    pub fn group_members_segments(&self, group_id: &str) -> Vec<String> {
        segments(&self.group_members_path, group_id)
    }
}

fn segments(template: &str, group_id: &str) -> Vec<String> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("{groupid}", group_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates_put_the_group_id_in_place() {
        let calls = UndocumentedCalls {
            group_members_path: "/groups/{groupid}/members/".to_owned(),
            ..UndocumentedCalls::default()
        };
        assert_eq!(
            calls.group_members_segments("42"),
            ["groups", "42", "members"]
        );
        assert_eq!(calls.group_type_segments("42"), ["groups", "42"]);
    }

    #[test]
    fn group_types_read_back_as_kinds() {
        let calls = UndocumentedCalls::default();
        assert_eq!(
            calls.group_kind("BasicSynced"),
            Some(GroupKind::SyncedBasic)
        );
        assert_eq!(calls.group_kind("system"), Some(GroupKind::System));
        assert_eq!(calls.group_kind("other"), None);
    }
}
