//! Each output's Sendspin identity: an X25519 keypair kept in the state directory, one file per output,
//! `<state_dir>/sendspin/<output>.key`. The file holds the private key as 43 base64url characters and a newline
//! (the form aiosendspin persists, `noise/keys.py` `Identity.private_b64u`); the public key, and so the client_id
//! the server knows the player by, is derived from it.
//!
//! Made on first start (mode 0600, in a 0700 directory, written to a temporary file and renamed, so a crash leaves
//! no half key); read on every later start and reload. A key file that cannot be read, or does not hold a key, is
//! an error naming the file: it is never replaced, because a new key is a new player that the server has to be
//! told to trust again.

use super::secure::handshake::Keypair;
use super::secure::{b64url, KEY_BYTES, PEER_ID_CHARS};
use base64::Engine as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The subdirectory of the state directory that holds the key files.
pub const KEY_DIR: &str = "sendspin";
/// Largest key file read, bytes (a key is 44).
const MAX_KEY_FILE_BYTES: u64 = 256;

/// Why an identity could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file or its directory could not be read or written.
    #[error("sendspin identity {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file exists but does not hold a key. It is left as it is.
    #[error(
        "sendspin identity {path}: {reason}; the file is kept as it is: restore it from a backup, or delete it to \
         make a new identity (the server then sees a new player to accept)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No key could be generated.
    #[error("sendspin identity: {0}")]
    Generate(String),
}

/// The key file of output `output` under `state_dir`. The name is the output's, with every byte outside
/// `[A-Za-z0-9._-]` written `%XX` (so distinct names never share a file, and no name leaves the directory).
pub fn key_path(state_dir: &Path, output: &str) -> PathBuf {
    let mut name = String::new();
    for b in output.bytes() {
        if b.is_ascii_alphanumeric() || b"_-".contains(&b) || (b == b'.' && !name.is_empty()) {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    state_dir.join(KEY_DIR).join(format!("{name}.key"))
}

/// Output `output`'s keypair, made and stored on first use. `Ok((keys, true))` when it was just made.
pub fn load_or_create(state_dir: &Path, output: &str) -> Result<(Keypair, bool), IdentityError> {
    let path = key_path(state_dir, output);
    match read_key(&path) {
        Ok(k) => return Ok((k, false)),
        Err(IdentityError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let keys = Keypair::generate().map_err(|e| IdentityError::Generate(e.to_string()))?;
    let dir = path.parent().expect("a key path has a directory");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| IdentityError::Io { path: p, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(format!("{}\n", b64url(keys.private())).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    // A key another instance stored meanwhile wins: link fails on an existing file, rename would overwrite it.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((keys, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path).map(|k| (k, false)),
        Err(e) => Err(IdentityError::Io { path, source: e }),
    }
}

/// Reads a key file; warns when others may read it.
pub fn read_key(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    let corrupt = |reason: String| IdentityError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(corrupt(format!("{} bytes, a key file has 44", meta.len())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "sendspin identity {}: mode {:o} lets others read the private key; chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_KEY_FILE_BYTES), &mut text).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::InvalidData => corrupt("not text".into()),
            _ => io(e),
        }
    })?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.len() != PEER_ID_CHARS {
        return Err(corrupt(format!(
            "{} characters, a key is {PEER_ID_CHARS} base64url characters and a newline",
            line.len()
        )));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(line)
        .map_err(|e| corrupt(format!("not base64url: {e}")))?;
    let private: [u8; KEY_BYTES] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("does not decode to {KEY_BYTES} bytes")))?;
    Ok(Keypair::from_private(private))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_with_0600_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (a, made) = load_or_create(dir.path(), "kitchen").unwrap();
        assert!(made);
        let path = key_path(dir.path(), "kitchen");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let (b, made) = load_or_create(dir.path(), "kitchen").unwrap();
        assert!(!made);
        assert_eq!(a, b);
        // One per output.
        let (c, _) = load_or_create(dir.path(), "bedroom").unwrap();
        assert_ne!(a.client_id(), c.client_id());
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_corrupt_key_is_an_error_naming_the_file_and_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path(), "k");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for bad in [&b"short\n"[..], &[b'*'; 44][..], &b"\xff\xfe"[..], &[b'A'; 400][..]] {
            std::fs::write(&path, bad).unwrap();
            let e = load_or_create(dir.path(), "k").unwrap_err();
            assert!(matches!(e, IdentityError::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), bad, "the file is kept");
        }
    }

    #[test]
    fn an_unreadable_key_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path(), "k");
        std::fs::create_dir_all(&path).unwrap(); // a directory where the file should be
        let e = load_or_create(dir.path(), "k").unwrap_err();
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(path.is_dir());
    }

    #[test]
    fn a_key_aiosendspin_stored_gives_its_client_id() {
        // `Identity.from_private_bytes(bytes(range(32)))`: private_b64u and peer_id, from aiosendspin 10.2.1.
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path(), "x");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{AIOSENDSPIN_PRIVATE}\n")).unwrap();
        assert_eq!(read_key(&path).unwrap().client_id(), AIOSENDSPIN_PEER_ID);
    }

    const AIOSENDSPIN_PRIVATE: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const AIOSENDSPIN_PEER_ID: &str = "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8";

    #[test]
    fn output_names_map_to_distinct_file_names_inside_the_directory() {
        let d = Path::new("/s");
        assert_eq!(key_path(d, "kitchen"), Path::new("/s/sendspin/kitchen.key"));
        assert_eq!(key_path(d, "Living room"), Path::new("/s/sendspin/Living%20room.key"));
        assert_eq!(key_path(d, "../x"), Path::new("/s/sendspin/%2E.%2Fx.key"));
        assert_eq!(key_path(d, "a/b"), Path::new("/s/sendspin/a%2Fb.key"));
        assert_ne!(key_path(d, "a b"), key_path(d, "a%20b"));
    }
}
