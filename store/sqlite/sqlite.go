// Package sqlite is the embedded default Store: one SQLite file.
//
// Writes are durable when acknowledged: the database runs in WAL mode with
// synchronous=FULL, so an acknowledged write survives a crash of the
// process (and of the machine, as far as the disk honours fsync). The file
// is created readable by its owner only, since props hold secrets.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/connkit/connkit/store"
)

// Store is a store.Store on an SQLite file.
type Store struct {
	db   *sql.DB
	lock *os.File // locked: no other process opens the database
	now  func() time.Time

	maxBatch int
	ops      chan *op
	quit     chan struct{}
	stopped  chan struct{}
	closing  sync.Once
	batches  atomic.Int64 // transactions committed, for tests
}

// Options configure a Store. A nil *Options means all defaults.
type Options struct {
	// MaxBatch caps the writes committed in one transaction, with one
	// fsync: concurrent writes are grouped (group commit), each caller
	// answered once its own is durable. Default 128; 1 commits each write
	// on its own.
	MaxBatch int
}

var _ store.Store = (*Store)(nil)

const schema = `CREATE TABLE IF NOT EXISTS connections (
	id         TEXT PRIMARY KEY NOT NULL,
	typ        TEXT NOT NULL,
	props      BLOB NOT NULL,
	version    INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS connkit_counters (
	name  TEXT PRIMARY KEY NOT NULL,
	value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO connkit_counters (name, value) VALUES ('incarnation', 0)`

// migrate adds what a database made by an earlier release lacks: the
// incarnation of each record (0 for those it holds; every record created
// from now on takes the next of the counter, so none repeats).
func migrate(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('connections') WHERE name = 'incarnation'`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, `ALTER TABLE connections ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0`)
	return err
}

// Open opens or creates the database at path, creating its directory if
// needed. The path ":memory:" gives a private in-memory database.
func Open(ctx context.Context, path string) (*Store, error) { return OpenWith(ctx, path, nil) }

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, opts *Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite store: empty path: give a file path such as connkit.db")
	}
	dsn := ":memory:"
	var lock *os.File
	if path != ":memory:" {
		if err := prepareFile(path); err != nil {
			return nil, err
		}
		var err error
		if lock, err = lockFile(path); err != nil {
			return nil, err
		}
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath()
	}
	opened := false
	defer func() {
		if !opened && lock != nil {
			lock.Close()
		}
	}()
	dsn += "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	// One connection: writes to SQLite are serial anyway, and a single
	// connection keeps ":memory:" one database.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: create table: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: add the incarnation column: %w", path, err)
	}
	opened = true
	s := &Store{db: db, lock: lock, now: time.Now, maxBatch: 128, ops: make(chan *op), quit: make(chan struct{}), stopped: make(chan struct{})}
	if opts != nil && opts.MaxBatch > 0 {
		s.maxBatch = opts.MaxBatch
	}
	go s.commit()
	return s, nil
}

// lockFile takes an exclusive lock on path's -lock file beside it, held
// until Close (or the process ends): a second process on the same
// database would keep records the first never sees.
func lockFile(path string) (*os.File, error) {
	// One lock per file, however it is named: through a symlink too.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	f, err := os.OpenFile(real+"-lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("sqlite store %s: the file is in use by another process; one SQLite file serves one instance: "+
				"for several instances sharing connections use the etcd store (store/etcd; examples/server -store etcd://HOST:PORT/PREFIX)", path)
		}
		return nil, fmt.Errorf("sqlite store %s: lock: %w", path, err)
	}
	return f, nil
}

func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	return f.Close()
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

type scanner interface{ Scan(...any) error }

// scan reads a row. A row that holds what this store never writes (a
// hand edit: props that are no text, a version that is no number) is a
// record all the same, with Err saying what is wrong, so that one bad row
// never stops a List; a timestamp that cannot be read is left zero.
func scan(s scanner) (store.Record, error) {
	var r store.Record
	var id, typ, c, u sql.NullString
	var props, version, inc any
	if err := s.Scan(&id, &typ, &props, &version, &c, &u, &inc); err != nil {
		return store.Record{}, err
	}
	r.ID, r.Type = id.String, typ.String
	switch p := props.(type) {
	case []byte:
		r.Props = p
	case string: // written as text, as the sqlite3 shell does
		r.Props = []byte(p)
	default:
		r.Err = fmt.Errorf("sqlite store: record %q: props are %T, not JSON text", short(r.ID), props)
	}
	if v, ok := version.(int64); ok && v > 0 {
		r.Version = v
	} else if r.Err == nil {
		r.Err = fmt.Errorf("sqlite store: record %q: version %v is not a positive number", short(r.ID), version)
	}
	if n, ok := inc.(int64); ok {
		r.Incarnation = n // anything else, a hand edit, is 0: a tag of 0 names it
	}
	r.CreatedAt, r.UpdatedAt = parseTime(c.String), parseTime(u.String)
	return r, nil
}

// short bounds an id in a message.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// parseTime reads a timestamp as written, or as a person would type one;
// zero if neither.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

const cols = `id, typ, props, version, created_at, updated_at, incarnation`

// atTag is the condition of a write at a Tag: its incarnation (0 also
// names one that is no number) and version (0 names one that is no
// positive number: the write mends it). Its arguments are those of
// tagArgs.
const atTag = `(incarnation = ? OR (? = 0 AND typeof(incarnation) != 'integer')) AND (version = ? OR (? = 0 AND (typeof(version) != 'integer' OR version <= 0)))`

func tagArgs(at store.Tag) []any {
	return []any{at.Incarnation, at.Incarnation, at.Version, at.Version}
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM connections ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list: %w", err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list: %w", err)
	}
	return out, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	r, err := scan(s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM connections WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite store: get %q: %w", id, err)
	}
	return r, nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, rec store.Record) (store.Record, error) {
	now := s.now().UTC()
	rec.Version, rec.CreatedAt, rec.UpdatedAt = 1, now, now
	err := s.write(ctx, func(tx *sql.Tx) error {
		// The next incarnation of the counter, which only grows.
		err := tx.QueryRow(`INSERT INTO connections (`+cols+`) SELECT ?, ?, ?, ?, ?, ?, value + 1 FROM connkit_counters WHERE name = 'incarnation'
			ON CONFLICT (id) DO NOTHING RETURNING incarnation`,
			rec.ID, rec.Type, []byte(rec.Props), rec.Version, ts(now), ts(now)).Scan(&rec.Incarnation)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrExists
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE connkit_counters SET value = ? WHERE name = 'incarnation'`, rec.Incarnation)
		return err
	})
	if errors.Is(err, store.ErrExists) {
		return store.Record{}, err
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey {
		return store.Record{}, store.ErrExists
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite store: create %q: %w", rec.ID, err)
	}
	return rec, nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, rec store.Record, at store.Tag) (store.Record, error) {
	now := s.now().UTC()
	var out store.Record
	err := s.write(ctx, func(tx *sql.Tx) error {
		// Version 0 is that of a row whose version is damaged (no
		// number): the write mends it.
		row := tx.QueryRow(`UPDATE connections SET typ = ?, props = ?, updated_at = ?,
			version = CASE WHEN typeof(version) = 'integer' AND version > 0 THEN version + 1 ELSE 1 END
			WHERE id = ? AND `+atTag+` RETURNING `+cols,
			append([]any{rec.Type, []byte(rec.Props), ts(now), rec.ID}, tagArgs(at)...)...)
		var err error
		out, err = scan(row)
		if errors.Is(err, sql.ErrNoRows) {
			return missOrMismatch(tx, rec.ID)
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrVersionMismatch) {
		return store.Record{}, err
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite store: update %q: %w", rec.ID, err)
	}
	return out, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string, at store.Tag) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM connections WHERE id = ? AND `+atTag, append([]any{id}, tagArgs(at)...)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return missOrMismatch(tx, id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrVersionMismatch) {
		return fmt.Errorf("sqlite store: delete %q: %w", id, err)
	}
	return err
}

// missOrMismatch tells why a conditional write touched no row.
func missOrMismatch(tx *sql.Tx, id string) error {
	var v any
	err := tx.QueryRow(`SELECT version FROM connections WHERE id = ?`, id).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return fmt.Errorf("sqlite store: %q: %w", id, err)
	}
	return store.ErrVersionMismatch
}

// Close implements store.Store: writes still queued fail, then the
// database closes.
func (s *Store) Close() error {
	s.closing.Do(func() { close(s.quit) })
	<-s.stopped
	err := s.db.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}
