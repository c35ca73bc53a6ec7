//! A snapshot's user in compact form: what R5 reads of an [`EntraUser`], its text in one
//! allocation, so a 500,000-user snapshot holds two allocations a user rather than nine.

use serde::{Deserialize, Serialize};

use super::model::EntraUser;
use crate::domain::EntraObjectId;

/// The text a snapshot keeps of a user, in the order it is packed.
#[derive(Debug, Clone, Copy)]
enum Slot {
    GivenName,
    Surname,
    DisplayName,
    Mail,
    UserPrincipalName,
    /// `businessPhones[0]`: R5 reads no other.
    Phone,
    JobTitle,
}

const SLOTS: usize = 7;

/// A user as the planner reads it from a snapshot: the id, `accountEnabled`, and the six texts
/// and first business phone of an [`EntraUser`], all text in one `Box<str>` with the end of each
/// value recorded (issue 13: a user's nine allocations cost more in allocator overhead than the
/// text itself). Built from an [`EntraUser`] and serialized as one, so a snapshot reads and
/// writes as before.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "EntraUser", into = "EntraUser")]
pub struct SnapshotUser {
    id: EntraObjectId,
    account_enabled: Option<bool>,
    /// Bit `i` set: slot `i` holds a value (possibly empty); clear: Entra returned none.
    present: u8,
    /// Where each slot's value ends in `text`; it starts where the one before ends.
    ends: [u32; SLOTS],
    text: Box<str>,
}

impl SnapshotUser {
    pub fn id(&self) -> &EntraObjectId {
        &self.id
    }

    /// `None` when Graph did not return it; the user's status is then left as it is.
    pub fn account_enabled(&self) -> Option<bool> {
        self.account_enabled
    }

    pub fn given_name(&self) -> Option<&str> {
        self.slot(Slot::GivenName)
    }

    pub fn surname(&self) -> Option<&str> {
        self.slot(Slot::Surname)
    }

    pub fn display_name(&self) -> Option<&str> {
        self.slot(Slot::DisplayName)
    }

    pub fn mail(&self) -> Option<&str> {
        self.slot(Slot::Mail)
    }

    pub fn user_principal_name(&self) -> Option<&str> {
        self.slot(Slot::UserPrincipalName)
    }

    /// The first business phone, the only one R5 maps.
    pub fn phone(&self) -> Option<&str> {
        self.slot(Slot::Phone)
    }

    pub fn job_title(&self) -> Option<&str> {
        self.slot(Slot::JobTitle)
    }

    fn slot(&self, slot: Slot) -> Option<&str> {
        let i = slot as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.text[start..self.ends[i] as usize])
    }
}

impl From<EntraUser> for SnapshotUser {
    fn from(user: EntraUser) -> Self {
        Self::from(&user)
    }
}

impl From<&EntraUser> for SnapshotUser {
    fn from(user: &EntraUser) -> Self {
        let values: [Option<&str>; SLOTS] = [
            user.given_name.as_deref(),
            user.surname.as_deref(),
            user.display_name.as_deref(),
            user.mail.as_deref(),
            user.user_principal_name.as_deref(),
            user.business_phones.first().map(String::as_str),
            user.job_title.as_deref(),
        ];
        let mut text = String::with_capacity(values.iter().flatten().map(|v| v.len()).sum());
        let mut present = 0;
        let mut ends = [0; SLOTS];
        for (i, value) in values.into_iter().enumerate() {
            if let Some(value) = value {
                present |= 1 << i;
                text.push_str(value);
            }
            // A user's text is a few hundred bytes; 4 GiB of it would not have been read.
            ends[i] = u32::try_from(text.len()).expect("a user's text is under 4 GiB");
        }
        Self {
            id: user.id.clone(),
            account_enabled: user.account_enabled,
            present,
            ends,
            text: text.into_boxed_str(),
        }
    }
}

impl From<&SnapshotUser> for EntraUser {
    fn from(user: &SnapshotUser) -> Self {
        let owned = |value: Option<&str>| value.map(str::to_owned);
        EntraUser {
            id: user.id.clone(),
            given_name: owned(user.given_name()),
            surname: owned(user.surname()),
            display_name: owned(user.display_name()),
            mail: owned(user.mail()),
            user_principal_name: owned(user.user_principal_name()),
            business_phones: user.phone().map(str::to_owned).into_iter().collect(),
            job_title: owned(user.job_title()),
            account_enabled: user.account_enabled,
        }
    }
}

impl From<SnapshotUser> for EntraUser {
    fn from(user: SnapshotUser) -> Self {
        Self::from(&user)
    }
}

impl std::fmt::Debug for SnapshotUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotUser")
            .field("id", &self.id)
            .field("given_name", &self.given_name())
            .field("surname", &self.surname())
            .field("display_name", &self.display_name())
            .field("mail", &self.mail())
            .field("user_principal_name", &self.user_principal_name())
            .field("phone", &self.phone())
            .field("job_title", &self.job_title())
            .field("account_enabled", &self.account_enabled)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> EntraUser {
        EntraUser {
            id: uuid::Uuid::from_u128(7).into(),
            given_name: Some("Zoë".to_owned()),
            surname: Some(String::new()),
            display_name: None,
            mail: Some("zoe@contoso.com".to_owned()),
            user_principal_name: Some("zoe@contoso.onmicrosoft.com".to_owned()),
            business_phones: vec!["+44 20 7946 0958".to_owned(), "second".to_owned()],
            job_title: Some("Partner".to_owned()),
            account_enabled: Some(false),
        }
    }

    #[test]
    fn a_packed_user_reads_back_each_value_and_tells_empty_from_missing() {
        let packed = SnapshotUser::from(user());
        assert_eq!(packed.given_name(), Some("Zoë"));
        assert_eq!(packed.surname(), Some(""));
        assert_eq!(packed.display_name(), None);
        assert_eq!(packed.mail(), Some("zoe@contoso.com"));
        assert_eq!(
            packed.user_principal_name(),
            Some("zoe@contoso.onmicrosoft.com")
        );
        assert_eq!(packed.phone(), Some("+44 20 7946 0958"));
        assert_eq!(packed.job_title(), Some("Partner"));
        assert_eq!(packed.account_enabled(), Some(false));

        let empty = SnapshotUser::from(EntraUser::default());
        assert_eq!(
            (
                empty.given_name(),
                empty.mail(),
                empty.phone(),
                empty.job_title()
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn a_packed_user_round_trips_through_json_as_graph_spells_it_keeping_the_first_phone() {
        let packed = SnapshotUser::from(user());
        let json = serde_json::to_value(&packed).unwrap();
        assert_eq!(
            json["business_phones"],
            serde_json::json!(["+44 20 7946 0958"])
        );
        let back: SnapshotUser = serde_json::from_value(json).unwrap();
        assert_eq!(back, packed);
    }

    #[test]
    fn a_packed_user_is_a_fraction_of_a_graph_user() {
        // Eight text allocations folded into one: the inline part is what is left to keep small.
        assert!(
            std::mem::size_of::<SnapshotUser>() <= 64,
            "{} bytes",
            std::mem::size_of::<SnapshotUser>()
        );
        assert!(std::mem::size_of::<SnapshotUser>() < std::mem::size_of::<EntraUser>() / 2);
    }
}
