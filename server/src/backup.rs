//! `outpost-server backup FILE` and `restore FILE` for the embedded SQLite
//! database, and the lock that tells them a server is running on it.
//!
//! A backup is written next to its final name and renamed into place once
//! complete and synced, then checked. A restore never destroys data: it
//! checks the file first, refuses while a server holds the database, needs
//! `--force` to replace existing data, and keeps the replaced database
//! (with its WAL) as `<name>.before-restore-<time>`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::store::backup::{check_sqlite_file, BackupInfo};
use crate::store::Store;

/// Held by a serving process for as long as it runs.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// The lock file of the database at `db`.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the database at `db`, or says who holds it.
    pub fn acquire(db: &Path) -> anyhow::Result<ServeLock> {
        let path = Self::path_for(db);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(ServeLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another outpost-server is running on {} (it holds {})",
                db.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// `name` with `suffix` appended (not an extension: `a.db` -> `a.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes a consistent backup of `store` to `dest`.
pub async fn backup(store: &Store, dest: &Path, force: bool) -> anyhow::Result<BackupInfo> {
    if dest.exists() && !force {
        bail!("{} exists; pass --force to replace it", dest.display());
    }
    if dest.is_dir() {
        bail!("{} is a directory", dest.display());
    }
    let partial = with_suffix(dest, ".partial");
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", partial.display())),
    }
    store
        .backup_into(&partial)
        .await
        .with_context(|| format!("writing {}", partial.display()))?;
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    let info = match check_sqlite_file(&partial).await {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            bail!("the backup failed its check: {e}");
        }
    };
    std::fs::rename(&partial, dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    sync_dir(dest).with_context(|| format!("syncing the directory of {}", dest.display()))?;
    Ok(info)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub info: BackupInfo,
    /// Where the replaced database was kept, if there was one.
    pub kept: Option<PathBuf>,
}

/// Puts the backup `src` in place of the database at `db`.
pub async fn restore(src: &Path, db: &Path, force: bool, now: &str) -> anyhow::Result<Restored> {
    let info = check_sqlite_file(src).await.context("not restored")?;
    // A running server would keep writing to the file it has open.
    let lock = ServeLock::acquire(db).context("not restored: stop the server first")?;
    let existing = db.exists();
    if existing && !force {
        let held = check_sqlite_file(db)
            .await
            .map(|i| format!("{} cases", i.cases))
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        bail!(
            "{} holds data ({held}); pass --force to replace it (it is kept as {}.before-restore-<time>)",
            db.display(),
            db.display()
        );
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = with_suffix(db, ".restoring");
    std::fs::copy(src, &partial)
        .with_context(|| format!("copying {} to {}", src.display(), partial.display()))?;
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    let kept = if existing {
        let kept = with_suffix(db, &format!(".before-restore-{now}"));
        // The WAL and shared-memory files belong to the database they came
        // with: they move with it.
        for suffix in ["-wal", "-shm"] {
            let from = with_suffix(db, suffix);
            if from.exists() {
                let to = with_suffix(&kept, suffix);
                std::fs::rename(&from, &to)
                    .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
            }
        }
        std::fs::rename(db, &kept)
            .with_context(|| format!("moving {} to {}", db.display(), kept.display()))?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&partial, db)
        .with_context(|| format!("renaming {} to {}", partial.display(), db.display()))?;
    sync_dir(db).with_context(|| format!("syncing the directory of {}", db.display()))?;
    drop(lock);
    Ok(Restored { info, kept })
}
