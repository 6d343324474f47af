package cli

import (
	"bytes"
	"encoding/json"
	"io"
)

// writeJSON writes v as indented JSON. It encodes fully before writing, so a
// failure never leaves half a document on stdout.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// buffered renders into memory first, then writes, for the same reason.
func buffered(w io.Writer, render func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
