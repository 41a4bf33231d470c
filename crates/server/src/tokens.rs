//! Bearer tokens: the token file, and the set of tokens the server checks requests against.
//!
//! The file holds one line per token: `NAME ROLE CREATED HASH`, separated by single spaces,
//! after a `#` comment line; HASH is the BLAKE3 hash of the token in hex. The token itself is
//! printed once by [`add`] and stored nowhere. By default it is `DIR/tokens`, in the data
//! directory, so it is opened and replaced only through `gongji_log::service_files` (no link
//! followed, regular files only). The file is only ever replaced whole: a
//! temporary file beside it, created exclusively (`O_EXCL`, mode 0600) before the file is
//! read, written, synced and renamed over it, then the directory synced. The exclusive
//! temporary file is also the lock: two `token` commands at once cannot lose each other's
//! change (the second is refused while the first runs).
//!
//! [`TokenSet`] is what the server holds: it looks at the file's identity (inode, size,
//! modification time) on every check and reads it again when it changed, so a revocation
//! takes effect on the next request, without a restart. A file that cannot be read or parsed
//! then refuses every token (and says why on standard error) until it can.
//!
//! Invariant: a presented token is compared, by hash, with every stored hash in constant time
//! (`blake3::Hash`'s equality is constant-time) and without stopping at a match.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use gongji_log::service_files::{self, Replacement};

use crate::roles::Role;

const HEADER: &str = "# gongji tokens v1: NAME ROLE CREATED BLAKE3-HASH-OF-TOKEN (never the token)";

/// Longest token name.
const NAME_BYTES_MAX: usize = 64;

/// Bytes of randomness in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// One stored token: who it is for, in what role, since when, and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// RFC 3339, UTC, seconds.
    pub created: String,
    hash: blake3::Hash,
}

/// The tokens of a file, as read.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

impl Tokens {
    /// Reads a token file; an absent file holds no token.
    pub fn read(path: &Path) -> Result<Tokens, String> {
        let bytes = match service_files::read_file(path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Tokens::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let entry = parse_entry(line)
                .map_err(|why| format!("{} line {}: {why}", path.display(), number + 1))?;
            entries.push(entry);
        }
        Ok(Tokens { entries })
    }

    /// Every token's name, role and creation time, in the file's order.
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// The entry whose token `presented` is: hashed, then compared with every stored hash.
    pub fn find(&self, presented: &str) -> Option<&TokenEntry> {
        let hash = blake3::hash(presented.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            // Constant-time equality; no early exit, so the time says nothing of which matched.
            if entry.hash == hash {
                found = Some(entry);
            }
        }
        found
    }

    fn text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        for e in &self.entries {
            let role = e.role.as_str();
            text.push_str(&format!(
                "{} {role} {} {}\n",
                e.name,
                e.created,
                e.hash.to_hex()
            ));
        }
        text
    }
}

fn parse_entry(line: &str) -> Result<TokenEntry, String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let [name, role, created, hash] = fields[..] else {
        return Err("not NAME ROLE CREATED HASH".into());
    };
    check_name(name)?;
    let hash = blake3::Hash::from_hex(hash).map_err(|_| "the hash is not 64 hex digits")?;
    Ok(TokenEntry {
        name: name.to_string(),
        role: Role::parse(role)?,
        created: created.to_string(),
        hash,
    })
}

/// A token's name: 1 to 64 of ASCII letters, digits, `.`, `_`, `-`.
fn check_name(name: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > NAME_BYTES_MAX || !name.bytes().all(allowed) {
        return Err(format!(
            "'{name}' is not a token name: 1 to {NAME_BYTES_MAX} letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Adds a token named `name` in `role` to the file at `path` (created if absent) and returns
/// the token, to be shown once: 64 hex digits of 256 random bits from the operating system.
pub fn add(path: &Path, name: &str, role: Role) -> Result<String, String> {
    check_name(name)?;
    let mut random = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness from the system: {e}"))?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    rewrite(path, |tokens| {
        if tokens.entries.iter().any(|e| e.name == name) {
            return Err(format!("a token named {name} exists: revoke it first"));
        }
        tokens.entries.push(TokenEntry {
            name: name.to_string(),
            role,
            created: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            hash: blake3::hash(token.as_bytes()),
        });
        Ok(())
    })?;
    Ok(token)
}

/// Removes the token named `name` from the file at `path`.
pub fn revoke(path: &Path, name: &str) -> Result<(), String> {
    rewrite(path, |tokens| {
        let before = tokens.entries.len();
        tokens.entries.retain(|e| e.name != name);
        if tokens.entries.len() == before {
            return Err(format!("no token named {name} in {}", path.display()));
        }
        Ok(())
    })
}

/// Replaces the file at `path` with what `change` makes of it, atomically (see the module's
/// documentation); the exclusive temporary file keeps a second writer out meanwhile.
fn rewrite(
    path: &Path,
    change: impl FnOnce(&mut Tokens) -> Result<(), String>,
) -> Result<(), String> {
    let replacement = Replacement::begin(path).map_err(|e| {
        if service_files::is_already_there(&e) {
            format!(
                "{} exists: another token command is running, or one was interrupted (then \
                 remove it)",
                Replacement::temporary_of(path).display()
            )
        } else {
            format!("cannot replace {}: {e}", path.display())
        }
    })?;
    let mut tokens = Tokens::read(path)?;
    change(&mut tokens)?;
    replacement
        .commit(tokens.text().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What identifies one version of the token file: it is only ever replaced by a rename, so a
/// new version has a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    modified_nanos: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok()?;
    let modified_nanos = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    Some(Stamp {
        inode: meta.ino(),
        size: meta.size(),
        modified_nanos,
    })
}

/// The tokens the server checks against, read again whenever the file changes.
pub struct TokenSet {
    path: PathBuf,
    current: Mutex<(Option<Stamp>, Arc<Tokens>)>,
}

impl TokenSet {
    /// Reads the file at `path`, which must exist.
    pub fn open(path: &Path) -> Result<TokenSet, String> {
        if matches!(service_files::read_file(path), Ok(None)) {
            return Err(format!(
                "no token file at {}: create a token with `gongji --data DIR token add NAME --role ROLE`",
                path.display()
            ));
        }
        let tokens = Tokens::read(path)?;
        Ok(TokenSet {
            path: path.to_path_buf(),
            current: Mutex::new((stamp(path), Arc::new(tokens))),
        })
    }

    /// The tokens as the file now holds them.
    pub fn current(&self) -> Arc<Tokens> {
        let now = stamp(&self.path);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != now {
            let tokens = Tokens::read(&self.path).unwrap_or_else(|why| {
                eprintln!("gongji serve: every token refused until the file reads: {why}");
                Tokens::default()
            });
            *current = (now, Arc::new(tokens));
        }
        current.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_added_is_found_by_its_text_and_gone_once_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.tokens");
        let token = add(&path, "ana", Role::Clerk).unwrap();
        assert_eq!(token.len(), 64);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let tokens = Tokens::read(&path).unwrap();
        assert_eq!(tokens.find(&token).map(|e| e.role), Some(Role::Clerk));
        assert!(tokens.find("not-the-token").is_none());
        assert!(
            add(&path, "ana", Role::Auditor).is_err(),
            "names are unique"
        );
        revoke(&path, "ana").unwrap();
        assert!(Tokens::read(&path).unwrap().find(&token).is_none());
        assert!(revoke(&path, "ana").is_err());
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        fs::write(Replacement::temporary_of(&path), "").unwrap();
        let refused = add(&path, "bo", Role::Operator).unwrap_err();
        assert!(refused.contains("another token command"), "{refused}");
        assert!(!path.exists());
    }

    #[test]
    fn the_set_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let first = add(&path, "a", Role::Auditor).unwrap();
        let set = TokenSet::open(&path).unwrap();
        assert!(set.current().find(&first).is_some());
        revoke(&path, "a").unwrap();
        assert!(set.current().find(&first).is_none());
    }

    #[test]
    fn bad_names_and_lines_are_refused() {
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(parse_entry("a clerk 2026 nothex").is_err());
        assert!(parse_entry("a boss 2026 00").is_err());
    }
}
