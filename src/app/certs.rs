//! The server's certificates: the local CA and leaf kept in `meta` (private keys sealed with the
//! master key), renewal at two thirds of the leaf's life, or a supplied pair reloaded on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use time::OffsetDateTime;

use super::{Services, StartError};
use crate::store::{get_meta, put_meta, read_meta, StoreError};
use crate::tls::{self, CaMaterial, CertSwap, LeafMaterial};
use crate::workers::{CancellationToken, Workers};

const CA_KEY_AAD: &[u8] = b"gatehouse/meta/tls_ca_key";
const LEAF_KEY_AAD: &[u8] = b"gatehouse/meta/tls_leaf_key";

/// Holds the live TLS configuration and knows how to renew it.
pub struct CertManager {
    swap: CertSwap,
    ca_pem: String,
    /// `Some` when Gatehouse issues its own leaf; `None` for a supplied pair.
    own: Option<Mutex<OwnCerts>>,
}

struct OwnCerts {
    ca: CaMaterial,
    leaf: LeafMaterial,
}

fn tls_err(e: impl std::fmt::Display) -> StartError {
    StartError::Tls(e.to_string())
}

impl CertManager {
    pub async fn prepare(state: &Arc<Services>) -> Result<Self, StartError> {
        let cfg = &state.config.tls;
        if !cfg.cert_file.is_empty() {
            let (chain, key) = read_supplied(&cfg.cert_file, &cfg.key_file)?;
            let server = tls::server_config(&chain, &key).map_err(tls_err)?;
            note_expiry(state, &chain);
            return Ok(Self { swap: CertSwap::new(server), ca_pem: chain, own: None });
        }
        let (ca, leaf) = load_or_create(state).await?;
        note_expiry(state, &leaf.cert_pem);
        let server =
            tls::server_config(&format!("{}{}", leaf.cert_pem, ca.cert_pem), &leaf.key_pem)
                .map_err(tls_err)?;
        Ok(Self {
            swap: CertSwap::new(server),
            ca_pem: ca.cert_pem.clone(),
            own: Some(Mutex::new(OwnCerts { ca, leaf })),
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn swap(&self) -> CertSwap {
        self.swap.clone()
    }

    /// Registers on `workers` the renewal of the generated leaf in place, or the reload of a
    /// supplied pair on SIGHUP.
    pub fn register_renewal(self, workers: &Workers, state: Arc<Services>) {
        if self.own.is_none() {
            // The SIGHUP handler is installed here, before the server is announced: installed
            // inside the task, a SIGHUP sent right after start could still meet the default
            // action, which ends the process.
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(hup) => workers.spawn("certificate reload", move |token| async move {
                    self.reload_on_sighup(&state, hup, token).await
                }),
                Err(e) => tracing::error!(error = %e, "no SIGHUP handler: reload disabled"),
            }
            return;
        }
        let lifetime = state.config.leaf_lifetime();
        let period: time::Duration =
            (lifetime / 20_i32).clamp(time::Duration::seconds(1), time::Duration::minutes(10));
        let period = Duration::from_secs(u64::try_from(period.whole_seconds()).unwrap_or(600));
        let this = Arc::new(self);
        // First check one period after start: the leaf was checked (and renewed if due) by
        // `prepare`.
        workers.every("certificate renewal", period, period, move |_| {
            let (this, state) = (Arc::clone(&this), Arc::clone(&state));
            async move {
                if let Err(e) = this.renew_if_due(&state).await {
                    tracing::error!(error = %e, "certificate renewal failed");
                }
            }
        });
    }

    async fn renew_if_due(&self, state: &Arc<Services>) -> Result<(), StartError> {
        let Some(own) = &self.own else { return Ok(()) };
        let ca = {
            let guard = own.lock();
            if !tls::needs_renewal(
                guard.leaf.not_before,
                guard.leaf.not_after,
                OffsetDateTime::now_utc(),
            ) {
                return Ok(());
            }
            guard.ca.clone()
        };
        let leaf = tls::issue_leaf(&ca, &state.config.tls.hostnames, state.config.leaf_lifetime())
            .map_err(tls_err)?;
        store_leaf(state, &leaf).await?;
        let server =
            tls::server_config(&format!("{}{}", leaf.cert_pem, ca.cert_pem), &leaf.key_pem)
                .map_err(tls_err)?;
        self.swap.set(server);
        note_expiry(state, &leaf.cert_pem);
        tracing::info!(not_after = %leaf.not_after, "server certificate renewed");
        own.lock().leaf = leaf;
        Ok(())
    }

    async fn reload_on_sighup(
        &self,
        state: &Arc<Services>,
        mut hup: tokio::signal::unix::Signal,
        token: CancellationToken,
    ) {
        loop {
            let received = tokio::select! {
                _ = token.cancelled() => return,
                received = hup.recv() => received,
            };
            if received.is_none() {
                return;
            }
            let cfg = &state.config.tls;
            let result = read_supplied(&cfg.cert_file, &cfg.key_file).and_then(|(chain, key)| {
                Ok((tls::server_config(&chain, &key).map_err(tls_err)?, chain))
            });
            match result {
                Ok((server, chain)) => {
                    self.swap.set(server);
                    note_expiry(state, &chain);
                    tracing::info!("certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificate reload failed; keeping the old one")
                }
            }
        }
    }
}

/// Publishes the serving certificate's `notAfter` to the metrics (`/api/v1/metrics/all`).
fn note_expiry(state: &Services, cert_pem: &str) {
    if let Ok((_, not_after)) = tls::leaf_validity(cert_pem) {
        let at = not_after.unix_timestamp();
        state.metrics.tls.certificate_expiry.store(at, std::sync::atomic::Ordering::Relaxed);
    }
}

fn read_supplied(cert_file: &str, key_file: &str) -> Result<(String, String), StartError> {
    let chain = std::fs::read_to_string(cert_file)
        .map_err(super::io_err(format!("cannot read tls.cert_file {cert_file}")))?;
    let key = std::fs::read_to_string(key_file)
        .map_err(super::io_err(format!("cannot read tls.key_file {key_file}")))?;
    Ok((chain, key))
}

fn sans_match(leaf: &LeafMaterial, hostnames: &[String]) -> bool {
    hostnames.iter().all(|h| tls::leaf_has_san(&leaf.cert_pem, h).unwrap_or(false))
}

/// Forgets the stored CA and leaf, so that the next start generates a new, name-constrained
/// local CA (`gatehouse tls new-ca`, server stopped). Blocking.
pub fn forget_ca(store: &crate::store::Store) -> Result<(), StoreError> {
    store.write_blocking(|tx| {
        for row in ["tls_ca_cert", "tls_ca_key", "tls_leaf_cert", "tls_leaf_key"] {
            if get_meta(tx, row)?.is_some() {
                put_meta(tx, row, b"")?;
            }
        }
        Ok::<_, StoreError>(())
    })
}

/// Reads the CA and leaf from `meta`, creating or renewing what is missing or due. A kept CA
/// must cover `tls.hostnames` with its name constraints, or a new one is made (see below).
async fn load_or_create(state: &Arc<Services>) -> Result<(CaMaterial, LeafMaterial), StartError> {
    let stored = state.store.read(|tx| {
        let get = |k: &str| read_meta(tx, k);
        Ok::<_, StoreError>((
            get("tls_ca_cert")?,
            get("tls_ca_key")?,
            get("tls_leaf_cert")?,
            get("tls_leaf_key")?,
        ))
    })?;
    let master = &state.master;
    let open = |sealed: &[u8], aad: &[u8]| -> Result<String, StartError> {
        let plain = master.open(aad, sealed).map_err(|_| {
            StartError::Tls("stored TLS key does not open with the master key".into())
        })?;
        String::from_utf8(plain).map_err(tls_err)
    };
    let hostnames = &state.config.tls.hostnames;
    let nonempty = |v: &Option<Vec<u8>>| v.clone().filter(|b| !b.is_empty());
    let kept = match (nonempty(&stored.0), nonempty(&stored.1)) {
        (Some(cert), Some(key)) => Some(CaMaterial {
            cert_pem: String::from_utf8_lossy(&cert).into_owned(),
            key_pem: open(&key, CA_KEY_AAD)?,
        }),
        _ => None,
    };
    let kept = match kept {
        Some(ca) => match tls::ca_coverage(&ca.cert_pem, hostnames).map_err(tls_err)? {
            tls::CaCoverage::Covered => Some(ca),
            tls::CaCoverage::Unconstrained => {
                // Replacing it would break every client that trusts it; say how to move on.
                tracing::warn!(
                    "the local CA has no name constraints (it was generated by an older \
                     version) and a trust store holding it trusts it for every domain; run \
                     `gatehouse tls new-ca` with the server stopped to replace it with a \
                     constrained one, then distribute the new ca.pem"
                );
                Some(ca)
            }
            tls::CaCoverage::Missing(names) => {
                // A leaf for these names would be refused by every client (name constraints),
                // so keeping the CA cannot serve them: a new CA is the only working answer.
                tracing::warn!(
                    names = %names.join(", "),
                    "tls.hostnames names hosts outside the local CA's name constraints: \
                     generating a new local CA; clients must trust the new ca.pem"
                );
                None
            }
        },
        None => None,
    };
    let ca = match kept {
        Some(ca) => ca,
        None => {
            let days = i64::try_from(state.config.tls.ca_lifetime_days).unwrap_or(3650);
            let ca =
                tls::generate_local_ca("Gatehouse Local CA", time::Duration::days(days), hostnames)
                    .map_err(tls_err)?;
            store_ca(state, &ca).await?;
            ca
        }
    };
    // A leaf signed by a CA that was just replaced must not be reused.
    let same_ca = nonempty(&stored.0).is_some_and(|c| c == ca.cert_pem.as_bytes());
    let existing_leaf = match (nonempty(&stored.2), nonempty(&stored.3)) {
        (Some(cert), Some(key)) if same_ca => {
            let cert_pem = String::from_utf8_lossy(&cert).into_owned();
            let (not_before, not_after) = tls::leaf_validity(&cert_pem).map_err(tls_err)?;
            Some(LeafMaterial {
                cert_pem,
                key_pem: open(&key, LEAF_KEY_AAD)?,
                not_before,
                not_after,
            })
        }
        _ => None,
    };
    let leaf = match existing_leaf {
        Some(leaf)
            if !tls::needs_renewal(leaf.not_before, leaf.not_after, OffsetDateTime::now_utc())
                && sans_match(&leaf, hostnames) =>
        {
            leaf
        }
        _ => {
            let leaf =
                tls::issue_leaf(&ca, hostnames, state.config.leaf_lifetime()).map_err(tls_err)?;
            store_leaf(state, &leaf).await?;
            leaf
        }
    };
    Ok((ca, leaf))
}

async fn store_ca(state: &Arc<Services>, ca: &CaMaterial) -> Result<(), StartError> {
    let sealed = state.master.seal(CA_KEY_AAD, ca.key_pem.as_bytes()).map_err(tls_err)?;
    let cert = ca.cert_pem.clone();
    state
        .store
        .write(move |tx| {
            put_meta(tx, "tls_ca_cert", cert.as_bytes())?;
            put_meta(tx, "tls_ca_key", &sealed)?;
            // A new CA invalidates any leaf signed by an older one.
            if get_meta(tx, "tls_leaf_cert")?.is_some() {
                put_meta(tx, "tls_leaf_cert", b"")?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(())
}

async fn store_leaf(state: &Arc<Services>, leaf: &LeafMaterial) -> Result<(), StartError> {
    let sealed = state.master.seal(LEAF_KEY_AAD, leaf.key_pem.as_bytes()).map_err(tls_err)?;
    let cert = leaf.cert_pem.clone();
    state
        .store
        .write(move |tx| {
            put_meta(tx, "tls_leaf_cert", cert.as_bytes())?;
            put_meta(tx, "tls_leaf_key", &sealed)?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(())
}
