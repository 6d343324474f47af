package vm

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGuestSlots: two slots at once; a third caller waits, gives up with its
// context, and gets the slot once one is released. The lock is flock(2), so
// another process (flock(1) here) sees the same slots.
func TestGuestSlots(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // a budget of its own, not the machine's
	t.Setenv("VOUCH_QEMU_SLOTS", "")
	ctx := context.Background()
	a, err := AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name == b.Name {
		t.Fatalf("two holders of %s", a.Name)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := AcquireSlot(short); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for one of 2 QEMU guest slots") {
		t.Fatalf("third slot with both taken: %v", err)
	}
	if flock, err := exec.LookPath("flock"); err == nil {
		// Another process cannot take a held slot.
		if out, err := exec.Command(flock, "-n", a.Name, "true").CombinedOutput(); err == nil {
			t.Errorf("flock -n %s succeeded while the slot is held: %s", a.Name, out)
		}
	}
	got := make(chan *Slot)
	go func() {
		c, err := AcquireSlot(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	a.Release()
	a.Release() // idempotent
	c := <-got
	if c.Name != a.Name {
		t.Errorf("the waiter got %s, want the released %s", c.Name, a.Name)
	}
	b.Release()
	c.Release()
	var none *Slot
	none.Release()

	t.Setenv("VOUCH_QEMU_SLOTS", "1")
	d, err := AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	short2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := AcquireSlot(short2); err == nil {
		t.Error("VOUCH_QEMU_SLOTS=1 let two holders in")
	}
}

// TestStartWaitsForSlot: with every slot taken, Start says it waits and gives
// up with its context, starting no QEMU.
func TestStartWaitsForSlot(t *testing.T) {
	needQEMU(t)
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("VOUCH_QEMU_SLOTS", "1")
	held, err := AcquireSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	var log lockedLog
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	wd := workDir(t)
	m, err := Start(ctx, Config{Image: emptyDisk(t), Firmware: Firmware{Boot: BIOS}, Accel: "tcg", Log: &log, WorkDir: wd})
	if err == nil {
		m.Close()
		t.Fatal("Start ran a guest beyond the budget")
	}
	if !strings.Contains(err.Error(), "no QEMU guest slot") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start with no free slot: %v", err)
	}
	if w := log.lines("vm: waiting for one of the 1 QEMU guest slots"); len(w) != 1 {
		t.Errorf("want one waiting line, got %q", log.lines("vm: "))
	}
}
