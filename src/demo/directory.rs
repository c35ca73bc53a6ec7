//! The demo's seeded world: a law firm's Entra directory (a few hundred people across six
//! selected groups, one of them a basic client group) with the quirks worth showing, and the
//! HighQ instance an admin already set up by hand before dirsync came along.
//!
//! Everything is deterministic, so two demo runs print the same summary.

use serde_json::{Value, json};

use crate::domain::{Role, UserStatus};
use crate::emulator::entra::{AppRegistration, Group, TenantDirectory};

/// The demo firm's Entra directory (tenant) ID.
pub const TENANT_ID: &str = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
/// The dirsync app registration, consented in the demo tenant.
pub const CLIENT_ID: &str = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
pub const CLIENT_SECRET: &str = "demo-client-secret";

const FIRST: [&str; 30] = [
    "Olivia", "Noah", "Amelia", "Oliver", "Isla", "George", "Ava", "Arthur", "Mia", "Leo", "Ivy",
    "Harry", "Freya", "Oscar", "Lily", "Theo", "Florence", "Henry", "Willow", "Jack", "Sophia",
    "Charlie", "Grace", "Muhammad", "Aisha", "Wei", "Chloe", "Rohan", "Zara", "Tomasz",
];
const LAST: [&str; 30] = [
    "Bennett",
    "Okafor",
    "Hughes",
    "Patel",
    "Walsh",
    "Nakamura",
    "Clarke",
    "Moreau",
    "Evans",
    "Kowalski",
    "Fraser",
    "Ahmed",
    "Lindqvist",
    "Murphy",
    "Rossi",
    "Campbell",
    "Chen",
    "Dubois",
    "Singh",
    "Harrison",
    "O'Brien",
    "Novak",
    "Fernandes",
    "Sato",
    "Whitfield",
    "Abara",
    "Keane",
    "Lambert",
    "Mensah",
    "Price",
];

/// Staff `0..STAFF` work at the firm; `STAFF..STAFF + CLIENTS` are the client's people;
/// `STAFF + CLIENTS..PEOPLE` are trainees, members only of a nested group.
const STAFF: usize = 260;
const CLIENTS: usize = 40;
const TRAINEES: usize = 10;
const PEOPLE: usize = STAFF + CLIENTS + TRAINEES;

/// Users with something worth seeing in the report.
pub const NO_MAIL_USER: usize = 40;
pub const LONG_TITLE_USER: usize = 41;
pub const LONDON_PHONE_USER: usize = 42;
pub const DISABLED_USER: usize = 43;
pub const NO_NAME_PARTS_USER: usize = 44;

/// A selected group of the demo tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoGroup {
    pub id: &'static str,
    pub name: &'static str,
    pub role: Role,
}

pub const PARTNERS: DemoGroup = DemoGroup {
    id: "9a3f0c1e-0001-4a5b-8c6d-7e8f9a0b1c01",
    name: "Partners",
    role: Role::Internal,
};
pub const ASSOCIATES: DemoGroup = DemoGroup {
    id: "9a3f0c1e-0002-4a5b-8c6d-7e8f9a0b1c02",
    name: "Associates",
    role: Role::Internal,
};
pub const LITIGATION: DemoGroup = DemoGroup {
    id: "9a3f0c1e-0003-4a5b-8c6d-7e8f9a0b1c03",
    name: "Litigation",
    role: Role::Internal,
};
pub const CORPORATE: DemoGroup = DemoGroup {
    id: "9a3f0c1e-0004-4a5b-8c6d-7e8f9a0b1c04",
    name: "Corporate & Commercial",
    role: Role::Internal,
};
pub const BUSINESS_SERVICES: DemoGroup = DemoGroup {
    id: "9a3f0c1e-0005-4a5b-8c6d-7e8f9a0b1c05",
    name: "Business Services",
    role: Role::Internal,
};
pub const CLIENT_PORTAL: DemoGroup = DemoGroup {
    id: "9a3f0c1e-0006-4a5b-8c6d-7e8f9a0b1c06",
    name: "Client Portal - Northwind Traders",
    role: Role::Basic,
};

/// The six selected groups, in the order the tenant lists them.
pub const SELECTED_GROUPS: [DemoGroup; 6] = [
    PARTNERS,
    ASSOCIATES,
    LITIGATION,
    CORPORATE,
    BUSINESS_SERVICES,
    CLIENT_PORTAL,
];

/// Not selected: a group nested in Associates, whose members must not be synced (R1).
pub const TRAINEES_GROUP: &str = "9a3f0c1e-0007-4a5b-8c6d-7e8f9a0b1c07";
/// A laptop that is a member of Associates and must be ignored (R1).
pub const DEVICE: &str = "4d3c2b1a-0000-4a5b-8c6d-0000000000d1";

pub fn user_id(n: usize) -> String {
    format!("7e57ab1e-{:04x}-4c0d-8e00-{:012x}", n / 0x10000, n)
}

fn names(n: usize) -> (&'static str, &'static str) {
    // Bijective for n < 900: the first name fixes n mod 30, the last name then fixes n / 30.
    (FIRST[n % 30], LAST[(n / 30 + n) % 30])
}

/// The email a person has in Entra (`mail`, or the UPN for [`NO_MAIL_USER`]).
pub fn email(n: usize) -> String {
    let (first, last) = names(n);
    let domain = if (STAFF..STAFF + CLIENTS).contains(&n) {
        "northwindtraders.com"
    } else {
        "contoso-legal.com"
    };
    let local: String = format!("{first}.{last}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    format!("{local}@{domain}")
}

fn job_title(n: usize) -> String {
    match n {
        LONG_TITLE_USER => {
            let mut title = String::from(
                "Senior Associate, Commercial Litigation, International Arbitration and Regulatory \
                 Investigations",
            );
            while title.chars().count() <= 560 {
                title.push_str(" / Knowledge Lawyer (Disputes, Contentious Regulatory, Fraud)");
            }
            title
        }
        0..25 => "Partner".into(),
        25..175 => ["Associate", "Senior Associate", "Managing Associate"][n % 3].into(),
        175..STAFF => [
            "Legal Secretary",
            "Paralegal",
            "Billing Analyst",
            "IT Service Desk",
            "Librarian",
        ][n % 5]
            .into(),
        _ if n < STAFF + CLIENTS => {
            ["Procurement Manager", "General Counsel", "Legal Counsel"][n % 3].into()
        }
        _ => "Trainee Solicitor".into(),
    }
}

fn phones(n: usize) -> Vec<String> {
    match n {
        LONDON_PHONE_USER => vec!["+44 (20) 7946 0958".into()],
        _ if n % 11 == 0 => vec![],
        _ if n < STAFF => vec![format!("+44 20 7946 {:04}", 1000 + n)],
        _ => vec![format!("+1-425-555-{:04}", 100 + n)],
    }
}

fn user(n: usize) -> Value {
    let (first, last) = names(n);
    let email = email(n);
    let display = format!("{first} {last}");
    let (given, surname) = if n == NO_NAME_PARTS_USER {
        (Value::Null, Value::Null)
    } else {
        (json!(first), json!(last))
    };
    json!({
        "id": user_id(n),
        "displayName": display,
        "givenName": given,
        "surname": surname,
        "mail": if n == NO_MAIL_USER { Value::Null } else { json!(email) },
        "userPrincipalName": email.to_lowercase(),
        "businessPhones": phones(n),
        "jobTitle": job_title(n),
        "accountEnabled": n != DISABLED_USER,
    })
}

/// The people only in the nested trainees group.
pub fn trainees() -> std::ops::Range<usize> {
    STAFF + CLIENTS..PEOPLE
}

/// The direct user members of each selected group, by person number.
pub fn members(group: &DemoGroup) -> Vec<usize> {
    match group.name {
        "Partners" => (0..25).collect(),
        "Associates" => (25..175).collect(),
        "Litigation" => (0..175).filter(|n| n % 3 == 0).collect(),
        "Corporate & Commercial" => (0..175).filter(|n| n % 3 == 1).collect(),
        "Business Services" => (175..STAFF).collect(),
        // The client's people, and three partners who look after the client: R14 keeps the
        // partners internal.
        _ => (STAFF..STAFF + CLIENTS).chain(0..3).collect(),
    }
}

/// The demo tenant's Entra directory, with the dirsync app consented.
pub fn entra_tenant() -> TenantDirectory {
    let mut tenant = TenantDirectory::new(TENANT_ID);
    tenant
        .apps
        .push(AppRegistration::consented(CLIENT_ID, CLIENT_SECRET));
    for n in 0..PEOPLE {
        tenant.put_user(user(n));
    }
    for group in SELECTED_GROUPS {
        let mut ids: Vec<String> = members(&group).into_iter().map(user_id).collect();
        if group == ASSOCIATES {
            ids.push(TRAINEES_GROUP.to_owned());
            ids.push(DEVICE.to_owned());
        }
        tenant.groups.push(Group {
            id: group.id.to_owned(),
            display_name: group.name.to_owned(),
            members: ids,
        });
    }
    tenant.groups.push(Group {
        id: TRAINEES_GROUP.to_owned(),
        display_name: "Trainee Solicitors".to_owned(),
        members: (STAFF + CLIENTS..PEOPLE).map(user_id).collect(),
    });
    let mut device = serde_json::Map::new();
    device.insert("id".into(), json!(DEVICE));
    device.insert("displayName".into(), json!("LAPTOP-LDN-0042"));
    tenant.devices.push(device);
    tenant
}

/// People who already had HighQ accounts, made by hand: the first two are in Entra too and are
/// adopted by email (whatever the case, R4; the second one's account was deactivated, so it is
/// reactivated); the others are not in Entra and are left alone.
pub fn manual_highq_users() -> Vec<(String, String, String, UserStatus)> {
    let adopted = |n: usize, status| {
        let (first, last) = names(n);
        (
            email(n).to_uppercase(),
            first.to_owned(),
            last.to_owned(),
            status,
        )
    };
    vec![
        adopted(3, UserStatus::Active),
        adopted(180, UserStatus::Inactive),
        (
            "counsel@external-chambers.example".into(),
            "Eleanor".into(),
            "Vale".into(),
            UserStatus::Active,
        ),
        (
            "highq.admin@contoso-legal.com".into(),
            "Site".into(),
            "Administrator".into(),
            UserStatus::Active,
        ),
    ]
}

/// Groups made by hand in HighQ, which dirsync must never touch.
pub fn manual_highq_groups() -> Vec<(String, Vec<String>)> {
    vec![
        (
            "Knowledge Management".into(),
            vec![
                "counsel@external-chambers.example".into(),
                email(3).to_uppercase(),
            ],
        ),
        (
            "Extranet Administrators".into(),
            vec!["highq.admin@contoso-legal.com".into()],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_demo_directory_has_distinct_people_in_six_groups_with_its_quirks() {
        let tenant = entra_tenant();
        let emails: BTreeSet<String> = (0..PEOPLE).map(|n| email(n).to_lowercase()).collect();
        assert_eq!(emails.len(), PEOPLE);
        let synced: BTreeSet<usize> = SELECTED_GROUPS.iter().flat_map(members).collect();
        assert_eq!(synced.len(), STAFF + CLIENTS);
        assert_eq!(
            SELECTED_GROUPS
                .iter()
                .filter(|g| g.role == Role::Basic)
                .count(),
            1
        );
        let associates = tenant.group(ASSOCIATES.id).unwrap();
        assert!(associates.members.contains(&TRAINEES_GROUP.to_owned()));
        assert!(associates.members.contains(&DEVICE.to_owned()));
        let long = &tenant.users[&user_id(LONG_TITLE_USER)];
        assert!(long["jobTitle"].as_str().unwrap().chars().count() > 512);
    }
}
