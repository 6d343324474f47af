package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidDigest reports whether d is a lower-case hex SHA-256.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// imageCache is the worker's directory of downloaded images.
func (w *Worker) imageCache() (string, error) {
	if w.CacheDir != "" {
		return w.CacheDir, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("jobs: no cache directory for downloaded images (give the worker --cache-dir): %w", err)
	}
	return filepath.Join(d, "vouch", "images"), nil
}

// downloadTries bounds the attempts of one image download; each attempt
// resumes where the last one stopped.
const downloadTries = 5

// localImage returns a path on this machine holding the image the server
// keeps under img.SHA256: from the cache, else downloaded into it. A
// download goes to DIGEST.part, resumes from its end after a cut-off, and
// becomes DIGEST.img only when its length and SHA-256 match; a lock file
// keeps two workers sharing the cache from writing the same part. The
// image stays locked (shared) until release is called, so that no worker
// sharing the cache prunes it while a job uses it; then the cache is pruned
// to CacheMaxBytes.
func (w *Worker) localImage(ctx context.Context, img Image, log io.Writer) (path string, release func(), err error) {
	if !ValidDigest(img.SHA256) {
		return "", nil, fmt.Errorf("jobs: image digest %q is not a SHA-256", img.SHA256)
	}
	dir, err := w.imageCache()
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("jobs: image cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, img.SHA256+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("jobs: image cache: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return "", nil, fmt.Errorf("jobs: image cache lock: %w", err)
	}
	path, err = w.fetchLocked(ctx, dir, img, log)
	if err != nil {
		lock.Close() // releases the lock
		return "", nil, err
	}
	// Marks the image as used now: pruning goes oldest use first.
	now := time.Now()
	os.Chtimes(path, now, now)
	// Exclusive to shared: other jobs on the same image may use it too.
	syscall.Flock(int(lock.Fd()), syscall.LOCK_SH)
	w.pruneCache(dir, log)
	return path, func() { lock.Close() }, nil
}

// fetchLocked is localImage's work under the image's exclusive lock.
func (w *Worker) fetchLocked(ctx context.Context, dir string, img Image, log io.Writer) (string, error) {
	final := filepath.Join(dir, img.SHA256+".img")
	if st, err := os.Stat(final); err == nil && (img.Size == 0 || st.Size() == img.Size) {
		fmt.Fprintf(log, "image %s: in the worker's cache (%s)\n", short(img.SHA256), final)
		return final, nil
	}
	part := filepath.Join(dir, img.SHA256+".part")
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("jobs: image cache: %w", err)
	}
	defer f.Close()
	// What an earlier, cut-off download left counts towards the digest.
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("jobs: reading %s: %w", part, err)
	}
	if img.Size > 0 && have > img.Size {
		if err := f.Truncate(0); err != nil {
			return "", fmt.Errorf("jobs: %w", err)
		}
		f.Seek(0, io.SeekStart)
		h.Reset()
		have = 0
	}
	if have > 0 {
		fmt.Fprintf(log, "image %s: resuming the download at byte %d of %d\n", short(img.SHA256), have, img.Size)
	} else {
		fmt.Fprintf(log, "image %s: downloading %d bytes from the server\n", short(img.SHA256), img.Size)
	}
	var lastErr error
	for try := 0; try < downloadTries && (img.Size == 0 || have < img.Size); try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Duration(try-1) * time.Second): // the first resume at once
			}
			fmt.Fprintf(log, "image %s: download cut off at byte %d (%v); resuming\n", short(img.SHA256), have, lastErr)
		}
		n, err := w.Server.FetchImage(ctx, img.SHA256, have, io.MultiWriter(f, h))
		have += n
		if err == nil {
			lastErr = nil
			if img.Size == 0 {
				break
			}
			continue
		}
		lastErr = err
		if ctx.Err() != nil || errors.Is(err, ErrImageGone) {
			break
		}
	}
	if lastErr != nil {
		return "", fmt.Errorf("jobs: downloading image %s from the server: %w (kept %d bytes to resume)", img.SHA256, lastErr, have)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if (img.Size > 0 && have != img.Size) || sum != img.SHA256 {
		f.Close()
		os.Remove(part)
		return "", fmt.Errorf("jobs: image downloaded from the server is %d bytes with SHA-256 %s, want %d bytes with %s: discarded", have, sum, img.Size, img.SHA256)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("jobs: %w", err)
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("jobs: %w", err)
	}
	fmt.Fprintf(log, "image %s: downloaded and checked (%d bytes)\n", short(img.SHA256), have)
	return final, nil
}

// pruneCache removes the least recently used images (and abandoned partial
// downloads) until the cache holds at most CacheMaxBytes; an image another
// job holds (its lock taken) is left alone. Lock files stay: removing one
// that another worker has just opened would let two workers lock the same
// image through two different files.
func (w *Worker) pruneCache(dir string, log io.Writer) {
	if w.CacheMaxBytes <= 0 {
		return
	}
	type entry struct {
		path, digest string
		size         int64
		used         time.Time
	}
	var all []entry
	var total int64
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		name := de.Name()
		digest, ok := strings.CutSuffix(name, ".img")
		if !ok {
			digest, ok = strings.CutSuffix(name, ".part")
		}
		if !ok || !ValidDigest(digest) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		all = append(all, entry{filepath.Join(dir, name), digest, fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= w.CacheMaxBytes {
			return
		}
		lock, err := os.OpenFile(filepath.Join(dir, e.digest+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			continue
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if os.Remove(e.path) == nil {
				total -= e.size
				fmt.Fprintf(log, "image cache: removed %s (%d bytes, last used %s) to stay within %d bytes\n",
					filepath.Base(e.path), e.size, e.used.UTC().Format(time.RFC3339), w.CacheMaxBytes)
			}
		}
		lock.Close()
	}
	if total > w.CacheMaxBytes {
		fmt.Fprintf(log, "image cache: %d bytes, over the %d-byte limit: the rest is in use\n", total, w.CacheMaxBytes)
	}
}

// ErrImageGone is the server answering that it does not keep the image.
var ErrImageGone = errors.New("jobs: the server does not keep this image")

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
