//! Owner-only permissions for the data directory and the data file, whatever the umask and
//! whoever created them first: the file holds password hashes, emails and the audit and
//! request logs, and the directory also holds the master key and the search index.

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::{io_err, StartError};

/// Creates `dir` with mode 0700, or narrows an existing one that group or others can reach.
pub fn private_dir(dir: &Path) -> Result<(), StartError> {
    if !dir.exists() {
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!("cannot create data directory {}", dir.display())));
    }
    narrow(dir, 0o700, "data directory")
}

/// Creates an empty `file` with mode 0600 (redb initialises an empty file as a new database),
/// or narrows an existing one.
pub fn private_file(file: &Path) -> Result<(), StartError> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => narrow(file, 0o600, "data file"),
        Err(e) => {
            Err(StartError::Io { context: format!("cannot create {}", file.display()), source: e })
        }
    }
}

/// Sets `mode` when the path grants anything to group or others. A path that cannot be
/// narrowed (another owner) stops the start with the command that fixes it.
fn narrow(path: &Path, mode: u32, what: &str) -> Result<(), StartError> {
    let meta =
        std::fs::metadata(path).map_err(io_err(format!("cannot read {}", path.display())))?;
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        StartError::Io {
            context: format!(
                "the {what} {} is accessible to group or others (mode {current:o}) and cannot \
                 be restricted; run `chmod {mode:o} {}`",
                path.display(),
                path.display()
            ),
            source,
        }
    })?;
    tracing::info!(path = %path.display(), from = %format!("{current:o}"), to = %format!("{mode:o}"), "restricted the permissions of the {what}");
    Ok(())
}
