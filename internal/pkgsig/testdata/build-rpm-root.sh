#!/usr/bin/env bash
# build-rpm-root.sh DIR: a real rpm root for tests, made with Debian's rpm tools
# (apt packages rpm and gnupg): a generated RSA key, a small noarch package built
# with rpmbuild and signed with rpmsign, the key imported into the rpm keyring
# (a gpg-pubkey pseudo-package) and exported to etc/pki/rpm-gpg, and the package
# installed into DIR/root with its database at usr/lib/sysimage/rpm/rpmdb.sqlite.
# Also writes DIR/other.asc, a second key that signed nothing.
set -euo pipefail
W=$1
mkdir -p "$W/gnupg" "$W/top/SPECS" "$W/root/usr/lib/sysimage/rpm" "$W/root/etc/pki/rpm-gpg"
chmod 700 "$W/gnupg"
export GNUPGHOME=$W/gnupg
for name in "vouch test" "vouch other"; do
gpg --batch --gen-key >/dev/null 2>&1 <<EOF
%no-protection
Key-Type: RSA
Key-Length: 2048
Name-Real: $name
Name-Email: test@vouch.invalid
Expire-Date: 0
%commit
EOF
done
cat >"$W/top/SPECS/hello.spec" <<'EOF'
Name: vouch-hello
Version: 1.0
Release: 1
Epoch: 2
Summary: vouch test package
License: MIT and GPLv2+
BuildArch: noarch
%description
test
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc
printf '#!/bin/sh\necho hello\n' > %{buildroot}/usr/bin/vouch-hello
chmod 755 %{buildroot}/usr/bin/vouch-hello
echo conf=1 > %{buildroot}/etc/vouch-hello.conf
%files
/usr/bin/vouch-hello
%config(noreplace) /etc/vouch-hello.conf
EOF
rpmbuild --define "_topdir $W/top" -bb "$W/top/SPECS/hello.spec" >/dev/null 2>&1
rpm=$(ls "$W"/top/RPMS/noarch/*.rpm)
rpmsign --define "_gpg_name vouch test" --define "__gpg /usr/bin/gpg" \
	--define "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback" --addsign "$rpm" >/dev/null 2>&1
gpg --armor --export "vouch test" >"$W/root/etc/pki/rpm-gpg/RPM-GPG-KEY-vouch"
gpg --armor --export "vouch other" >"$W/other.asc"
cp /dev/null "$W/root/etc/os-release"
printf 'ID="almalinux"\nVERSION_ID="9.4"\nNAME="AlmaLinux"\n' >"$W/root/etc/os-release"
rpm --root "$W/root" --dbpath /usr/lib/sysimage/rpm --import "$W/root/etc/pki/rpm-gpg/RPM-GPG-KEY-vouch" 2>/dev/null
rpm --root "$W/root" --dbpath /usr/lib/sysimage/rpm -i --nodeps --noscripts "$rpm" 2>/dev/null
