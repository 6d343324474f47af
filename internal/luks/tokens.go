package luks

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Token types that bind a keyslot to the TPM.
const (
	TypeClevis      = "clevis"       // clevis luks bind (LUKS2): a JWE whose protected header names the pin
	TypeSystemdTPM2 = "systemd-tpm2" // systemd-cryptenroll --tpm2-device
)

// Token is one entry of the header's "tokens" object.
type Token struct {
	ID       int    `json:"id"`
	Type     string `json:"type"`
	Keyslots []int  `json:"keyslots"`
	// Pin describes a Clevis token's pin tree: "tpm2", "tang",
	// "sss(t=1: tpm2, tang)".
	Pin string `json:"pin,omitempty"`
	// TPM2 are the token's TPM2 bindings (a Clevis sss pin may hold
	// several).
	TPM2 []TPM2Binding `json:"tpm2,omitempty"`
	// TPM2Required reports that the token cannot unlock without the TPM:
	// false for a Clevis sss pin whose other pins meet its threshold alone
	// (tang servers, say).
	TPM2Required bool `json:"tpm2Required"`
}

// TPM2Binding is a key sealed by the TPM to PCR values.
type TPM2Binding struct {
	// Bank is the PCR bank ("sha256"; Clevis defaults to sha1 when its
	// config gives pcr_ids without pcr_bank).
	Bank string `json:"bank,omitempty"`
	// PCRs are the PCRs whose values the policy names; none means the key
	// is bound to the TPM only.
	PCRs []int `json:"pcrs"`
	// SignedPCRs are PCRs bound through a signed policy (systemd's
	// tpm2-pubkey-pcrs): a new signed policy, not a re-enrolment, follows
	// their changes.
	SignedPCRs []int `json:"signedPcrs,omitempty"`
}

// rawHeader is the part of the JSON metadata vouch reads.
type rawHeader struct {
	Keyslots map[string]struct {
		Type string `json:"type"`
	} `json:"keyslots"`
	Tokens map[string]json.RawMessage `json:"tokens"`
}

func (h *Header) parseJSON(b []byte) error {
	var raw rawHeader
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("JSON metadata: %w", err)
	}
	if raw.Keyslots == nil {
		return fmt.Errorf("JSON metadata has no keyslots object")
	}
	h.Keyslots = map[int]string{}
	for id, k := range raw.Keyslots {
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			return fmt.Errorf("keyslot id %q is not a number", id)
		}
		h.Keyslots[n] = k.Type
	}
	for id, tb := range raw.Tokens {
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			return fmt.Errorf("token id %q is not a number", id)
		}
		t, err := parseToken(n, tb)
		if err != nil {
			h.Notes = append(h.Notes, fmt.Sprintf("token %d: %v", n, err))
		}
		if t != nil {
			h.Tokens = append(h.Tokens, *t)
		}
	}
	sort.Slice(h.Tokens, func(i, j int) bool { return h.Tokens[i].ID < h.Tokens[j].ID })
	return nil
}

// parseToken reads one token; a token it cannot read is returned with its
// type (and the error says why) when the type is known.
func parseToken(id int, b json.RawMessage) (*Token, error) {
	var common struct {
		Type     string   `json:"type"`
		Keyslots []string `json:"keyslots"`
	}
	if err := json.Unmarshal(b, &common); err != nil {
		return nil, err
	}
	t := &Token{ID: id, Type: common.Type}
	for _, k := range common.Keyslots {
		n, err := strconv.Atoi(k)
		if err != nil {
			return t, fmt.Errorf("keyslot %q is not a number", k)
		}
		t.Keyslots = append(t.Keyslots, n)
	}
	switch t.Type {
	case TypeSystemdTPM2:
		return t, t.parseSystemd(b)
	case TypeClevis:
		return t, t.parseClevis(b)
	}
	return t, nil
}

// parseSystemd reads systemd-cryptenroll's token (systemd's
// src/shared/tpm2-util.c, tpm2_make_luks2_json): "tpm2-pcrs" (an array of
// PCR numbers), "tpm2-pcr-bank", "tpm2-pubkey-pcrs".
func (t *Token) parseSystemd(b json.RawMessage) error {
	var s struct {
		PCRs       []json.Number `json:"tpm2-pcrs"`
		Bank       string        `json:"tpm2-pcr-bank"`
		PubkeyPCRs []json.Number `json:"tpm2-pubkey-pcrs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	bd := TPM2Binding{Bank: s.Bank, PCRs: []int{}}
	for _, list := range []struct {
		in  []json.Number
		out *[]int
	}{{s.PCRs, &bd.PCRs}, {s.PubkeyPCRs, &bd.SignedPCRs}} {
		for _, n := range list.in {
			i, err := pcrIndex(string(n))
			if err != nil {
				return err
			}
			*list.out = append(*list.out, i)
		}
		sort.Ints(*list.out)
	}
	t.TPM2, t.TPM2Required = []TPM2Binding{bd}, true
	return nil
}

// clevisNode is a Clevis pin configuration from a JWE protected header
// ("clevis": {"pin": ..., PIN: {...}}), as clevis-encrypt-* write it.
type clevisNode struct {
	Pin  string `json:"pin"`
	TPM2 *struct {
		Bank string `json:"pcr_bank"`
		// PCRs is "0,7" as clevis-encrypt-tpm2 stores it; an array is
		// read too.
		PCRs json.RawMessage `json:"pcr_ids"`
	} `json:"tpm2"`
	SSS *struct {
		T   int      `json:"t"`
		JWE []string `json:"jwe"` // compact JWEs, one per pin
	} `json:"sss"`
}

// maxDepth bounds nested sss pins.
const maxDepth = 8

// parseClevis reads a Clevis LUKS2 token: "jwe" is a flattened JWE whose
// base64url "protected" header holds the pin (clevis-luks-bind; the pins'
// configuration as clevis-luks-list prints it).
func (t *Token) parseClevis(b json.RawMessage) error {
	var s struct {
		JWE struct {
			Protected string `json:"protected"`
		} `json:"jwe"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	pin, bindings, req, err := clevisPin(s.JWE.Protected, 0)
	if err != nil {
		return err
	}
	t.Pin, t.TPM2, t.TPM2Required = pin, bindings, req
	return nil
}

// clevisPin decodes one protected header and walks its pin: the pin's
// description, its TPM2 bindings, and whether unlocking needs the TPM.
func clevisPin(protected string, depth int) (string, []TPM2Binding, bool, error) {
	if depth > maxDepth {
		return "", nil, false, fmt.Errorf("sss pins nested deeper than %d", maxDepth)
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(protected, "="))
	if err != nil {
		return "", nil, false, fmt.Errorf("JWE protected header: %w", err)
	}
	var hdr struct {
		Clevis *clevisNode `json:"clevis"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return "", nil, false, fmt.Errorf("JWE protected header: %w", err)
	}
	if hdr.Clevis == nil || hdr.Clevis.Pin == "" {
		return "", nil, false, fmt.Errorf("JWE protected header names no clevis pin")
	}
	c := hdr.Clevis
	switch c.Pin {
	case "tpm2":
		bd := TPM2Binding{Bank: "sha1", PCRs: []int{}}
		if c.TPM2 != nil {
			if c.TPM2.Bank != "" {
				bd.Bank = c.TPM2.Bank
			}
			if bd.PCRs, err = clevisPCRs(c.TPM2.PCRs); err != nil {
				return "", nil, false, err
			}
		}
		return "tpm2", []TPM2Binding{bd}, true, nil
	case "sss":
		if c.SSS == nil {
			return "", nil, false, fmt.Errorf("sss pin without its configuration")
		}
		var names []string
		var all []TPM2Binding
		others := 0 // pins that unlock without the TPM
		for _, compact := range c.SSS.JWE {
			prot, _, _ := strings.Cut(compact, ".")
			name, bds, req, err := clevisPin(prot, depth+1)
			if err != nil {
				return "", nil, false, err
			}
			names = append(names, name)
			all = append(all, bds...)
			if !req {
				others++
			}
		}
		return fmt.Sprintf("sss(t=%d: %s)", c.SSS.T, strings.Join(names, ", ")), all, len(all) > 0 && others < c.SSS.T, nil
	}
	return c.Pin, nil, false, nil
}

// clevisPCRs reads pcr_ids: "0,7" (clevis-encrypt-tpm2 stores the string
// it was given), "7", or an array of numbers or strings.
func clevisPCRs(raw json.RawMessage) ([]int, error) {
	out := []int{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var parts []string
	var s string
	var arr []json.RawMessage
	switch {
	case json.Unmarshal(raw, &s) == nil:
		parts = strings.Split(s, ",")
	case json.Unmarshal(raw, &arr) == nil:
		for _, a := range arr {
			parts = append(parts, strings.Trim(string(a), `"`))
		}
	default:
		return nil, fmt.Errorf("pcr_ids %s is neither a string nor an array", raw)
	}
	for _, p := range parts {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		i, err := pcrIndex(p)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	sort.Ints(out)
	return out, nil
}

func pcrIndex(s string) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i > 23 {
		return 0, fmt.Errorf("PCR %q is not a number from 0 to 23", s)
	}
	return i, nil
}

// Sealed reports whether a token of the header unlocks the volume with
// the TPM, and the union of the PCRs those tokens are sealed to.
func (h *Header) Sealed() (pcrs []int, ok bool) {
	seen := map[int]bool{}
	for _, t := range h.Tokens {
		for _, b := range t.TPM2 {
			ok = true
			for _, p := range b.PCRs {
				if !seen[p] {
					seen[p] = true
					pcrs = append(pcrs, p)
				}
			}
		}
	}
	sort.Ints(pcrs)
	return pcrs, ok
}
