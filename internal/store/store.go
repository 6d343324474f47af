// Package store is what `vouch serve` keeps: tokens (hashed), content-addressed
// blobs, hosts with their latest report and its history. One interface, two
// drivers: embedded SQLite (modernc.org/sqlite, no cgo; the default, one file)
// and PostgreSQL (github.com/jackc/pgx/v5; several servers share it). Each
// driver has its own numbered migrations, embedded and run on Open. The
// conformance suite in storetest runs against both.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Roles of a token.
const (
	RoleEnroll = "enroll" // exchanges itself once per host for a host credential
	RoleReader = "reader" // reads fleet answers
	RoleAdmin  = "admin"  // reads, and creates tokens
	RoleWorker = "worker" // image-validation workers: read fleet answers
	RoleHost   = "host"   // one host's credential: writes that host only
)

// Roles lists the roles a person's or an enrolment token may have.
func Roles() []string { return []string{RoleEnroll, RoleReader, RoleAdmin, RoleWorker} }

// Errors callers branch on.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrStale is a heartbeat whose report digest is not the stored one:
	// the agent must send the full report.
	ErrStale = errors.New("store: report digest differs from the stored one")
)

// MissingBlobsError is a report that names blobs the store does not have.
type MissingBlobsError struct{ Digests []string }

func (e *MissingBlobsError) Error() string {
	return fmt.Sprintf("store: %d referenced blob(s) not uploaded: %s", len(e.Digests), strings.Join(e.Digests, ", "))
}

// Token is a stored credential: only the SHA-256 of the secret is kept.
type Token struct {
	Hash      []byte
	Role      string
	HostID    string // for RoleHost
	Note      string
	CreatedAt time.Time
}

// Blob is content stored once by its SHA-256 digest (lower-case hex).
type Blob struct {
	Digest string
	Kind   string // "efi", "var", "firmware-state", "boot-chain", ...
	Data   []byte
}

// Dimension names: the host facts fleet answers group by.
const (
	DimPlatform = "platform"
	DimModel    = "model"
	DimFirmware = "firmware"
	DimRelease  = "release"
	DimLineage  = "lineage"
	DimChannel  = "channel"
	DimLabel    = "label"
)

// Dims lists the dimensions.
func Dims() []string {
	return []string{DimPlatform, DimModel, DimFirmware, DimRelease, DimLineage, DimChannel, DimLabel}
}

var dimColumn = map[string]string{
	DimPlatform: "platform", DimModel: "model", DimFirmware: "firmware", DimRelease: "os_release",
	DimLineage: "lineage", DimChannel: "channel", DimLabel: "label",
}

// ValidDim reports whether name is a dimension.
func ValidDim(name string) bool { _, ok := dimColumn[name]; return ok }

// Host is one enrolled machine and its latest report.
type Host struct {
	ID, Hostname string
	EnrolledAt   time.Time
	LastSeen     time.Time // zero before the first report
	ReportDigest string
	// FirmwareState and BootChain are the digests of the host's distinct
	// firmware state and boot chain (blobs).
	FirmwareState, BootChain string
	Dims                     map[string]string
	PCR7Sealed               bool
	Facts                    []byte // the report as sent; only from Host and Hosts with WithFacts
}

// Report is one accepted report of a host.
type Report struct {
	HostID, Hostname         string
	Digest                   string
	ReceivedAt               time.Time
	FirmwareState, BootChain string
	Dims                     map[string]string
	PCR7Sealed               bool
	Facts                    []byte
	// Blobs are stored with the report, in the same transaction (the
	// firmware-state and boot-chain documents).
	Blobs []Blob
	// Needs are digests that must already be stored.
	Needs []string
}

// HistoryEntry is one past report of a host.
type HistoryEntry struct {
	ReceivedAt               time.Time
	Digest                   string
	FirmwareState, BootChain string
}

// Filter selects hosts.
type Filter struct {
	IDs  []string
	Dims map[string]string // dimension = value, all must match
	// States restricts to these (firmware state, boot chain) pairs.
	States    []StatePair
	Hostname  string    // substring
	SeenSince time.Time // zero: any; hosts never reported are excluded when set
	Reported  bool      // only hosts with a report
	After     string    // ID to page after (hosts come ordered by ID)
	Limit     int       // 0: no limit
	WithFacts bool
	// Narrow reads only the ID, the state pair and PCR7Sealed of each host
	// (what a what-if lists), not the other columns.
	Narrow bool
	// Recent orders by last report, newest first (then ID), instead of by ID.
	Recent bool
	// Unordered returns the hosts in no particular order (without Limit):
	// a caller that sorts them itself spares the database a sort of up to
	// every host.
	Unordered bool
}

// StatePair is a distinct (firmware state, boot chain).
type StatePair struct{ FirmwareState, BootChain string }

// Group is a count of hosts sharing dimension values and a state pair.
type Group struct {
	Values     []string // one per asked dimension
	State      StatePair
	Hosts      int64
	PCR7Sealed int64
}

// Combo is the hosts sharing one combination of dimension values.
type Combo struct {
	Values []string // one per asked dimension
	Hosts  int64
	// Recent are its most recently seen hosts, newest first, then by ID.
	Recent []Host
}

var errNoDims = errors.New("no dimension given")

// Store is what the service keeps.
type Store interface {
	// Driver is "sqlite" or "postgres".
	Driver() string
	CreateToken(ctx context.Context, t Token) error
	// Token finds a token by the SHA-256 of its secret.
	Token(ctx context.Context, hash []byte) (Token, error)
	// Enroll creates a host and its credential together.
	Enroll(ctx context.Context, h Host, cred Token) error
	// MissingBlobs returns the digests of ds not stored, in ds's order.
	MissingBlobs(ctx context.Context, ds []string) ([]string, error)
	// PutBlob stores a blob; storing one that exists is not an error.
	PutBlob(ctx context.Context, b Blob) error
	Blob(ctx context.Context, digest string) (Blob, error)
	// PutReport stores a host's report atomically, or nothing (a
	// *MissingBlobsError, ErrNotFound for an unknown host).
	PutReport(ctx context.Context, r Report) error
	// Seen records that a host's facts are unchanged; ErrStale when the
	// digest is not the stored one.
	Seen(ctx context.Context, hostID, digest string, at time.Time) error
	Host(ctx context.Context, id string) (Host, error)
	Hosts(ctx context.Context, f Filter) ([]Host, error)
	// Groups counts reported hosts by dims and state pair.
	Groups(ctx context.Context, dims []string, f Filter) ([]Group, error)
	History(ctx context.Context, hostID string, limit int) ([]HistoryEntry, error)
	// RecentByGroup returns, for each combination of dims values among the
	// hosts f selects, its perGroup most recently seen hosts (then by ID),
	// in one pass.
	RecentByGroup(ctx context.Context, dims []string, f Filter, perGroup int) ([]Host, error)
	// Combos counts the reported hosts f selects by combination of dims
	// values (at least one dimension), ordered by the values, each with
	// its perGroup most recently seen hosts (then by ID).
	Combos(ctx context.Context, dims []string, f Filter, perGroup int) ([]Combo, error)
	Close() error
}

// Open opens the store named by dsn: "postgres://…" or "postgresql://…" for
// PostgreSQL, otherwise the path of a SQLite database file. Migrations run.
func Open(ctx context.Context, dsn string) (Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(ctx, dsn)
}
