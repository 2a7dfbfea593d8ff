//! Locating, creating and validating the master key file (never stored in the data file).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{SecretKey, KEY_LEN};

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("master key file {path} must hold exactly {KEY_LEN} bytes (raw) or {} hex characters", KEY_LEN * 2)]
    BadLength { path: PathBuf },
    #[error("master key file {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("could not generate a master key")]
    Random,
    #[error("no master key: none given with --master-key-file, none in $CREDENTIALS_DIRECTORY, and no {path}")]
    Missing { path: PathBuf },
}

/// Like [`load_or_create_master_key`], but never creates one: for commands that read an
/// existing data file or snapshot (a new key would open nothing).
pub fn load_master_key(
    explicit: Option<&Path>,
    credentials_dir: Option<&Path>,
    data_dir: &Path,
) -> Result<(SecretKey, PathBuf), MasterKeyError> {
    let path = data_dir.join("master.key");
    let given = explicit.is_some()
        || credentials_dir.is_some_and(|d| d.join("master.key").is_file())
        || path.is_file();
    if !given {
        return Err(MasterKeyError::Missing { path });
    }
    load_or_create_master_key(explicit, credentials_dir, data_dir)
}

/// Loads the master key from, in order: `explicit` (`--master-key-file`),
/// `$CREDENTIALS_DIRECTORY/master.key` (systemd `LoadCredential=`), `DATA_DIR/master.key`.
/// Only the last is created (mode 0600) when absent.
pub fn load_or_create_master_key(
    explicit: Option<&Path>,
    credentials_dir: Option<&Path>,
    data_dir: &Path,
) -> Result<(SecretKey, PathBuf), MasterKeyError> {
    if let Some(path) = explicit {
        return read_key(path).map(|k| (k, path.to_path_buf()));
    }
    if let Some(dir) = credentials_dir {
        let path = dir.join("master.key");
        if path.is_file() {
            // systemd credentials are owned by the service and read-only; mode checks don't apply.
            return read_key_unchecked(&path).map(|k| (k, path));
        }
    }
    let path = data_dir.join("master.key");
    if path.is_file() {
        return read_key(&path).map(|k| (k, path));
    }
    let key = SecretKey::generate().map_err(|_| MasterKeyError::Random)?;
    let io = |source| MasterKeyError::Io { path: path.clone(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(hex::encode(key.expose()).as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok((key, path))
}

fn read_key(path: &Path) -> Result<SecretKey, MasterKeyError> {
    let meta = std::fs::metadata(path)
        .map_err(|source| MasterKeyError::Io { path: path.to_path_buf(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::TooOpen { path: path.to_path_buf(), mode });
    }
    read_key_unchecked(path)
}

fn read_key_unchecked(path: &Path) -> Result<SecretKey, MasterKeyError> {
    let bytes = std::fs::read(path)
        .map_err(|source| MasterKeyError::Io { path: path.to_path_buf(), source })?;
    parse_key(&bytes).ok_or_else(|| MasterKeyError::BadLength { path: path.to_path_buf() })
}

/// Accepts 64 hex characters (optionally newline-terminated) or 32 raw bytes.
pub fn parse_key(bytes: &[u8]) -> Option<SecretKey> {
    let trimmed = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(text) = trimmed {
        if text.len() == KEY_LEN * 2 {
            let decoded = hex::decode(text).ok()?;
            let arr: [u8; KEY_LEN] = decoded.try_into().ok()?;
            return Some(SecretKey::from_bytes(arr));
        }
    }
    let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
    Some(SecretKey::from_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = load_or_create_master_key(None, None, dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, _) = load_or_create_master_key(None, None, dir.path()).unwrap();
        assert_eq!(a.expose(), b.expose());
    }

    #[test]
    fn refuses_world_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create_master_key(Some(&path), None, dir.path()),
            Err(MasterKeyError::TooOpen { .. })
        ));
    }

    #[test]
    fn rejects_short_key() {
        assert!(parse_key(b"abcd").is_none());
        assert!(parse_key(&[1u8; 32]).is_some());
        assert!(parse_key("ab".repeat(32).as_bytes()).is_some());
    }
}
