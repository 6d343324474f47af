package measure

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/target"
)

// liveRoot is a running system's root as the checks read it: securityfs'
// log, sysfs' PCRs, and a crypttab.
func liveRoot(t *testing.T, crypttab string) fstest.MapFS {
	b, tpm := realLog(t)
	fsys := fstest.MapFS{LogPath: &fstest.MapFile{Data: b}}
	for bk, vals := range tpm {
		for i := 0; i < NumPCRs; i++ {
			d, ok := vals[i]
			if !ok {
				d = make(Digest, bk.Hash().Size())
			}
			fsys[PCRDir+"/pcr-"+string(bk)+"/"+itoa(i)] = &fstest.MapFile{Data: []byte(strings.ToUpper(d.String()) + "\n")}
		}
	}
	if crypttab != "" {
		fsys[CrypttabPath] = &fstest.MapFile{Data: []byte(crypttab)}
	}
	return fsys
}

func runChecks(t *testing.T, env *check.Env) map[string]finding.Finding {
	out := map[string]finding.Finding{}
	for _, f := range check.Run(context.Background(), env, Checks()) {
		out[f.ID] = f
	}
	return out
}

func TestChecksLive(t *testing.T) {
	env := &check.Env{Target: &target.Target{Kind: target.KindLive, Path: "/", Root: rootfs.New(liveRoot(t, "root UUID=1 none luks,tpm2-device=auto\n"))}}
	got := runChecks(t, env)
	if f := got["measured-boot.log-replays"]; f.Status != finding.Pass {
		t.Errorf("log-replays: %+v", f)
	}
	if f := got["measured-boot.pcr7-authority"]; f.Status != finding.Fail || !strings.Contains(f.Message, "UEFI CA 2011") {
		t.Errorf("pcr7-authority: %+v", f)
	}
	if f := got["measured-boot.sealed-pcr7"]; f.Status != finding.Fail || f.Subject != "root" {
		t.Errorf("sealed-pcr7: %+v", f)
	}

	// A tampered PCR: the replay check fails naming it.
	root := liveRoot(t, "")
	root[PCRDir+"/pcr-sha256/7"] = &fstest.MapFile{Data: []byte(strings.Repeat("00", 32))}
	got = runChecks(t, &check.Env{Target: &target.Target{Kind: target.KindLive, Path: "/", Root: rootfs.New(root)}})
	if f := got["measured-boot.log-replays"]; f.Status != finding.Fail || !strings.Contains(strings.Join(f.Evidence, " "), "PCR 7 (sha256)") {
		t.Errorf("tampered: %+v", f)
	}
	if f := got["measured-boot.sealed-pcr7"]; f.Status != finding.NotApplicable {
		t.Errorf("no crypttab: %+v", f)
	}

	// An image: not applicable, never a pass.
	got = runChecks(t, &check.Env{Target: &target.Target{Kind: target.KindImage, Path: "x.raw", Root: rootfs.New(fstest.MapFS{})}})
	for id, f := range got {
		if f.Status != finding.NotApplicable {
			t.Errorf("%s on an image: %+v", id, f)
		}
	}
	// No TPM on a live host: not applicable.
	got = runChecks(t, &check.Env{Target: &target.Target{Kind: target.KindLive, Path: "/", Root: rootfs.New(fstest.MapFS{})}})
	if f := got["measured-boot.log-replays"]; f.Status != finding.NotApplicable || !strings.Contains(f.Message, "no TPM event log") {
		t.Errorf("no TPM: %+v", f)
	}
}
