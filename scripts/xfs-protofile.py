#!/usr/bin/env python3
"""xfs-protofile.py: turn a directory tree into an mkfs.xfs prototype file.

xfsprogs 6.1 (Debian 12) cannot populate a new file system from a directory,
but `mkfs.xfs -p PROTOFILE` can build one from a prototype file (format in
mkfs.xfs(8), parser in xfsprogs mkfs/proto.c). This script writes that file to
standard output for the tree ROOTDIR, so scripts/build-fixtures.sh can make an
XFS root file system without mounting anything. Standard library only.

Usage:
    xfs-protofile.py [--override REL=SRC]... [--sticky-list FILE] ROOTDIR > proto

  --override REL=SRC  put the contents of SRC at the regular file REL (a path
                      relative to ROOTDIR that must exist there), e.g. to give
                      the XFS root its own etc/fstab
  --sticky-list FILE  write the paths (relative, one a line) of directories and
                      files that have the sticky bit, which the format cannot
                      express; the caller restores it with xfs_db

What is kept: the whole tree (directories, regular files, symbolic links,
character and block devices, FIFOs), permission bits, set-user-ID and
set-group-ID bits, owner and group.

Limits of the prototype format (entries are reported on stderr):
  - names containing whitespace, names starting with ':' (a comment) and the
    name '$' (end of directory) cannot be written: such entries are skipped;
    so are symbolic links whose target contains whitespace, and regular files
    whose source path does (ROOTDIR itself must not contain whitespace)
  - the sticky bit is not in the format (see --sticky-list)
  - hard links become separate copies (same contents, link count 1)
  - sockets are skipped; extended attributes (security.capability, ACLs) and
    timestamps are not carried over (every inode gets the time of mkfs)
"""

import argparse
import os
import stat
import sys

WHITESPACE = (" ", "\t", "\n", "\r", "\v", "\f")


def bad_token(s):
    return s == "" or any(c in s for c in WHITESPACE)


def mode_string(kind, st_mode):
    """The 6-character mode token: type, 'u', 'g', three octal digits."""
    suid = "u" if st_mode & stat.S_ISUID else "-"
    sgid = "g" if st_mode & stat.S_ISGID else "-"
    return "%s%s%s%03o" % (kind, suid, sgid, st_mode & 0o777)


class Writer:
    def __init__(self, root, overrides, out):
        self.root = root
        self.overrides = overrides
        self.out = out
        self.skipped = []
        self.sticky = []
        self.hardlinks = 0
        self.seen_inodes = set()
        self.used_overrides = set()

    def line(self, depth, text):
        self.out.write("  " * depth + text + "\n")

    def skip(self, rel, why):
        self.skipped.append((rel, why))

    def walk(self, absdir, reldir, depth):
        with os.scandir(absdir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = e.name if reldir == "" else reldir + "/" + e.name
            name = e.name
            if bad_token(name) or name.startswith(":") or name == "$":
                self.skip(rel, "name cannot be written in a protofile")
                continue
            st = os.lstat(e.path)
            m = st.st_mode
            if m & stat.S_ISVTX:
                self.sticky.append(rel)
            owner = "%d %d" % (st.st_uid, st.st_gid)
            if stat.S_ISDIR(m):
                self.line(depth, "%s %s %s" % (name, mode_string("d", m), owner))
                self.walk(e.path, rel, depth + 1)
                self.line(depth, "$")
            elif stat.S_ISREG(m):
                src = self.overrides.get(rel, e.path)
                if rel in self.overrides:
                    self.used_overrides.add(rel)
                if bad_token(src):
                    self.skip(rel, "source path contains whitespace")
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in self.seen_inodes:
                        self.hardlinks += 1
                    self.seen_inodes.add(key)
                self.line(depth, "%s %s %s %s" % (name, mode_string("-", m), owner, src))
            elif stat.S_ISLNK(m):
                target = os.readlink(e.path)
                if bad_token(target):
                    self.skip(rel, "symlink target cannot be written in a protofile")
                    continue
                self.line(depth, "%s %s %s %s" % (name, mode_string("l", m), owner, target))
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                kind = "c" if stat.S_ISCHR(m) else "b"
                self.line(depth, "%s %s %s %d %d" % (
                    name, mode_string(kind, m), owner,
                    os.major(st.st_rdev), os.minor(st.st_rdev)))
            elif stat.S_ISFIFO(m):
                self.line(depth, "%s %s %s" % (name, mode_string("p", m), owner))
            else:
                self.skip(rel, "sockets are not supported")


def main(argv):
    p = argparse.ArgumentParser(description="write an mkfs.xfs protofile for a directory")
    p.add_argument("--override", action="append", default=[], metavar="REL=SRC")
    p.add_argument("--sticky-list", metavar="FILE")
    p.add_argument("rootdir")
    a = p.parse_args(argv)

    root = os.path.abspath(a.rootdir)
    if bad_token(root):
        p.error("rootdir path must not contain whitespace: %r" % root)
    if not os.path.isdir(root):
        p.error("not a directory: %s" % root)
    overrides = {}
    for o in a.override:
        rel, sep, src = o.partition("=")
        if not sep or not rel or not src:
            p.error("--override wants REL=SRC, got %r" % o)
        rel = rel.strip("/")
        if not os.path.isfile(os.path.join(root, rel)):
            p.error("--override: %s is not a regular file under %s" % (rel, root))
        overrides[rel] = os.path.abspath(src)

    out = sys.stdout
    w = Writer(root, overrides, out)
    st = os.lstat(root)
    # Line 1: a dummy string; line 2: two ignored numbers; then the root directory.
    out.write("vouch-xfs-protofile\n0 0\n")
    out.write("%s %d %d\n" % (mode_string("d", st.st_mode), st.st_uid, st.st_gid))
    if st.st_mode & stat.S_ISVTX:
        w.sticky.append(".")
    w.walk(root, "", 1)
    out.write("$\n")

    for rel, why in w.skipped:
        print("xfs-protofile: skipped %s: %s" % (rel, why), file=sys.stderr)
    if w.hardlinks:
        print("xfs-protofile: %d hard link(s) become separate copies" % w.hardlinks,
              file=sys.stderr)
    if a.sticky_list is not None:
        with open(a.sticky_list, "w") as f:
            for rel in w.sticky:
                f.write(rel + "\n")
    missing = set(overrides) - w.used_overrides
    if missing:
        print("xfs-protofile: overrides not used: %s" % ", ".join(sorted(missing)),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
