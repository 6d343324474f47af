package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed migrations
var migrations embed.FS

// dialect is what differs between the drivers: the name, the migrations, the
// placeholders and how a unique violation looks.
type dialect struct {
	name     string
	dollar   bool // $1 placeholders (PostgreSQL) rather than ?
	isUnique func(error) bool
}

// sqlStore implements Store on database/sql for both drivers; the SQL is the
// common subset (ON CONFLICT, no RETURNING needed).
type sqlStore struct {
	db *sql.DB
	d  dialect
	// wmu serialises writes when the database has one writer (SQLite):
	// waiting on a Go mutex is fast, SQLite's busy handler sleeps.
	wmu *sync.Mutex
	// wconn is SQLite's one writing connection (see writeConn).
	wconn *sql.Conn
	// batch groups the hot writes into shared transactions (SQLite);
	// stmts are statements prepared once.
	batch  *batcher
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	// known are digests of committed blobs (see remember).
	known  sync.Map
	knownN atomic.Int64
}

// lockWrite takes the write lock, if the dialect has one; the returned
// function releases it.
func (s *sqlStore) lockWrite() func() {
	if s.wmu == nil {
		return func() {}
	}
	s.wmu.Lock()
	return s.wmu.Unlock
}

func (s *sqlStore) Driver() string { return s.d.name }

func (s *sqlStore) Close() error {
	if s.batch != nil {
		s.batch.close()
	}
	if s.wconn != nil {
		s.wconn.Close()
	}
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.stmtMu.Unlock()
	return s.db.Close()
}

// q rewrites ? placeholders for the dialect.
func (s *sqlStore) q(query string) string {
	if !s.d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// migrate applies the driver's numbered migrations not yet applied, each in
// its own transaction with its version row.
func (s *sqlStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	dir := path.Join("migrations", s.d.name)
	ents, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s: no version number", e.Name())
		}
		body, err := fs.ReadFile(migrations, path.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range statements(string(body)) {
				if strings.TrimSpace(stripComments(stmt)) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, time.Now().Unix())
			return err
		})
		if err != nil && !s.d.isUnique(err) { // another server applied it at the same time
			return fmt.Errorf("store: migration %s: %w", e.Name(), err)
		}
	}
	return nil
}

// statements splits a migration: at lines holding only ";;" when it has
// them (function and trigger bodies hold ";"), else at every ";".
func statements(body string) []string {
	lines := strings.Split(body, "\n")
	for _, l := range lines {
		if strings.TrimSpace(l) == ";;" {
			var out []string
			var cur []string
			for _, l := range lines {
				if strings.TrimSpace(l) == ";;" {
					out = append(out, strings.Join(cur, "\n"))
					cur = nil
					continue
				}
				cur = append(cur, l)
			}
			return append(out, strings.Join(cur, "\n"))
		}
	}
	return strings.Split(body, ";")
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (s *sqlStore) tx(ctx context.Context, f func(*sql.Tx) error) error {
	defer s.lockWrite()()
	var tx *sql.Tx
	var err error
	if s.wconn != nil {
		tx, err = s.wconn.BeginTx(ctx, nil)
	} else {
		tx, err = s.db.BeginTx(ctx, nil)
	}
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// queryAll runs q and appends every row, read by scan, to into (an empty
// slice or nil: what callers return for no rows). op names the operation in
// errors.
func queryAll[T any](ctx context.Context, s *sqlStore, op, q string, args []any, into []T, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		into = append(into, v)
	}
	return into, wrap(op, rows.Err())
}

// dimCol is the hosts column of a grouping dimension.
func dimCol(d string) (string, error) {
	col, ok := dimColumn[d]
	if !ok {
		return "", fmt.Errorf("store: unknown dimension %q (want one of %s)", d, strings.Join(Dims(), ", "))
	}
	return col, nil
}

// dimCols maps dimensions to their columns.
func dimCols(dims []string) ([]string, error) {
	cols := make([]string, 0, len(dims))
	for _, d := range dims {
		col, err := dimCol(d)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	return cols, nil
}

func wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) || errors.Is(err, ErrStale) {
		return err
	}
	var mb *MissingBlobsError
	if errors.As(err, &mb) {
		return err
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	defer s.lockWrite()()
	_, err := s.writer().ExecContext(ctx, s.q(`INSERT INTO tokens (hash, role, host_id, note, created_at) VALUES (?, ?, ?, ?, ?)`),
		t.Hash, t.Role, t.HostID, t.Note, t.CreatedAt.Unix())
	if err != nil && s.d.isUnique(err) {
		return ErrExists
	}
	return wrap("create token", err)
}

func (s *sqlStore) Token(ctx context.Context, hash []byte) (Token, error) {
	t := Token{Hash: hash}
	var at int64
	err := s.dbQueryRow(ctx, `SELECT role, host_id, note, created_at FROM tokens WHERE hash = ?`, hash).Scan(&t.Role, &t.HostID, &t.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	t.CreatedAt = time.Unix(at, 0).UTC()
	return t, wrap("token", err)
}

func (s *sqlStore) Enroll(ctx context.Context, h Host, cred Token) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, `INSERT INTO hosts (id, hostname, enrolled_at) VALUES (?, ?, ?)`, h.ID, h.Hostname, h.EnrolledAt.Unix()); err != nil {
			return err
		}
		_, err := s.txExec(ctx, tx, `INSERT INTO tokens (hash, role, host_id, note, created_at) VALUES (?, ?, ?, ?, ?)`,
			cred.Hash, RoleHost, h.ID, cred.Note, cred.CreatedAt.Unix())
		return err
	})
	if err != nil && s.d.isUnique(err) {
		return ErrExists
	}
	return wrap("enroll", err)
}

func (s *sqlStore) MissingBlobs(ctx context.Context, ds []string) ([]string, error) {
	have := map[string]bool{}
	var ask []string
	for _, d := range ds {
		if _, ok := s.known.Load(d); ok {
			have[d] = true
		} else if !have[d] {
			ask = append(ask, d)
		}
	}
	for start := 0; start < len(ask); start += 500 {
		chunk := ask[start:min(start+500, len(ask))]
		args := make([]any, len(chunk))
		for i, d := range chunk {
			args[i] = d
		}
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT digest FROM blobs WHERE digest IN (`+marks(len(chunk))+`)`), args...)
		if err != nil {
			return nil, wrap("missing blobs", err)
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return nil, wrap("missing blobs", err)
			}
			have[d] = true
			s.remember(d)
		}
		if err := rows.Close(); err != nil {
			return nil, wrap("missing blobs", err)
		}
	}
	missing := []string{}
	seen := map[string]bool{}
	for _, d := range ds {
		if !have[d] && !seen[d] {
			missing = append(missing, d)
			seen[d] = true
		}
	}
	return missing, nil
}

// remember notes a committed blob: blobs are never deleted, so a digest
// once stored needs no query again. Bounded: a fleet has few distinct blobs.
func (s *sqlStore) remember(d string) {
	if s.knownN.Load() < 1<<16 {
		if _, loaded := s.known.LoadOrStore(d, struct{}{}); !loaded {
			s.knownN.Add(1)
		}
	}
}

// emptyBlob is an empty blob literal.
func (s *sqlStore) emptyBlob() string {
	if s.d.dollar {
		return "''::bytea"
	}
	return "X''"
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func (s *sqlStore) putBlob(ctx context.Context, ex execer, b Blob) error {
	_, err := ex.ExecContext(ctx, s.q(`INSERT INTO blobs (digest, kind, size, data, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`),
		b.Digest, b.Kind, len(b.Data), b.Data, time.Now().Unix())
	return err
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writer is where a write outside a transaction goes (under lockWrite):
// SQLite's writing connection, else the pool.
func (s *sqlStore) writer() execer {
	if s.wconn != nil {
		return s.wconn
	}
	return s.db
}

func (s *sqlStore) PutBlob(ctx context.Context, b Blob) error {
	defer s.lockWrite()()
	err := s.putBlob(ctx, s.writer(), b)
	if err == nil {
		s.remember(b.Digest)
	}
	return wrap("put blob", err)
}

func (s *sqlStore) Blob(ctx context.Context, digest string) (Blob, error) {
	b := Blob{Digest: digest}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT kind, data FROM blobs WHERE digest = ?`), digest).Scan(&b.Kind, &b.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return Blob{}, ErrNotFound
	}
	return b, wrap("blob", err)
}

func (s *sqlStore) PutReport(ctx context.Context, r Report) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var prev string
		var seq int64
		err := s.txQueryRow(ctx, tx, `SELECT report_digest FROM hosts WHERE id = ?`, r.HostID).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if len(r.Needs) > 0 {
			if err := s.checkBlobs(ctx, tx, r.Needs); err != nil {
				return err
			}
		}
		for _, b := range r.Blobs {
			if _, ok := s.known.Load(b.Digest); ok {
				continue // committed before: the insert would do nothing
			}
			if _, err := s.txExec(ctx, tx, `INSERT INTO blobs (digest, kind, size, data, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
				b.Digest, b.Kind, len(b.Data), b.Data, time.Now().Unix()); err != nil {
				return err
			}
		}
		d := r.Dims
		_, err = s.txExec(ctx, tx, `UPDATE hosts SET hostname = ?, last_seen = ?, report_digest = ?, firmware_state = ?, boot_chain = ?,
			platform = ?, model = ?, firmware = ?, os_release = ?, lineage = ?, channel = ?, label = ?, pcr7_sealed = ? WHERE id = ?`,
			r.Hostname, r.ReceivedAt.Unix(), r.Digest, r.FirmwareState, r.BootChain,
			d[DimPlatform], d[DimModel], d[DimFirmware], d[DimRelease], d[DimLineage], d[DimChannel], d[DimLabel],
			b2i(r.PCR7Sealed), r.HostID)
		if err != nil {
			return err
		}
		facts := r.Facts
		if facts == nil {
			facts = []byte{}
		}
		_, err = s.txExec(ctx, tx, `INSERT INTO host_facts (host_id, facts) VALUES (?, ?) ON CONFLICT (host_id) DO UPDATE SET facts = excluded.facts`, r.HostID, facts)
		if err != nil || prev == r.Digest {
			return err
		}
		// A host's first report (no digest stored yet) starts its history:
		// no need to look for the last entry.
		if prev != "" {
			if err := s.txQueryRow(ctx, tx, `SELECT COALESCE(MAX(seq), 0) FROM host_reports WHERE host_id = ?`, r.HostID).Scan(&seq); err != nil {
				return err
			}
		}
		_, err = s.txExec(ctx, tx, `INSERT INTO host_reports (host_id, received_at, seq, report_digest, firmware_state, boot_chain) VALUES (?, ?, ?, ?, ?, ?)`,
			r.HostID, r.ReceivedAt.Unix(), seq+1, r.Digest, r.FirmwareState, r.BootChain)
		return err
	})
	if err == nil {
		for _, b := range r.Blobs {
			s.remember(b.Digest)
		}
	}
	return wrap("put report", err)
}

func (s *sqlStore) checkBlobs(ctx context.Context, tx *sql.Tx, ds []string) error {
	have := map[string]bool{}
	var ask []string
	for _, d := range ds {
		if _, ok := s.known.Load(d); ok {
			have[d] = true
		} else {
			ask = append(ask, d)
		}
	}
	for start := 0; start < len(ask); start += 500 {
		chunk := ask[start:min(start+500, len(ask))]
		args := make([]any, len(chunk))
		for i, d := range chunk {
			args[i] = d
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT digest FROM blobs WHERE digest IN (`+marks(len(chunk))+`)`), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			have[d] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	var missing []string
	for _, d := range ds {
		if !have[d] {
			missing = append(missing, d)
			have[d] = true
		}
	}
	if len(missing) > 0 {
		return &MissingBlobsError{Digests: missing}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sqlStore) Seen(ctx context.Context, hostID, digest string, at time.Time) error {
	unlock := s.lockWrite()
	res, err := s.writer().ExecContext(ctx, s.q(`UPDATE hosts SET last_seen = ? WHERE id = ? AND report_digest = ? AND report_digest <> ''`), at.Unix(), hostID, digest)
	unlock()
	if err != nil {
		return wrap("seen", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Host(ctx, hostID); err != nil {
			return err
		}
		return ErrStale
	}
	return nil
}

const hostCols = `id, hostname, enrolled_at, last_seen, report_digest, firmware_state, boot_chain, platform, model, firmware, os_release, lineage, channel, label, pcr7_sealed`

type scanner interface{ Scan(...any) error }

func scanHost(r scanner, facts bool) (Host, error) {
	var h Host
	var enrolled, seen int64
	var sealed int
	var p, m, f, rel, lin, ch, lab string
	dest := []any{&h.ID, &h.Hostname, &enrolled, &seen, &h.ReportDigest, &h.FirmwareState, &h.BootChain, &p, &m, &f, &rel, &lin, &ch, &lab, &sealed}
	if facts {
		dest = append(dest, &h.Facts)
	}
	if err := r.Scan(dest...); err != nil {
		return Host{}, err
	}
	h.EnrolledAt = time.Unix(enrolled, 0).UTC()
	if seen > 0 {
		h.LastSeen = time.Unix(seen, 0).UTC()
	}
	h.PCR7Sealed = sealed != 0
	h.Dims = map[string]string{DimPlatform: p, DimModel: m, DimFirmware: f, DimRelease: rel, DimLineage: lin, DimChannel: ch, DimLabel: lab}
	return h, nil
}

func (s *sqlStore) Host(ctx context.Context, id string) (Host, error) {
	h, err := scanHost(s.db.QueryRowContext(ctx, s.q(`SELECT `+hostCols+`, COALESCE(f.facts, `+s.emptyBlob()+`) FROM hosts LEFT JOIN host_facts f ON f.host_id = hosts.id WHERE id = ?`), id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return Host{}, ErrNotFound
	}
	return h, wrap("host", err)
}

// where builds the WHERE clause of f.
func (s *sqlStore) where(f Filter) (string, []any, error) {
	var conds []string
	var args []any
	if len(f.IDs) > 0 {
		conds = append(conds, "id IN ("+marks(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	keys := make([]string, 0, len(f.Dims))
	for k := range f.Dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		col, err := dimCol(k)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, col+" = ?")
		args = append(args, f.Dims[k])
	}
	if len(f.States) > 0 {
		var ors []string
		for _, p := range f.States {
			ors = append(ors, "(firmware_state = ? AND boot_chain = ?)")
			args = append(args, p.FirmwareState, p.BootChain)
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	if f.Hostname != "" {
		conds = append(conds, "hostname LIKE ?")
		args = append(args, "%"+strings.NewReplacer("%", "", "_", "").Replace(f.Hostname)+"%")
	}
	if !f.SeenSince.IsZero() {
		conds = append(conds, "last_seen >= ?")
		args = append(args, f.SeenSince.Unix())
	}
	if f.Reported || !f.SeenSince.IsZero() {
		conds = append(conds, "report_digest <> ''")
	}
	if f.After != "" {
		conds = append(conds, "id > ?")
		args = append(args, f.After)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

func (s *sqlStore) Hosts(ctx context.Context, f Filter) ([]Host, error) {
	w, args, err := s.where(f)
	if err != nil {
		return nil, err
	}
	cols, from := hostCols, " FROM hosts"
	if f.WithFacts {
		cols += ", COALESCE(f.facts, " + s.emptyBlob() + ")"
		from = " FROM hosts LEFT JOIN host_facts f ON f.host_id = hosts.id"
	}
	q := `SELECT ` + cols + from + w + ` ORDER BY id`
	if f.Unordered && f.Limit == 0 {
		q = `SELECT ` + cols + from + w
	}
	if f.Recent {
		q = `SELECT ` + cols + from + w + ` ORDER BY last_seen DESC, id`
	}
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	if f.Narrow {
		q = strings.Replace(q, `SELECT `+cols+from, `SELECT id, firmware_state, boot_chain, pcr7_sealed`+from, 1)
		return queryAll(ctx, s, "hosts", q, args, []Host{}, func(r *sql.Rows) (Host, error) {
			var h Host
			var sealed int
			err := r.Scan(&h.ID, &h.FirmwareState, &h.BootChain, &sealed)
			h.PCR7Sealed = sealed != 0
			return h, err
		})
	}
	return queryAll(ctx, s, "hosts", q, args, []Host{}, func(r *sql.Rows) (Host, error) { return scanHost(r, f.WithFacts) })
}

// countsDim reports whether host_counts answers a Groups of dims and f: a
// filter on dimensions only, naming (with dims) at most one dimension, which
// it returns ("" for none).
func countsDim(dims []string, f Filter) (string, bool) {
	if len(f.IDs) > 0 || len(f.States) > 0 || f.Hostname != "" || !f.SeenSince.IsZero() || f.After != "" || f.Limit != 0 || len(dims) > 1 {
		return "", false
	}
	named := map[string]bool{}
	for _, d := range dims {
		named[d] = true
	}
	for d := range f.Dims {
		named[d] = true
	}
	if len(named) > 1 {
		return "", false
	}
	for d := range named {
		return d, ValidDim(d)
	}
	return "", true
}

// groupsFromCounts is Groups answered by host_counts (migration 002).
func (s *sqlStore) groupsFromCounts(ctx context.Context, dim string, grouped bool, f Filter) ([]Group, error) {
	cols := "firmware_state, boot_chain"
	if grouped {
		cols = "value, " + cols
	}
	q := `SELECT ` + cols + `, CAST(SUM(hosts) AS BIGINT), CAST(SUM(sealed) AS BIGINT) FROM host_counts WHERE dim = ?`
	args := []any{dim}
	if v, ok := f.Dims[dim]; ok {
		q += ` AND value = ?`
		args = append(args, v)
	}
	q += ` GROUP BY ` + cols + ` HAVING SUM(hosts) > 0 ORDER BY ` + cols
	return queryAll(ctx, s, "groups", q, args, []Group{}, func(r *sql.Rows) (Group, error) {
		var g Group
		dest := []any{&g.State.FirmwareState, &g.State.BootChain, &g.Hosts, &g.PCR7Sealed}
		if grouped {
			g.Values = make([]string, 1)
			dest = append([]any{&g.Values[0]}, dest...)
		} else {
			g.Values = []string{}
		}
		return g, r.Scan(dest...)
	})
}

func (s *sqlStore) Groups(ctx context.Context, dims []string, f Filter) ([]Group, error) {
	if d, ok := countsDim(dims, f); ok {
		return s.groupsFromCounts(ctx, d, len(dims) == 1, f)
	}
	f.Reported = true
	w, args, err := s.where(f)
	if err != nil {
		return nil, err
	}
	cols, err := dimCols(dims)
	if err != nil {
		return nil, err
	}
	group := strings.Join(append(append([]string(nil), cols...), "firmware_state", "boot_chain"), ", ")
	q := `SELECT ` + group + `, COUNT(*), CAST(SUM(pcr7_sealed) AS BIGINT) FROM hosts` + w + ` GROUP BY ` + group + ` ORDER BY ` + group
	return queryAll(ctx, s, "groups", q, args, []Group{}, func(r *sql.Rows) (Group, error) {
		g := Group{Values: make([]string, len(dims))}
		dest := make([]any, 0, len(dims)+4)
		for i := range g.Values {
			dest = append(dest, &g.Values[i])
		}
		dest = append(dest, &g.State.FirmwareState, &g.State.BootChain, &g.Hosts, &g.PCR7Sealed)
		return g, r.Scan(dest...)
	})
}

func (s *sqlStore) History(ctx context.Context, hostID string, limit int) ([]HistoryEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT received_at, report_digest, firmware_state, boot_chain FROM host_reports WHERE host_id = ? ORDER BY seq DESC LIMIT ` + strconv.Itoa(limit)
	return queryAll(ctx, s, "history", q, []any{hostID}, []HistoryEntry{}, func(r *sql.Rows) (HistoryEntry, error) {
		var e HistoryEntry
		var at int64
		err := r.Scan(&at, &e.Digest, &e.FirmwareState, &e.BootChain)
		e.ReceivedAt = time.Unix(at, 0).UTC()
		return e, err
	})
}

func (s *sqlStore) RecentByGroup(ctx context.Context, dims []string, f Filter, perGroup int) ([]Host, error) {
	w, args, err := s.where(f)
	if err != nil {
		return nil, err
	}
	cols, err := dimCols(dims)
	if err != nil {
		return nil, err
	}
	part := ""
	if len(cols) > 0 {
		part = "PARTITION BY " + strings.Join(cols, ", ") + " "
	}
	q := `SELECT ` + hostCols + ` FROM (SELECT ` + hostCols + `, ROW_NUMBER() OVER (` + part + `ORDER BY last_seen DESC, id) AS rn FROM hosts` + w +
		`) ranked WHERE rn <= ` + strconv.Itoa(max(1, perGroup)) + ` ORDER BY last_seen DESC, id`
	if perGroup <= 1 && len(cols) > 0 {
		// One host per group: two hash aggregations (the newest report of
		// each group, then the least ID among its hosts seen then) instead
		// of sorting every host for the window: at a million hosts the
		// sort spills to disk.
		list := strings.Join(cols, ", ")
		var on []string
		for _, c := range cols {
			on = append(on, "s."+c+" = t."+c)
		}
		sel := `SELECT id, ` + list + `, last_seen FROM hosts` + w
		q = `SELECT ` + hostCols + ` FROM hosts WHERE id IN (SELECT MIN(s.id) FROM (` + sel + `) s JOIN (SELECT ` + list + `, MAX(last_seen) AS m FROM hosts` + w +
			` GROUP BY ` + list + `) t ON ` + strings.Join(on, " AND ") + ` AND s.last_seen = t.m GROUP BY ` + strings.Join(strings.Split("s."+strings.Join(cols, ", s."), ", "), ", ") +
			`) ORDER BY last_seen DESC, id`
		args = append(args, args...)
	}
	return queryAll(ctx, s, "recent by group", q, args, []Host{}, func(r *sql.Rows) (Host, error) { return scanHost(r, false) })
}
