//! The on-disk cache of compiled versions: one file per component digest and
//! engine, written whole, read back instead of compiling again after a
//! restart, kept within a byte budget (the least recently used go first), and
//! rid of the versions no live function has any more.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wasmtime::component::Component;

/// What a file name of the cache ends with.
const SUFFIX: &str = ".cwasm";

/// A directory of compiled components.
pub struct Artifacts {
    dir: PathBuf,
    /// The engine's compatibility hash: artifacts of another engine are never read.
    engine_hash: u64,
    /// Most bytes the directory may hold.
    budget: u64,
}

impl Artifacts {
    /// The cache in `dir` (created if missing), holding at most `budget` bytes.
    pub fn new(dir: PathBuf, engine_hash: u64, budget: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            engine_hash,
            budget,
        })
    }

    /// Where the artifact of `digest` lives.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{:016x}{SUFFIX}", self.engine_hash))
    }

    /// Writes `component`'s compiled form through a temporary file, so a reader
    /// (another process sharing the cache) never sees half an artifact, then
    /// brings the cache back within its budget.
    pub fn write(&self, digest: &str, component: &Component) -> Result<(), String> {
        let path = self.path(digest);
        let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        self.prune().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Marks the artifact at `path` as used now, so the budget removes it last.
    pub fn touch(path: &Path) {
        if let Ok(file) = std::fs::File::options().append(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Deletes the least recently used artifacts until the cache fits its
    /// budget; returns how many went.
    pub fn prune(&self) -> std::io::Result<usize> {
        let mut files = self.files()?;
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        files.sort_by_key(|f| f.used);
        let mut removed = 0;
        for f in files {
            if total <= self.budget {
                break;
            }
            if std::fs::remove_file(&f.path).is_ok() {
                total = total.saturating_sub(f.size);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes every artifact whose digest `keep` refuses, and those of other
    /// engines; returns the digests removed.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for f in self.files()? {
            let current = f.engine_hash == Some(self.engine_hash);
            if (!current || !keep(&f.digest)) && std::fs::remove_file(&f.path).is_ok() {
                removed.push(f.digest);
            }
        }
        Ok(removed)
    }

    /// The artifacts in the directory (half-written temporary files left out).
    fn files(&self) -> std::io::Result<Vec<File>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some((digest, engine_hash)) = name.to_str().and_then(parse_name) else {
                continue;
            };
            let meta = entry.metadata()?;
            files.push(File {
                path: entry.path(),
                digest,
                engine_hash,
                size: meta.len(),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(files)
    }
}

struct File {
    path: PathBuf,
    digest: String,
    engine_hash: Option<u64>,
    size: u64,
    used: SystemTime,
}

/// `DIGEST-ENGINEHASH.cwasm` into its parts.
fn parse_name(name: &str) -> Option<(String, Option<u64>)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (digest, hash) = stem.rsplit_once('-')?;
    Some((digest.to_owned(), u64::from_str_radix(hash, 16).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(a: &Artifacts, digest: &str, bytes: usize, age_s: u64) {
        let path = a.path(digest);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let at = SystemTime::now() - std::time::Duration::from_secs(age_s);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_least_recently_used_go_first_past_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::new(dir.path().into(), 7, 2500).unwrap();
        artifact(&a, "old", 1000, 300);
        artifact(&a, "used", 1000, 200);
        artifact(&a, "new", 1000, 100);
        Artifacts::touch(&a.path("used"));
        assert_eq!(a.prune().unwrap(), 1);
        assert_eq!(
            names(dir.path()),
            [a.path("new"), a.path("used")].map(|p| p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned())
        );
        assert_eq!(a.prune().unwrap(), 0, "within the budget nothing goes");
    }

    #[test]
    fn artifacts_of_dead_versions_and_other_engines_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::new(dir.path().into(), 7, u64::MAX).unwrap();
        artifact(&a, "live", 10, 0);
        artifact(&a, "dead", 10, 0);
        let other = Artifacts::new(dir.path().into(), 8, u64::MAX).unwrap();
        artifact(&other, "live", 10, 0);
        std::fs::write(dir.path().join("live-0000000000000007.tmp42"), b"half").unwrap();
        let mut removed = a.retain(|d| d == "live").unwrap();
        removed.sort();
        assert_eq!(removed, ["dead", "live"]);
        assert_eq!(
            names(dir.path()),
            ["live-0000000000000007.cwasm", "live-0000000000000007.tmp42"]
        );
    }
}
