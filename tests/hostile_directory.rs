//! The hostile-directory corpus: odd or hostile Entra inputs, each read by the real Graph client
//! from the Entra emulator, planned, and applied to a target (the memory target, or the HighQ
//! emulator where the target's own rules matter). Every case ends as precise report lines —
//! checked here against [`CASES`], which `docs/hostile-directory.md` is generated from — and
//! changes nothing else in the target.
//!
//! Each test starts from the same day 1: the group Staff with Alice and Bob, synced. Day 2 brings
//! the hostile input; the test asserts the day-2 run's report lines and the target's state.
//!
//! `DIRSYNC_BLESS=1 cargo test --test hostile_directory` rewrites the document from [`CASES`].
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

mod support;

use std::sync::Arc;

use dirsync::domain::{DeactivationStatus, EntraObjectId, GroupKind, Role, TenantKey, UserStatus};
use dirsync::emulator::entra::{Fault, FaultPlan, FaultRule, FaultTrigger, Group, TenantDirectory};
use dirsync::plan::{SelectedGroup, TenantPolicy};
use dirsync::store::{PgStore, ReportEntry, RunOptions, RunStatus, Store, SubjectKind, Trigger};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings, run_sync};
use dirsync::tenant::{Retention, Tenant};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::world::{
    DirectoryDriver, EntraDriver, HighQWorld, MemoryWorld, TargetWorld, UserView, View,
};

// ---------------------------------------------------------------------------------------------
// The corpus: each case's test, its input, and the report lines its day-2 run must produce
// ---------------------------------------------------------------------------------------------

struct Case {
    /// The test that runs it (a function of this file).
    test: &'static str,
    input: &'static str,
    /// How the day-2 run ended.
    status: &'static str,
    /// The day-2 run's report lines, as [`line`] renders them.
    lines: &'static [&'static str],
    /// What else the test checks in the target.
    effect: &'static str,
}

const CASES: &[Case] = &[
    Case {
        test: "a_user_with_no_email_is_an_error_for_that_user_only",
        input: "A new member with neither `mail` nor `userPrincipalName`",
        status: "completed with errors",
        lines: &[
            "error 0000c0de-0000-4000-8000-00000000000a (Dana Doe) — no usable email: both mail and userPrincipalName are empty; the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "a_user_principal_name_that_is_not_an_email_is_an_error_naming_it",
        input: "No `mail`, and a `userPrincipalName` that is not an email (`dana.doe`)",
        status: "completed with errors",
        lines: &[
            "error dana.doe (Dana Doe) — no usable email: mail is empty and the user principal name \"dana.doe\" is not an email address; set the user's mail attribute in Entra; the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "a_guest_user_principal_name_is_an_error_naming_it",
        input: "No `mail`, and a guest `#EXT#` user principal name",
        status: "completed with errors",
        lines: &[
            "error gus_fabrikam.com#EXT#@contoso.onmicrosoft.com (Gus Guest) — no usable email: mail is empty and the user principal name \"gus_fabrikam.com#EXT#@contoso.onmicrosoft.com\" is a guest (#EXT#) name, not a mailbox; set the user's mail attribute in Entra; the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "a_mail_with_two_at_signs_is_an_error",
        input: "`mail` with two `@` (`dana@@contoso.com`)",
        status: "completed with errors",
        lines: &[
            "error dana@@contoso.com (Dana Doe) — no usable email: mail \"dana@@contoso.com\" is not an email address (expected exactly one '@' with text on both sides); the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "a_mail_written_with_a_display_name_is_an_error",
        input: "`mail` written with a display name (`Dana Doe <dana@contoso.com>`)",
        status: "completed with errors",
        lines: &[
            "error Dana Doe <dana@contoso.com> (Dana Doe) — no usable email: mail \"Dana Doe <dana@contoso.com>\" contains white space or control characters; the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "two_users_whose_emails_differ_only_in_case_are_both_errors",
        input: "Two new users whose emails differ only in ASCII case",
        status: "completed with errors",
        lines: &[
            "error Dana.Doe@contoso.com (Dana Doe) — duplicate email Dana.Doe@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-00000000000b; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
            "error dana.doe@CONTOSO.com (Dan Doe) — duplicate email Dana.Doe@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-00000000000a; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
        ],
        effect: "neither is created; nothing else changes",
    },
    Case {
        test: "two_users_whose_emails_differ_only_in_unicode_case_are_both_errors",
        input: "Two new users whose emails differ only in Unicode case (`ÉMILE@` and `émile@`)",
        status: "completed with errors",
        lines: &[
            "error ÉMILE@contoso.com (Émile Zola) — duplicate email ÉMILE@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-00000000000b; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
            "error émile@contoso.com (Emile Zola) — duplicate email ÉMILE@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-00000000000a; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
        ],
        effect: "neither is created; nothing else changes",
    },
    Case {
        test: "two_users_whose_emails_differ_only_in_unicode_normalization_are_both_errors",
        input: "Two new users whose emails differ only in Unicode normalization (`ë` as one character, or `e` and a combining diaeresis)",
        status: "completed with errors",
        lines: &[
            "error zoë@contoso.com (Zoë One) — duplicate email zoë@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-00000000000b; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
            "error zoë@contoso.com (Zoë Two) — duplicate email zoë@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-00000000000a; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
        ],
        effect: "neither is created; nothing else changes",
    },
    Case {
        test: "an_email_longer_than_rfc_5321_allows_is_an_error",
        input: "A 317-byte `mail`",
        status: "completed with errors",
        lines: &[
            "error dana@ddddddddddddddddddd…[317 chars] (Dana Doe) — no usable email: mail \"dana@ddddddddddddddddddddddddddd\"… is 317 bytes long; at most 254 are allowed (RFC 5321); the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "an_email_with_a_zero_width_space_is_an_error",
        input: "`mail` with a zero-width space, looking like Alice's address",
        status: "completed with errors",
        lines: &[
            "error ali\\u{200b}ce@contoso.com (Alice Impostor) — no usable email: mail \"ali\\u{200b}ce@contoso.com\" contains the invisible character U+200B, which would make it look like another address; the user is not created",
        ],
        effect: "nothing else changes (Alice untouched)",
    },
    Case {
        test: "an_email_with_a_right_to_left_override_is_an_error",
        input: "`mail` with a right-to-left override (U+202E)",
        status: "completed with errors",
        lines: &[
            "error mallory\\u{202e}moc.liame@contoso.com (Mallory Moc) — no usable email: mail \"mallory\\u{202e}moc.liame@contoso.com\" contains the invisible character U+202E, which would make it look like another address; the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "an_email_changing_to_another_users_makes_both_errors_and_changes_neither",
        input: "Alice's `mail` changes to Bob's (and her job title changes)",
        status: "completed with errors",
        lines: &[
            "error bob@contoso.com (Alice Archer) — duplicate email bob@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-000000000002; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
            "error bob@contoso.com (Bob Baker) — duplicate email bob@contoso.com: also used by Entra user 0000c0de-0000-4000-8000-000000000001; neither is created or adopted and synced users keep their current state (a disabled one is still deactivated)",
        ],
        effect: "both keep their state, Alice's job title included (R8); nothing else changes",
    },
    Case {
        test: "two_users_swapping_emails_in_one_run_are_both_errors",
        input: "Alice and Bob swap emails in one run",
        status: "completed with errors",
        lines: &[
            "error alice@contoso.com (Alice Archer) — email change to bob@contoso.com would collide with another target user: the target keeps alice@contoso.com; every other field is still updated",
            "error bob@contoso.com (Bob Baker) — email change to alice@contoso.com would collide with another target user: the target keeps bob@contoso.com; every other field is still updated",
        ],
        effect: "both keep their emails (R7); nothing else changes",
    },
    Case {
        test: "a_513_character_name_is_cut_to_512_with_a_warning",
        input: "A 513-character `givenName`",
        status: "succeeded",
        lines: &[
            "warning dana@contoso.com (GGGGGGGGGGGGGGGGGGGGGGGG…[516 chars]) — first name is 513 characters long; cut to 512",
            "created dana@contoso.com (GGGGGGGGGGGGGGGGGGGGGGGG…[516 chars]) role ∅ → internal",
            "added to group dana@contoso.com (GGGGGGGGGGGGGGGGGGGGGGGG…[516 chars]) ∅ → Staff [Synced Group]",
        ],
        effect: "created with the first 512 characters",
    },
    Case {
        test: "names_and_a_job_title_of_10000_characters_are_cut_with_a_warning_each",
        input: "10,000-character `givenName` (of `é`), `surname` and `jobTitle`",
        status: "succeeded",
        lines: &[
            "warning dana@contoso.com (éééééééééééééééééééééééé…[1025 chars]) — job title is 10000 characters long; cut to 512",
            "warning dana@contoso.com (éééééééééééééééééééééééé…[1025 chars]) — first name is 10000 characters long; cut to 512",
            "warning dana@contoso.com (éééééééééééééééééééééééé…[1025 chars]) — last name is 10000 characters long; cut to 512",
            "created dana@contoso.com (éééééééééééééééééééééééé…[1025 chars]) role ∅ → internal",
            "added to group dana@contoso.com (éééééééééééééééééééééééé…[1025 chars]) ∅ → Staff [Synced Group]",
        ],
        effect: "created with 512 characters of each",
    },
    Case {
        test: "a_10000_character_display_name_as_the_only_name_is_split_then_cut",
        input: "A 10,000-character `displayName` and no given name or surname",
        status: "succeeded",
        lines: &[
            "warning dana@contoso.com (Dana DDDDDDDDDDDDDDDDDDD…[517 chars]) — givenName and surname are empty in Entra; taken from displayName \"Dana DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD\"… (10000 characters)",
            "warning dana@contoso.com (Dana DDDDDDDDDDDDDDDDDDD…[517 chars]) — last name is 9995 characters long; cut to 512",
            "created dana@contoso.com (Dana DDDDDDDDDDDDDDDDDDD…[517 chars]) role ∅ → internal",
            "added to group dana@contoso.com (Dana DDDDDDDDDDDDDDDDDDD…[517 chars]) ∅ → Staff [Synced Group]",
        ],
        effect: "created as `Dana` and 512 characters of the rest",
    },
    Case {
        test: "emoji_names_reach_the_target_unchanged",
        input: "Names with emoji and ZWJ sequences",
        status: "succeeded",
        lines: &[
            "created dana@contoso.com (👩\u{200d}👩\u{200d}👧 Dana Doe 🏳️\u{200d}🌈) role ∅ → internal",
            "added to group dana@contoso.com (👩\u{200d}👩\u{200d}👧 Dana Doe 🏳️\u{200d}🌈) ∅ → Staff [Synced Group]",
        ],
        effect: "created with the names exactly",
    },
    Case {
        test: "right_to_left_names_and_bidi_controls_reach_the_target_unchanged",
        input: "Arabic and Hebrew names, one with a right-to-left override",
        status: "succeeded",
        lines: &[
            "created dana@contoso.com (دانا \u{202e}eoD\u{202c} כהן) role ∅ → internal",
            "added to group dana@contoso.com (دانا \u{202e}eoD\u{202c} כהן) ∅ → Staff [Synced Group]",
        ],
        effect: "created with the names exactly",
    },
    Case {
        test: "a_name_of_600_combining_marks_is_cut_on_a_character_boundary",
        input: "A `givenName` of one letter and 600 combining marks",
        status: "succeeded",
        lines: &[
            "warning dana@contoso.com (Ź̴̴̴̴̴̴̴̴̴̴̴́́́́́́́́́́́…[516 chars]) — first name is 601 characters long; cut to 512",
            "created dana@contoso.com (Ź̴̴̴̴̴̴̴̴̴̴̴́́́́́́́́́́́…[516 chars]) role ∅ → internal",
            "added to group dana@contoso.com (Ź̴̴̴̴̴̴̴̴̴̴̴́́́́́́́́́́́…[516 chars]) ∅ → Staff [Synced Group]",
        ],
        effect: "created with the first 512 characters",
    },
    Case {
        test: "a_name_of_zero_width_spaces_falls_back_to_the_display_name",
        input: "A `givenName` of zero-width spaces",
        status: "succeeded",
        lines: &[
            "warning dana@contoso.com (Dana Doe) — givenName is empty in Entra; taken from displayName \"Dana Doe\"",
            "created dana@contoso.com (Dana Doe) role ∅ → internal",
            "added to group dana@contoso.com (Dana Doe) ∅ → Staff [Synced Group]",
        ],
        effect: "created with the first name from `displayName`",
    },
    Case {
        test: "names_starting_with_formula_characters_reach_the_target_as_text",
        input: "Names starting with `=`, `+`, `-`, `@` (spreadsheet formulas)",
        status: "succeeded",
        lines: &[
            "created eq@contoso.com (=HYPERLINK(\"http://evil\",\"x\") Formula) role ∅ → internal",
            "created plus@contoso.com (+1+cmd|' /C calc'!A0 Formula) role ∅ → internal",
            "created minus@contoso.com (-2+3 Formula) role ∅ → internal",
            "created at@contoso.com (@SUM(A1:A9) Formula) role ∅ → internal",
            "added to group eq@contoso.com (=HYPERLINK(\"http://evil\",\"x\") Formula) ∅ → Staff [Synced Group]",
            "added to group plus@contoso.com (+1+cmd|' /C calc'!A0 Formula) ∅ → Staff [Synced Group]",
            "added to group minus@contoso.com (-2+3 Formula) ∅ → Staff [Synced Group]",
            "added to group at@contoso.com (@SUM(A1:A9) Formula) ∅ → Staff [Synced Group]",
        ],
        effect: "created with the names exactly (the .xlsx report writes them as text, R19)",
    },
    Case {
        test: "control_characters_and_nul_in_names_are_replaced_with_a_warning",
        input: "NUL, CR LF and tab in names and job title",
        status: "succeeded",
        lines: &[
            "warning dana@contoso.com (Da na Doe) — givenName held control characters (U+0000); each run of them was replaced by a space",
            "warning dana@contoso.com (Da na Doe) — surname held control characters (U+000D, U+000A); each run of them was replaced by a space",
            "warning dana@contoso.com (Da na Doe) — displayName held control characters (U+0000); each run of them was replaced by a space",
            "warning dana@contoso.com (Da na Doe) — jobTitle held control characters (U+0009); each run of them was replaced by a space",
            "created dana@contoso.com (Da na Doe) role ∅ → internal",
            "added to group dana@contoso.com (Da na Doe) ∅ → Staff [Synced Group]",
        ],
        effect: "created with each run replaced by a space (a NUL would have failed the run's database write)",
    },
    Case {
        test: "a_member_with_a_null_id_fails_the_group_and_changes_nothing",
        input: "A member whose `id` is `null`",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: page 1 of the group's members: a user has no id; nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "nothing changes, not even Alice's new job title (R17)",
    },
    Case {
        test: "nulls_in_business_phones_are_skipped",
        input: "`businessPhones: [null, \"+1 555 0100\", null]`",
        status: "succeeded",
        lines: &[
            "created dana@contoso.com (Dana Doe) role ∅ → internal",
            "added to group dana@contoso.com (Dana Doe) ∅ → Staff [Synced Group]",
        ],
        effect: "created with phone `+1 555 0100`",
    },
    Case {
        test: "a_user_with_every_property_null_is_an_error_for_that_user_only",
        input: "A member with every property `null` but its `id`",
        status: "completed with errors",
        lines: &[
            "error 0000c0de-0000-4000-8000-00000000000a — no usable email: both mail and userPrincipalName are empty; the user is not created",
        ],
        effect: "nothing else changes",
    },
    Case {
        test: "a_number_where_text_belongs_fails_the_group_naming_the_property",
        input: "A `surname` that is a number",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: page 1 of the group's members: user 0000c0de-0000-4000-8000-00000000000a: surname is a number, not text; nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "nothing changes (R17)",
    },
    Case {
        test: "account_enabled_as_text_fails_the_group_naming_the_property",
        input: "Bob's `accountEnabled` is the text `\"false\"`",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: page 1 of the group's members: user 0000c0de-0000-4000-8000-000000000002: accountEnabled is text, not true or false; nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "Bob is not deactivated; nothing changes (R17)",
    },
    Case {
        test: "a_group_whose_display_name_goes_blank_keeps_its_synced_name",
        input: "The group's `displayName` becomes blank (a zero-width space)",
        status: "succeeded",
        lines: &[
            "warning group \"Staff [Synced Group]\" — the group has no display name in Entra; it keeps its name \"Staff\"",
        ],
        effect: "the synced group is not renamed to its ID; nothing changes",
    },
    Case {
        test: "a_member_of_an_unknown_odata_type_is_ignored_with_a_warning",
        input: "A member of `@odata.type` `#microsoft.graph.agentUser`",
        status: "succeeded",
        lines: &[
            "warning group \"Staff [Synced Group]\" — member 0000c0de-0000-4000-8000-00000000000a is a #microsoft.graph.agentUser, not a user; it is ignored (R1)",
        ],
        effect: "not created; nothing else changes",
    },
    Case {
        test: "a_member_whose_user_object_404s_is_deactivated_as_deleted_in_entra",
        input: "Staff still lists Bob but his user object is gone (`GET /users/{id}` is 404)",
        status: "succeeded",
        lines: &[
            "removed from group bob@contoso.com (Bob Baker) Staff [Synced Group] → ∅",
            "deactivated bob@contoso.com (Bob Baker) status active → inactive — deleted in Entra",
        ],
        effect: "Bob leaves Staff and is deactivated (R10, R11)",
    },
    Case {
        test: "a_user_id_that_is_not_a_guid_fails_the_group_naming_it",
        input: "A member whose `id` is not a GUID (`../../users/alice`)",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: page 1 of the group's members: a user's id \"../../users/alice\" is not a GUID; nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "nothing changes (R17)",
    },
    Case {
        test: "a_page_listing_a_member_twice_counts_it_once_with_a_warning",
        input: "A page listing a new member twice",
        status: "succeeded",
        lines: &[
            "warning group \"Staff [Synced Group]\" — user 0000c0de-0000-4000-8000-00000000000a is listed 2 times in the group's members; counted once",
            "created dana@contoso.com (Dana Doe) role ∅ → internal",
            "added to group dana@contoso.com (Dana Doe) ∅ → Staff [Synced Group]",
        ],
        effect: "created once, one membership",
    },
    Case {
        test: "a_member_listed_twice_with_different_data_fails_the_group",
        input: "Bob listed twice (his ID in capitals) with different names",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: user 0000c0de-0000-4000-8000-000000000002 is listed twice with different data (on page 1); nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "nothing changes (R17)",
    },
    Case {
        test: "a_next_link_to_another_host_stops_the_read_and_sends_nothing_there",
        input: "`@odata.nextLink` to another host",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: page 1 links to \"https://elsewhere.example/v1.0/groups/00005a1e-0000-4000-8000-000000000001/members/microsoft.graph.user?$skiptoken=x\", outside Graph's https://graph.example; reading stopped and nothing was sent there; nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "nothing changes; the other host received no connection (no token)",
    },
    Case {
        test: "a_next_link_downgraded_to_http_stops_the_read",
        input: "`@odata.nextLink` to `http://` on Graph's own host",
        status: "failed",
        lines: &[
            "error group \"Staff [Synced Group]\" — could not be read: page 1 links to \"http://graph.example/v1.0/groups/00005a1e-0000-4000-8000-000000000001/members/microsoft.graph.user?$skiptoken=x\", outside Graph's https://graph.example; reading stopped and nothing was sent there; nothing in it was changed",
            "failed run — no selected group could be read from Entra; nothing was changed",
        ],
        effect: "nothing changes",
    },
    Case {
        test: "a_group_renamed_to_an_existing_target_groups_name_keeps_its_name_and_members",
        input: "Staff renamed in Entra to `Partners`, the name of a group made by hand in the target (memory target)",
        status: "completed with errors",
        lines: &[
            "error group \"Partners [Synced Group]\" — renaming the group failed: a group named \"Partners\" already exists",
            "created dana@contoso.com (Dana Doe) role ∅ → internal",
            "added to group dana@contoso.com (Dana Doe) ∅ → Partners [Synced Group]",
        ],
        effect: "the group keeps its name; the new member still joins",
    },
    Case {
        test: "in_highq_a_group_renamed_to_an_existing_groups_name_keeps_its_name_and_members",
        input: "The same in the HighQ emulator (ref 122)",
        status: "completed with errors",
        lines: &[
            "error group \"Partners [Synced Group]\" — renaming the group failed: HighQ already has a group with that name while renaming group 101 to \"Partners\" (ref 122: Group name \"Partners\" already exists); rename or remove the existing HighQ group, or rename the Entra group",
            "created dana@contoso.com (Dana Doe) role ∅ → internal",
            "added to group dana@contoso.com (Dana Doe) ∅ → Partners [Synced Group]",
        ],
        effect: "the group keeps its name; the new member still joins",
    },
    Case {
        test: "in_highq_a_new_group_named_like_a_group_made_by_hand_is_not_created",
        input: "A newly selected group named like a group made by hand in HighQ",
        status: "completed with errors",
        lines: &[
            "error group \"Partners [Synced Group]\" — creating the group failed: HighQ already has a group with that name while creating group \"Partners\" (ref 122: Group name \"Partners\" already exists); rename or remove the existing HighQ group, or rename the Entra group",
            "error alice@contoso.com (Alice Archer) — adding to group \"Partners [Synced Group]\" failed: skipped: the synced group does not exist in the target (creating it failed)",
        ],
        effect: "the hand-made group is untouched; nothing else changes",
    },
    Case {
        test: "in_highq_a_user_made_by_hand_with_an_accented_email_is_adopted",
        input: "A user made by hand in HighQ as `Émile.Zola@contoso.com`, the same address in Entra",
        status: "succeeded",
        lines: &[
            "adopted Émile.Zola@contoso.com (Émile Zola) — an existing target user with this email is now managed by dirsync",
            "updated Émile.Zola@contoso.com (Émile Zola) first name Emile → Émile",
            "added to group Émile.Zola@contoso.com (Émile Zola) ∅ → Staff [Synced Group]",
        ],
        effect: "adopted (looked up as Entra spells it), not created a second time",
    },
    Case {
        test: "in_highq_a_phone_with_letters_is_refused_for_that_user_only",
        input: "A phone with letters, into HighQ (ref 360)",
        status: "completed with errors",
        lines: &[
            "error dana@contoso.com (Dana Doe) — creating the user failed: HighQ refused the phone number while creating user dana@contoso.com (ref 360: Invalid phone number \"+1$555$CALL$NOW$ext$5\": use countrycode$areacode$number); HighQ needs countrycode$areacode$number, so correct the user's business phone in Entra",
            "created eve@contoso.com (Eve Evans) role ∅ → internal",
            "added to group eve@contoso.com (Eve Evans) ∅ → Staff [Synced Group]",
            "error dana@contoso.com (Dana Doe) — adding to group \"Staff [Synced Group]\" failed: skipped: the user does not exist in the target (creating or adopting it failed)",
        ],
        effect: "that user is not created; another new user with a good phone is (as `+44$20$7946$0958`, R6)",
    },
];

fn case(test: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.test == test)
        .unwrap_or_else(|| panic!("no case {test} in CASES"))
}

// ---------------------------------------------------------------------------------------------
// Report lines
// ---------------------------------------------------------------------------------------------

/// Long values are shown by their start and their length, so the table stays readable; the
/// tests check the full values in the target.
fn short(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= 60 {
        text.to_owned()
    } else {
        let start: String = text.chars().take(24).collect();
        format!("{start}…[{chars} chars]")
    }
}

/// One report entry as a line: `action who [field] [old → new] [— message]`.
fn line(entry: &ReportEntry) -> String {
    let mut parts = vec![entry.action.clone()];
    match entry.subject {
        SubjectKind::User => {
            let email = entry.email.clone().filter(|e| !e.is_empty());
            let id = entry.entra_id.as_ref().map(ToString::to_string);
            parts.push(short(&email.or(id).unwrap_or_default()));
            if let Some(name) = entry.name.as_deref().filter(|n| !n.is_empty()) {
                parts.push(format!("({})", short(name)));
            }
        }
        SubjectKind::Group => parts.push(format!(
            "group {:?}",
            short(entry.name.as_deref().unwrap_or_default())
        )),
        SubjectKind::Run => parts.push("run".to_owned()),
    }
    if let Some(field) = &entry.field {
        parts.push(field.clone());
    }
    if entry.old_value.is_some() || entry.new_value.is_some() {
        let value = |v: &Option<String>| v.as_deref().map_or("∅".to_owned(), short);
        parts.push(format!(
            "{} → {}",
            value(&entry.old_value),
            value(&entry.new_value)
        ));
    }
    if let Some(message) = entry.message.as_deref().filter(|m| !m.is_empty()) {
        parts.push(format!("— {message}"));
    }
    parts.join(" ")
}

// ---------------------------------------------------------------------------------------------
// The world every case starts from
// ---------------------------------------------------------------------------------------------

const TENANT_ID: &str = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";
const STAFF: &str = "00005a1e-0000-4000-8000-000000000001";
const ALICE: u32 = 1;
const BOB: u32 = 2;

fn uid(n: u32) -> String {
    format!("0000c0de-0000-4000-8000-{n:012x}")
}

/// A user as Graph sends it: `first.last@contoso.com`, enabled, no phone or job title.
fn person(n: u32, first: &str, last: &str) -> Value {
    let mail = format!("{}@contoso.com", first.to_lowercase());
    json!({
        "id": uid(n),
        "givenName": first,
        "surname": last,
        "displayName": format!("{first} {last}"),
        "mail": mail,
        "userPrincipalName": mail,
        "businessPhones": [],
        "jobTitle": null,
        "accountEnabled": true,
    })
}

/// `user` with `changes` (a JSON object) laid over it.
fn with(mut user: Value, changes: Value) -> Value {
    if let (Value::Object(user), Value::Object(changes)) = (&mut user, changes) {
        user.extend(changes);
    }
    user
}

fn tenant() -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: EntraObjectId::parse(TENANT_ID).unwrap(),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: EntraObjectId::parse(STAFF).unwrap(),
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

/// How a run ended and what its report says.
struct Synced {
    status: RunStatus,
    lines: Vec<String>,
}

struct Corpus<W: TargetWorld> {
    /// Addresses that change from run to run (ports), and the names the report lines use.
    aliases: std::sync::Mutex<Vec<(String, String)>>,
    entra: EntraDriver,
    world: W,
    store: Arc<PgStore>,
    ctx: SyncContext,
    /// The target after day 1.
    day_one: View,
}

impl<W: TargetWorld> Corpus<W> {
    /// Day 1: Staff holds Alice and Bob; one run syncs them.
    async fn start(pool: PgPool, world: W) -> Self {
        let tenant = tenant();
        let store = Arc::new(PgStore::new(pool));
        store.upsert_tenant(&tenant).await.unwrap();
        let entra = EntraDriver::start(&tenant).await;
        entra.emulator().edit(|d| {
            let t = d.tenant_mut(TENANT_ID).unwrap();
            t.put_user(person(ALICE, "Alice", "Archer"));
            t.put_user(person(BOB, "Bob", "Baker"));
            t.groups = vec![Group {
                id: STAFF.to_owned(),
                display_name: "Staff".to_owned(),
                members: vec![uid(ALICE), uid(BOB)],
            }];
        });
        let ctx = SyncContext {
            store: store.clone(),
            connector: Arc::new(FixedConnector {
                source: entra.source(),
                target: world.adapter(),
            }),
            settings: SyncSettings::default(),
        };
        let mut corpus = Self {
            aliases: Default::default(),
            entra,
            world,
            store,
            ctx,
            day_one: View {
                users: Default::default(),
                groups: Default::default(),
            },
        };
        let first = corpus.sync().await;
        assert_eq!(first.status, RunStatus::Succeeded, "{:#?}", first.lines);
        corpus.day_one = corpus.world.view().await;
        corpus
    }

    fn edit(&self, change: impl FnOnce(&mut TenantDirectory)) {
        self.entra
            .emulator()
            .edit(|d| change(d.tenant_mut(TENANT_ID).unwrap()));
    }

    /// Adds `users` to the directory and to Staff (as they are, even twice).
    fn join(&self, users: &[Value]) {
        self.edit(|t| {
            for user in users {
                let id = user["id"].as_str().unwrap_or("null-id").to_owned();
                match user["id"] {
                    Value::String(_) => t.put_user(user.clone()),
                    _ => {
                        t.users
                            .insert(id.clone(), user.as_object().unwrap().clone());
                    }
                }
                t.group_mut(STAFF).unwrap().members.push(id);
            }
        });
    }

    /// Report lines show `real` (an address with a port of the day) as `alias`.
    fn alias(&self, real: &str, alias: &str) {
        self.aliases
            .lock()
            .unwrap()
            .push((real.to_owned(), alias.to_owned()));
    }

    fn fault(&self, fault: Fault) {
        self.entra
            .emulator()
            .set_faults(FaultPlan::single(FaultRule {
                when: FaultTrigger::Always,
                path_contains: Some(format!("/groups/{STAFF}/members")),
                fault,
            }));
    }

    async fn sync(&self) -> Synced {
        let outcome = run_sync(
            &self.ctx,
            &TenantKey::parse("acme").unwrap(),
            Trigger::manual("corpus"),
            RunOptions::default(),
        )
        .await
        .expect("the run is recorded");
        let lines = self
            .store
            .run_entries(outcome.run_id)
            .await
            .unwrap()
            .iter()
            .map(|entry| {
                let aliases = self.aliases.lock().unwrap();
                aliases
                    .iter()
                    .fold(line(entry), |line, (real, alias)| line.replace(real, alias))
            })
            .collect();
        Synced {
            status: outcome.status,
            lines,
        }
    }

    /// Day 2: runs, and checks the report lines against the case's.
    async fn day_two(&self, test: &str) -> Synced {
        let synced = self.sync().await;
        let case = case(test);
        let expected: Vec<String> = case.lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            synced.lines, expected,
            "{test}: the report lines differ (left: actual)"
        );
        assert_eq!(
            synced.status.as_str(),
            case.status,
            "{test}: the run's status"
        );
        synced
    }

    async fn view(&self) -> View {
        self.world.view().await
    }
}

async fn memory(pool: PgPool) -> Corpus<MemoryWorld> {
    Corpus::start(pool, MemoryWorld::new()).await
}

async fn highq(pool: PgPool) -> Corpus<HighQWorld> {
    Corpus::start(pool, HighQWorld::start().await).await
}

/// A synced user as the view shows one created in Staff: an internal, active, managed user
/// with these names and no job title.
fn synced(first: &str, last: &str) -> UserView {
    (
        first.to_owned(),
        last.to_owned(),
        None,
        Role::Internal,
        UserStatus::Active,
        true,
    )
}

/// The day-1 view with `users` added to the target and to Staff.
fn with_members(day_one: &View, users: &[(&str, UserView)]) -> View {
    let mut view = day_one.clone();
    for (email, user) in users {
        view.users.insert(email.to_string(), user.clone());
        view.groups
            .get_mut("Staff")
            .expect("Staff")
            .1
            .insert(email.to_string());
    }
    view
}

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

fn document() -> String {
    let mut out = String::from(
        "# The hostile-directory corpus\n\n\
         Odd or hostile Entra inputs, each a test in `tests/hostile_directory.rs`: read by the real \
         Graph client from the Entra emulator, planned, and applied to the memory target (or the \
         HighQ emulator where its rules matter). Each test starts from the same day 1 — the \
         selected group Staff with Alice and Bob, synced — and brings the input on day 2. The \
         report lines below are that run's, exactly: the tests compare them with this table, \
         which is generated from the tests' own case list (`DIRSYNC_BLESS=1 cargo test --test \
         hostile_directory` rewrites it), so it cannot drift. Long values are shown by their \
         start and length. The last column says what else the test checks in the target; \
         \"nothing else changes\" means the target is exactly as day 1 left it.\n\n\
         | # | input | run | report lines of the run | the target |\n|---|---|---|---|---|\n",
    );
    // Controls, zero-width spaces and bidirectional controls are shown as escapes: a
    // right-to-left override would turn the rest of the row around.
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200c}' | '\u{200e}'..='\u{200f}' | '\u{feff}')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let cell = |text: &str| {
        let escaped: String = text
            .chars()
            .map(|c| {
                if hidden(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        escaped.replace('|', "\\|")
    };
    for (n, case) in CASES.iter().enumerate() {
        let lines = if case.lines.is_empty() {
            "(none)".to_owned()
        } else {
            case.lines
                .iter()
                .map(|l| format!("`{}`", cell(l).replace('`', "'")))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            n + 1,
            cell(case.input),
            case.status,
            lines,
            cell(case.effect)
        ));
    }
    out
}

#[test]
fn the_document_is_the_corpus_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/hostile-directory.md");
    let expected = document();
    if std::env::var_os("DIRSYNC_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == expected,
        "docs/hostile-directory.md is not the corpus table: run \
         `DIRSYNC_BLESS=1 cargo test --test hostile_directory the_document` to rewrite it"
    );
}

#[test]
fn every_case_has_its_test_and_there_are_at_least_thirty() {
    let source = include_str!("hostile_directory.rs");
    for case in CASES {
        assert!(
            source.contains(&format!("async fn {}(", case.test))
                && source.contains(&format!("day_two(\"{}\")", case.test)),
            "case {} has no test that runs it",
            case.test
        );
    }
    assert!(CASES.len() >= 30, "{} cases", CASES.len());
}

// ---------------------------------------------------------------------------------------------
// Emails
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn a_user_with_no_email_is_an_error_for_that_user_only(pool: PgPool) {
    let corpus = memory(pool).await;
    let dana = with(
        person(10, "Dana", "Doe"),
        json!({"mail": null, "userPrincipalName": null}),
    );
    corpus.join(&[dana]);

    let run = corpus
        .day_two("a_user_with_no_email_is_an_error_for_that_user_only")
        .await;

    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_user_principal_name_that_is_not_an_email_is_an_error_naming_it(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"mail": "", "userPrincipalName": "dana.doe"}),
    )]);

    corpus
        .day_two("a_user_principal_name_that_is_not_an_email_is_an_error_naming_it")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_guest_user_principal_name_is_an_error_naming_it(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Gus", "Guest"),
        json!({"mail": null, "userPrincipalName": "gus_fabrikam.com#EXT#@contoso.onmicrosoft.com"}),
    )]);

    corpus
        .day_two("a_guest_user_principal_name_is_an_error_naming_it")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_mail_with_two_at_signs_is_an_error(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"mail": "dana@@contoso.com"}),
    )]);

    corpus.day_two("a_mail_with_two_at_signs_is_an_error").await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_mail_written_with_a_display_name_is_an_error(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"mail": "Dana Doe <dana@contoso.com>"}),
    )]);

    corpus
        .day_two("a_mail_written_with_a_display_name_is_an_error")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn two_users_whose_emails_differ_only_in_case_are_both_errors(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[
        with(
            person(10, "Dana", "Doe"),
            json!({"mail": "Dana.Doe@contoso.com"}),
        ),
        with(
            person(11, "Dan", "Doe"),
            json!({"mail": "dana.doe@CONTOSO.com"}),
        ),
    ]);

    corpus
        .day_two("two_users_whose_emails_differ_only_in_case_are_both_errors")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn two_users_whose_emails_differ_only_in_unicode_case_are_both_errors(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[
        with(
            person(10, "Émile", "Zola"),
            json!({"mail": "ÉMILE@contoso.com"}),
        ),
        with(
            person(11, "Emile", "Zola"),
            json!({"mail": "émile@contoso.com"}),
        ),
    ]);

    corpus
        .day_two("two_users_whose_emails_differ_only_in_unicode_case_are_both_errors")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn two_users_whose_emails_differ_only_in_unicode_normalization_are_both_errors(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[
        with(
            person(10, "Zoë", "One"),
            json!({"mail": "zo\u{eb}@contoso.com"}),
        ),
        with(
            person(11, "Zoë", "Two"),
            json!({"mail": "zoe\u{308}@contoso.com"}),
        ),
    ]);

    corpus
        .day_two("two_users_whose_emails_differ_only_in_unicode_normalization_are_both_errors")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_email_longer_than_rfc_5321_allows_is_an_error(pool: PgPool) {
    let corpus = memory(pool).await;
    let long = format!("dana@{}.contoso.com", "d".repeat(300));
    corpus.join(&[with(person(10, "Dana", "Doe"), json!({"mail": long}))]);

    corpus
        .day_two("an_email_longer_than_rfc_5321_allows_is_an_error")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_email_with_a_zero_width_space_is_an_error(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Alice", "Impostor"),
        json!({"mail": "ali\u{200b}ce@contoso.com"}),
    )]);

    corpus
        .day_two("an_email_with_a_zero_width_space_is_an_error")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_email_with_a_right_to_left_override_is_an_error(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Mallory", "Moc"),
        json!({"mail": "mallory\u{202e}moc.liame@contoso.com"}),
    )]);

    corpus
        .day_two("an_email_with_a_right_to_left_override_is_an_error")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn a_513_character_name_is_cut_to_512_with_a_warning(pool: PgPool) {
    let corpus = memory(pool).await;
    let given = "G".repeat(513);
    corpus.join(&[with(person(10, "Dana", "Doe"), json!({"givenName": given}))]);

    corpus
        .day_two("a_513_character_name_is_cut_to_512_with_a_warning")
        .await;

    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced(&"G".repeat(512), "Doe"))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn names_and_a_job_title_of_10000_characters_are_cut_with_a_warning_each(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"givenName": "é".repeat(10_000), "surname": "S".repeat(10_000),
               "jobTitle": "J".repeat(10_000)}),
    )]);

    corpus
        .day_two("names_and_a_job_title_of_10000_characters_are_cut_with_a_warning_each")
        .await;

    let mut dana = synced(&"é".repeat(512), &"S".repeat(512));
    dana.2 = Some("J".repeat(512));
    let expected = with_members(&corpus.day_one, &[("dana@contoso.com", dana)]);
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_10000_character_display_name_as_the_only_name_is_split_then_cut(pool: PgPool) {
    let corpus = memory(pool).await;
    let display = format!("Dana {}", "D".repeat(9_995));
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"givenName": null, "surname": null, "displayName": display}),
    )]);

    corpus
        .day_two("a_10000_character_display_name_as_the_only_name_is_split_then_cut")
        .await;

    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced("Dana", &"D".repeat(512)))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn emoji_names_reach_the_target_unchanged(pool: PgPool) {
    let corpus = memory(pool).await;
    let (first, last) = ("👩\u{200d}👩\u{200d}👧 Dana", "Doe 🏳️\u{200d}🌈");
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"givenName": first, "surname": last}),
    )]);

    corpus
        .day_two("emoji_names_reach_the_target_unchanged")
        .await;

    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced(first, last))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn right_to_left_names_and_bidi_controls_reach_the_target_unchanged(pool: PgPool) {
    let corpus = memory(pool).await;
    let (first, last) = ("دانا", "\u{202e}eoD\u{202c} כהן");
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"givenName": first, "surname": last}),
    )]);

    corpus
        .day_two("right_to_left_names_and_bidi_controls_reach_the_target_unchanged")
        .await;

    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced(first, last))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_name_of_600_combining_marks_is_cut_on_a_character_boundary(pool: PgPool) {
    let corpus = memory(pool).await;
    let zalgo = format!("Z{}", "\u{301}\u{334}".repeat(300));
    corpus.join(&[with(person(10, "Dana", "Doe"), json!({"givenName": zalgo}))]);

    corpus
        .day_two("a_name_of_600_combining_marks_is_cut_on_a_character_boundary")
        .await;

    let cut: String = zalgo.chars().take(512).collect();
    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced(&cut, "Doe"))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_name_of_zero_width_spaces_falls_back_to_the_display_name(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"givenName": "\u{200b}\u{200b}", "surname": "Doe", "displayName": "Dana Doe"}),
    )]);

    corpus
        .day_two("a_name_of_zero_width_spaces_falls_back_to_the_display_name")
        .await;

    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced("Dana", "Doe"))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn names_starting_with_formula_characters_reach_the_target_as_text(pool: PgPool) {
    let corpus = memory(pool).await;
    let users = [
        (10, "=HYPERLINK(\"http://evil\",\"x\")", "eq"),
        (11, "+1+cmd|' /C calc'!A0", "plus"),
        (12, "-2+3", "minus"),
        (13, "@SUM(A1:A9)", "at"),
    ];
    corpus.join(
        &users
            .iter()
            .map(|(n, first, mail)| {
                with(
                    person(*n, "X", "Formula"),
                    json!({"givenName": first, "mail": format!("{mail}@contoso.com")}),
                )
            })
            .collect::<Vec<_>>(),
    );

    corpus
        .day_two("names_starting_with_formula_characters_reach_the_target_as_text")
        .await;

    let added: Vec<(String, _)> = users
        .iter()
        .map(|(_, first, mail)| (format!("{mail}@contoso.com"), synced(first, "Formula")))
        .collect();
    let added: Vec<(&str, _)> = added.iter().map(|(e, u)| (e.as_str(), u.clone())).collect();
    assert_eq!(corpus.view().await, with_members(&corpus.day_one, &added));
}

#[sqlx::test(migrations = "./migrations")]
async fn control_characters_and_nul_in_names_are_replaced_with_a_warning(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"givenName": "Da\u{0}na", "surname": "Doe\r\n", "displayName": "Da\u{0}na Doe",
               "jobTitle": "Partner\tLitigation"}),
    )]);

    let run = corpus
        .day_two("control_characters_and_nul_in_names_are_replaced_with_a_warning")
        .await;

    assert_eq!(run.status, RunStatus::Succeeded);
    let mut dana = synced("Da na", "Doe");
    dana.2 = Some("Partner Litigation".to_owned());
    let expected = with_members(&corpus.day_one, &[("dana@contoso.com", dana)]);
    assert_eq!(corpus.view().await, expected);
}

// ---------------------------------------------------------------------------------------------
// Nulls and types where Graph's schema says otherwise
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn a_member_with_a_null_id_fails_the_group_and_changes_nothing(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(person(10, "Dana", "Doe"), json!({"id": null}))]);
    corpus.edit(|t| t.users.get_mut(&uid(ALICE)).unwrap()["jobTitle"] = json!("Partner"));

    let run = corpus
        .day_two("a_member_with_a_null_id_fails_the_group_and_changes_nothing")
        .await;

    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        corpus.view().await,
        corpus.day_one,
        "not even Alice's job title"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn nulls_in_business_phones_are_skipped(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"businessPhones": [null, "+1 555 0100", null]}),
    )]);

    corpus.day_two("nulls_in_business_phones_are_skipped").await;

    let phone = corpus.world.target.with(|s| {
        s.user_by_email("dana@contoso.com")
            .map(|(_, u)| u.fields.phone.clone())
    });
    assert_eq!(phone, Some(Some("+1 555 0100".into())));
    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced("Dana", "Doe"))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_user_with_every_property_null_is_an_error_for_that_user_only(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[
        json!({"id": uid(10), "givenName": null, "surname": null, "displayName": null,
        "mail": null, "userPrincipalName": null, "businessPhones": null, "jobTitle": null,
        "accountEnabled": null}),
    ]);

    corpus
        .day_two("a_user_with_every_property_null_is_an_error_for_that_user_only")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_number_where_text_belongs_fails_the_group_naming_the_property(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(person(10, "Dana", "Doe"), json!({"surname": 42}))]);

    corpus
        .day_two("a_number_where_text_belongs_fails_the_group_naming_the_property")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn account_enabled_as_text_fails_the_group_naming_the_property(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.edit(|t| t.users.get_mut(&uid(BOB)).unwrap()["accountEnabled"] = json!("false"));

    corpus
        .day_two("account_enabled_as_text_fails_the_group_naming_the_property")
        .await;

    assert_eq!(
        corpus.view().await,
        corpus.day_one,
        "Bob is not deactivated"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_group_whose_display_name_goes_blank_keeps_its_synced_name(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.edit(|t| t.group_mut(STAFF).unwrap().display_name = " \u{200b} ".to_owned());

    corpus
        .day_two("a_group_whose_display_name_goes_blank_keeps_its_synced_name")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one, "not renamed to its ID");
}

// ---------------------------------------------------------------------------------------------
// Graph's structure: types, references, IDs, pages and links
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn a_member_of_an_unknown_odata_type_is_ignored_with_a_warning(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Agent", "Smith"),
        json!({"@odata.type": "#microsoft.graph.agentUser"}),
    )]);

    corpus
        .day_two("a_member_of_an_unknown_odata_type_is_ignored_with_a_warning")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_member_whose_user_object_404s_is_deactivated_as_deleted_in_entra(pool: PgPool) {
    let corpus = memory(pool).await;
    // Staff still lists Bob, but his user object is gone: GET /users/{id} answers 404.
    corpus.edit(|t| {
        t.users.remove(&uid(BOB));
    });

    corpus
        .day_two("a_member_whose_user_object_404s_is_deactivated_as_deleted_in_entra")
        .await;

    let mut expected = corpus.day_one.clone();
    expected.users.get_mut("bob@contoso.com").unwrap().4 = UserStatus::Inactive;
    expected
        .groups
        .get_mut("Staff")
        .unwrap()
        .1
        .remove("bob@contoso.com");
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_user_id_that_is_not_a_guid_fails_the_group_naming_it(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.join(&[with(
        person(10, "Dana", "Doe"),
        json!({"id": "../../users/alice"}),
    )]);

    corpus
        .day_two("a_user_id_that_is_not_a_guid_fails_the_group_naming_it")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_page_listing_a_member_twice_counts_it_once_with_a_warning(pool: PgPool) {
    let corpus = memory(pool).await;
    let dana = person(10, "Dana", "Doe");
    corpus.join(&[dana.clone(), dana]);

    corpus
        .day_two("a_page_listing_a_member_twice_counts_it_once_with_a_warning")
        .await;

    let expected = with_members(
        &corpus.day_one,
        &[("dana@contoso.com", synced("Dana", "Doe"))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_member_listed_twice_with_different_data_fails_the_group(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.edit(|t| {
        // Bob listed again, under his ID spelt in capitals, holding other data.
        let mut twin = person(BOB, "Robert", "Baker");
        twin["id"] = json!(uid(BOB).to_uppercase());
        t.users
            .insert("bob-twin".to_owned(), twin.as_object().unwrap().clone());
        t.group_mut(STAFF)
            .unwrap()
            .members
            .push("bob-twin".to_owned());
    });

    corpus
        .day_two("a_member_listed_twice_with_different_data_fails_the_group")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_next_link_to_another_host_stops_the_read_and_sends_nothing_there(pool: PgPool) {
    let corpus = memory(pool).await;
    let elsewhere = std::net::TcpListener::bind("127.0.0.2:0").expect("a listener");
    elsewhere.set_nonblocking(true).unwrap();
    let host = format!(
        "https://127.0.0.2:{}",
        elsewhere.local_addr().unwrap().port()
    );
    corpus.alias(&host, "https://elsewhere.example");
    corpus.alias(corpus.entra.emulator().base_url(), "https://graph.example");
    let url = format!("{host}/v1.0/groups/{STAFF}/members/microsoft.graph.user?$skiptoken=x");
    corpus.fault(Fault::NextLinkTo { url });

    corpus
        .day_two("a_next_link_to_another_host_stops_the_read_and_sends_nothing_there")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing (no token) was sent to the other host"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_next_link_downgraded_to_http_stops_the_read(pool: PgPool) {
    let corpus = memory(pool).await;
    let http = corpus
        .entra
        .emulator()
        .base_url()
        .replacen("https://", "http://", 1);
    corpus.alias(&http, "http://graph.example");
    corpus.alias(corpus.entra.emulator().base_url(), "https://graph.example");
    let url = format!("{http}/v1.0/groups/{STAFF}/members/microsoft.graph.user?$skiptoken=x");
    corpus.fault(Fault::NextLinkTo { url });

    corpus
        .day_two("a_next_link_downgraded_to_http_stops_the_read")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

// ---------------------------------------------------------------------------------------------
// Collisions with the target and between users
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn a_group_renamed_to_an_existing_target_groups_name_keeps_its_name_and_members(
    pool: PgPool,
) {
    let corpus = memory(pool).await;
    corpus.world.add_manual_group("Partners", &[]).await;
    let day_one = corpus.view().await;
    corpus.edit(|t| t.group_mut(STAFF).unwrap().display_name = "Partners".to_owned());
    corpus.join(&[person(10, "Dana", "Doe")]);

    corpus
        .day_two("a_group_renamed_to_an_existing_target_groups_name_keeps_its_name_and_members")
        .await;

    let expected = with_members(&day_one, &[("dana@contoso.com", synced("Dana", "Doe"))]);
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn in_highq_a_group_renamed_to_an_existing_groups_name_keeps_its_name_and_members(
    pool: PgPool,
) {
    let corpus = highq(pool).await;
    corpus.world.add_manual_group("Partners", &[]).await;
    let day_one = corpus.view().await;
    corpus.edit(|t| t.group_mut(STAFF).unwrap().display_name = "Partners".to_owned());
    corpus.join(&[person(10, "Dana", "Doe")]);

    corpus
        .day_two("in_highq_a_group_renamed_to_an_existing_groups_name_keeps_its_name_and_members")
        .await;

    let expected = with_members(&day_one, &[("dana@contoso.com", synced("Dana", "Doe"))]);
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_email_changing_to_another_users_makes_both_errors_and_changes_neither(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.edit(|t| {
        let alice = t.users.get_mut(&uid(ALICE)).unwrap();
        alice["mail"] = json!("bob@contoso.com");
        alice["jobTitle"] = json!("Partner");
    });

    corpus
        .day_two("an_email_changing_to_another_users_makes_both_errors_and_changes_neither")
        .await;

    // R8: two Entra users with one email are both errors; the synced ones keep their state.
    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn two_users_swapping_emails_in_one_run_are_both_errors(pool: PgPool) {
    let corpus = memory(pool).await;
    corpus.edit(|t| {
        t.users.get_mut(&uid(ALICE)).unwrap()["mail"] = json!("bob@contoso.com");
        t.users.get_mut(&uid(BOB)).unwrap()["mail"] = json!("alice@contoso.com");
    });

    corpus
        .day_two("two_users_swapping_emails_in_one_run_are_both_errors")
        .await;

    assert_eq!(corpus.view().await, corpus.day_one);
}

#[sqlx::test(migrations = "./migrations")]
async fn in_highq_a_phone_with_letters_is_refused_for_that_user_only(pool: PgPool) {
    let corpus = highq(pool).await;
    corpus.join(&[
        with(
            person(10, "Dana", "Doe"),
            json!({"businessPhones": ["+1 555 CALL-NOW ext. 5"]}),
        ),
        with(
            person(11, "Eve", "Evans"),
            json!({"businessPhones": ["+44 (20) 7946 0958"]}),
        ),
    ]);

    corpus
        .day_two("in_highq_a_phone_with_letters_is_refused_for_that_user_only")
        .await;

    let phone = |email: &str| {
        corpus
            .world
            .emulator
            .with(|s| s.user_by_email(email).map(|u| u.phone.clone()))
    };
    assert_eq!(phone("dana@contoso.com"), None, "not created");
    assert_eq!(
        phone("eve@contoso.com"),
        Some("+44$20$7946$0958".to_owned())
    );
    let expected = with_members(
        &corpus.day_one,
        &[("eve@contoso.com", synced("Eve", "Evans"))],
    );
    assert_eq!(corpus.view().await, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn in_highq_a_new_group_named_like_a_group_made_by_hand_is_not_created(pool: PgPool) {
    let corpus = highq(pool).await;
    corpus.world.add_manual_group("Partners", &[]).await;
    let day_one = corpus.view().await;
    const PARTNERS: &str = "00005a1e-0000-4000-8000-000000000002";
    corpus.edit(|t| {
        t.groups.push(Group {
            id: PARTNERS.to_owned(),
            display_name: "Partners".to_owned(),
            members: vec![uid(ALICE)],
        })
    });
    let mut tenant = tenant();
    tenant.policy.selected_groups.push(SelectedGroup {
        entra_id: EntraObjectId::parse(PARTNERS).unwrap(),
        role: Role::Internal,
    });
    corpus.store.upsert_tenant(&tenant).await.unwrap();

    corpus
        .day_two("in_highq_a_new_group_named_like_a_group_made_by_hand_is_not_created")
        .await;

    let view = corpus.view().await;
    assert_eq!(view, day_one);
    assert_eq!(
        view.groups["Partners"].0,
        GroupKind::System,
        "still the hand-made one"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn in_highq_a_user_made_by_hand_with_an_accented_email_is_adopted(pool: PgPool) {
    let corpus = highq(pool).await;
    corpus
        .world
        .add_manual_user(&support::world::ManualUser {
            email: "Émile.Zola@contoso.com",
            first_name: "Emile",
            last_name: "Zola",
            job_title: None,
            status: UserStatus::Active,
        })
        .await;
    let day_one = corpus.view().await;
    corpus.join(&[with(
        person(10, "Émile", "Zola"),
        json!({"mail": "Émile.Zola@contoso.com"}),
    )]);

    corpus
        .day_two("in_highq_a_user_made_by_hand_with_an_accented_email_is_adopted")
        .await;

    // The HighQ view keys users by their email in ASCII lower case.
    let expected = with_members(
        &day_one,
        &[("Émile.zola@contoso.com", synced("Émile", "Zola"))],
    );
    assert_eq!(corpus.view().await, expected);
    assert_eq!(
        corpus.world.emulator.with(|s| s.users.len()),
        day_one.users.len(),
        "adopted, not created a second time"
    );
}
