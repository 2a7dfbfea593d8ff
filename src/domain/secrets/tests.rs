//! Unit tests of the secrets domain on a real (temporary) store.

use std::collections::BTreeMap;

use crate::crypto::SecretKey;
use crate::domain::accounts::tables::USERS;
use crate::domain::dotenv;
use crate::domain::orgs::tables::ORGANIZATIONS;
use crate::domain::records::{Membership, Organization, User};
use crate::domain::secrets::environments::{self, EnvironmentFilter};
use crate::domain::secrets::records::Variable;
use crate::domain::secrets::sealing::DECRYPTION_ERROR;
use crate::domain::secrets::tables::{
    ORG_DATA_KEYS, VARIABLES, VARIABLE_VERSIONS, VERSIONS_BY_VARIABLE,
};
use crate::domain::secrets::variables::{self, VariableChange};
use crate::domain::secrets::{history, projects, transfer, Caller, Vault};
use crate::domain::{CredentialKind, Error, ErrorCode, Principal, Role};
use crate::services::rotation as rotate;
use crate::store::{Reader, Store, Writer as _};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    vault: std::sync::Arc<Vault>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let master = SecretKey::generate().unwrap();
    let (store, _) = Store::open(
        &dir.path().join("t.redb"),
        &master,
        8,
        16,
        crate::services::schema::MIGRATIONS,
    )
    .unwrap();
    store
        .write_blocking(|tx| -> Result<(), Error> {
            for (id, name) in [(1u64, "owner"), (2, "editor"), (3, "viewer"), (4, "other")] {
                let u = User {
                    id,
                    username: name.into(),
                    email: format!("{name}@example.com"),
                    first_name: name.into(),
                    last_name: "User".into(),
                    password_hash: String::new(),
                    is_staff: false,
                    is_active: true,
                    date_joined: 0,
                    last_login: None,
                    credentials_epoch: 0,
                };
                tx.put(USERS, id, &u)?;
            }
            for org in [10u64, 20] {
                let o = Organization {
                    id: org,
                    uuid: String::new(),
                    name: format!("Org {org}"),
                    description: None,
                    created_by: 1,
                    created_at: 0,
                    updated_at: 0,
                };
                tx.put(ORGANIZATIONS, org, &o)?;
            }
            let _ = Membership { user_id: 1, organization_id: 10, role: Role::Admin, joined_at: 0 };
            Ok(())
        })
        .unwrap();
    let vault = std::sync::Arc::new(Vault::new(master, 3, 30));
    Fixture { _dir: dir, store, vault }
}

fn caller(user: u64, roles: &[(u64, Role)]) -> Caller {
    let principal = Principal {
        user_id: user,
        username: format!("u{user}"),
        email: format!("u{user}@example.com"),
        full_name: format!("User {user}"),
        is_staff: false,
        memberships: roles.iter().copied().collect::<BTreeMap<_, _>>(),
        credential: CredentialKind::Basic,
        read_only: false,
        org_scope: None,
        company_id: None,
        global_metrics: false,
        limits: Default::default(),
    };
    Caller::new(principal, None)
}

fn owner() -> Caller {
    caller(1, &[(10, Role::Admin)])
}

impl Fixture {
    fn w<T: Send + 'static>(
        &self,
        c: Caller,
        f: impl Fn(&crate::store::WriteTx, &Caller, &Vault) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let vault = std::sync::Arc::clone(&self.vault);
        self.store.write_blocking(move |tx| f(tx, &c, &vault))
    }

    fn r<T>(
        &self,
        f: impl FnOnce(&crate::store::ReadTx, &Vault) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.store.read(|tx| f(tx, &self.vault))
    }

    /// A project, an environment and a variable `K` = `v1`; returns (env id, var id).
    fn seed(&self) -> (u64, u64) {
        let env = self
            .w(owner(), |tx, c, _| {
                let p = projects::create(tx, c, 10, "Web App", None)?;
                environments::create(tx, c, p.project.id, "prod", "production", None)
            })
            .unwrap();
        let env_id = env.environment.id;
        let var = self
            .w(owner(), move |tx, c, v| variables::create(tx, c, v, env_id, "K", "v1"))
            .unwrap();
        (env_id, var.variable.id)
    }
}

fn set(f: &Fixture, var: u64, value: &str) {
    let value = value.to_string();
    f.w(owner(), move |tx, c, v| {
        let change = VariableChange { value: Some(value.clone()), ..Default::default() };
        variables::update(tx, c, v, var, &change)
    })
    .unwrap();
}

#[test]
fn values_round_trip_and_are_not_stored_in_clear() {
    let f = fixture();
    let (_, var) = f.seed();
    let c = owner();
    let got = f.r(|tx, v| variables::get(tx, &c, v, var)).unwrap();
    assert_eq!(got.value, "v1");
    let raw: Variable = f.r(|tx, _| Ok(tx.get(VARIABLES, var)?.unwrap())).unwrap();
    assert!(!raw.sealed.0.windows(2).any(|w| w == b"v1"));
    // Nor in the stored record bytes.
    let stored = crate::store::encode(&raw).unwrap();
    assert!(!stored.windows(2).any(|w| w == b"v1"));
}

#[test]
fn moved_or_tampered_ciphertext_fails_to_open() {
    let f = fixture();
    let (env, a) = f.seed();
    let b = f
        .w(owner(), move |tx, c, v| variables::create(tx, c, v, env, "B", "bee"))
        .unwrap()
        .variable
        .id;
    // Copy A's ciphertext into B's row: B's associated data differs, so it must not open.
    f.store
        .write_blocking(move |tx| -> Result<(), Error> {
            let va = tx.get(VARIABLES, a)?.unwrap();
            let mut vb = tx.get(VARIABLES, b)?.unwrap();
            vb.sealed = va.sealed;
            tx.put(VARIABLES, b, &vb)?;
            Ok(())
        })
        .unwrap();
    let c = owner();
    assert_eq!(f.r(|tx, v| variables::get(tx, &c, v, b)).unwrap().value, DECRYPTION_ERROR);
    // A list page opens each row with the same reused buffers: the damaged row shows the
    // marker, its neighbours their own values (no plaintext left over from the row before).
    let mut page = variables::Collected::default();
    f.r(|tx, v| variables::list_for_env(tx, &c, v, env, 0, 10, &mut page)).unwrap();
    let values: Vec<(&str, &str)> =
        page.1.iter().map(|r| (r.variable.key.as_str(), r.value.as_str())).collect();
    assert_eq!(page.0, 2);
    assert_eq!(values, [("K", "v1"), ("B", DECRYPTION_ERROR)]);
    // Same row, claimed to be another version: fails too.
    f.store
        .write_blocking(move |tx| -> Result<(), Error> {
            let mut va = tx.get(VARIABLES, a)?.unwrap();
            va.version += 1;
            tx.put(VARIABLES, a, &va)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(f.r(|tx, v| variables::get(tx, &c, v, a)).unwrap().value, DECRYPTION_ERROR);
    // A flipped byte anywhere in a good ciphertext fails.
    let (env2, good) = (
        env,
        f.w(owner(), move |tx, c, v| variables::create(tx, c, v, env, "C", "sea"))
            .unwrap()
            .variable
            .id,
    );
    let _ = env2;
    let raw = f.r(|tx, _| Ok(tx.get(VARIABLES, good)?.unwrap())).unwrap();
    let bytes = raw.sealed.0;
    for i in [0, 12, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        let s = crate::domain::secrets::records::Sealed(bad);
        f.store
            .write_blocking(move |tx| -> Result<(), Error> {
                let mut v = tx.get(VARIABLES, good)?.unwrap();
                v.sealed = s.clone();
                tx.put(VARIABLES, good, &v)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(f.r(|tx, v| variables::get(tx, &c, v, good)).unwrap().value, DECRYPTION_ERROR);
    }
}

#[test]
fn history_keeps_the_last_versions_and_rolls_back() {
    let f = fixture();
    let (_, var) = f.seed();
    for v in ["v2", "v3", "v4", "v5"] {
        set(&f, var, v);
    }
    let c = owner();
    let versions = f.r(|tx, v| history::versions(tx, &c, v, var)).unwrap();
    let got: Vec<(u32, &str)> = versions.iter().map(|v| (v.version, v.value.as_str())).collect();
    // Current (5) plus the 3 kept superseded values.
    assert_eq!(got, vec![(5, "v5"), (4, "v4"), (3, "v3"), (2, "v2")]);
    let kept = f.r(|tx, _| Ok(tx.count_children(VERSIONS_BY_VARIABLE, var)?)).unwrap();
    assert_eq!(kept, 3);
    let rolled = f.w(owner(), move |tx, c, v| history::rollback(tx, c, v, var, 3)).unwrap();
    assert_eq!((rolled.variable.version, rolled.value.as_str()), (6, "v3"));
    let err = f.w(owner(), move |tx, c, v| history::rollback(tx, c, v, var, 1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    let err = f.w(owner(), move |tx, c, v| history::rollback(tx, c, v, var, 6)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
}

#[test]
fn permissions_and_tenant_walls() {
    let f = fixture();
    let (env, var) = f.seed();
    let viewer = caller(3, &[(10, Role::Viewer)]);
    assert_eq!(f.r(|tx, v| variables::get(tx, &viewer, v, var)).unwrap().value, "v1");
    let err = f
        .w(caller(3, &[(10, Role::Viewer)]), move |tx, c, v| {
            variables::create(tx, c, v, env, "X", "")
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    let outsider = caller(4, &[(20, Role::Admin)]);
    let err = f.r(|tx, v| variables::get(tx, &outsider, v, var)).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let mut page = variables::Collected(99, Vec::new());
    f.r(|tx, v| variables::list(tx, &outsider, v, Some(env), 0, 10, &mut page)).unwrap();
    assert_eq!((page.0, page.1.len()), (0, 0));
    let mut ro = caller(2, &[(10, Role::Editor)]);
    ro.principal.read_only = true;
    let err = f.w(ro, move |tx, c, v| variables::delete(tx, c, v, var)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    let err = f
        .w(caller(2, &[(10, Role::Editor)]), |tx, c, _| {
            let p = projects::list(tx, c, &projects::ProjectFilter::default(), 0, 10)?;
            projects::delete(tx, c, p.1[0].project.id)
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
}

#[test]
fn deleted_variables_stay_readable_by_admins_then_cascade_removes_everything() {
    let f = fixture();
    let (env, var) = f.seed();
    set(&f, var, "v2");
    f.w(caller(2, &[(10, Role::Editor)]), move |tx, c, v| variables::delete(tx, c, v, var))
        .unwrap();
    let c = owner();
    assert_eq!(f.r(|tx, v| variables::get(tx, &c, v, var)).unwrap_err().code, ErrorCode::NotFound);
    let deleted = f.r(|tx, v| history::deleted(tx, &c, v, env)).unwrap();
    assert_eq!(deleted.len(), 1);
    let versions = f.r(|tx, v| history::versions(tx, &c, v, var)).unwrap();
    assert_eq!(versions.iter().map(|v| v.value.as_str()).collect::<Vec<_>>(), ["v2", "v1"]);
    let editor = caller(2, &[(10, Role::Editor)]);
    assert_eq!(
        f.r(|tx, v| history::versions(tx, &editor, v, var)).unwrap_err().code,
        ErrorCode::NotFound
    );
    // The key is free again.
    f.w(owner(), move |tx, c, v| variables::create(tx, c, v, env, "K", "new")).unwrap();
    // Deleting the organization's secrets leaves no variable, version or key behind.
    f.store
        .write_blocking(|tx| crate::domain::cascade::delete_organization_children(tx, 10))
        .unwrap();
    let counts = f
        .r(|tx, _| {
            Ok((tx.count(VARIABLES)?, tx.count(VARIABLE_VERSIONS)?, tx.count(ORG_DATA_KEYS)?))
        })
        .unwrap();
    assert_eq!(counts, (0, 0, 0));
    let (n, _) =
        f.r(|tx, _| environments::list(tx, &c, &EnvironmentFilter::default(), 0, 10)).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn import_counts_keeps_and_reports() {
    let f = fixture();
    let (env, _) = f.seed();
    let parsed = std::sync::Arc::new(dotenv::parse("K=changed\nNEW=1\nbad line\n9X=1\n"));
    let p = std::sync::Arc::clone(&parsed);
    let s = f.w(owner(), move |tx, c, v| transfer::import(tx, c, v, env, &p, false)).unwrap();
    assert_eq!((s.imported, s.updated, s.kept, s.failed_imports.len()), (1, 0, 1, 2));
    let s = f.w(owner(), move |tx, c, v| transfer::import(tx, c, v, env, &parsed, true)).unwrap();
    assert_eq!((s.imported, s.updated), (0, 2));
    let c = owner();
    let export = f.r(|tx, v| transfer::read_export(tx, &c, v, env)).unwrap();
    assert_eq!(export.variables, vec![("K".into(), "changed".into()), ("NEW".into(), "1".into())]);
}

#[test]
fn rotation_reseals_data_keys() {
    let f = fixture();
    let (_, var) = f.seed();
    let old = f.vault.master.clone();
    let new = SecretKey::generate().unwrap();
    let (o, n) = (old.clone(), new.clone());
    let report = f.store.write_blocking(move |tx| rotate::rotate_master_key(tx, &o, &n)).unwrap();
    assert_eq!(report.data_keys, 1);
    let rotated = Vault::new(new, 3, 30);
    let c = owner();
    assert_eq!(f.store.read(|tx| variables::get(tx, &c, &rotated, var)).unwrap().value, "v1");
    let stale = Vault::new(old, 3, 30);
    assert!(f.store.read(|tx| variables::get(tx, &c, &stale, var)).is_err());
}

#[test]
fn every_change_is_audited_without_values() {
    let f = fixture();
    let (env, var) = f.seed();
    set(&f, var, "second-secret");
    f.w(owner(), move |tx, c, v| history::rollback(tx, c, v, var, 1)).unwrap();
    let parsed = std::sync::Arc::new(dotenv::parse("IMPORTED=imported-secret\n"));
    f.w(owner(), move |tx, c, v| transfer::import(tx, c, v, env, &parsed, true)).unwrap();
    let c = owner();
    let export = f.r(|tx, v| transfer::read_export(tx, &c, v, env)).unwrap();
    let export = std::sync::Arc::new(export);
    f.w(owner(), move |tx, c, _| transfer::record_export(tx, c, &export, "env")).unwrap();
    f.w(owner(), move |tx, c, v| variables::delete(tx, c, v, var)).unwrap();
    f.w(owner(), move |tx, c, _| {
        let e = environments::get(tx, c, env)?;
        projects::delete(tx, c, e.environment.project_id)
    })
    .unwrap();
    let records = f
        .r(|tx, _| {
            Ok(tx.scan(crate::domain::audit::tables::AUDIT, 0..=u64::MAX, usize::MAX, false)?)
        })
        .unwrap();
    let actions: Vec<&str> = records.iter().map(|(_, r)| r.action.as_str()).collect();
    for expected in [
        "project_created",
        "environment_created",
        "variable_created",
        "variable_updated",
        "variable_rolled_back",
        "environment_imported",
        "environment_exported",
        "variable_deleted",
        "project_deleted",
        "environment_deleted",
    ] {
        assert!(actions.contains(&expected), "no {expected} in {actions:?}");
    }
    for (_, r) in &records {
        assert_eq!(r.organization_id, Some(10));
        let text = r.details.to_string();
        for secret in ["v1", "second-secret", "imported-secret"] {
            assert!(!text.contains(secret), "{} details hold a value: {text}", r.action);
        }
    }
    let import = records.iter().find(|(_, r)| r.action == "environment_imported").unwrap();
    assert_eq!(import.1.details["imported_count"], 1);
    assert_eq!(import.1.details["imported_keys"][0], "IMPORTED");
}

#[test]
fn data_key_rotation_reseals_values_and_resumes_after_an_interruption() {
    use crate::domain::secrets::rekey::{rotate_data_keys, rotate_org, RekeyOptions};
    use crate::domain::secrets::sealing::{self, Slot};
    let f = fixture();
    let (env, var) = f.seed();
    set(&f, var, "v2");
    let second =
        f.w(owner(), move |tx, c, v| variables::create(tx, c, v, env, "K2", "w1")).unwrap();
    let second = second.variable.id;
    let master = f.vault.master.clone();
    let rec = f.r(|tx, _| Ok(tx.get(ORG_DATA_KEYS, 10)?.unwrap())).unwrap();
    assert_eq!((rec.generation, rec.previous.as_ref()), (1, None));
    let old_key = sealing::open_sealed_key(&master, 10, &rec.sealed).unwrap();
    let opens_with_old = |f: &Fixture| -> usize {
        f.r(|tx, _| {
            let mut n = 0;
            for id in [var, second] {
                let v: Variable = tx.get(VARIABLES, id)?.unwrap();
                let slot = Slot { org: 10, env, variable: id, version: v.version };
                let aad = sealing::value_aad(slot.org, slot.env, slot.variable, slot.version);
                n += usize::from(old_key.open(&aad, &v.sealed.0).is_ok());
                for row in tx.children(VERSIONS_BY_VARIABLE, id)? {
                    let h = tx.get(VARIABLE_VERSIONS, row)?.unwrap();
                    let aad = sealing::value_aad(10, env, id, h.version);
                    n += usize::from(old_key.open(&aad, &h.sealed.0).is_ok());
                }
            }
            Ok(n)
        })
        .unwrap()
    };
    assert_eq!(opens_with_old(&f), 3);

    // Interrupted after one variable: both keys are kept and every value still reads.
    let opts = RekeyOptions { batch: 1, max_batches: Some(1) };
    let part = rotate_org(&f.store, &master, 10, opts).unwrap().unwrap();
    assert!(!part.finished);
    let rec = f.r(|tx, _| Ok(tx.get(ORG_DATA_KEYS, 10)?.unwrap())).unwrap();
    assert_eq!(rec.generation, 2);
    assert!(rec.previous.is_some());
    assert_eq!(opens_with_old(&f), 1, "the second variable is not re-sealed yet");
    let c = owner();
    let read = |f: &Fixture, id| f.r(|tx, v| variables::get(tx, &c, v, id)).unwrap().value;
    assert_eq!((read(&f, var), read(&f, second)), ("v2".to_string(), "w1".to_string()));
    // A write during the rotation seals under the new key.
    set(&f, second, "w2");

    let done = rotate_data_keys(&f.store, &master, None, RekeyOptions::default()).unwrap();
    assert_eq!(done.len(), 1);
    assert!(done[0].resumed && done[0].finished);
    assert_eq!(done[0].unreadable, 0);
    let rec = f.r(|tx, _| Ok(tx.get(ORG_DATA_KEYS, 10)?.unwrap())).unwrap();
    assert_eq!((rec.generation, rec.previous.as_ref()), (2, None));
    assert_eq!(opens_with_old(&f), 0, "the old data key opens nothing any more");
    assert_eq!((read(&f, var), read(&f, second)), ("v2".to_string(), "w2".to_string()));
    let history = f.r(|tx, v| history::versions(tx, &c, v, var)).unwrap();
    let values: Vec<&str> = history.iter().map(|h| h.value.as_str()).collect();
    assert_eq!(values, ["v2", "v1"]);

    // A second run starts a new generation; a file mid-rotation survives master rotation.
    let opts = RekeyOptions { batch: 1, max_batches: Some(0) };
    rotate_org(&f.store, &master, 10, opts).unwrap();
    let new_master = SecretKey::generate().unwrap();
    let (o, n) = (master, new_master.clone());
    f.store.write_blocking(move |tx| rotate::rotate_master_key(tx, &o, &n)).unwrap();
    let rotated = Vault::new(new_master.clone(), 3, 30);
    assert_eq!(f.store.read(|tx| variables::get(tx, &c, &rotated, var)).unwrap().value, "v2");
    let done = rotate_data_keys(&f.store, &new_master, Some(10), RekeyOptions::default()).unwrap();
    assert_eq!(done[0].generation, 3);
    assert_eq!(f.store.read(|tx| variables::get(tx, &c, &rotated, second)).unwrap().value, "w2");
    assert!(rotate_data_keys(&f.store, &new_master, Some(999), RekeyOptions::default()).is_err());
}
