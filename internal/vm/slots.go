package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The machine-wide guest budget: at most DefaultGuestSlots QEMU guests of
// vouch run at once on a host, whatever process starts them (go test runs
// packages in parallel processes; several `vouch test` runs may share a
// machine). A guest holds an exclusive flock(2) on one slot file of
// SlotDir() from before QEMU starts until Close; the kernel drops the lock
// when the process exits, however it exits, so a crashed run never keeps a
// slot. VOUCH_QEMU_SLOTS changes the number of slots.
const DefaultGuestSlots = 2

// SlotDir is where the slot files live: os.TempDir()/vouch-qemu-slots.
func SlotDir() string { return filepath.Join(os.TempDir(), "vouch-qemu-slots") }

// slotPoll is how often a waiting caller tries the slots again.
const slotPoll = 100 * time.Millisecond

// Slot is one held place in the guest budget. Release it.
type Slot struct {
	f    *os.File
	Name string // the slot file
}

// guestSlots is the budget: VOUCH_QEMU_SLOTS when it is a positive number.
func guestSlots() int {
	if n, err := strconv.Atoi(os.Getenv("VOUCH_QEMU_SLOTS")); err == nil && n > 0 {
		return n
	}
	return DefaultGuestSlots
}

// AcquireSlot waits for a free slot of the machine-wide guest budget; the
// wait ends with ctx. Every QEMU guest of vouch (vm.Start, its accelerator
// probe, tests booting firmware directly) runs while holding one.
func AcquireSlot(ctx context.Context) (*Slot, error) { return acquireSlot(ctx, nil) }

// acquireSlot is AcquireSlot; waiting is called once when every slot is
// taken and the caller has to wait.
func acquireSlot(ctx context.Context, waiting func(n int, dir string)) (*Slot, error) {
	dir := SlotDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("vm: guest slots: %w", err)
	}
	n := guestSlots()
	tick := time.NewTicker(slotPoll)
	defer tick.Stop()
	for {
		for i := 0; i < n; i++ {
			p := filepath.Join(dir, fmt.Sprintf("slot-%d", i))
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
			if err != nil {
				return nil, fmt.Errorf("vm: guest slot %s: %w", p, err)
			}
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				return &Slot{f: f, Name: p}, nil
			}
			f.Close()
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("vm: lock guest slot %s: %w", p, err)
			}
		}
		if waiting != nil {
			waiting(n, dir)
			waiting = nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: waiting for one of %d QEMU guest slots (%s): %w", n, dir, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Release frees the slot; it is idempotent and nil-safe.
func (s *Slot) Release() {
	if s == nil || s.f == nil {
		return
	}
	s.f.Close() // closing the last descriptor drops the flock
	s.f = nil
}
