//! The `AccessStore` conformance suite: grants, sign-in attempts, sessions, API tokens and the
//! audit log. Each case is a function over any store that is also a `Store` (to create
//! tenants); `on_both_backends!` below runs every case on PostgreSQL and on SQLite.

use chrono::{Duration, SubsecRound, Utc};
use dirsync::domain::{AccessRole, DeactivationStatus, EntraObjectId, TenantKey};
use dirsync::plan::TenantPolicy;
use dirsync::store::access::{
    AccessStore, AuditEvent, AuditFilter, AuditOutcome, EntraIdentity, NewGrant, NewToken,
    SecretHash, SessionRecord, SignInAttempt,
};
use dirsync::store::{Store, StoreError};
use dirsync::tenant::{Retention, Tenant};
use serde_json::json;
use support::backend::TestDb;

mod support;

mod suite {
    use super::*;

    fn key(text: &str) -> TenantKey {
        TenantKey::parse(text).unwrap()
    }

    fn person(n: u128) -> EntraIdentity {
        EntraIdentity {
            tenant_id: uuid::Uuid::from_u128(0xd1e5 << 64).into(),
            object_id: uuid::Uuid::from_u128(n).into(),
        }
    }

    fn hash(n: u8) -> SecretHash {
        SecretHash([n; 32])
    }

    pub async fn tenant<S: Store + ?Sized>(store: &S, name: &str, retention: Retention) {
        store
            .upsert_tenant(&Tenant {
                key: key(name),
                display_name: name.to_owned(),
                entra_tenant_id: EntraObjectId::from(uuid::Uuid::from_u128(0xd1e5 << 64)),
                time_zone: chrono_tz::UTC,
                report_retention: retention,
                policy: TenantPolicy {
                    selected_groups: vec![],
                    deactivation_status: DeactivationStatus::Inactive,
                    deletion_threshold: 500,
                },
                source: Default::default(),
                target: None,
            })
            .await
            .unwrap();
    }

    pub async fn a_grant_is_one_per_person_and_scope_and_regranting_replaces_the_role<
        S: AccessStore + Store + ?Sized,
    >(
        store: &S,
    ) {
        tenant(store, "acme", Retention::ThreeMonths).await;
        tenant(store, "beta", Retention::ThreeMonths).await;
        let grant = |n, role, tenant: Option<&str>| NewGrant {
            identity: person(n),
            role,
            tenant: tenant.map(key),
            label: Some(format!("person {n}")),
            granted_by: "test".to_owned(),
        };
        let op = store
            .grant(&grant(1, AccessRole::Operator, None))
            .await
            .unwrap();
        let viewer = store
            .grant(&grant(2, AccessRole::Viewer, Some("acme")))
            .await
            .unwrap();
        store
            .grant(&grant(2, AccessRole::Viewer, Some("beta")))
            .await
            .unwrap();
        let admin = store
            .grant(&grant(2, AccessRole::TenantAdmin, Some("acme")))
            .await
            .unwrap();
        assert_eq!(admin.id, viewer.id, "the same scope is one grant");
        assert_eq!(admin.role, AccessRole::TenantAdmin);
        assert_eq!(admin.tenant, Some(key("acme")));
        assert_eq!(op.tenant, None);

        let of_two = store.grants_of(&person(2)).await.unwrap();
        let scopes: Vec<_> = of_two.iter().map(|g| (g.role, g.tenant.clone())).collect();
        assert_eq!(
            scopes,
            vec![
                (AccessRole::TenantAdmin, Some(key("acme"))),
                (AccessRole::Viewer, Some(key("beta")))
            ]
        );
        let on_acme: Vec<i64> = store
            .grants(Some(&key("acme")))
            .await
            .unwrap()
            .iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(
            on_acme,
            vec![op.id, admin.id],
            "operators hold on every tenant"
        );
        assert_eq!(store.grants(None).await.unwrap().len(), 3);

        let missing = store
            .grant(&grant(3, AccessRole::Viewer, Some("nobody")))
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );

        assert_eq!(
            store.revoke_grant(admin.id).await.unwrap(),
            Some(admin.clone())
        );
        assert_eq!(store.revoke_grant(admin.id).await.unwrap(), None);
        assert_eq!(store.grants_of(&person(2)).await.unwrap().len(), 1);
        assert_eq!(
            store
                .tenants_of_directory(&person(1).tenant_id)
                .await
                .unwrap(),
            vec![key("acme"), key("beta")]
        );
    }

    pub async fn a_sign_in_attempt_is_taken_once_and_not_after_it_expires<
        S: AccessStore + ?Sized,
    >(
        store: &S,
    ) {
        let now = Utc::now().trunc_subsecs(6);
        let attempt = |n: u8, expires_in: Duration| SignInAttempt {
            id_hash: hash(n),
            state: format!("state-{n}"),
            nonce: format!("nonce-{n}"),
            pkce_verifier: format!("verifier-{n}"),
            return_to: "/".to_owned(),
            created_at: now,
            expires_at: now + expires_in,
        };
        store
            .save_sign_in(&attempt(1, Duration::minutes(10)))
            .await
            .unwrap();
        store
            .save_sign_in(&attempt(2, Duration::minutes(10)))
            .await
            .unwrap();
        let taken = store.take_sign_in(&hash(1), now).await.unwrap().unwrap();
        assert_eq!(taken.nonce, "nonce-1");
        assert_eq!(taken.pkce_verifier, "verifier-1");
        assert!(store.take_sign_in(&hash(1), now).await.unwrap().is_none());
        let later = now + Duration::minutes(11);
        assert!(store.take_sign_in(&hash(2), later).await.unwrap().is_none());
        assert!(store.take_sign_in(&hash(9), now).await.unwrap().is_none());
    }

    pub async fn a_session_lives_until_its_idle_or_absolute_expiry_or_sign_out<
        S: AccessStore + ?Sized,
    >(
        store: &S,
    ) {
        let start = Utc::now().trunc_subsecs(6);
        let idle = Duration::minutes(30);
        let session = |n: u8| SessionRecord {
            id_hash: hash(n),
            identity: person(u128::from(n)),
            name: format!("Person {n}"),
            username: Some(format!("p{n}@contoso.com")),
            app_roles: vec!["DirSync.Viewer".to_owned()],
            csrf_token: format!("csrf-{n}"),
            created_at: start,
            last_seen_at: start,
            expires_at: start + Duration::hours(8),
        };
        for n in 1..=3 {
            store.create_session(&session(n)).await.unwrap();
        }
        let found = store
            .session(&hash(1), start + Duration::minutes(20), idle)
            .await
            .unwrap()
            .expect("within the idle time");
        assert_eq!(found.csrf_token, "csrf-1");
        assert_eq!(found.app_roles, vec!["DirSync.Viewer".to_owned()]);
        assert_eq!(found.last_seen_at, start + Duration::minutes(20));
        // Seen at 20 minutes, so alive at 45 (idle counts from the last request) …
        assert!(
            store
                .session(&hash(1), start + Duration::minutes(45), idle)
                .await
                .unwrap()
                .is_some()
        );
        // … while session 2, never seen since the start, is idle by then.
        assert!(
            store
                .session(&hash(2), start + Duration::minutes(45), idle)
                .await
                .unwrap()
                .is_none()
        );
        // Kept busy, session 1 still ends at its absolute expiry.
        let mut at = start + Duration::minutes(45);
        while at < start + Duration::hours(8) {
            assert!(store.session(&hash(1), at, idle).await.unwrap().is_some());
            at += Duration::minutes(25);
        }
        assert!(store.session(&hash(1), at, idle).await.unwrap().is_none());

        assert!(store.delete_session(&hash(3)).await.unwrap());
        assert!(!store.delete_session(&hash(3)).await.unwrap());
        assert!(
            store
                .session(&hash(3), start, idle)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .purge_expired_sessions(start + Duration::hours(9), idle)
                .await
                .unwrap(),
            2
        );
    }

    pub async fn a_token_works_until_it_expires_or_is_revoked_and_records_its_last_use<
        S: AccessStore + Store + ?Sized,
    >(
        store: &S,
    ) {
        tenant(store, "acme", Retention::ThreeMonths).await;
        let now = Utc::now().trunc_subsecs(6);
        let token = |n: u8, role, tenant: Option<&str>, days| NewToken {
            prefix: format!("dsy_prefix{n:02}"),
            secret_hash: hash(n),
            name: format!("token {n}"),
            role,
            tenant: tenant.map(key),
            created_by: "test".to_owned(),
            created_at: now,
            expires_at: now + Duration::days(days),
        };
        let ci = store
            .create_token(&token(1, AccessRole::TenantAdmin, Some("acme"), 30))
            .await
            .unwrap();
        assert_eq!(ci.tenant, Some(key("acme")));
        assert_eq!(ci.last_used_at, None);
        let op = store
            .create_token(&token(2, AccessRole::Operator, None, 1))
            .await
            .unwrap();
        let missing = store
            .create_token(&token(3, AccessRole::Viewer, Some("nobody"), 1))
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );

        let used = store.use_token(&hash(1), now).await.unwrap().unwrap();
        assert_eq!((used.id, used.last_used_at), (ci.id, Some(now)));
        assert!(store.use_token(&hash(9), now).await.unwrap().is_none());
        assert!(
            store
                .use_token(&hash(2), now + Duration::days(2))
                .await
                .unwrap()
                .is_none(),
            "expired"
        );

        let revoked = store
            .revoke_token(ci.id, "alice", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_by.as_deref(), Some("alice"));
        let again = store
            .revoke_token(ci.id, "bob", now + Duration::hours(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.revoked_by.as_deref(), again.revoked_at),
            (Some("alice"), Some(now))
        );
        assert!(store.use_token(&hash(1), now).await.unwrap().is_none());
        assert_eq!(store.revoke_token(999, "x", now).await.unwrap(), None);
        let listed: Vec<i64> = store.tokens().await.unwrap().iter().map(|t| t.id).collect();
        assert_eq!(listed, vec![op.id, ci.id], "newest first");
    }

    pub async fn audit_events_filter_page_and_are_purged_per_retention<
        S: AccessStore + Store + ?Sized,
    >(
        store: &S,
    ) {
        tenant(store, "monthly", Retention::OneMonth).await;
        tenant(store, "biannual", Retention::SixMonths).await;
        let now = Utc::now().trunc_subsecs(6);
        let event = |days_ago: i64, tenant: Option<&str>, action: &str| AuditEvent {
            at: now - Duration::days(days_ago),
            tenant: tenant.map(key),
            actor: "Alice".to_owned(),
            actor_id: Some("entra:a/b".to_owned()),
            action: action.to_owned(),
            outcome: AuditOutcome::Ok,
            detail: json!({"days_ago": days_ago}),
            source_ip: Some("192.0.2.1".to_owned()),
            forwarded_for: None,
            user_agent: Some("test".to_owned()),
        };
        for e in [
            event(400, None, "grant"),
            event(370, Some("monthly"), "tenant_update"),
            event(300, None, "sign_in"),
            event(200, Some("biannual"), "run_approve"),
            event(100, Some("biannual"), "run_force"),
            event(40, Some("monthly"), "run_force"),
            event(39, Some("monthly"), "tenant_update"),
            event(10, Some("monthly"), "report_download"),
            event(1, Some("gone"), "tenant_update"),
        ] {
            store.record_audit(&e).await.unwrap();
        }
        let all = store
            .audit_events(&AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 9);
        assert_eq!(all[0].event.action, "tenant_update", "newest first");
        assert_eq!(
            all[0].event.detail["tenant"], "gone",
            "an unknown tenant is named in the detail"
        );
        let monthly = store
            .audit_events(&AuditFilter {
                tenant: Some(key("monthly")),
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(monthly.len(), 4);
        let page = store
            .audit_events(&AuditFilter {
                action: Some("run_force".to_owned()),
                limit: 1,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page[0].event.tenant, Some(key("monthly")));
        let next = store
            .audit_events(&AuditFilter {
                action: Some("run_force".to_owned()),
                before_id: Some(page[0].id),
                limit: 1,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(next[0].event.tenant, Some(key("biannual")));

        // Runs and reports: one month for "monthly", six for "biannual"; the rest a year.
        assert_eq!(store.purge_audit(now).await.unwrap(), 4);
        let kept: Vec<i64> = store
            .audit_events(&AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|r| r.event.detail["days_ago"].as_i64().unwrap())
            .collect();
        assert_eq!(kept, vec![1, 10, 39, 100, 300]);
    }
}

async fn a_grant_is_one_per_person_and_scope_and_regranting_replaces_the_role(db: TestDb) {
    suite::a_grant_is_one_per_person_and_scope_and_regranting_replaces_the_role(db.store.as_ref())
        .await;
}

async fn a_sign_in_attempt_is_taken_once_and_not_after_it_expires(db: TestDb) {
    suite::a_sign_in_attempt_is_taken_once_and_not_after_it_expires(db.store.as_ref()).await;
}

async fn a_session_lives_until_its_idle_or_absolute_expiry_or_sign_out(db: TestDb) {
    suite::a_session_lives_until_its_idle_or_absolute_expiry_or_sign_out(db.store.as_ref()).await;
}

async fn a_token_works_until_it_expires_or_is_revoked_and_records_its_last_use(db: TestDb) {
    suite::a_token_works_until_it_expires_or_is_revoked_and_records_its_last_use(db.store.as_ref())
        .await;
}

async fn audit_events_filter_page_and_are_purged_per_retention(db: TestDb) {
    suite::audit_events_filter_page_and_are_purged_per_retention(db.store.as_ref()).await;
}

on_both_backends!(
    a_grant_is_one_per_person_and_scope_and_regranting_replaces_the_role,
    a_sign_in_attempt_is_taken_once_and_not_after_it_expires,
    a_session_lives_until_its_idle_or_absolute_expiry_or_sign_out,
    a_token_works_until_it_expires_or_is_revoked_and_records_its_last_use,
    audit_events_filter_page_and_are_purged_per_retention,
);
