//! The socket of a server-mode port. The daemon runs as root and `path=` comes from an
//! operator (or a management client): only a stale socket is ever replaced, never a file of
//! another kind, and the socket is removed on close only if it is still the one we made.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket file we created: its path and identity (device, inode).
pub(crate) struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Someone may have replaced it since: remove only our own.
        if let Ok(md) = std::fs::symlink_metadata(&self.path)
            && (md.dev(), md.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates a listening socket at `path` with mode 0660 (owner and group may connect, like
/// QEMU's and Open vSwitch's sockets). Replaces a socket nobody listens on; refuses a socket in
/// use, and anything that is not a socket. A failed permission change is an error (the socket
/// is then removed).
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err("a process is already listening on it".into());
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove the stale socket: {e}"))?;
        }
        Ok(md) => {
            let what = if md.is_dir() {
                "a directory"
            } else if md.file_type().is_symlink() {
                "a symbolic link"
            } else if md.is_file() {
                "a regular file"
            } else {
                "not a socket"
            };
            return Err(format!("{what} is in the way; refusing to replace it"));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect it: {e}")),
    }
    // bind(2) never replaces anything: if something appeared in between, this fails.
    let listener = UnixListener::bind(path).map_err(|e| e.to_string())?;
    let md = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: (md.dev(), md.ino()),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set mode 0660 on the socket: {e}"))?;
    Ok((listener, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vhu-sock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_what_is_not_a_stale_socket() {
        let d = dir("refuse");
        let file = d.join("file");
        std::fs::write(&file, "keep me").unwrap();
        let e = bind(&file).err().unwrap();
        assert!(e.contains("regular file"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        assert!(bind(&d).err().unwrap().contains("directory"));
        let link = d.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(bind(&link).err().unwrap().contains("symbolic link"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

        let sock = d.join("s");
        let (l, f) = bind(&sock).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(bind(&sock).err().unwrap().contains("already listening"));
        drop(l);
        // Nobody listens any more: a stale socket is replaced.
        drop(f);
        assert!(!sock.exists(), "closing removes our socket");
        let (_l2, f2) = bind(&sock).unwrap();
        let stale = UnixListener::bind(d.join("stale")).unwrap();
        drop(stale);
        let (_l3, _f3) = bind(&d.join("stale")).unwrap();
        // Replaced by someone else: not removed on close.
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, "theirs").unwrap();
        drop(f2);
        assert_eq!(std::fs::read_to_string(&sock).unwrap(), "theirs");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
