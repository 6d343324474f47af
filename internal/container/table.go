package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// fileBackingOpener returns the opener of backing files named by the image at
// path; chain holds the files of the backing chain so far, that image last.
func fileBackingOpener(path string, chain []os.FileInfo) backingOpener {
	return func(name string, format Format, nameOffset int64) (Image, error) {
		if strings.HasPrefix(name, "json:") {
			return nil, &FormatError{Path: path, Offset: nameOffset, Unsupported: true,
				Reason: fmt.Sprintf("backing file %q is a QEMU json: specification, which is not supported", name)}
		}
		resolved := name
		if !filepath.IsAbs(resolved) {
			resolved = filepath.Join(filepath.Dir(path), name)
		}
		info, err := os.Stat(resolved)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &FormatError{Path: path, Offset: nameOffset,
				Reason: fmt.Sprintf("backing file %q is missing (looked for %s)", name, resolved)}
		}
		if err != nil {
			return nil, fmt.Errorf("container: %s: backing file: %w", path, err)
		}
		for _, c := range chain {
			if os.SameFile(c, info) {
				return nil, &FormatError{Path: path, Offset: nameOffset,
					Reason: fmt.Sprintf("backing chain loop: backing file %q (%s) is already in the chain", name, resolved)}
			}
		}
		if len(chain) >= maxBackingDepth {
			return nil, &FormatError{Path: path, Offset: nameOffset,
				Reason: fmt.Sprintf("backing chain is deeper than %d images", maxBackingDepth)}
		}
		return openFile(resolved, chain, format)
	}
}

// tablePage is the unit in which pagedTable reads an on-disk table.
const tablePage = 64 << 10

// pagedTable reads the entries of an on-disk table (qcow2 L1, VHD and VHDX
// BAT) a page at a time, on first use, so that a large table costs only the
// pages a read needs. It is not safe for concurrent use.
type pagedTable struct {
	src   *source
	off   int64 // file offset of the table
	n     int64 // number of entries
	esize int64 // bytes per entry
	what  string
	pages map[int64][]byte
}

// newPagedTable checks that the table lies within the file.
func newPagedTable(src *source, off, n, esize int64, what string) (*pagedTable, error) {
	if n < 0 || n > (1<<62)/esize || !src.inFile(off, n*esize) {
		return nil, src.formatErr(off, "%s of %d entries extends past end of file", what, n)
	}
	return &pagedTable{src: src, off: off, n: n, esize: esize, what: what, pages: map[int64][]byte{}}, nil
}

// entry returns the bytes of entry i, which must be below t.n.
func (t *pagedTable) entry(i int64) ([]byte, error) {
	pos := i * t.esize
	page := pos / tablePage
	b, ok := t.pages[page]
	if !ok {
		start := page * tablePage
		b = make([]byte, min(tablePage, t.n*t.esize-start))
		if err := t.src.readAt(b, t.off+start, t.what); err != nil {
			return nil, err
		}
		t.pages[page] = b
	}
	in := pos - page*tablePage
	return b[in : in+t.esize], nil
}
